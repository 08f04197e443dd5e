"""Shared fixtures: stores, pair tables, feature matrices, a CLI runner and brute-force reference correlations.

Factories are handed out as fixtures (call them with the sizes a test needs) so that no test module imports
helpers from another.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pair_tables
import pandas as pd
import pytest

DATA = Path(__file__).parent / "data"

# The commands' default executor is `local` (worker processes on the cores available); the suite's test workers
# already share the cores, so its commands run in-process unless a test names an executor (tests/test_executors.py
# checks the default itself). Set here, before any test, so that CLI subprocesses inherit it too.
os.environ.setdefault("RECOMMENDER_EXECUTOR", "serial")
# Commands without --db read $RECOMMENDER_DB: a store that does not exist, so that no test depends on the default
# store of the machine it runs on (`rank` fits `auto` on that store's history when there is one)
os.environ.setdefault("RECOMMENDER_DB", f"sqlite:///{Path(__file__).parent / 'data' / 'no-such-store.db'}")
# Caches (features, models, fitted `auto`) go to a folder of the test process's own, removed at its exit: no test
# reads what another run left in ~/.cache/recommender, nor leaves anything there
if "RECOMMENDER_CACHE" not in os.environ:
    os.environ["RECOMMENDER_CACHE"] = tempfile.mkdtemp(prefix="recommender-test-cache-")
    atexit.register(shutil.rmtree, os.environ["RECOMMENDER_CACHE"], ignore_errors=True)
SMALL_ZOO = DATA / "history" / "small_zoos_long.csv"  # 4 models x 2 datasets, no model or dataset facts


# Tests on the one PostgreSQL server ($RECOMMENDER_TEST_POSTGRES_URL) drop and create the same tables: two test
# workers doing so at once deadlock, so they are marked `exclusive("postgres")` and run one at a time.
# Modules by file name (tests/history/test_history_postgres.py), single tests by function name.
POSTGRES_MODULES = {"test_history_postgres.py"}
POSTGRES_TESTS = {"test_string_limits_and_nul_on_postgres"}
# Every test under tests/adversarial/ (hostile and careless inputs) is marked `adversarial`: `pytest -m adversarial`
ADVERSARIAL = Path(__file__).parent / "adversarial"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that touches the PostgreSQL server `exclusive("postgres")`, and every test under
    tests/adversarial/ `adversarial`."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if (item.path.name in POSTGRES_MODULES or item.name.split("[")[0] in POSTGRES_TESTS
                or (callspec is not None and "postgresql" in callspec.id)):
            item.add_marker(pytest.mark.exclusive("postgres"))
        if ADVERSARIAL in item.path.parents:
            item.add_marker(pytest.mark.adversarial)


@pytest.fixture(autouse=True)
def _exclusive(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Hold an inter-process lock named by the test's `exclusive` mark while it runs (set up before the test's
    other fixtures, which may already touch the shared resource).

    A lock file in the run's shared temporary folder, not xdist's `xdist_group`: that works only with
    `--dist loadgroup`, and pytest >= 9.2 no longer reads the group xdist 3.8 writes into the test ids."""
    names = sorted({mark.args[0] for mark in request.node.iter_markers("exclusive")})  # sorted: no deadlock
    if not names:
        yield
        return
    from filelock import FileLock

    # the parent of a worker's base temp is shared by the run's workers (the base temp itself without xdist)
    base = tmp_path_factory.getbasetemp()
    folder = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    with ExitStack() as held:
        for name in names:
            held.enter_context(FileLock(folder / f"exclusive-{name}.lock"))
        yield


# --- stores -------------------------------------------------------------------------------------------------------

@pytest.fixture()
def empty_store_url(tmp_path: Path) -> str:
    """The SQLAlchemy URL of a fresh SQLite store with its schema and no rows."""
    from recommender.history import open_store

    url = f"sqlite:///{tmp_path / 'history.db'}"
    open_store(url, create=True)
    return url


