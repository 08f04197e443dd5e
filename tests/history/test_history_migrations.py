"""Schema migrations: a real version-2 store (built from the version-2 tables, not by dropping tables of a newer
one) is upgraded in place with its rows kept; a new store is created at the newest revision and matches the schema
the code reads. On SQLite, and on PostgreSQL where $RECOMMENDER_TEST_POSTGRES_URL names a server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text, create_engine, inspect, text

from recommender.errors import UserError
from recommender.history import migrate, open_store, schema
from recommender.history.bundled import load_bundled
from recommender.history.store import Store
from recommender.history.version import SCHEMA_VERSION

POSTGRES = os.environ.get("RECOMMENDER_TEST_POSTGRES_URL")


def version_2_metadata() -> MetaData:
    """The tables of schema version 2 as commit 4d9c5eb defined them (recommender/history/schema.py there)."""
    old = MetaData()
    Table("meta", old, Column("key", String(64), primary_key=True), Column("value", Text, nullable=False))
    Table("jobs", old, Column("id", Integer, primary_key=True, autoincrement=True),
          Column("key", String(64), nullable=False, unique=True), Column("source", String(400), nullable=False),
          Column("model", String(300), nullable=False), Column("dataset", String(200), nullable=False),
          Column("protocol", String(100), nullable=False), Column("metric", String(100), nullable=False),
          Column("hparams", String(1000), nullable=False), Column("seed", String(100)), Column("run", String(200)),
          Column("repeat", Integer, nullable=False), Column("test_value", Float, nullable=False),
          Column("val_value", Float), Column("seconds", Float), Column("extra", Text, nullable=False),
          Column("ingested_at", String(40), nullable=False))
    Table("models", old, Column("model", String(300), primary_key=True), Column("family", String(200)),
          Column("pretrain_dataset", String(200)), Column("input_size", Float), Column("params_m", Float),
          Column("gmacs", Float), Column("imagenet_top1", Float), Column("source", String(1000), nullable=False),
          Column("extra", Text, nullable=False))
    Table("datasets", old, Column("dataset", String(200), primary_key=True), Column("examples", Float),
          Column("classes", Float), Column("modality", String(50)), Column("group", String(100)),
          Column("source", String(1000), nullable=False), Column("extra", Text, nullable=False))
    Table("scores", old, Column("id", Integer, primary_key=True, autoincrement=True),
          Column("key", String(64), nullable=False, unique=True), Column("source", String(400), nullable=False),
          Column("model", String(300), nullable=False), Column("dataset", String(200), nullable=False),
          Column("score", String(100), nullable=False), Column("run", String(200)),
          Column("repeat", Integer, nullable=False), Column("value", Float, nullable=False),
          Column("seconds", Float), Column("ingested_at", String(40), nullable=False))
    return old


JOBS = [  # two jobs, as a version-2 store held them
    {"key": "k1", "source": "old.csv", "model": "resnet50", "dataset": "cifar100", "protocol": "vtab1k",
     "metric": "top1", "hparams": '{"lr":0.01}', "seed": None, "run": None, "repeat": 0, "test_value": 0.75,
     "val_value": 0.7, "seconds": 12.5, "extra": "{}", "ingested_at": "2026-01-01T00:00:00+00:00"},
    {"key": "k2", "source": "old.csv", "model": "vit_b16", "dataset": "cifar100", "protocol": "vtab1k",
     "metric": "top1", "hparams": '{"lr":0.1}', "seed": "1", "run": "r2", "repeat": 0, "test_value": 0.5,
     "val_value": None, "seconds": None, "extra": '{"note":"x"}', "ingested_at": "2026-01-01T00:00:01+00:00"},
]


def build_version_2(url: str) -> None:
    """A store exactly as version-2 code left it: its tables, a few rows, meta.schema_version = 2, no version table."""
    engine = create_engine(url)
    old = version_2_metadata()
    with engine.begin() as conn:
        old.create_all(conn)
        conn.execute(old.tables["meta"].insert(), {"key": "schema_version", "value": "2"})
        conn.execute(old.tables["jobs"].insert(), JOBS)
        conn.execute(old.tables["models"].insert(), {"model": "resnet50", "family": "resnet", "params_m": 25.6,
                                                     "source": "old.csv", "extra": "{}"})
        conn.execute(old.tables["scores"].insert(), {"key": "s1", "source": "old.csv", "model": "resnet50",
                                                     "dataset": "cifar100", "score": "logme", "repeat": 0,
                                                     "value": 1.25, "ingested_at": "2026-01-01T00:00:02+00:00"})
    engine.dispose()


def drop_everything(url: str) -> None:
    """Remove every table of the old and new schema and the version table (a clean PostgreSQL test database)."""
    engine = create_engine(url)
    with engine.begin() as conn:
        for name in [*reversed(schema.metadata.sorted_tables), migrate.VERSION_TABLE]:
            conn.execute(text(f'DROP TABLE IF EXISTS "{getattr(name, "name", name)}"'))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path):
    """An empty database on each backend (PostgreSQL skipped without $RECOMMENDER_TEST_POSTGRES_URL)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'h.db'}"
        return
    if not POSTGRES:
        pytest.skip("no PostgreSQL server: set RECOMMENDER_TEST_POSTGRES_URL, e.g. to $(bash scripts/postgres.sh)")
    drop_everything(POSTGRES)
    yield POSTGRES
    drop_everything(POSTGRES)


