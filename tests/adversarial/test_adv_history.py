"""Attacks on the history store (issue 9): duplicates by bytes, wrong types, tracebacks, side effects, mixed exports.

Each case asserts the number of rows stored, or the exact one-line error and a store whose every table (every
column, the key included) is the same as before.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from recommender.cli import main
from recommender.errors import UserError
from recommender.history import IngestError, open_store
from recommender.history.ingest import alias_batch, build_batch, ingest_file, read_table
from recommender.history.schema import metadata

DATA = Path(__file__).parents[1] / "data" / "history"
ZOO = DATA / "small_zoos_long.csv"  # 8 jobs of 4 models on 2 datasets, with model features
PROTOCOL = {"protocol": "full-finetune"}
POSTGRES = os.environ.get("RECOMMENDER_TEST_POSTGRES_URL")


@pytest.fixture()
def store(tmp_path: Path):
    """A fresh SQLite store holding the 8 zoo jobs."""
    store = open_store(str(tmp_path / "history.db"), create=True)
    assert ingest_file(store, ZOO, constants=PROTOCOL) == {"models": 4, "jobs": 8}
    return store


def dump(store) -> dict[str, list[tuple]]:
    """Every row of every table, sorted: the whole store, to compare before and after."""
    with store.engine.connect() as conn:
        return {t: sorted(map(tuple, conn.execute(text(f"SELECT * FROM {t}")).fetchall()), key=repr)
                for t in metadata.tables}


def zoo() -> pd.DataFrame:
    """The zoo excerpt as text cells."""
    return pd.read_csv(ZOO, dtype=str, keep_default_na=False)


def rejected(store, path: Path, **options) -> list[str]:
    """Ingest that must fail: its problem lines, after checking that the store did not change."""
    before = dump(store)
    with pytest.raises(IngestError) as caught:
        ingest_file(store, path, **options)
    assert dump(store) == before
    return caught.value.problems


# ---- identity: the same jobs in other bytes add nothing ------------------------------------------------------
def _copies(tmp_path: Path) -> dict[str, Path]:
    """The zoo jobs as CRLF, BOM, trailing-newline, reordered, gzip, JSON Lines and Parquet files."""
    raw, frame = ZOO.read_bytes(), zoo()
    paths = {name: tmp_path / f"{name}.{suffix}" for name, suffix in
             [("crlf", "csv"), ("bom", "csv"), ("newline", "csv"), ("reordered", "csv"), ("gz", "csv.gz"),
              ("jsonl", "jsonl"), ("parquet", "parquet")]}
    paths["crlf"].write_bytes(raw.replace(b"\n", b"\r\n"))
    paths["bom"].write_bytes(b"\xef\xbb\xbf" + raw)
    paths["newline"].write_bytes(raw + b"\n\n")
    frame.iloc[::-1].to_csv(paths["reordered"], index=False)
    paths["gz"].write_bytes(gzip.compress(raw))
    numeric = pd.read_csv(ZOO)
    numeric.to_json(paths["jsonl"], orient="records", lines=True)
    numeric.to_parquet(paths["parquet"], index=False)
    return paths


def test_the_same_jobs_in_other_bytes_add_nothing(store, tmp_path: Path) -> None:
    """CRLF, BOM, blank lines, reversed rows, .gz, JSON Lines, Parquet: 8 jobs stay 8, and no table changes."""
    before = dump(store)
    for name, path in _copies(tmp_path).items():
        assert set(ingest_file(store, path, constants=PROTOCOL).values()) == {0}, name
    assert dump(store) == before and store.counts()["jobs"] == 8


def test_an_edited_reexport_is_a_conflict_and_replace_takes_it(store, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture) -> None:
    """One value changed: one line naming row, column, stored and new value; exit 2; --replace stores it."""
    frame = zoo()
    old = frame.loc[2, "value"]
    frame.loc[2, "value"] = "12.5"
    path = tmp_path / "edited.csv"
    frame.to_csv(path, index=False)
    before = dump(store)
    db = str(store.engine.url.database)
    assert main(["history", "--db", db, "ingest", str(path), "--set", "protocol=full-finetune"]) == 2
    err = capsys.readouterr().err.splitlines()
    model, dataset = frame.loc[2, "model"], frame.loc[2, "dataset"]
    assert err == [(f"{path}: row 3: value: job {model!r} on {dataset!r} (full-finetune, {frame.loc[2, 'metric']}) "
                   f"is stored with {float(old)!r}, not 12.5"),
                   ("recommender history ingest: 1 problem(s); nothing was ingested "
                   "(`--replace` takes the file's values over stored ones)")]
    assert dump(store) == before
    assert main(["history", "--db", db, "ingest", str(path), "--set", "protocol=full-finetune", "--replace"]) == 0
    jobs = store.jobs()
    assert len(jobs) == 8
    assert jobs.loc[(jobs["model"] == model) & (jobs["dataset"] == dataset), "test_value"].tolist() == [12.5]


def _mlflow(path: Path, runs: list[tuple[str, float]]) -> Path:
    """An MLflow search_runs export of the given (run id, test accuracy) runs."""
    pd.DataFrame({"run_id": [r for r, _ in runs], "metrics.test_accuracy": [v for _, v in runs],
                  "params.model": "vit", "params.dataset": "dtd", "params.lr": "0.01"}).to_csv(path, index=False)
    return path


def test_a_grown_mlflow_reexport_keys_by_run_id(tmp_path: Path) -> None:
    """Run abc000 once, however many exports hold it; a new run is added; a changed value is a conflict."""
    store = open_store(str(tmp_path / "h.db"), create=True)
    options = {"preset": "mlflow", "constants": PROTOCOL}
    assert ingest_file(store, _mlflow(tmp_path / "a.csv", [("abc000", 0.6)]), **options) == {"jobs": 1}
    grown = _mlflow(tmp_path / "b.csv", [("abc000", 0.6), ("abc001", 0.7)])
    assert ingest_file(store, grown, **options) == {"jobs": 1}
    assert ingest_file(store, grown, **options) == {"jobs": 0}
    changed = _mlflow(tmp_path / "c.csv", [("abc000", 0.99), ("abc001", 0.7), ("abc002", 0.8)])
    assert rejected(store, changed, **options) == [
        (f"{changed}: row 1: value: job 'vit' on 'dtd' (full-finetune, test_accuracy, run 'abc000') "
        "is stored with 0.6, not 0.99")]
    assert sorted(store.jobs()["run"]) == ["abc000", "abc001"]


def test_repeats_without_seed_are_numbered_by_value_and_seeds_separate_runs(tmp_path: Path) -> None:
    """Two runs of one setting (no seed): 2 jobs, again in any order 0; a seed makes a third run distinct."""
    store = open_store(str(tmp_path / "h.db"), create=True)
    rows = pd.DataFrame({"model": "m", "dataset": "d", "metric": "acc", "value": ["0.5", "0.7"], **PROTOCOL})
    rows.to_csv(tmp_path / "a.csv", index=False)
    rows.iloc[::-1].to_csv(tmp_path / "b.csv", index=False)
    rows.assign(seed="1").head(1).to_csv(tmp_path / "c.csv", index=False)
    assert ingest_file(store, tmp_path / "a.csv") == {"jobs": 2}
    assert ingest_file(store, tmp_path / "b.csv") == {"jobs": 0}
    assert ingest_file(store, tmp_path / "c.csv") == {"jobs": 1}
    assert sorted(store.jobs()["repeat"]) == [0, 0, 1]


# ---- types ---------------------------------------------------------------------------------------------------
def test_metric_values_are_real_numbers(tmp_path: Path) -> None:
    """Parquet timestamps, JSON booleans, complex numbers (through the API) and text in `value`: refused with
    row and column, nothing stored."""
    store = open_store(str(tmp_path / "h.db"), create=True)
    jobs = {"model": ["a", "b"], "dataset": "d", "metric": "acc", **PROTOCOL}
    stamps = tmp_path / "stamps.parquet"
    pd.DataFrame({**jobs, "value": pd.to_datetime(["2020-01-01", None])}).to_parquet(stamps, index=False)
    assert rejected(store, stamps) == [f"{stamps}: row 1: value: not a real number: time '2020-01-01 00:00:00'",
                                       f"{stamps}: row 2: value: missing value"]
    booleans = tmp_path / "booleans.jsonl"
    booleans.write_text('{"model": "a", "dataset": "d", "metric": "acc", "protocol": "p", "value": true}\n'
                        '{"model": "b", "dataset": "d", "metric": "acc", "protocol": "p", "value": 0.5}\n')
    assert rejected(store, booleans) == [f"{booleans}: row 1: value: not a real number: boolean True"]
    text_value = tmp_path / "text.csv"
    pd.DataFrame({**jobs, "value": ["0.5x", "0.5"]}).to_csv(text_value, index=False)
    assert rejected(store, text_value) == [f"{text_value}: row 1: value: not a number: '0.5x'"]
    complex_batch = build_batch(pd.DataFrame({**jobs, "value": np.array([1 + 2j, 1.0])}), "api")
    assert complex_batch.problems == ["api: row 1: value: not a real number: complex (1+2j)",
                                      "api: row 2: value: not a real number: complex (1+0j)"]
    assert store.counts()["jobs"] == 0


def test_ingested_at_is_the_stores_own_utc_time(tmp_path: Path) -> None:
    """A file's `ingested_at` (here not even a date) is ignored; the store writes the current UTC time."""
    store = open_store(str(tmp_path / "h.db"), create=True)
    path = tmp_path / "dated.csv"
    pd.DataFrame({"model": ["a"], "dataset": "d", "metric": "acc", "value": "0.5", "ingested_at": "not-a-date",
                  **PROTOCOL}).to_csv(path, index=False)
    start = pd.Timestamp.now(tz="UTC")
    ingest_file(store, path)
    stamp = pd.Timestamp(store.jobs()["ingested_at"].item())
    assert stamp.tzinfo is not None and start <= stamp <= pd.Timestamp.now(tz="UTC")
    assert "ingested_at" not in json.loads(store.jobs()["extra"].item())


