"""Ingest messages and formats (issue 13.4): collapsed row errors with hints, counts of what changed, plain values,
the W&B and MLflow UI CSV exports, and --map over an all-blank column."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recommender.cli import main
from recommender.errors import UserError
from recommender.history import IngestError, open_store
from recommender.history.ingest import build_batch, ingest_file
from recommender.history.records import Batch, row_span


def _ingest(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, list[str], list[str]]:
    """Run `recommender history ...`: exit code, stdout lines, stderr lines."""
    code = main(["history", *argv])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err.splitlines()


def test_identical_row_errors_collapse_into_one_line_with_a_hint(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    """3000 rows without a protocol column: one line with the span, the count and `--set protocol=`; a blank
    protocol cell in a file that has the column names its row, with no hint."""
    path = tmp_path / "runs.csv"
    pd.DataFrame({"model": [f"m{i}" for i in range(3000)], "dataset": "d", "metric": "acc",
                  "value": 0.5}).to_csv(path, index=False)
    code, out, err = _ingest(["--db", str(tmp_path / "h.db"), "ingest", str(path)], capsys)
    assert code == 2 and out == []
    assert err == [f"{path}: rows 1-3000 (3000 rows): protocol: missing protocol; add --set protocol=NAME "
                   "(or --map COLUMN=protocol)",
                   "recommender history ingest: 1 problem(s); nothing was ingested"]
    assert not (tmp_path / "h.db").exists()
    frame = pd.DataFrame({"model": ["a", "b"], "dataset": "d", "metric": "acc", "value": 0.5, "protocol": ["p", ""]})
    assert build_batch(frame.replace("", None), "f.csv").problems == ["f.csv: row 2: protocol: missing protocol"]


def test_row_spans() -> None:
    """Runs of rows become ranges, counted; past eight ranges the rest are elided but still counted."""
    assert row_span([7]) == "row 7"
    assert row_span([3, 1, 2, 7, 9, 10]) == "rows 1-3, 7, 9-10 (6 rows)"
    assert row_span(list(range(1, 40, 2))) == "rows 1, 3, 5, 7, 9, 11, 13, 15, ... (20 rows)"
    batch = Batch("f")
    for row in (1, 2, 4):
        batch.problem(row, "value", "not a number: 'x'")
    batch.problem(3, "value", "not a number: 'y'")
    assert batch.problems == ["f: rows 1-2, 4 (3 rows): value: not a number: 'x'", "f: row 3: value: not a number: 'y'"]


def test_messages_show_plain_values(tmp_path: Path) -> None:
    """Feature conflicts read from Parquet (numpy values) print 25.6 and 30.5, never np.float64(...)."""
    store = open_store(str(tmp_path / "h.db"), create=True)
    first, second = tmp_path / "a.parquet", tmp_path / "b.parquet"
    pd.DataFrame({"model": ["m"], "params_m": np.array([25.6]), "family": ["resnet"]}).to_parquet(first)
    pd.DataFrame({"model": ["m", "m"], "params_m": np.array([30.5, 31.0]),
                  "family": ["resnet", "resnet"]}).to_parquet(second)
    ingest_file(store, first, kind="models")
    with pytest.raises(IngestError) as caught:
        ingest_file(store, second, kind="models")
    assert caught.value.problems == [f"{second}: row 2: params_m: model 'm' has 30.5 (row 1), not 31.0"]
    pd.DataFrame({"model": ["m"], "params_m": np.array([30.5])}).to_parquet(second)
    with pytest.raises(IngestError) as caught:
        ingest_file(store, second, kind="models")
    assert caught.value.problems == [f"{second}: row 1: params_m: model 'm' is stored with 25.6, not 30.5"]
    infinite = pd.DataFrame({"model": ["m"], "dataset": "d", "metric": "acc", "protocol": "p",
                             "value": np.array([np.inf])})
    assert build_batch(infinite, "api").problems == ["api: row 1: value: not finite: inf"]


def test_counts_say_what_changed(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Datasets whose groups a jobs file fills are `updated` (not "0 added" alone); the same file again is
    `unchanged`; with --replace a changed value is `replaced`."""
    db = str(tmp_path / "h.db")
    datasets = tmp_path / "datasets.csv"
    pd.DataFrame({"dataset": ["d1", "d2"], "classes": [10, 100]}).to_csv(datasets, index=False)
    assert _ingest(["--db", db, "ingest", str(datasets), "--kind", "datasets"], capsys)[1] == ["datasets: 2 added"]
    jobs = tmp_path / "jobs.csv"
    frame = pd.DataFrame({"model": ["a", "b", "a"], "dataset": ["d1", "d1", "d2"], "metric": "acc",
                          "value": [0.5, 0.6, 0.7], "group": ["natural", "natural", "specialized"]})
    frame.to_csv(jobs, index=False)
    code, out, _ = _ingest(["--db", db, "ingest", str(jobs), "--set", "protocol=p"], capsys)
    assert code == 0 and out == ["datasets: 0 added, 2 updated", "jobs: 3 added"]
    code, out, _ = _ingest(["--db", db, "ingest", str(jobs), "--set", "protocol=p"], capsys)
    assert out == ["datasets: 0 added, 2 unchanged", "jobs: 0 added, 3 unchanged"]
    frame.assign(group=["structured", "structured", "specialized"]).to_csv(jobs, index=False)
    code, out, _ = _ingest(["--db", db, "ingest", str(jobs), "--set", "protocol=p", "--replace"], capsys)
    assert out == ["datasets: 0 added, 1 unchanged, 1 replaced", "jobs: 0 added, 3 unchanged"]
    assert open_store(db).dataset_features().set_index("dataset")["group"].to_dict() == {
        "d1": "structured", "d2": "specialized"}