def test_version_2_store_is_upgraded_in_place(url: str) -> None:
    """Refused until upgraded (reading and writing); `upgrade` keeps every row and value, adds the new tables,
    records version 3 and the head revision; the store then takes the bundled history on top of its rows."""
    build_version_2(url)
    for create in (False, True):
        with pytest.raises(UserError, match=r"schema version 2; this code reads version 3: run `recommender "
                                            r"history --db .* upgrade`"):
            open_store(url, create=create)
    assert Store(url, check=False).upgrade() == (2, 3)
    store = open_store(url)
    assert store.schema_version() == 3
    tables = set(inspect(store.engine).get_table_names())
    assert {"dataset_aliases", "protocols", "protocol_datasets", migrate.VERSION_TABLE} <= tables
    with store.engine.connect() as conn:
        assert conn.execute(text(f"SELECT version_num FROM {migrate.VERSION_TABLE}")).scalar_one() == "schema3"
    jobs = store.jobs().set_index("run")
    assert len(jobs) == 2 and jobs.loc["r2", "test_value"] == 0.5 and jobs.loc["r2", "extra"] == '{"note":"x"}'
    assert store.jobs(model="resnet50")["hparams"].tolist() == ['{"lr":0.01}']
    assert store.model_features().set_index("model").at["resnet50", "params_m"] == 25.6
    assert store.scores()["value"].tolist() == [1.25]
    assert store.upgrade() == (3, 3)  # again: nothing to do

    report = load_bundled(store)
    counts = store.counts()
    assert counts["jobs"] == 2 + report.loc[report["file"].str.startswith("history_"), "added"].sum()
    assert counts["dataset_aliases"] == 11 and counts["protocols"] > 0
    assert store.jobs(model="vit_b16", dataset="cifar100")["run"].tolist() == ["r2"]  # the old rows stay


def test_a_new_store_is_created_at_head_and_matches_the_schema(url: str) -> None:
    """Creating runs every migration from nothing: the result is the version the code reads, at the newest
    revision, with no difference to `schema.metadata` (Alembic's own comparison)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    store = open_store(url, create=True)
    assert store.schema_version() == SCHEMA_VERSION
    assert migrate.head_revision() == migrate.revision_of(SCHEMA_VERSION)
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": migrate.VERSION_TABLE})
        assert context.get_current_revision() == migrate.head_revision()
        assert compare_metadata(context, schema.metadata) == []


def test_downgrade_then_upgrade_round_trip(tmp_path: Path) -> None:
    """Down to version 2 drops the new tables (the store is then refused); up again restores them, rows kept."""
    url = f"sqlite:///{tmp_path / 'h.db'}"
    store = open_store(url, create=True)
    with store.engine.begin() as conn:
        conn.execute(schema.jobs.insert(), JOBS[:1])
    migrate.downgrade(store.engine, 2)
    assert "protocols" not in inspect(store.engine).get_table_names()
    with pytest.raises(UserError, match="upgrade"):
        open_store(url)
    assert store.upgrade() == (2, 3)
    assert open_store(url).counts()["jobs"] == 1


def test_upgrade_refuses_what_it_cannot_upgrade(tmp_path: Path) -> None:
    """No store: the init pointer; a store from newer code: refused, nothing changed."""
    with pytest.raises(UserError, match="no store at .*: run `recommender history init`"):
        Store(str(tmp_path / "none.db"), check=False)
    url = f"sqlite:///{tmp_path / 'h.db'}"
    store = open_store(url, create=True)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE meta SET value = '4' WHERE key = 'schema_version'"))
    with pytest.raises(UserError, match="schema version 4, newer than this code's 3"):
        open_store(url)
    with pytest.raises(UserError, match="schema version 4, newer than this code's 3"):
        store.upgrade()


def test_dropped_tables_leave_no_stale_version(tmp_path: Path) -> None:
    """Dropping the store's tables (as test suites do with `metadata.drop_all`) leaves our version table behind:
    creating again starts from nothing instead of trusting it."""
    url = f"sqlite:///{tmp_path / 'h.db'}"
    store = open_store(url, create=True)
    schema.metadata.drop_all(store.engine)
    again = open_store(url, create=True)
    assert again.schema_version() == 3 and set(again.counts().values()) == {0}


def test_cli_upgrade(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`recommender history upgrade` says what it did; a second run says there was nothing to do."""
    from recommender.cli import main

    db = tmp_path / "v2.db"
    build_version_2(f"sqlite:///{db}")
    assert main(["history", "--db", str(db), "upgrade"]) == 0
    assert capsys.readouterr().out.strip() == f"store sqlite:///{db}: schema version 2 -> 3"
    assert main(["history", "upgrade", "--db", str(db)]) == 0
    assert capsys.readouterr().out.strip() == f"store sqlite:///{db}: already at schema version 3"
