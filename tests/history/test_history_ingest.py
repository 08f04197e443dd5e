"""Ingest: presets on real excerpts, all-or-nothing rejection, idempotence, the CLI and the export round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recommender.cli import main
from recommender.errors import UserError
from recommender.history import IngestError, open_store
from recommender.history.bundled import BUNDLED, HISTORY_DIR
from recommender.history.export import export, tables
from recommender.history.ingest import alias_batch, build_batch, ingest_file, read_table

DATA = Path(__file__).parents[1] / "data" / "history"


@pytest.fixture()
def store(tmp_path: Path):
    """A fresh SQLite store in a temporary folder."""
    return open_store(str(tmp_path / "history.db"), create=True)


def snapshot(store) -> dict[str, pd.DataFrame]:
    """Every table of the store, to compare before and after a rejected ingest."""
    return tables(store)


def assert_same_store(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> None:
    """Two snapshots hold the same rows (order aside)."""
    for kind in a:
        left = a[kind].sort_values(list(a[kind].columns), ignore_index=True)
        right = b[kind][a[kind].columns].sort_values(list(a[kind].columns), ignore_index=True)
        pd.testing.assert_frame_equal(left, right, check_dtype=False)


def test_shift_ftrecords_preset(store) -> None:
    """The original SHiFT layout: configs dict literal, elapsed time, val accuracy, VTAB-1k protocol."""
    assert ingest_file(store, DATA / "shift_ftrecords.csv", preset="shift") == {"jobs": 7, "protocols": 1}
    jobs = store.jobs().set_index(["model", "dataset", "test_value"])
    job = jobs.loc[("facebook/deit-tiny-patch16-224", "dmlab", 0.22147120535373688)]
    assert job["protocol"] == "vtab1k" and job["metric"] == "test_accuracy"
    assert job["val_value"] == 0.22499999403953552 and job["seconds"] == 103.6915274169296
    assert json.loads(job["hparams"]) == {"lr": 0.1, "epochs": 25, "batch_size": 64, "train_split": "train",
                                          "val_split": "train", "test_split": "test", "train_slice": ":800",
                                          "val_slice": "800:1000", "test_slice": ":100%"}
    assert json.loads(job["extra"])["framework_version"] == "4.19.2"
    pairs = store.pair_table("vtab1k").set_index(["model", "dataset"])
    assert pairs.loc[("facebook/deit-tiny-patch16-224", "oxford_flowers102"), "performance"] == 0.6651095151901245


def test_parc_oracle_preset(store) -> None:
    """The original PARC layout: -1 rows (no result) skipped, model = architecture|source, family = architecture."""
    assert ingest_file(store, DATA / "parc_oracles.csv", preset="parc")["jobs"] == 6
    table = store.pair_table("parc").set_index(["model", "dataset"])
    row = table.loc[("resnet50|pirl_imagenet", "oxford_pets")]
    assert row["performance"] == 86.09975470155355 and row["family"] == "resnet50"
    assert row["pretrain_dataset"] == "pirl_imagenet" and row["selected_by"] == "test"
    assert "resnet101|simclr_imagenet" not in table.index.get_level_values("model")


def test_mlflow_runs_preset(store) -> None:
    """search_runs layout: params as text become numbers, duration from start/end, run_id kept as the run."""
    ingest_file(store, DATA / "mlflow_runs.csv", preset="mlflow", mapping={"tags.source": "source"},
                constants={"protocol": "vtab1k"})
    runs = pd.read_csv(DATA / "mlflow_runs.csv")
    jobs = store.jobs().set_index("run").loc[runs["run_id"]]
    assert (jobs["test_value"].to_numpy() == runs["metrics.test_accuracy"].to_numpy()).all()
    assert (jobs["val_value"].to_numpy() == runs["metrics.val_accuracy"].to_numpy()).all()
    shift = pd.read_csv(HISTORY_DIR / "history_shift_vision.csv.gz")
    logged = runs.merge(shift, left_on=["params.model", "params.dataset", "metrics.test_accuracy", "params.lr"],
                        right_on=["model", "dataset", "value", "lr"], how="left")
    assert len(logged) == len(runs)
    # the export's time stamps keep nanoseconds, so durations match the logged seconds to 1e-6 s
    assert jobs["seconds"].to_numpy() == pytest.approx(logged["elapsed_time_s"].to_numpy(), abs=1e-6)
    assert json.loads(jobs["hparams"].iloc[0]) == {"batch_size": 64, "epochs": 25, "lr": 0.01, "train_slice": ":800"}
    assert set(jobs["source"]) == {"DS3Lab/shift/data/ftrecords.csv@1db7f15d5fe4"}


def test_wandb_runs_preset_with_column_map(store) -> None:
    """A flattened W&B export whose model and task columns are mapped by the user; runtime becomes seconds."""
    ingest_file(store, DATA / "wandb_runs.csv", preset="wandb",
                mapping={"config.model_name": "model", "config.task": "dataset"}, constants={"protocol": "vtab1k"})
    runs = pd.read_csv(DATA / "wandb_runs.csv")
    jobs = store.jobs().set_index("run").loc[runs["id"]]
    assert jobs["model"].tolist() == runs["config.model_name"].tolist()
    assert (jobs["seconds"].to_numpy() == runs["summary._runtime"].to_numpy()).all()
    assert json.loads(jobs["extra"].iloc[0])["summary._step"] == 25


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_long_format_in_each_file_type(store, tmp_path: Path, suffix: str) -> None:
    """Our long format read from CSV, Parquet and JSON Lines gives the same jobs and model features."""
    frame = pd.read_csv(DATA / "small_zoos_long.csv")
    path = tmp_path / f"zoo{suffix}"
    {".csv": frame.to_csv, ".parquet": frame.to_parquet, ".jsonl": lambda p, **k: frame.to_json(
        p, orient="records", lines=True)}[suffix](path, index=False)
    assert ingest_file(store, path, constants={"protocol": "full-finetune"}) == {"models": 4, "jobs": 8}
    table = store.pair_table("full-finetune").set_index(["model", "dataset"])
    expected = frame.set_index(["model", "dataset"])["value"]
    assert table["performance"].loc[expected.index].tolist() == expected.tolist()
    assert table.loc[("resnet50", "dtd"), "pretrain_dataset"] == "imagenet-1k (supervised)"


def test_same_file_twice_adds_nothing(store) -> None:
    """Idempotent ingest: the second time every natural key is already stored with the same values."""
    ingest_file(store, DATA / "shift_ftrecords.csv", preset="shift")
    before = snapshot(store)
    added = ingest_file(store, DATA / "shift_ftrecords.csv", preset="shift")
    assert added["jobs"] == 0 and set(added.values()) == {0}
    assert store.counts()["jobs"] == 7
    assert_same_store(before, snapshot(store))


def test_renamed_copy_adds_nothing(store, tmp_path: Path) -> None:
    """A job is identified by its content, not its file: a copy under another name is a no-op, and the rows keep
    the name of the file they were first read from as their source (contract changed: it was a content hash)."""
    ingest_file(store, DATA / "shift_ftrecords.csv", preset="shift")
    copy = tmp_path / "renamed.csv"
    copy.write_bytes((DATA / "shift_ftrecords.csv").read_bytes())
    assert set(ingest_file(store, copy, preset="shift").values()) == {0}
    assert store.counts()["jobs"] == 7 and set(store.jobs()["source"]) == {"shift_ftrecords.csv"}


def test_score_table_takes_the_latest_value_never_a_mean(store) -> None:
    """Of a pair's score stored by two sources, the most recently ingested one, or the one of `source`.

    Contract changed: the store stamps `ingested_at` when it writes; an `ingested_at` column in a file is ignored.
    """
    rows = pd.DataFrame({"model": ["m", "m", "m"], "dataset": ["d", "d", "e"], "score": ["logme"] * 3,
                         "value": ["1.0", "3.0", "5.0"], "source": ["full split", "subsample", "full split"],
                         "ingested_at": ["2026-02-01T00:00:00+00:00", "2020-01-01T00:00:00+00:00",
                                         "2026-02-01T00:00:00+00:00"]})
    store.write(build_batch(rows.iloc[[0, 2]], "earlier.csv", kind="scores"))
    store.write(build_batch(rows.iloc[[1]], "later.csv", kind="scores"))  # its file's old date is not read
    latest = store.score_table(["logme"]).set_index(["model", "dataset"])["score_logme"]
    assert latest.to_dict() == {("m", "d"): 3.0, ("m", "e"): 5.0}
    full = store.score_table(["logme"], source="full split").set_index(["model", "dataset"])["score_logme"]
    assert full.to_dict() == {("m", "d"): 1.0, ("m", "e"): 5.0}
    with pytest.raises(UserError, match="no stored score named hscore from source 'full split'"):
        store.score_table(["hscore"], source="full split")


def bad_zoo_file(tmp_path: Path) -> Path:
    """The zoo excerpt with five problems: blank model, text value, inf value, missing dataset, negative seconds."""
    frame = pd.read_csv(DATA / "small_zoos_long.csv", dtype=str)
    frame["seconds"] = "10"
    frame.loc[1, "model"] = ""
    frame.loc[2, "value"] = "eighty"
    frame.loc[3, "value"] = "inf"
    frame.loc[4, "dataset"] = None
    frame.loc[5, "seconds"] = "-3"
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    return path


def test_invalid_rows_reject_the_whole_file(store, tmp_path: Path) -> None:
    """One line per problem (file, row, column, reason); the good rows of the file are not stored either."""
    ingest_file(store, DATA / "parc_oracles.csv", preset="parc")
    before = snapshot(store)
    path = bad_zoo_file(tmp_path)
    with pytest.raises(IngestError) as caught:
        ingest_file(store, path, constants={"protocol": "full-finetune"})
    assert caught.value.problems == [
        f"{path}: row 2: model: missing model",
        f"{path}: row 5: dataset: missing dataset",
        f"{path}: row 3: value: not a number: 'eighty'",
        f"{path}: row 4: value: not finite: 'inf'",
        f"{path}: row 6: seconds: negative duration",
    ]
    assert_same_store(before, snapshot(store))


def test_conflicting_reingest_is_reported_not_overwritten(store, tmp_path: Path) -> None:
    """The same job with a changed accuracy: rejected, naming the stored value; nothing changes."""
    ingest_file(store, DATA / "shift_ftrecords.csv", preset="shift", source="shift_ftrecords.csv")
    before = snapshot(store)
    frame = pd.read_csv(DATA / "shift_ftrecords.csv", dtype=str)
    frame.loc[0, "test_accuracy"] = "0.5"
    changed = tmp_path / "changed.csv"
    frame.to_csv(changed, index=False)
    with pytest.raises(IngestError) as caught:
        ingest_file(store, changed, preset="shift", source="shift_ftrecords.csv")
    # contract changed: the line names the column that differs (it named the key and listed every value)
    assert caught.value.problems == [f"{changed}: row 1: value: job 'facebook/deit-tiny-patch16-224' on 'dmlab' "
                                     "(vtab1k, test_accuracy) is stored with 0.22147120535373688, not 0.5"]
    assert_same_store(before, snapshot(store))


def test_duplicate_key_within_a_file(store, tmp_path: Path) -> None:
    """Two rows with the same explicit run id and settings but different values: both named, nothing stored."""
    frame = pd.read_csv(DATA / "small_zoos_long.csv").head(2).assign(protocol="full-finetune", run="r1")
    frame = pd.concat([frame, frame.head(1).assign(value=1.0)], ignore_index=True)
    path = tmp_path / "dup.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(IngestError, match=r"rows 2-3 \(2 rows\): key: duplicate key with a different value "
                                          r"\(also row 1\)"):
        ingest_file(store, path)
    assert set(store.counts().values()) == {0}


def test_conflicting_model_feature(store, tmp_path: Path) -> None:
    """A model stored with one pre-training dataset cannot silently get another."""
    ingest_file(store, DATA / "small_zoos_long.csv", constants={"protocol": "full-finetune"})
    models = pd.DataFrame({"model": ["resnet50"], "pretrain_dataset": ["instagram-1b"]})
    path = tmp_path / "models.csv"
    models.to_csv(path, index=False)
    with pytest.raises(IngestError, match="pretrain_dataset: model 'resnet50' is stored with "
                                          "'imagenet-1k \\(supervised\\)', not 'instagram-1b'"):
        ingest_file(store, path, kind="models")


def test_unknown_kind_format_and_missing_protocol(store, tmp_path: Path) -> None:
    """Wrong options are one clear error each; a jobs file without protocol names every row."""
    with pytest.raises(UserError, match="unknown kind 'runs'"):
        ingest_file(store, DATA / "small_zoos_long.csv", kind="runs")
    with pytest.raises(UserError, match="unknown format 'comet'"):
        ingest_file(store, DATA / "small_zoos_long.csv", preset="comet")
    with pytest.raises(IngestError) as caught:
        ingest_file(store, DATA / "small_zoos_long.csv")
    # contract changed: the 8 identical lines collapse into one, with a hint (issue 13)
    assert caught.value.problems == [f"{DATA / 'small_zoos_long.csv'}: rows 1-8 (8 rows): protocol: missing protocol; "
                                     "add --set protocol=NAME (or --map COLUMN=protocol)"]


def test_cli_prints_one_line_per_problem(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`recommender history ingest` exits 2 with each problem on its own line, then 0 on a good file."""
    db = str(tmp_path / "cli.db")
    path = bad_zoo_file(tmp_path)
    assert main(["history", "--db", db, "ingest", str(path), "--set", "protocol=full-finetune"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 6 and lines[-1].endswith("5 problem(s); nothing was ingested")
    assert main(["history", "--db", db, "ingest", str(DATA / "parc_oracles.csv"), "--format", "parc"]) == 0
    assert "jobs: 6 added" in capsys.readouterr().out
    assert main(["history", "--db", db, "stats"]) == 0
    assert "parc" in capsys.readouterr().out


@pytest.mark.parametrize("to", ["csv", "parquet"])
def test_export_round_trip_loses_nothing(store, tmp_path: Path, to: str) -> None:
    """Store -> files -> fresh store gives the same tables (features, extras, hyper-parameters, times, runs)."""
    for spec in BUNDLED:
        if spec.name in ("datasets.csv.gz", "models_parc.csv.gz", "models_hf.csv.gz", "scores_logme_hscore.csv.gz"):
            frame = read_table(HISTORY_DIR / spec.name)
            store.write(build_batch(spec.prepare(frame, None) if spec.prepare else frame, spec.name, spec.kind,
                                    spec.preset, spec.mapping, spec.constants))
    ingest_file(store, DATA / "shift_ftrecords.csv", preset="shift")
    ingest_file(store, DATA / "mlflow_runs.csv", preset="mlflow", constants={"protocol": "vtab1k"})
    ingest_file(store, DATA / "parc_oracles.csv", preset="parc")
    store.write(alias_batch(pd.DataFrame({"alias": ["pets"], "dataset": ["oxford_iiit_pet"]}), "aliases"))
    facts = tmp_path / "facts.csv"  # a protocol's facts, and its examples on one dataset
    pd.DataFrame({"protocol": ["parc", "parc"], "dataset": [None, "pets"], "history": ["parc", None],
                  "epochs": [30, None], "optimizer": ["sgd", None], "examples": [None, 3680]}
                 ).to_csv(facts, index=False)
    assert ingest_file(store, facts, kind="protocols") == {"protocols": 1, "protocol_datasets": 1}
    export(store, tmp_path / "out", to)
    copy = open_store(str(tmp_path / "copy.db"), create=True)
    copy.write(alias_batch(read_table(tmp_path / "out" / f"dataset_aliases.{to}"), "aliases"))
    for kind in ("datasets", "models", "protocols", "jobs", "scores"):
        ingest_file(copy, tmp_path / "out" / f"{kind}.{to}", kind=kind)
    assert copy.counts() == store.counts()
    assert (copy.counts()["protocols"], copy.counts()["protocol_datasets"]) == (2, 1)  # vtab1k (SHiFT), parc
    assert copy.protocol_examples()[["protocol", "dataset", "examples"]].values.tolist() == [
        ["parc", "oxford_iiit_pet", 3680.0]]  # the alias resolved on ingest
    # contract changed: each store stamps its own ingest time, so the times differ and are left out
    untimed = [{kind: frame.drop(columns="ingested_at", errors="ignore") for kind, frame in snapshot(s).items()}
               for s in (store, copy)]
    assert_same_store(*untimed)
    assert all(set(ingest_file(store, tmp_path / "out" / f"{kind}.{to}", kind=kind).values()) == {0}
               for kind in ("datasets", "models", "jobs", "scores"))  # and the export adds nothing to its store


def test_interrupted_export_keeps_the_previous_file(store, tmp_path: Path, monkeypatch) -> None:
    """A write that fails half-way leaves the earlier export whole and no temporary file behind."""
    ingest_file(store, DATA / "parc_oracles.csv", preset="parc")
    out = tmp_path / "out"
    export(store, out)
    before = (out / "jobs.csv").read_text()

    def half_then_fail(self, path, **kwargs):
        Path(path).write_text(before[: len(before) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_fail)
    with pytest.raises(KeyboardInterrupt):
        export(store, out)
    assert (out / "jobs.csv").read_text() == before
    # the files are built in a hidden folder inside `out`, removed on failure; the manifest lists the export's files
    assert sorted(p.name for p in out.iterdir()) == [".recommender-manifest.json", "dataset_aliases.csv",
                                                     "datasets.csv", "jobs.csv", "models.csv", "protocols.csv",
                                                     "scores.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.db", "history.db-shm", "history.db-wal", "out"]


def _jobs_file(tmp_path: Path, rows: list[tuple[str, str, str, float]]) -> Path:
    """A long-format jobs file of (model, dataset, protocol, value) rows."""
    path = tmp_path / "jobs.csv"
    pd.DataFrame(rows, columns=["model", "dataset", "protocol", "value"]).assign(metric="acc").to_csv(path, index=False)
    return path


def test_an_alias_row_lands_on_the_canonical_dataset(tmp_path: Path, capsys) -> None:
    """`--alias pets=oxford_iiit_pet`: the row under `pets` is stored under `oxford_iiit_pet`, and a query that
    names either finds it; a later file under `pets` lands there too."""
    db = str(tmp_path / "h.db")
    path = _jobs_file(tmp_path, [("m1", "pets", "p", 0.5), ("m2", "oxford_iiit_pet", "p", 0.7)])
    assert main(["history", "--db", db, "ingest", str(path), "--alias", "pets=oxford_iiit_pet"]) == 0
    assert capsys.readouterr().out.splitlines() == ["dataset_aliases: 1 added", "jobs: 2 added"]
    store = open_store(db)
    assert store.jobs()["dataset"].tolist() == ["oxford_iiit_pet", "oxford_iiit_pet"]
    assert store.jobs(dataset="pets")["model"].tolist() == ["m1", "m2"]
    assert store.alias_map() == {"pets": "oxford_iiit_pet"}
    later = _jobs_file(tmp_path, [("m3", "pets", "p", 0.6)])
    assert main(["history", "--db", db, "ingest", str(later)]) == 0
    assert set(store.pair_table("p")["dataset"]) == {"oxford_iiit_pet"} and len(store.pair_table("p")) == 3
    assert main(["history", "--db", db, "stats"]) == 0
    assert "pets oxford_iiit_pet" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("definition, reason", [
    ("pets=flowers", "dataset: alias 'pets' is stored for dataset 'oxford_iiit_pet', not 'flowers'"),
    ("oxford_iiit_pet=other", "alias: 'oxford_iiit_pet' is a dataset the store holds rows for, not a free name"),
    ("x=x", "alias: an alias must differ from its dataset"),
])
def test_a_conflicting_alias_is_one_line_and_changes_nothing(tmp_path: Path, capsys, definition: str,
                                                            reason: str) -> None:
    """An alias stored for another dataset, naming a stored dataset, or naming itself: one line, exit 2, nothing
    added (neither the alias nor the file's jobs)."""
    db = str(tmp_path / "h.db")
    assert main(["history", "--db", db, "ingest", str(_jobs_file(tmp_path, [("m1", "oxford_iiit_pet", "p", 0.5)])),
                 "--alias", "pets=oxford_iiit_pet"]) == 0
    before = snapshot(open_store(db))
    capsys.readouterr()
    other = _jobs_file(tmp_path, [("m9", "z", "p", 0.1)])
    assert main(["history", "--db", db, "ingest", str(other), "--alias", definition]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0] == f"--alias: row 1: {reason}" and lines[1].endswith("1 problem(s); nothing was ingested")
    assert_same_store(before, snapshot(open_store(db)))
    assert main(["history", "--db", db, "alias", definition]) == 2
    assert capsys.readouterr().err.strip().splitlines()[0] == f"aliases: row 1: {reason}"


def test_alias_command_and_file(tmp_path: Path, capsys) -> None:
    """`history alias A=D --file F`: all or nothing; an alias of an alias is refused (aliases name a dataset)."""
    db = str(tmp_path / "h.db")
    table = tmp_path / "aliases.csv"
    pd.DataFrame({"alias": ["flowers"], "dataset": ["oxford_flowers102"], "source": ["TransferGraph"]}).to_csv(
        table, index=False)
    assert main(["history", "--db", db, "alias", "pets=oxford_iiit_pet", "--file", str(table)]) == 0
    assert capsys.readouterr().out.strip() == "dataset_aliases: 2 added"
    assert main(["history", "--db", db, "alias", "oxpets=pets"]) == 2
    assert capsys.readouterr().err.splitlines()[0] == "aliases: row 1: dataset: 'pets' is itself an alias of " \
                                                      "'oxford_iiit_pet'"
    assert open_store(db).alias_map() == {"flowers": "oxford_flowers102", "pets": "oxford_iiit_pet"}
    assert main(["history", "--db", db, "alias", "pets=oxford_iiit_pet"]) == 0  # the same again: nothing added
    assert "dataset_aliases: 0 added" in capsys.readouterr().out


def test_multi_protocol_pair_table_with_facts(store, tmp_path: Path) -> None:
    """Two protocols, facts from a protocols file (one per-dataset count): each row carries its protocol's facts;
    a pair appears once per protocol; `examples` falls back to the full train split where no fact says."""
    ingest_file(store, _jobs_file(tmp_path, [("m1", "d1", "a", 0.5), ("m2", "d1", "a", 0.7),
                                             ("m1", "d1", "b", 0.2), ("m1", "d2", "b", 0.4)]))
    datasets = tmp_path / "datasets.csv"
    pd.DataFrame({"dataset": ["d1", "d2"], "examples": [1000, 500]}).to_csv(datasets, index=False)
    ingest_file(store, datasets, kind="datasets")
    facts = tmp_path / "facts.csv"
    pd.DataFrame({"protocol": ["a", "b", "b"], "dataset": [None, None, "d2"], "history": ["mine", "theirs", None],
                  "train_fraction": [0.25, None, None], "lr_min": [1e-3, 0.1, None], "lr_max": [1e-2, 0.1, None],
                  "peft": ["lora", "full", None], "lora_r": [8, None, None], "examples": [None, None, 77]}).to_csv(
        facts, index=False)
    assert ingest_file(store, facts, kind="protocols") == {"protocols": 2, "protocol_datasets": 1}
    table = store.pair_table(["a", "b"]).set_index(["protocol", "dataset", "model"])
    assert len(table) == 4 and table.index.is_unique
    assert table.loc[("a", "d1", "m2"), ["p_history", "p_peft", "p_lora_r", "p_lr_min", "p_lr_max"]].tolist() == [
        "mine", "lora", 8.0, 1e-3, 1e-2]
    assert table.loc[("a", "d1", "m1"), "examples"] == 250  # floor(0.25 * 1000)
    assert table.loc[("b", "d1", "m1"), "examples"] == 1000 and np.isnan(table.loc[("b", "d1", "m1"), "p_examples"])
    assert table.loc[("b", "d2", "m1"), "p_examples"] == 77 == table.loc[("b", "d2", "m1"), "examples"]
    pd.testing.assert_frame_equal(store.pair_table("all"), store.pair_table("a,b"))
    with pytest.raises(IngestError, match=r"protocol 'b' on 'd2' is stored with 77\.0 examples, not 78\.0"):
        pd.DataFrame({"protocol": ["b"], "dataset": ["d2"], "examples": [78]}).to_csv(facts, index=False)
        ingest_file(store, facts, kind="protocols")


def test_protocol_facts_without_a_dataset_column(tmp_path):
    """A protocols file with no dataset column holds one row of facts per protocol (it failed on frame[~False])."""
    store = open_store(str(tmp_path / "s.db"), create=True)
    facts = tmp_path / "facts.csv"
    pd.DataFrame({"protocol": ["myproto"], "history": ["mine"], "epochs": [3]}).to_csv(facts, index=False)
    assert ingest_file(store, facts, kind="protocols") == {"protocols": 1, "protocol_datasets": 0}