def test_wandb_ui_export(tmp_path: Path) -> None:
    """The W&B runs table's CSV: Name identifies the run, Runtime is seconds, config columns are settings,
    test_/val_ summary columns the values, the UI's own columns and `_` internals extra."""
    path = tmp_path / "wandb_export.csv"
    pd.DataFrame({
        "Name": ["dazzling-sun-1", "misty-moon-2"], "State": ["finished", "finished"], "Notes": ["-", "-"],
        "User": ["ann", "ann"], "Tags": ["", "sweep"], "Created": ["2026-01-01T10:00:00.000Z"] * 2,
        "Runtime": [120, 95], "Sweep": ["", ""], "model": ["resnet50", "vit_b16"], "dataset": ["dtd", "dtd"],
        "lr": [0.01, 0.1], "test_acc": [0.71, 0.65], "val_acc": [0.70, ""], "train_loss": [0.3, 0.4],
        "_step": [99, 99],
    }).to_csv(path, index=False)
    store = open_store(str(tmp_path / "h.db"), create=True)
    assert ingest_file(store, path, preset="wandb-ui", constants={"protocol": "vtab1k"})["jobs"] == 2
    jobs = store.jobs().set_index("run")
    assert jobs.loc["dazzling-sun-1", ["model", "metric", "test_value", "val_value", "seconds"]].tolist() == [
        "resnet50", "test_acc", 0.71, 0.70, 120.0]
    assert np.isnan(jobs.loc["misty-moon-2", "val_value"]) and jobs.loc["misty-moon-2", "seconds"] == 95.0
    assert json.loads(jobs.loc["misty-moon-2", "hparams"]) == {"lr": 0.1}
    extra = json.loads(jobs.loc["misty-moon-2", "extra"])
    assert extra["State"] == "finished" and extra["Tags"] == "sweep" and extra["_step"] == 99
    assert extra["metric.train_loss"] == 0.4
    assert ingest_file(store, path, preset="wandb-ui", constants={"protocol": "vtab1k"})["jobs"] == 0
    with_id = pd.read_csv(path).assign(ID=["x1", "x2"])
    with_id.to_csv(path, index=False)
    ingest_file(store, path, preset="wandb-ui", constants={"protocol": "vtab1k"})
    assert set(store.jobs()["run"]) == {"dazzling-sun-1", "misty-moon-2", "x1", "x2"}


