"""Attacks on the history store, round 3 (issue 23): booleans that duplicate jobs, two columns under one name, timing
taken for identity, repeats renumbered by a grown export, impossible protocol facts, damaged schema records, tracker
runs that did not finish, read-only stores, aliases of aliases; and `ingest --skip-invalid` (issue 26).

Each case asserts the stored rows, or the exact one-line error with every table (and the user's file) unchanged.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from recommender.cli import main
from recommender.errors import UserError
from recommender.history import IngestError, open_store
from recommender.history.ingest import build_batch, ingest_file, read_table
from recommender.history.schema import metadata

PROTOCOL = {"protocol": "p"}


def dump(store) -> dict[str, list[tuple]]:
    """Every row of every table, sorted: the whole store, to compare before and after."""
    with store.engine.connect() as conn:
        return {t: sorted(map(tuple, conn.execute(text(f"SELECT * FROM {t}")).fetchall()), key=repr)
                for t in metadata.tables}


def rejected(store, path: Path, **options) -> list[str]:
    """Ingest that must fail: its problem lines, after checking that the store and the file did not change."""
    before, data = dump(store), path.read_bytes()
    with pytest.raises(IngestError) as caught:
        ingest_file(store, path, **options)
    assert dump(store) == before and path.read_bytes() == data
    return caught.value.problems


def cli(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, list[str]]:
    """Run the CLI: exit code and stderr lines."""
    code = main(argv)
    return code, capsys.readouterr().err.splitlines()


@pytest.fixture()
def store(tmp_path: Path):
    """An empty SQLite store."""
    return open_store(str(tmp_path / "h.db"), create=True)


# ---- item 3: one canonical form for a setting, whatever the file type --------------------------------------------
def test_booleans_from_csv_parquet_and_lower_case_csv_are_one_setting(store, tmp_path: Path) -> None:
    """aug True (CSV text), true (Parquet boolean) and true (lower-case CSV): the two jobs are stored once, with
    the JSON boolean; a float32 learning rate is the decimal the CSV writes."""
    frame = pd.DataFrame({"model": ["a", "b"], "dataset": "d", "metric": "acc", "value": [0.5, 0.6],
                          "hp.aug": [True, False], "hp.lr": [0.1, 0.1], **PROTOCOL})
    frame.to_csv(tmp_path / "hp_bool.csv", index=False)
    frame.astype({"hp.lr": "float32"}).to_parquet(tmp_path / "hp_bool.parquet", index=False)
    (tmp_path / "lower.csv").write_text((tmp_path / "hp_bool.csv").read_text().replace("True", "true")
                                        .replace("False", "FALSE"))
    assert ingest_file(store, tmp_path / "hp_bool.csv") == {"jobs": 2}
    assert ingest_file(store, tmp_path / "hp_bool.parquet") == {"jobs": 0}
    assert ingest_file(store, tmp_path / "lower.csv") == {"jobs": 0}
    assert sorted(store.jobs()["hparams"]) == ['{"aug":false,"lr":0.1}', '{"aug":true,"lr":0.1}']


# ---- item 4: a column name twice is refused at read time, in every format ----------------------------------------
def test_a_column_name_twice_is_one_line_in_every_format(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`value,value` in CSV (pandas would rename it value.1), a Parquet schema and a JSON object naming a key
    twice: one line naming the file and the column, exit 2, no store created."""
    csv = tmp_path / "twice.csv"
    csv.write_text("model,dataset,protocol,metric,value,value\nm,d,p,acc,0.5,0.6\n")
    with pytest.raises(UserError, match=r"twice.csv: column 'value' appears twice; give each column its own name"):
        read_table(csv)
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = tmp_path / "twice.parquet"
    pq.write_table(pa.table([pa.array(["m"]), pa.array([0.5]), pa.array([0.6])], names=["model", "test_acc",
                                                                                         "test_acc"]), parquet)
    jsonl = tmp_path / "twice.jsonl"
    jsonl.write_text('{"model": "m", "value": 0.5}\n{"model": "m", "value": 0.5, "value": 0.6}\n')
    db = tmp_path / "new.db"
    for path, line in ((csv, f"{csv}: column 'value' appears twice; give each column its own name"),
                       (parquet, f"{parquet}: column 'test_acc' appears twice; give each column its own name"),
                       (jsonl, f"{jsonl}: line 2: column 'value' appears twice; give each column its own name")):
        assert cli(["history", "--db", str(db), "ingest", str(path)], capsys) == (
            2, [f"recommender history: error: {line}"])
    assert not db.exists()


