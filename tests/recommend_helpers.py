"""Shared by the tests of `train`, `recommend` and `next` in several folders (a plain module, so that no test module
imports another): a small store with an LR trained on it, the flags of a new dataset, a fitted recommender, and the
training libraries a command loads in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from pair_tables import image_pairs

MODELS = [f"m{i}" for i in range(12)]

# the flags of a new image dataset named "target", for `recommend` and `next` on make_store's store
NEW = ["--dataset", "target", "--examples", "800", "--classes", "10", "--group", "g", "--modality", "image"]

# what answering from a saved recommender or a SQLite store never needs: training, plotting, SQLAlchemy (writes)
NOT_ANSWERING = ("torch", "lightning", "optuna", "sklearn", "scipy", "matplotlib", "sqlalchemy", "alembic")


def make_store(folder: Path) -> tuple[str, str]:
    """A store of 12 models x 5 image datasets under protocol p where low-index models win on d0-d3 and high-index
    ones on d4 (performance in %), with model and dataset facts; and an LR on d,m trained on it by the CLI."""
    from recommender.cli import main
    from recommender.history import open_store
    from recommender.history.ingest import ingest_file

    rng = np.random.default_rng(0)
    jobs = pd.DataFrame([{"model": m, "dataset": f"d{d}", "metric": "top1", "protocol": "p",
                          "value": round(60 + (1 if d == 4 else -1) * 2.0 * (i - 5.5) + rng.normal(0, 0.3), 3)}
                         for d in range(5) for i, m in enumerate(MODELS)])
    models = pd.DataFrame({"model": MODELS, "family": "f", "pretrain_dataset": "in1k",
                           "params_m": [10.0 + i for i in range(12)], "input_size": 224.0})
    datasets = pd.DataFrame({"dataset": [f"d{d}" for d in range(5)], "group": "g", "modality": "image",
                             "examples": 800.0, "classes": 10.0})
    url = f"sqlite:///{folder / 'history.db'}"
    db = open_store(url, create=True)
    for kind, frame in (("models", models), ("datasets", datasets), ("jobs", jobs)):
        frame.to_csv(folder / f"{kind}.csv", index=False)
        ingest_file(db, folder / f"{kind}.csv", kind=kind)
    out = str(folder / "lr")
    assert main(["train", "--recommender", "lr", "--protocol", "p", "--db", url, "--out", out]) == 0
    return url, out


def imported_by(argv: list[str]) -> list[str]:
    """The NOT_ANSWERING modules loaded by running the command in a fresh interpreter (which must succeed)."""
    code = ("import json, sys\nfrom recommender.cli import main\n"
            f"code = main({argv!r})\n"
            f"print(json.dumps([code, [m for m in {NOT_ANSWERING!r} if m in sys.modules]]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    code, loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert code == 0, done.stderr
    return loaded


def fitted(kind: str, features: str = "d,m,logme", pairs: pd.DataFrame | None = None):
    """A small LR or FM fitted on `pairs` (default pair_tables.image_pairs(); FM: 15 epochs, enough to move every
    weight off its start)."""
    from recommender.models import make_recommender

    pairs = image_pairs() if pairs is None else pairs
    return make_recommender(kind, features=features, **({"epochs": 15} if kind == "fm" else {})).fit(pairs)
