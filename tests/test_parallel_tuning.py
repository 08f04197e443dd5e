"""Tuning across workers: several processes add their trials to one Optuna study in the store (`train --study`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest

TRAIN = ["train", "--recommender", "lr", "--protocol", "full-finetune", "--features", "d,m"]


def _train(url: str, out: Path, *extra: str) -> subprocess.Popen:
    """`recommender train` in a fresh process (what a second terminal or machine runs)."""
    code = "import sys; from recommender.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen([sys.executable, "-c", code, *TRAIN, "--db", url, "--out", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _complete(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=name, storage=url)
    return [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]


@pytest.mark.slow
def test_two_processes_tune_one_study_on_sqlite(small_store_url: str, tmp_path: Path) -> None:
    # started together, so that they create Optuna's tables and the study at the same moment
    workers = [_train(small_store_url, tmp_path / f"lr{i}", "--tune", "8", "--study", "team") for i in range(2)]
    for w in workers:
        out, err = w.communicate(timeout=600)
        assert w.returncode == 0, err
        assert "trained lr" in out
    trials = _complete(small_store_url, "team")
    assert len(trials) == 16  # 2N: each process added its own N trials
    assert len({t.number for t in trials}) == 16
    # each process sampled with its own seed: the two streams of random start-up trials are not copies
    assert len({round(t.params["alpha"], 12) for t in trials}) == 16


def test_shared_study_refuses_other_data(cli, small_store_url: str, tmp_path: Path) -> None:
    assert cli(*TRAIN, "--db", small_store_url, "--out", tmp_path / "a", "--tune", "2", "--study", "s").code == 0
    again = cli(*TRAIN, "--db", small_store_url, "--out", tmp_path / "b", "--tune", "1", "--study", "s")
    assert again.code == 0
    assert len(_complete(small_store_url, "s")) == 3  # added, not topped up to 1
    other = cli(*TRAIN, "--db", small_store_url, "--out", tmp_path / "c", "--tune", "1", "--study", "s",
                "--param", "alpha=2")  # fixed parameters are part of what a study tunes
    assert other.code == 2
    assert other.err_lines[-1].startswith("recommender train: error: study 's' tunes other pairs or settings")
    assert not (tmp_path / "c").exists()


def test_study_needs_tune(cli, small_store_url: str, tmp_path: Path) -> None:
    out = cli(*TRAIN, "--db", small_store_url, "--out", tmp_path / "a", "--study", "s")
    assert out.code == 2
    assert out.err_lines[-1].endswith("--study NAME tunes a shared study: give --tune N, the trials this process adds")