# ---- item 9: timing is not identity ------------------------------------------------------------------------------
def test_the_same_runs_timed_again_are_the_same_runs(store, tmp_path: Path) -> None:
    """A second campaign's file holds the first one's run (other seconds) and a new one: the stored run and its time
    stand, the new run is added; a score timed again adds nothing either."""
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    jobs = {"model": "m", "dataset": "d", "metric": "acc", **PROTOCOL}
    pd.DataFrame({**jobs, "run": ["r1"], "value": [0.5], "seconds": [5.8]}).to_csv(first, index=False)
    pd.DataFrame({**jobs, "run": ["r1", "r2"], "value": [0.5, 0.7], "seconds": [7.51, 6.0]}).to_csv(second,
                                                                                                   index=False)
    assert ingest_file(store, first) == {"jobs": 1}
    assert ingest_file(store, second) == {"jobs": 1}
    stored = store.jobs().set_index("run")
    assert stored.loc["r1", "seconds"] == 5.8 and stored.loc["r2", "seconds"] == 6.0
    score = tmp_path / "score.csv"
    pd.DataFrame({"model": ["m"], "dataset": "d", "score": "logme", "value": [1.5], "seconds": [2.0]}).to_csv(score,
                                                                                                           index=False)
    assert ingest_file(store, score, kind="scores") == {"scores": 1}
    score.write_text(score.read_text().replace(",2.0", ",3.25"))
    assert ingest_file(store, score, kind="scores") == {"scores": 0}
    assert store.scores()["seconds"].tolist() == [2.0]


# ---- item 10: a grown export of runs without ids -----------------------------------------------------------------
def test_a_grown_export_with_a_lower_new_run_adds_only_that_run(store, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture) -> None:
    """Runs 0.5 and 0.7 of one setting (no seed, no run id), then the export grown by a run of 0.4: 1 added, the
    stored two unchanged; with --replace nothing is reported replaced; an edited value is still a conflict."""
    jobs = {"model": "m", "dataset": "d", "metric": "acc", **PROTOCOL}
    first, grown, edited = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    pd.DataFrame({**jobs, "value": [0.5, 0.7]}).to_csv(first, index=False)
    pd.DataFrame({**jobs, "value": [0.5, 0.7, 0.4]}).to_csv(grown, index=False)
    pd.DataFrame({**jobs, "value": [0.55, 0.7, 0.4]}).to_csv(edited, index=False)
    assert ingest_file(store, first) == {"jobs": 2}
    db = str(tmp_path / "h.db")
    assert main(["history", "--db", db, "ingest", str(grown), "--replace"]) == 0
    assert capsys.readouterr().out.splitlines() == ["jobs: 1 added, 2 unchanged"]
    assert main(["history", "--db", db, "ingest", str(grown)]) == 0
    assert capsys.readouterr().out.splitlines() == ["jobs: 0 added, 3 unchanged"]
    stored = store.jobs().sort_values("repeat")
    assert stored["test_value"].tolist() == [0.5, 0.7, 0.4] and stored["repeat"].tolist() == [0, 1, 2]
    assert rejected(store, edited) == [f"{edited}: row 1: value: job 'm' on 'd' (p, acc) is stored with 0.5, not 0.55"]


# ---- item 11: protocol facts that cannot be ----------------------------------------------------------------------
def test_impossible_protocol_facts_are_refused(store, tmp_path: Path) -> None:
    """Epochs -1, lr_min above lr_max, train_fraction 2.0, lora_r -1, 0 examples (of the protocol, and on one
    dataset): one line each naming row and column, nothing stored."""
    path = tmp_path / "facts.csv"
    pd.DataFrame({"protocol": ["a", "b", "c", "d", "e", "f"], "dataset": ["", "", "", "", "", "dtd"],
                  "epochs": ["-1", "", "", "", "", ""], "lr_min": ["", "0.1", "", "", "", ""],
                  "lr_max": ["", "0.01", "", "", "", ""], "train_fraction": ["", "", "2.0", "", "", ""],
                  "lora_r": ["", "", "", "-1", "", ""], "examples": ["", "", "", "", "0", "0"]}).to_csv(path,
                                                                                                 index=False)
    assert rejected(store, path, kind="protocols") == [
        f"{path}: rows 5-6 (2 rows): examples: must be at least 1, not 0",
        f"{path}: row 3: train_fraction: must be a fraction in (0, 1], not 2",
        f"{path}: row 1: epochs: must be more than 0, not -1",
        f"{path}: row 4: lora_r: must be a whole number of at least 1, not -1",
        f"{path}: row 2: lr_min: 0.1 is more than lr_max 0.01"]
    assert store.counts()["protocols"] == 0