@pytest.fixture()
def empty_store(empty_store_url: str):
    """A fresh SQLite store with its schema and no rows."""
    from recommender.history import open_store

    return open_store(empty_store_url)


@pytest.fixture()
def small_store_url(empty_store_url: str) -> str:
    """A SQLite store holding the 8 small-zoo jobs of tests/data/history/small_zoos_long.csv, protocol full-finetune."""
    from recommender.history import open_store
    from recommender.history.ingest import ingest_file

    added = ingest_file(open_store(empty_store_url), SMALL_ZOO, constants={"protocol": "full-finetune"})
    assert added["jobs"] == 8
    return empty_store_url


@pytest.fixture(scope="session")
def bundled_store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite store holding the whole bundled history, loaded once per session (about 10 s).

    Shared by every module that asks for it: read from it, and write nothing but Optuna studies to it."""
    from recommender.history import open_store
    from recommender.history.bundled import load_bundled

    url = f"sqlite:///{tmp_path_factory.mktemp('bundled') / 'history.db'}"
    load_bundled(open_store(url, create=True))
    return url


# --- pair tables --------------------------------------------------------------------------------------------------

def _synthetic_pairs(n_models: int = 40, n_datasets: int = 12, seed: int = 0) -> pd.DataFrame:
    """Every (model, dataset) pair with pair-table side columns drawn at random (row 3's gmacs missing),
    a random score_logme and no performance."""
    rng = np.random.default_rng(seed)
    models = pd.DataFrame({
        "model": [f"m{i}" for i in range(n_models)],
        "family": rng.choice(["vit", "resnet", "swin", "convnext"], n_models),
        "pretrain_dataset": rng.choice(["in1k", "in21k", None], n_models),
        "params_m": rng.lognormal(3, 1, n_models),
        "gmacs": rng.lognormal(1, 1, n_models),
        "input_size": rng.choice([224.0, 384.0], n_models),
        "imagenet_top1": rng.uniform(70, 88, n_models),
    })
    models.loc[3, "gmacs"] = np.nan
    datasets = pd.DataFrame({
        "dataset": [f"d{i}" for i in range(n_datasets)],
        "group": rng.choice(["natural", "specialized", "structured"], n_datasets),
        "modality": "image",
        "examples": rng.choice([800.0, 1000.0, 50000.0], n_datasets),
        "classes": rng.integers(2, 100, n_datasets).astype(float),
    })
    pairs = models.merge(datasets, how="cross")
    pairs["score_logme"] = rng.normal(size=len(pairs))
    return pairs


@pytest.fixture(scope="session")
def synthetic_pairs() -> Callable[..., pd.DataFrame]:
    """Factory ``synthetic_pairs(n_models=40, n_datasets=12, seed=0)``: random facts for every pair, no performance."""
    return _synthetic_pairs


@pytest.fixture(scope="session")
def quality_pairs() -> Callable[..., pd.DataFrame]:
    """Factory ``quality_pairs(n_datasets=5, n_models=10, seed=0)``: a full pair table with a known best model."""
    return pair_tables.quality_pairs


@pytest.fixture()
def tiny_pairs() -> pd.DataFrame:
    """A tiny full pair table: 6 models x 4 datasets, performance, facts, score_good and score_bad."""
    return pair_tables.quality_pairs(n_datasets=4, n_models=6, seed=1)


# --- feature matrices ---------------------------------------------------------------------------------------------

def _clusters(seed: int, n: int, d: int, k: int, spread: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian class clusters: features (n, d) and labels (n,) with every class present."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % k)
    return rng.normal(0, 2, (k, d))[y] + rng.normal(0, spread, (n, d)), y


@pytest.fixture(scope="session")
def clusters() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """Factory ``clusters(seed, n, d, k, spread=1.0)``: seeded class-clustered features and their labels."""
    return _clusters


# --- the command line ---------------------------------------------------------------------------------------------

class CliResult(NamedTuple):
    """What one `recommender` command did."""

    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        """stderr split into lines."""
        return self.err.splitlines()


@pytest.fixture()
def cli(capsys: pytest.CaptureFixture) -> Callable[..., CliResult]:
    """``cli("train", "--db", url, ...)`` runs ``recommender.cli.main`` in-process: exit code, stdout, stderr."""
    from recommender.cli import main

    def run(*argv: object) -> CliResult:
        capsys.readouterr()  # only this command's output
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run


def _run_python(code: str, *argv: object, timeout: float = 900) -> CliResult:
    """``python -c code argv...`` in a fresh process, with this suite's environment."""
    done = subprocess.run([sys.executable, "-c", code, *map(str, argv)], capture_output=True, text=True,
                          timeout=timeout, cwd=Path(__file__).parent)
    return CliResult(done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="session")
def isolated() -> Callable[..., CliResult]:
    """``isolated(code, *argv)`` runs Python code in its own process. Ray runs only there: a local Ray that dies
    under a loaded machine takes its driver process with it, and the driver must not be a test worker."""
    return _run_python


@pytest.fixture(scope="session")
def cli_process() -> Callable[..., CliResult]:
    """``cli_process("rank", ...)`` runs the command in its own process (see `isolated`): exit code, stdout, stderr."""
    return lambda *argv: _run_python("import sys; from recommender.cli import main; sys.exit(main(sys.argv[1:]))",
                                     *argv)


# --- brute-force reference correlations (independent of scipy) ----------------------------------------------------

def _weighted_tau_one_ranking(x: Sequence[float], y: Sequence[float]) -> float:
    """Vigna's additive hyperbolic weighted tau with ties, weights from the decreasing lexicographic rank by (x, y):
    pair (i, j) weighs 1/(r_i + 1) + 1/(r_j + 1); tau = sum w sgn sgn / sqrt(sum w [x_i != x_j] sum w [y_i != y_j])."""
    n = len(x)
    order = sorted(range(n), key=lambda i: (x[i], y[i]), reverse=True)
    rank = np.empty(n)
    rank[order] = np.arange(n)
    weight = 1.0 / (rank + 1.0)
    both = x_only = y_only = 0.0
    for i in range(n):
        for j in range(i + 1, n):
            w = weight[i] + weight[j]
            sx, sy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
            both += w * sx * sy
            x_only += w * (sx != 0)
            y_only += w * (sy != 0)
    denominator = np.sqrt(x_only * y_only)
    return both / denominator if denominator > 0 else float("nan")


def _brute_weighted_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """scipy.stats.weightedtau's defaults by definition in O(n^2): the mean over the rankings by (x, y) and (y, x)."""
    x, y = [float(v) for v in x], [float(v) for v in y]
    return (_weighted_tau_one_ranking(x, y) + _weighted_tau_one_ranking(y, x)) / 2


def _brute_kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b in O(n^2): (concordant - discordant) / sqrt(pairs untied in x * pairs untied in y)."""
    n = len(x)
    s = [(np.sign(x[i] - x[j]), np.sign(y[i] - y[j])) for i in range(n) for j in range(i + 1, n)]
    return sum(a * b for a, b in s) / np.sqrt(sum(a != 0 for a, _ in s) * sum(b != 0 for _, b in s))


@pytest.fixture(scope="session")
def brute_weighted_tau() -> Callable[[Sequence[float], Sequence[float]], float]:
    """Weighted tau (scipy's defaults) computed pair by pair, to check code that calls scipy."""
    return _brute_weighted_tau


@pytest.fixture(scope="session")
def brute_kendall_tau_b() -> Callable[[Sequence[float], Sequence[float]], float]:
    """Kendall's tau-b computed pair by pair."""
    return _brute_kendall_tau_b