def test_mlflow_ui_export(tmp_path: Path) -> None:
    """The MLflow runs table's CSV: Run ID identifies the run, Duration as shown (1.5min) is 90 seconds, params are
    settings, metrics the values, `mlflow.` tags and the UI's columns extra."""
    path = tmp_path / "runs.csv"
    pd.DataFrame({
        "Start Time": ["2026-01-01 10:00:00", "2026-01-01 11:00:00"], "Duration": ["1.5min", "850ms"],
        "Run ID": ["0a1b", "2c3d"], "Name": ["run-a", "run-b"], "Source Type": ["LOCAL", "LOCAL"],
        "Source Name": ["train.py", "train.py"], "User": ["ann", "ann"], "Status": ["FINISHED", "FINISHED"],
        "model": ["resnet50", "resnet50"], "dataset": ["dtd", "svhn"], "protocol": ["vtab1k", "vtab1k"],
        "lr": ["0.01", "0.01"], "test_accuracy": [0.7, 0.9], "val_accuracy": [0.69, 0.88],
        "mlflow.runName": ["run-a", "run-b"],
    }).to_csv(path, index=False)
    store = open_store(str(tmp_path / "h.db"), create=True)
    assert ingest_file(store, path, preset="mlflow-ui")["jobs"] == 2
    jobs = store.jobs().set_index("run")
    assert jobs.loc["0a1b", ["dataset", "metric", "test_value", "val_value", "seconds"]].tolist() == [
        "dtd", "test_accuracy", 0.7, 0.69, 90.0]
    assert jobs.loc["2c3d", "seconds"] == pytest.approx(0.85, rel=1e-12)  # 850 ms, up to float rounding
    assert json.loads(jobs.loc["0a1b", "hparams"]) == {"lr": 0.01}
    extra = json.loads(jobs.loc["0a1b", "extra"])
    assert extra["Status"] == "FINISHED" and extra["mlflow.runName"] == "run-a" and extra["Name"] == "run-a"
    bad = pd.read_csv(path).assign(Duration=["soon", "1.0h"])
    bad.to_csv(path, index=False)
    with pytest.raises(IngestError, match=r"row 1: seconds: not a number: 'soon'"):
        ingest_file(store, path, preset="mlflow-ui")


def test_map_over_an_all_blank_column(tmp_path: Path) -> None:
    """A W&B export with an empty `model` column: `--map config.model_name=model` takes the filled one; two filled
    columns under one name are still refused."""
    path = tmp_path / "wandb.csv"
    frame = pd.DataFrame({"id": ["r1", "r2"], "model": ["", ""], "config.model_name": ["resnet50", "vit_b16"],
                          "config.dataset": ["dtd", "dtd"], "summary.test_acc": [0.5, 0.6]})
    frame.to_csv(path, index=False)
    store = open_store(str(tmp_path / "h.db"), create=True)
    mapping = {"config.model_name": "model"}
    added = ingest_file(store, path, preset="wandb", mapping=mapping, constants={"protocol": "p"})
    assert added["jobs"] == 2 and sorted(store.jobs()["model"]) == ["resnet50", "vit_b16"]
    frame.assign(model=["a", "b"]).to_csv(path, index=False)
    with pytest.raises(UserError, match="column 'model' appears twice"):
        ingest_file(store, path, preset="wandb", mapping=mapping, constants={"protocol": "p"})


def test_messages_mask_a_store_password() -> None:
    """A PostgreSQL URL's password never reaches a message; a SQLite path is shown as given."""
    from recommender.history.url import shown_url

    assert shown_url("postgresql+psycopg://user:secret@host:5432/db") == "postgresql+psycopg://user:***@host:5432/db"
    assert shown_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