def _long_and_nul(tmp_path: Path) -> Path:
    """Jobs with a 301-character model, a 201-character dataset and a NUL in the metric name."""
    path = tmp_path / "strings.csv"
    pd.DataFrame({"model": ["m" * 301, "ok"], "dataset": ["d", "d" * 201], "metric": ["a\x00b", "acc"],
                  "value": "0.5", **PROTOCOL}).to_csv(path, index=False)
    return path


STRING_PROBLEMS = ["row 1: metric: contains a NUL character", "row 1: model: 301 characters, more than the 300 allowed",
                   "row 2: dataset: 201 characters, more than the 200 allowed"]


def test_string_limits_and_nul_on_sqlite(tmp_path: Path) -> None:
    """SQLite would store them; the store refuses them as PostgreSQL would, one line each."""
    store = open_store(str(tmp_path / "h.db"), create=True)
    path = _long_and_nul(tmp_path)
    assert rejected(store, path) == [f"{path}: {line}" for line in STRING_PROBLEMS]


@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES, reason="set RECOMMENDER_TEST_POSTGRES_URL, e.g. to $(bash scripts/postgres.sh)")
def test_string_limits_and_nul_on_postgres(tmp_path: Path) -> None:
    """The same lines on PostgreSQL (not its bare "value too long"); nothing stored."""
    metadata.drop_all(create_engine(POSTGRES))
    try:
        store = open_store(POSTGRES, create=True)
        path = _long_and_nul(tmp_path)
        assert rejected(store, path) == [f"{path}: {line}" for line in STRING_PROBLEMS]
        assert store.counts()["jobs"] == 0
    finally:
        metadata.drop_all(create_engine(POSTGRES))


