"""The store on a real PostgreSQL server (URL from $RECOMMENDER_TEST_POSTGRES_URL, e.g. from scripts/postgres.sh)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from recommender.history import IngestError, open_store
from recommender.history.export import tables
from recommender.history.ingest import ingest_file
from recommender.history.schema import metadata

DATA = Path(__file__).parents[1] / "data" / "history"
URL = os.environ.get("RECOMMENDER_TEST_POSTGRES_URL")


def _reachable(url: str | None) -> str | None:
    """None when a server answers at `url`, else why not."""
    if not url:
        return "no PostgreSQL server: set RECOMMENDER_TEST_POSTGRES_URL, e.g. to $(bash scripts/postgres.sh)"
    try:
        with create_engine(url).connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any driver or network failure means: skip, with the reason
        return f"PostgreSQL at {url} is not reachable: {str(exc).splitlines()[0]}"
    return None


pytestmark = [pytest.mark.postgres, pytest.mark.skipif(_reachable(URL) is not None, reason=str(_reachable(URL)))]


@pytest.fixture()
def store():
    """The test database emptied of our tables, then opened as a store (and emptied again afterwards)."""
    engine = create_engine(URL)
    metadata.drop_all(engine)
    yield open_store(URL, create=True)
    metadata.drop_all(engine)


def test_postgres_ingest_query_and_reject(store) -> None:
    """Presets, pair table, idempotence and all-or-nothing behave on PostgreSQL as on SQLite."""
    assert ingest_file(store, DATA / "shift_ftrecords.csv", preset="shift")["jobs"] == 7
    assert ingest_file(store, DATA / "parc_oracles.csv", preset="parc")["jobs"] == 6
    assert ingest_file(store, DATA / "shift_ftrecords.csv", preset="shift")["jobs"] == 0
    pairs = store.pair_table("parc").set_index(["model", "dataset"])
    assert pairs.loc[("resnet50|pirl_imagenet", "oxford_pets"), "performance"] == 86.09975470155355
    assert store.pair_table("vtab1k").loc[lambda t: t["dataset"] == "dmlab", "performance"].tolist() == [
        0.1831987351179123, 0.22147120535373688]
    before = tables(store)
    with pytest.raises(IngestError, match="missing protocol"):
        ingest_file(store, DATA / "small_zoos_long.csv")
    after = tables(store)
    assert all(before[k].equals(after[k]) for k in before)