# ---- items 14 and 7: the schema's records ------------------------------------------------------------------------
def _store_with_a_job(db: Path) -> None:
    """A store at the newest schema holding one job."""
    store = open_store(str(db), create=True)
    store.write(build_batch(pd.DataFrame({"model": ["m"], "dataset": ["d"], "metric": ["acc"], "value": [0.5],
                                          **PROTOCOL}), "jobs.csv"))
    store.engine.dispose()


def _sql(db: Path, *statements: str) -> None:
    """Run statements on the SQLite file behind the program's back."""
    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    engine.dispose()


def test_upgrade_repairs_a_version_behind_its_tables(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """meta.schema_version says 2, the tables are at 3 (with or without the version table): every command asks
    for `upgrade`, and `upgrade` sets the version, keeping the rows; then the store reads again."""
    for drop_version_table in (False, True):
        db = tmp_path / f"h{drop_version_table}.db"
        _store_with_a_job(db)
        _sql(db, "UPDATE meta SET value = '2' WHERE key = 'schema_version'",
             *(["DROP TABLE recommender_history_version"] if drop_version_table else []))
        code, err = cli(["history", "--db", str(db), "stats"], capsys)
        assert code == 2 and "has schema version 2; this code reads version 3: run `recommender history" in err[0]
        assert main(["history", "--db", str(db), "upgrade"]) == 0
        assert capsys.readouterr().out.strip() == f"store sqlite:///{db}: schema version 2 -> 3"
        assert open_store(str(db)).counts()["jobs"] == 1


@pytest.mark.parametrize("damage, command, line", [
    (["UPDATE recommender_history_version SET version_num = 'bogus'"], "upgrade",
     "store sqlite:///{db}: its version table recommender_history_version holds 'bogus', not one of this code's "
     "revisions (schema2, schema3): empty it (DELETE FROM recommender_history_version) and run `recommender "
     "history --db sqlite:///{db} upgrade`, which records the version from meta.schema_version"),
    (["INSERT INTO recommender_history_version VALUES ('schema2')"], "upgrade",
     "store sqlite:///{db}: its version table recommender_history_version holds 'schema3', 'schema2', not one of "
     "this code's revisions (schema2, schema3): empty it (DELETE FROM recommender_history_version) and run "
     "`recommender history --db sqlite:///{db} upgrade`, which records the version from meta.schema_version"),
    (["UPDATE meta SET value = 'three' WHERE key = 'schema_version'"], "stats",
     "store sqlite:///{db}: meta.schema_version is 'three', not a version number (a damaged store)"),
    (["DELETE FROM meta"], "stats",
     "sqlite:///{db} has a table meta without a schema_version row: not a store of this program, or a damaged one "
     "(use another --db)"),
    (["DELETE FROM meta"], "init",
     "sqlite:///{db} has a table meta without a schema_version row: not a store of this program, or a damaged one "
     "(use another --db)"),
])
def test_damaged_schema_records_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture, damage: list[str],
                                             command: str, line: str) -> None:
    """An unknown or a doubled revision in the version table, a version that is no number, a meta table without its
    row: one line, exit 2, the file unchanged (and `stats` and `init` say the same)."""
    db = tmp_path / "h.db"
    _store_with_a_job(db)
    _sql(db, *damage)
    before = db.read_bytes()
    assert cli(["history", "--db", str(db), command], capsys) == (
        2, ["recommender history: error: " + line.format(db=db)])
    assert db.read_bytes() == before