def test_na_like_names_are_names_in_every_file_type(tmp_path: Path) -> None:
    """Models NA, None, null, nan are kept as names from CSV, JSON Lines and Parquet: 4 jobs, then 0 and 0."""
    store = open_store(str(tmp_path / "h.db"), create=True)
    frame = pd.DataFrame({"model": ["NA", "None", "null", "nan"], "dataset": "NA", "metric": "acc",
                          "value": [0.1, 0.2, 0.3, 0.4], **PROTOCOL})
    frame.to_csv(tmp_path / "na.csv", index=False)
    frame.to_json(tmp_path / "na.jsonl", orient="records", lines=True)
    frame.to_parquet(tmp_path / "na.parquet", index=False)
    assert ingest_file(store, tmp_path / "na.csv") == {"jobs": 4}
    assert ingest_file(store, tmp_path / "na.jsonl") == {"jobs": 0}
    assert ingest_file(store, tmp_path / "na.parquet") == {"jobs": 0}
    assert sorted(store.jobs()["model"]) == ["NA", "None", "nan", "null"]
    assert set(store.pair_table("full-finetune")["dataset"]) == {"NA"}


def test_a_hyperparameter_none_is_not_a_missing_one(tmp_path: Path) -> None:
    """hp.warmup = None (text) and a blank hp.warmup are two settings: two jobs, not repeats of one."""
    store = open_store(str(tmp_path / "h.db"), create=True)
    path = tmp_path / "hp.csv"
    path.write_text("model,dataset,metric,value,protocol,hp.warmup\nm,d,acc,0.5,p,None\nm,d,acc,0.6,p,\n")
    assert ingest_file(store, path) == {"jobs": 2}
    assert sorted(store.jobs()["hparams"]) == ['{"warmup":"None"}', "{}"]
    assert store.jobs()["repeat"].tolist() == [0, 0]


