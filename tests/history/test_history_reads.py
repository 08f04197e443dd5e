"""Reading a SQLite store with the standard library's sqlite3 gives what reading it through SQLAlchemy gives, and the
SQLite URL is understood as SQLAlchemy understands it."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
from sqlalchemy.engine import make_url

from recommender.history import open_store
from recommender.history.bundled import load_bundled
from recommender.history.url import resolve_url, shown_url, sqlite_file, sqlite_path


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    """The bundled histories in a new SQLite store."""
    made = open_store(str(tmp_path_factory.mktemp("reads") / "history.db"), create=True)
    load_bundled(made)
    return open_store(made.url)


def every_read(store) -> dict[str, pd.DataFrame]:
    """Each query of `Queries`, with filters that select and that exclude."""
    return {
        "jobs": store.jobs(), "jobs vtab1k top1": store.jobs(protocol="vtab1k", metric="top1"),
        "jobs columns": store.jobs(protocol="vtab1k", modality="image", columns=["model", "test_value"]),
        "jobs none": store.jobs(model="no such model"), "aliases": store.aliases(),
        "jobs of protocols": store.jobs(protocol=["vtab1k", "parc"], columns=["protocol", "model"]),
        "jobs of no protocol": store.jobs(protocol=[]),
        "protocol facts": store.protocol_facts(), "protocol examples": store.protocol_examples(),
        "protocols": store.protocols(), "models": store.model_features(), "datasets": store.dataset_features(),
        "scores": store.scores(), "scores named": store.scores(["logme", "hscore_reg"]),
        "pair table": store.pair_table("all", scores=["logme"]),
        "counts": pd.DataFrame([store.counts()]), "version": pd.DataFrame([{"v": store.stored_version()}]),
    }


def test_sqlite3_reads_equal_sqlalchemy_reads(store, monkeypatch) -> None:
    # exact: both drivers hand pandas the same Python values (SQLite stores REAL, INTEGER and TEXT as they are)
    assert store.counts()["jobs"] > 40_000
    direct = every_read(store)
    monkeypatch.setattr("recommender.history.queries.sqlite_file", lambda url: None)  # every read via the engine
    through_engine = every_read(store)
    for name, frame in direct.items():
        pd.testing.assert_frame_equal(frame, through_engine[name], check_exact=True, obj=name)


def test_a_sqlite_store_is_read_without_sqlalchemy(store) -> None:
    code = (f"import sys\nfrom recommender.history import open_store\ns = open_store({store.url!r})\n"
            "s.pair_table('all'); s.revision()\nprint('sqlalchemy' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize("url", [
    "sqlite:////tmp/a/history.db", "sqlite:///relative.db", "sqlite:///:memory:", "sqlite://",
    "sqlite:////tmp/with%20space/h.db", "sqlite+pysqlite:////tmp/h.db", "sqlite:////tmp/h.db?mode=ro&uri=true",
    "sqlite:///C:/data/h.db", "sqlite:////tmp/ünïcode/h.db",
])
def test_sqlite_urls_are_read_as_sqlalchemy_reads_them(url) -> None:
    database = make_url(url).database
    expected = None if database in (None, "", ":memory:") else database
    assert (None if sqlite_path(url) is None else str(sqlite_path(url))) == expected
    assert sqlite_file(url) == (None if "?" in url else sqlite_path(url))  # options: SQLAlchemy's driver honours them
    assert resolve_url(url) == url
    assert shown_url(url) == url  # as given: a SQLite URL holds no password to mask


def test_a_file_that_is_no_database_is_one_line(tmp_path, capsys) -> None:
    from recommender.cli import main

    bogus = tmp_path / "notes.db"
    bogus.write_text("not a database\n" * 100)
    assert main(["history", "--db", str(bogus), "stats"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["recommender history: error: DatabaseError: file is not a database"]


def test_kept_pairs_are_the_pair_table_and_follow_writes(store, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RECOMMENDER_CACHE", str(tmp_path / "cache"))
    expected = store.pair_table("vtab1k", "image")
    first, metrics = store.kept_pairs("vtab1k", "image")
    pd.testing.assert_frame_equal(first, expected, check_exact=True)
    assert metrics == {"vtab1k": store.default_metric("vtab1k")}
    (entry,) = (tmp_path / "cache" / "pairs").glob("*.json")
    monkeypatch.setattr(type(store), "pair_table", lambda *a, **k: pytest.fail("computed again"))
    again, _ = open_store(store.url).kept_pairs("vtab1k", "image")  # another process: read from the entry
    pd.testing.assert_frame_equal(again, expected, check_exact=True)
    monkeypatch.undo()
    monkeypatch.setenv("RECOMMENDER_CACHE", str(tmp_path / "cache"))
    writable = open_store(store.url, create=True)
    pd.DataFrame({"model": ["google/vit-base-patch16-224"], "dataset": ["dtd"], "protocol": ["vtab1k"],
                  "metric": ["top1"], "value": [1.0], "run": ["a new run"]}).to_csv(tmp_path / "j.csv", index=False)
    from recommender.history.ingest import ingest_file

    assert ingest_file(writable, tmp_path / "j.csv", kind="jobs")["jobs"] == 1
    after, _ = store.kept_pairs("vtab1k", "image")
    pd.testing.assert_frame_equal(after, store.pair_table("vtab1k", "image"), check_exact=True)
    assert len(list((tmp_path / "cache" / "pairs").glob("*.json"))) == 2 and entry.exists()


def test_a_pair_table_of_several_protocols_is_theirs_one_by_one(store) -> None:
    """`pair_table` reads and aggregates every protocol's jobs at once (one query, one grouping); its rows are exactly
    each protocol's `pairs` (jobs of that protocol in its own metric, the best over hyper-parameters), and a job
    list of several protocols is theirs one by one in id order."""
    for modality, select in ((None, "val"), ("image", "test"), ("text", "val")):
        table = store.pair_table("all", modality, select=select)
        names = sorted(store.protocols()["protocol"].unique())
        each = pd.concat([store.pairs(name, select, modality=modality).assign(protocol=name) for name in names],
                         ignore_index=True).sort_values(["protocol", "dataset", "model"], ignore_index=True)
        pd.testing.assert_frame_equal(table[["protocol", "model", "dataset", "performance", "selected_by"]],
                                      each[["protocol", "model", "dataset", "performance", "selected_by"]],
                                      check_exact=True, check_dtype=False)
    both = store.jobs(protocol=["vtab1k", "parc"], columns=["protocol", "model"])
    one_by_one = pd.concat([store.jobs(protocol=name, columns=["protocol", "model"]) for name in ("vtab1k", "parc")])
    assert len(both) == len(one_by_one) > 0 and set(both["protocol"]) == {"vtab1k", "parc"}
    assert store.jobs(protocol=[]).empty