def test_the_advice_for_a_damaged_version_table_works(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Emptying the version table as the line says, then `upgrade`: the store is recorded at its version again."""
    db = tmp_path / "h.db"
    _store_with_a_job(db)
    _sql(db, "UPDATE recommender_history_version SET version_num = 'bogus'",
         "DELETE FROM recommender_history_version")
    assert main(["history", "--db", str(db), "upgrade"]) == 0
    assert capsys.readouterr().out.strip() == f"store sqlite:///{db}: already at schema version 3"
    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM recommender_history_version")).scalars().all() == ["schema3"]
    engine.dispose()


# ---- item 15: tracker runs that did not finish -------------------------------------------------------------------
def test_wandb_runs_that_did_not_finish_are_skipped_and_counted(store, tmp_path: Path) -> None:
    """A W&B runs table with a finished, a crashed and a running run: one job, one warning that counts the other
    two by state; Runtime `1h 2m 3s` is 3723 seconds."""
    path = tmp_path / "wandb.csv"
    pd.DataFrame({"Name": ["a", "b", "c"], "State": ["finished", "crashed", "running"],
                  "Runtime": ["1h 2m 3s", "5m", "7s"], "model": "vit", "dataset": "dtd",
                  "test_acc": [0.9, 0.1, 0.2]}).to_csv(path, index=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert ingest_file(store, path, preset="wandb-ui", constants=PROTOCOL) == {"jobs": 1}
    assert [str(w.message) for w in caught] == [
        "skipped 2 run(s) that did not finish (State: 1 crashed, 1 running): only finished runs have results"]
    jobs = store.jobs()
    assert jobs["run"].tolist() == ["a"] and jobs["seconds"].tolist() == [3723.0]


def test_a_wandb_runtime_that_is_no_duration_is_refused(store, tmp_path: Path) -> None:
    """A Runtime W&B never writes is a problem naming row and column, not a run without a time."""
    path = tmp_path / "wandb.csv"
    pd.DataFrame({"Name": ["a"], "Runtime": ["soon"], "model": "vit", "dataset": "dtd",
                  "test_acc": [0.9]}).to_csv(path, index=False)
    assert rejected(store, path, preset="wandb-ui", constants=PROTOCOL) == [
        f"{path}: row 1: seconds: not a number: 'soon'"]


# ---- item 16: a pair table without its dataset column ------------------------------------------------------------
def test_evaluate_pairs_without_a_dataset_column_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`evaluate --pairs` on a table without `dataset`: one line that names the column, exit 2, nothing written."""
    pairs = tmp_path / "pairs.csv"
    pd.DataFrame({"model": ["a", "b", "c"], "performance": [0.1, 0.2, 0.3]}).to_csv(pairs, index=False)
    out = tmp_path / "out"
    code, err = cli(["evaluate", "--pairs", str(pairs), "--split", "unseen-model", "--out", str(out)], capsys)
    assert (code, err) == (2, [f"recommender evaluate: error: {pairs}: the pair table lacks column(s) dataset"])
    assert not out.exists()


# ---- item 17: a read-only store ----------------------------------------------------------------------------------
def test_a_store_that_cannot_be_written_is_read_read_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture) -> None:
    """Where neither the file nor its folder can be written (a read-only file system), stats and export read it
    through a read-only connection; a write is one line; the file is unchanged."""
    db = tmp_path / "ro" / "h.db"
    db.parent.mkdir()
    _store_with_a_job(db)
    before = db.read_bytes()
    real_access = __import__("os").access
    monkeypatch.setattr("recommender.history.url.os.access",
                        lambda path, mode: False if Path(path) in (db, db.parent) and mode == 2 else
                        real_access(path, mode))
    store = open_store(str(db))
    with store.engine.connect() as conn:  # the connection itself refuses to write
        with pytest.raises(Exception, match="readonly database"):
            conn.exec_driver_sql("DELETE FROM jobs")
    store.engine.dispose()
    code, _ = cli(["history", "--db", str(db), "stats"], capsys)
    assert code == 0
    assert main(["history", "--db", str(db), "export", str(tmp_path / "out")]) == 0
    assert len(pd.read_csv(tmp_path / "out" / "jobs.csv")) == 1
    code, err = cli(["history", "--db", str(db), "alias", "x=d"], capsys)
    assert (code, err) == (2, [f"recommender history: error: store {db} is read-only here (the file or its folder "
                               "cannot be written): commands that read it work, writing needs a writable copy"])
    assert db.read_bytes() == before