def test_changed_extra_feature_is_a_conflict(store, tmp_path: Path) -> None:
    """A model stored with extra.zoo=cnn cannot silently become zoo=vit; with --replace it does."""
    first, second = tmp_path / "models.csv", tmp_path / "models2.csv"
    pd.DataFrame({"model": ["resnet50"], "zoo": ["cnn"]}).to_csv(first, index=False)
    pd.DataFrame({"model": ["resnet50"], "zoo": ["vit"], "note": ["x"]}).to_csv(second, index=False)
    assert ingest_file(store, first, kind="models") == {"models": 0}  # a new extra feature fills in
    assert rejected(store, second, kind="models") == [
        f"{second}: row 1: extra.zoo: model 'resnet50' is stored with 'cnn', not 'vit'"]
    assert ingest_file(store, second, kind="models", replace=True) == {"models": 0}
    extra = json.loads(store.model_features().set_index("model").at["resnet50", "extra"])
    assert extra == {"zoo": "vit", "note": "x"}


def test_complex_feature_is_refused(store) -> None:
    """A complex parameter count or extra feature would lose its imaginary part: refused with row and column."""
    frame = pd.DataFrame({"model": ["new"], "params_m": [3 + 1j], "depth": [2j]})
    assert build_batch(frame, "api", kind="models").problems == [
        "api: row 1: params_m: not a real number: complex (3+1j)",
        "api: row 1: depth: complex numbers are not supported: 2j"]


# ---- one line, no traceback ----------------------------------------------------------------------------------
def test_unreadable_inputs_are_one_line(tmp_path: Path) -> None:
    """A JSON array given as JSON Lines and a truncated .csv.gz: a UserError naming the file, not a traceback."""
    array = tmp_path / "runs.json"
    array.write_text(json.dumps([{"model": "m"}]))
    with pytest.raises(UserError, match=r"runs.json: line 1: a JSON array, not an object; JSON Lines holds one "):
        read_table(array)
    truncated = tmp_path / "jobs.csv.gz"
    truncated.write_bytes(gzip.compress(ZOO.read_bytes())[:60])
    with pytest.raises(UserError, match=r"jobs.csv.gz: cannot read as csv: EOFError: "):
        read_table(truncated)


def _cli(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, list[str]]:
    """Run the CLI: exit code and stderr lines."""
    code = main(argv)
    return code, capsys.readouterr().err.splitlines()


def test_cli_errors_are_one_line_and_create_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture) -> None:
    """A missing store for reading, a malformed URL, an unsupported backend, a bad file: exit 2, one line, and
    no file or folder appears."""
    monkeypatch.chdir(tmp_path)
    array = tmp_path / "runs.json"
    array.write_text("[]")
    before = sorted(tmp_path.rglob("*"))
    cases = [
        (["history", "--db", "/no/such/dir/x.db", "stats"],
         "recommender history: error: no store at /no/such/dir/x.db: run `recommender history init`"),
        (["history", "--db", "sqlite:/relative.db", "stats"],
         ("recommender history: error: malformed store URL 'sqlite:/relative.db': a URL is scheme://..., a bare "
         "path means a SQLite file (supported: SQLite (a file path or sqlite:///path) and PostgreSQL "
         "(postgresql+psycopg://user:pw@host/db))")),
        (["history", "--db", "mysql://u:p@localhost/db", "stats"],
         ("recommender history: error: unsupported store backend 'mysql' in 'mysql://u:p@localhost/db'; supported: "
         "SQLite (a file path or sqlite:///path) and PostgreSQL (postgresql+psycopg://user:pw@host/db)")),
        (["history", "--db", str(tmp_path / "new" / "x.db"), "ingest", str(array)],
         (f"recommender history: error: {array}: line 1: a JSON array, not an object; JSON Lines holds one object "
         "per line")),
        (["history", "--db", str(tmp_path / "x.db"), "export", str(tmp_path / "out")],
         f"recommender history: error: no store at {tmp_path / 'x.db'}: run `recommender history init`"),
    ]
    for argv, line in cases:
        assert _cli(argv, capsys) == (2, [line]), argv
    assert sorted(tmp_path.rglob("*")) == before
    assert not Path("/no/such").exists()


