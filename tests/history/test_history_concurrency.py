"""Several real processes ingesting into one SQLite store at once lose no row and corrupt nothing."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from recommender.history import open_store
from recommender.history.bundled import HISTORY_DIR

WORKER = """
import sys, time
from recommender.history import open_store
from recommender.history.ingest import ingest_file
db, start, files = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
time.sleep(max(0.0, start - time.time()))  # all workers begin together, so their writes overlap
store = open_store(db)
for path in files:
    ingest_file(store, path, preset="shift")
"""


@pytest.mark.slow
def test_parallel_ingest_processes(tmp_path: Path) -> None:
    """Four processes: each its own share of SHiFT text (split by dataset) plus one file all of them ingest."""
    text = pd.read_csv(HISTORY_DIR / "history_shift_text.csv.gz")
    datasets = sorted(text["dataset"].unique())
    shares = []
    for i in range(4):
        path = tmp_path / f"share{i}.csv"
        text[text["dataset"].isin(datasets[i::4])].to_csv(path, index=False)
        shares.append(path)
    common = tmp_path / "common.csv"
    pd.read_csv(HISTORY_DIR / "history_shift_vision.csv.gz").head(300).to_csv(common, index=False)
    db = tmp_path / "shared.db"
    open_store(str(db), create=True)  # create the schema once, as `history init` would
    start = time.time() + 3.0
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(db), str(start), str(share), str(common)],
                                stderr=subprocess.PIPE, text=True) for share in shares]
    errors = [w.communicate(timeout=300)[1] for w in workers]
    assert [w.returncode for w in workers] == [0] * 4, errors
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    store = open_store(str(db))
    assert store.counts()["jobs"] == len(text) + 300
    stored = store.jobs(source=text["source"].iloc[0])
    expected = pd.concat([text, pd.read_csv(common)])[["model", "dataset", "value"]]
    pd.testing.assert_frame_equal(
        stored.rename(columns={"test_value": "value"})[["model", "dataset", "value"]]
        .sort_values(["model", "dataset", "value"], ignore_index=True),
        expected.sort_values(["model", "dataset", "value"], ignore_index=True), check_dtype=False)