# ---- low: an alias of an alias -------------------------------------------------------------------------------------
def test_an_alias_of_an_alias_is_refused(store, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`alias x=d`, then `alias y=x`: refused in one line (the README says aliases name a dataset directly)."""
    db = str(tmp_path / "h.db")
    assert main(["history", "--db", db, "alias", "x=d"]) == 0
    capsys.readouterr()
    before = dump(store)
    assert cli(["history", "--db", db, "alias", "y=x"], capsys) == (2, [
        "aliases: row 1: dataset: 'x' is itself an alias of 'd'",
        "recommender history alias: 1 problem(s); nothing was ingested"])
    assert dump(store) == before


# ---- issue 26: ingest --skip-invalid -------------------------------------------------------------------------------
def test_skip_invalid_ingests_the_valid_rows_and_writes_the_others(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    """Without the flag a file with two bad rows is all or nothing (exit 2, no store); with it the two valid rows
    are stored and the bad ones written beside the input with their row numbers and reasons; a row in conflict
    with the store is left out the same way (to --rejected); the input is never changed."""
    db = tmp_path / "h.db"
    path = tmp_path / "runs.csv"
    path.write_text("model,dataset,protocol,metric,value\nm1,d,p,acc,0.5\nm2,d,p,acc,\nm3,d,p,acc,0.7\n"
                    "m4,d,p,acc,abc\n")
    data = path.read_bytes()
    code, err = cli(["history", "--db", str(db), "ingest", str(path)], capsys)
    assert code == 2 and len(err) == 3 and not db.exists()
    assert main(["history", "--db", str(db), "ingest", str(path), "--skip-invalid"]) == 0
    out, err = capsys.readouterr()
    rejected = tmp_path / "runs.csv.rejected.csv"
    assert out.splitlines() == ["jobs: 2 added"]
    assert err.splitlines() == [f"recommender history ingest: skipped 2 invalid row(s) of {path}; they are in "
                                f"{rejected} with their row numbers and reasons"]
    assert rejected.read_text().splitlines() == ["row,reason,model,dataset,protocol,metric,value",
                                                 "2,value: missing value,m2,d,p,acc,",
                                                 "4,value: not a number: 'abc',m4,d,p,acc,abc"]
    assert sorted(open_store(str(db)).jobs()["model"]) == ["m1", "m3"] and path.read_bytes() == data
    changed = tmp_path / "changed.csv"
    changed.write_text("model,dataset,protocol,metric,value\nm1,d,p,acc,0.9\nm5,d,p,acc,0.1\n")
    assert main(["history", "--db", str(db), "ingest", str(changed), "--skip-invalid", "--rejected",
                 str(tmp_path / "conflicts.csv")]) == 0
    assert capsys.readouterr().out.splitlines() == ["jobs: 1 added"]
    assert (tmp_path / "conflicts.csv").read_text().splitlines()[1] == \
        "1,\"value: job 'm1' on 'd' (p, acc) is stored with 0.5, not 0.9\",m1,d,p,acc,0.9"
    assert sorted(open_store(str(db)).jobs()["model"]) == ["m1", "m3", "m5"]


def test_repeated_scores_of_a_grown_file_are_matched_by_value(store, tmp_path: Path) -> None:
    """Scores without a run id repeated for one (source, model, dataset, score): a file grown by a lower value adds
    that value only; a replaced value is counted as one replaced, not more."""
    first, grown = tmp_path / "a.csv", tmp_path / "b.csv"
    scores = {"model": "m", "dataset": "d", "score": "logme", "source": "s"}
    pd.DataFrame({**scores, "value": [1.0, 2.0]}).to_csv(first, index=False)
    pd.DataFrame({**scores, "value": [0.5, 1.0, 2.0]}).to_csv(grown, index=False)
    assert ingest_file(store, first, kind="scores") == {"scores": 2}
    assert ingest_file(store, grown, kind="scores") == {"scores": 1}
    assert sorted(store.scores()["value"]) == [0.5, 1.0, 2.0]
    edited = tmp_path / "c.csv"
    pd.DataFrame({"model": ["m"], "dataset": "d", "metric": "acc", "value": [0.5], **PROTOCOL}).to_csv(edited,
                                                                                                    index=False)
    ingest_file(store, edited)
    edited.write_text(edited.read_text().replace("0.5", "0.25"))
    changes = store.write_changes([build_batch(read_table(edited), str(edited))], replace=True)
    assert changes[0]["jobs"] == {"added": 0, "unchanged": 0, "updated": 0, "replaced": 1}
    assert store.jobs()["test_value"].tolist() == [0.25]