def test_a_failed_first_ingest_leaves_no_store(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A file with a bad row, ingested into a store that does not exist yet: exit 2 and no store file."""
    db = tmp_path / "deep" / "new.db"
    code, err = _cli(["history", "--db", str(db), "ingest", str(ZOO)], capsys)  # no protocol: 8 rows, one line
    assert code == 2 and len(err) == 2 and not (tmp_path / "deep").exists()
    assert err[0].endswith("rows 1-8 (8 rows): protocol: missing protocol; add --set protocol=NAME (or --map "
                           "COLUMN=protocol)")


# ---- export --------------------------------------------------------------------------------------------------
def test_export_keeps_the_users_files_and_replaces_only_its_own(store, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    """A folder of other files takes an export beside them; a re-export as Parquet replaces the CSVs the first
    wrote and keeps the user's file; a file of an exported name that no export wrote is refused unless
    --overwrite."""
    db, out = str(store.engine.url.database), tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    kinds = ["dataset_aliases", "datasets", "jobs", "models", "protocols", "scores"]
    assert main(["history", "--db", db, "export", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([".recommender-manifest.json", "mine.txt",
                                                            *(f"{k}.csv" for k in kinds)])
    assert main(["history", "--db", db, "export", str(out), "--to", "parquet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([".recommender-manifest.json", "mine.txt",
                                                            *(f"{k}.parquet" for k in kinds)])
    assert (out / "mine.txt").read_text() == "keep" and len(pd.read_parquet(out / "jobs.parquet")) == 8
    other = tmp_path / "other"
    other.mkdir()
    (other / "jobs.csv").write_text("mine")
    code, err = _cli(["history", "--db", db, "export", str(other)], capsys)
    assert (code, err) == (2, [f"recommender history: error: {other / 'jobs.csv'} exists and `recommender history "
                               "export` did not write it; give --overwrite to replace it, or another folder"])
    assert [p.name for p in other.iterdir()] == ["jobs.csv"]
    assert main(["history", "--db", db, "export", str(other), "--overwrite"]) == 0
    assert len(pd.read_csv(other / "jobs.csv")) == 8
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


# ---- aliases and schema upgrade (issue 11) ---------------------------------------------------------------------
def test_a_file_read_before_its_alias_was_defined_is_refused(tmp_path: Path) -> None:
    """A batch built while `pets` was no alias, written after another writer defined it: refused, so the store
    never holds one dataset under two names."""
    store = open_store(str(tmp_path / "h.db"), create=True)
    frame = pd.DataFrame({"model": ["m"], "dataset": ["pets"], "protocol": ["p"], "metric": ["acc"], "value": [0.5]})
    stale = build_batch(frame, "late.csv", aliases=store.alias_map())
    store.write(alias_batch(pd.DataFrame({"alias": ["pets"], "dataset": ["oxford_iiit_pet"]}), "aliases"))
    with pytest.raises(IngestError, match=r"late.csv: row 1: dataset: 'pets' is an alias of 'oxford_iiit_pet'"):
        store.write(stale)
    assert store.counts()["jobs"] == 0


def test_a_version_2_store_is_refused_until_upgraded(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A version-2 store lacks the alias and protocol tables: reading and writing commands alike refuse it in one
    line that names `recommender history upgrade`, and change nothing; `upgrade` adds the tables, keeps its rows."""
    db = tmp_path / "h.db"
    store = open_store(str(db), create=True)
    store.write(build_batch(pd.DataFrame({"model": ["m"], "dataset": ["d"], "protocol": ["p"], "metric": ["acc"],
                                          "value": [0.5]}), "old.csv"))
    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:  # what a version-2 store looked like (before the migrations' version table too)
        for table in ("dataset_aliases", "protocols", "protocol_datasets", "recommender_history_version"):
            conn.execute(text(f"DROP TABLE {table}"))
        conn.execute(text("UPDATE meta SET value = '2' WHERE key = 'schema_version'"))
    engine.dispose()
    before = db.read_bytes()
    for command in (["stats"], ["init"], ["ingest", str(ZOO), "--set", "protocol=p"], ["alias", "a=d"]):
        code, err = _cli(["history", "--db", str(db), *command], capsys)
        assert code == 2 and len(err) == 1, (command, err)
        assert "has schema version 2; this code reads version 3: run `recommender history --db" in err[0]
        assert err[0].endswith("upgrade` (keeps every row)")
    assert db.read_bytes() == before
    assert main(["history", "--db", str(db), "upgrade"]) == 0
    assert capsys.readouterr().out.strip().endswith("schema version 2 -> 3")
    upgraded = open_store(str(db))
    assert upgraded.schema_version() == 3 and upgraded.counts()["jobs"] == 1 and upgraded.aliases().empty
