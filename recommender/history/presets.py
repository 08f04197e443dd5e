"""Presets: turn the tables real logs come in into our long format (see `records`), one function per format.

Each preset takes the raw table (with a `_row` column) and returns long-format tables by kind; columns it
does not know are kept as extra. `long` is our own format and needs no conversion.
"""

from __future__ import annotations

import ast
import re
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from recommender.contracts import shift_protocol, slice_size, transfergraph_protocol
from recommender.errors import UserError
from recommender.history.records import EXTRA_PREFIX, HP_PREFIX, ROW, text_cells, text_or_none

Tables = dict[str, pd.DataFrame]

SHIFT_HPARAMS = ["lr", "epochs", "batch_size", "train_split", "val_split", "test_split", "train_slice",
                 "val_slice", "test_slice"]
SHIFT_ALIASES = {"model_identifier": "model", "train_dataset_name": "dataset", "val_accuracy": "val_value",
                 "elapsed_time": "seconds", "elapsed_time_s": "seconds"}
PARC_ALIASES = {"Architecture": "arch", "Source Dataset": "pretrain_dataset", "Target Dataset": "dataset",
                "Oracle": "value"}
PARC_MISSING = -1.0  # the PARC oracle tables write -1 where a fine-tuning run has no result


TRANSFERGRAPH_HPARAMS = ["lr", "epochs", "batch_size", "train_slice", "val_slice", "test_slice", "lr_scheduler",
                         "peft_method", "lora_r", "lora_alpha", "optimizer"]
FACT_HPARAMS = {"epochs": "epochs", "train_slice": "split", "peft_method": "peft", "lora_r": "lora_r",
                "optimizer": "optimizer"}  # hyper-parameter -> protocol fact, where all of a protocol's jobs agree


def _text(value: Any) -> str | None:
    """A setting as text for a protocol name (None where missing)."""
    return None if pd.isna(value) else str(value)


def _number(value: Any) -> float | None:
    """A numeric setting for a protocol name (None where missing; text that is not a number raises)."""
    return None if pd.isna(value) else float(value)


def protocol_facts(jobs: pd.DataFrame, history: str) -> pd.DataFrame:
    """One row of facts per protocol, read from its jobs' hyper-parameters (`hp.<name>` columns): learning-rate
    range; epochs, train slice, PEFT method, LoRA rank, optimiser where every job agrees; the slice's examples or
    fraction of the train split."""
    rows = []
    for protocol, group in jobs.groupby("protocol", sort=True):
        row = {ROW: group[ROW].iloc[0], "protocol": protocol, "history": history}
        if "source" in group:
            row["source"] = group["source"].iloc[0]
        if HP_PREFIX + "lr" in group:
            lr = pd.to_numeric(group[HP_PREFIX + "lr"], errors="coerce")
            row["lr_min"], row["lr_max"] = lr.min(), lr.max()
        for name, fact in FACT_HPARAMS.items():
            values: np.ndarray | list[object] = (text_cells(group[HP_PREFIX + name]).dropna().unique()
                                                 if HP_PREFIX + name in group else [])
            if len(values) == 1:
                row[fact] = values[0]
        row["examples"], row["train_fraction"] = slice_size(row.get("split"))
        rows.append(row)
    return pd.DataFrame(rows)


def _feature_tables(jobs: pd.DataFrame, model_cols: list[str], dataset_cols: list[str]) -> Tables:
    """Model / dataset feature rows carried by a jobs table (only the columns it has).

    Rows without an id are left out here: the job itself reports the missing id.
    """
    tables = {}
    for kind, id_col, cols in (("models", "model", model_cols), ("datasets", "dataset", dataset_cols)):
        present = [c for c in cols if c in jobs]
        if present and id_col in jobs:
            with_id = jobs[text_cells(jobs[id_col]).notna()]
            tables[kind] = with_id[[ROW, id_col, *present, *(["source"] if "source" in jobs else [])]]
    return tables


def long(frame: pd.DataFrame, kind: str) -> Tables:
    """Our long format: jobs may also carry model and dataset features, which go to their tables, and a `history`
    column (a protocol fact). Protocols: one row of facts per protocol, or per (protocol, dataset) for examples."""
    if kind == "protocols":  # a row naming a dataset gives the protocol's training examples on that dataset
        per_dataset = (text_cells(frame["dataset"]).notna() if "dataset" in frame
                       else pd.Series(False, index=frame.index))
        return {"protocols": frame[~per_dataset].drop(columns="dataset", errors="ignore"),
                "protocol_datasets": frame[per_dataset]}
    if kind != "jobs":
        return {kind: frame}
    tables = {"jobs": frame, **_feature_tables(frame, ["family", "pretrain_dataset", "input_size", "params_m",
                                                       "gmacs", "imagenet_top1"],
                                               ["examples", "classes", "modality", "group"])}
    return {**tables, **_history_facts(frame)}


def _history_facts(jobs: pd.DataFrame) -> Tables:
    """A `history` column names the history a protocol's jobs come from: a protocol fact."""
    if "history" not in jobs or "protocol" not in jobs:
        return {}
    named = jobs[text_cells(jobs["protocol"]).notna() & text_cells(jobs["history"]).notna()]
    return {"protocols": named[[ROW, "protocol", "history", *(["source"] if "source" in named else [])]]}


def shift(frame: pd.DataFrame, kind: str) -> Tables:
    """SHiFT fine-tuning records (`ftrecords.csv`, or its long excerpt): test accuracy, val accuracy, settings."""
    frame = frame.rename(columns=SHIFT_ALIASES)
    if "value" not in frame and "test_accuracy" in frame:
        frame = frame.rename(columns={"test_accuracy": "value"}).assign(metric="test_accuracy")
    if "configs" in frame:  # the original file keeps the learning rate in a Python dict literal
        configs = pd.DataFrame([_literal_dict(c) for c in frame.pop("configs")], index=frame.index)
        frame = frame.join(configs[[c for c in configs if c not in frame]])
    frame = frame.assign(protocol=[shift_protocol(_text(s), _number(e)) for s, e in
                                   zip(frame.get("train_slice", pd.Series(index=frame.index)),
                                       frame.get("epochs", pd.Series(index=frame.index)), strict=True)])
    frame = frame.rename(columns={c: HP_PREFIX + c for c in SHIFT_HPARAMS if c in frame})
    frame = frame.drop(columns=[c for c in ("Unnamed: 0", "hash") if c in frame])
    return {"jobs": frame, **_feature_tables(frame, [], ["modality"]), "protocols": protocol_facts(frame, "shift")}


def transfergraph(frame: pd.DataFrame, kind: str) -> Tables:
    """TransferGraph's fine-tuning records (`records.csv`): protocol named from each record's slice, PEFT method
    and epochs; its `dataset_size` gives the training examples per dataset (times the train slice's fraction
    where there is one), and its other columns stay with each job as extra."""
    frame = frame.rename(columns={"train_runtime_s": "seconds"})
    settings = pd.DataFrame({c: frame[c] if c in frame else pd.Series(index=frame.index, dtype=object)
                             for c in ("train_slice", "peft_method", "lora_r", "epochs")})
    settings["lora_r"] = pd.to_numeric(settings["lora_r"], errors="coerce")
    names = {row: transfergraph_protocol(_text(row[0]), _text(row[1]), _number(row[2]), _number(row[3]))
             for row in settings.drop_duplicates().itertuples(index=False, name=None)}  # once per distinct setting
    frame = frame.assign(protocol=[names.get(row) or transfergraph_protocol(
        _text(row[0]), _text(row[1]), _number(row[2]), _number(row[3]))
        for row in settings.itertuples(index=False, name=None)])
    frame = frame.rename(columns={c: HP_PREFIX + c for c in TRANSFERGRAPH_HPARAMS if c in frame})
    facts = protocol_facts(frame, "transfergraph")
    tables = {"jobs": frame, **_feature_tables(frame, [], ["modality", "classes"]), "protocols": facts}
    if "dataset_size" in frame:
        sizes = frame.assign(size=pd.to_numeric(frame["dataset_size"], errors="coerce")).dropna(subset=["size"])
        sizes = sizes.drop_duplicates(["protocol", "dataset", "size"])
        fraction = sizes["protocol"].map(facts.set_index("protocol")["train_fraction"])
        sizes = sizes.assign(examples=np.floor(sizes["size"] * fraction.fillna(1.0)))
        tables["protocol_datasets"] = sizes[[ROW, "protocol", "dataset", "examples",
                                             *(["source"] if "source" in sizes else [])]]
    return tables


def _literal_dict(text: object) -> dict:
    """A Python dict literal such as "{'lr': 0.1}" (blank gives {})."""
    if pd.isna(text) or not str(text).strip():  # type: ignore[call-overload]  # pandas-stubs: isna takes any cell
        return {}
    try:
        value = ast.literal_eval(str(text))
    except (ValueError, SyntaxError):
        raise UserError(f"configs cell is not a Python dict literal: {text!r}") from None
    return value if isinstance(value, dict) else {}


def parc(frame: pd.DataFrame, kind: str) -> Tables:
    """The PARC oracle table (`oracles/all.csv`: architecture, source dataset, target, accuracy); -1 is skipped."""
    frame = frame.rename(columns=PARC_ALIASES)
    if "model" not in frame:
        frame = frame.assign(model=frame["arch"].astype(str) + "|" + frame["pretrain_dataset"].astype(str))
    frame = frame.assign(metric=frame.get("metric", "oracle_finetune_accuracy"), protocol="parc")
    frame = frame[pd.to_numeric(frame["value"], errors="coerce") != PARC_MISSING]
    frame = frame.rename(columns={"arch": "family"})
    return {"jobs": frame, **_feature_tables(frame, ["family", "pretrain_dataset"], ["modality"]),
            **_history_facts(frame)}


def _runs_export(frame: pd.DataFrame, hp_prefix: str, metric_prefix: str, id_columns: list[str],
                 seconds: pd.Series | None, shown_prefix: str | None = None) -> Tables:
    """Experiment-tracker runs (one row per run) to one job per logged test metric (`shown_prefix`: the metric
    columns' prefix as the file has it, for the message when there is none)."""
    fields = ("model", "dataset", "protocol")  # these travel as params / config in a tracker
    names = {c: c[len(hp_prefix):] for c in frame.columns if c.startswith(hp_prefix)}
    base = frame.rename(columns={c: n if n in fields else HP_PREFIX + n for c, n in names.items()})
    run_id = next((c for c in id_columns if c in base), None)
    if run_id is not None:
        base = base.rename(columns={run_id: "run"})
    if seconds is not None:
        base = base.assign(seconds=seconds)
    tests = [c for c in base.columns if re.fullmatch(re.escape(metric_prefix) + r"test[_/.].+", c)]
    if not tests:
        shown = metric_prefix if shown_prefix is None else shown_prefix
        raise UserError(f"no test metric column ({shown}test_<name>) in the runs export")
    # A run that did not log a metric has no job for it (a run that logged none is reported as missing a value).
    logged = base[tests].map(lambda v: text_or_none(v) is not None)
    jobs = []  # other logged metrics stay with each job as extra
    for column in tests:
        name = column[len(metric_prefix):]
        val_column = metric_prefix + re.sub(r"^test", "val", name)
        job = base.rename(columns={column: "value", val_column: "val_value"}).assign(metric=name)
        jobs.append(job[logged[column] | ~logged.any(axis=1)])
    return {"jobs": pd.concat(jobs, ignore_index=True)}


def mlflow(frame: pd.DataFrame, kind: str) -> Tables:
    """`mlflow.search_runs()` output: `params.*` (text) are settings, `metrics.test_*` / `metrics.val_*` values."""
    frame, seconds = finished_runs(frame), None
    if {"start_time", "end_time"} <= set(frame.columns):
        start, end = (pd.to_datetime(frame[c], utc=True, errors="coerce") for c in ("start_time", "end_time"))
        seconds = (end - start).dt.total_seconds()
        frame = frame.drop(columns=["start_time", "end_time"])
    frame = frame.rename(columns={"tags.model": "params.model", "tags.dataset": "params.dataset"})
    return _runs_export(frame, "params.", "metrics.", ["run_id"], seconds)


def wandb(frame: pd.DataFrame, kind: str) -> Tables:
    """A Weights & Biases runs export, flattened: `config.*` settings, `summary.test_*` / `summary.val_*` values."""
    frame = finished_runs(frame)
    seconds = frame.pop("summary._runtime") if "summary._runtime" in frame else None
    return _runs_export(frame, "config.", "summary.", ["id", "run_id", "name"], seconds)


# The CSV a tracker's web UI downloads from its runs table names config/params and summary/metrics columns without
# a prefix. A column named like a metric (`test_acc`, `val/acc`, `train_loss`, `eval.f1`) is taken as one; the UI's
# own columns, and names starting with `_` (W&B internals) or `mlflow.` (MLflow system tags), are kept as extra;
# every other column is taken as a setting (a hyper-parameter).
UI_METRIC = re.compile(r"(test|val|valid|train|eval)[_/.].+")
WANDB_UI_COLUMNS = {"Name", "ID", "State", "Notes", "User", "Tags", "Created", "Updated", "Sweep", "Group",
                    "Job Type", "Hostname", "Runtime"}
MLFLOW_UI_COLUMNS = {"Start Time", "Duration", "Run ID", "Name", "Source Type", "Source Name", "User", "Status",
                     "Created", "Dataset", "Models", "Version", "Description"}
DURATION_UNITS = {"": 1.0, "ms": 0.001, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hr": 3600.0,
                  "d": 86400.0}


# A tracker's run state, and the state of a run that ended with its results (a crashed, failed, killed or still
# running run has no final results: it is skipped, with a warning that counts them).
RUN_STATES = {"state": "finished", "State": "finished", "status": "FINISHED", "Status": "FINISHED"}


def finished_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """The runs of a tracker export that finished; the others are left out with one warning saying how many and in
    which states (a blank state counts as finished: the export did not say)."""
    column = next((c for c in RUN_STATES if c in frame), None)
    if column is None:
        return frame
    states = text_cells(frame[column])
    done = states.isna() | (states.str.lower() == RUN_STATES[column].lower())
    if not done.all():
        counts = states[~done].value_counts()
        found = ", ".join(f"{n} {state}" for state, n in counts.items())
        warnings.warn(f"skipped {int((~done).sum())} run(s) that did not finish ({column}: {found}): only finished "
                      "runs have results", stacklevel=2)
    return frame[done]


def _ui_export(frame: pd.DataFrame, own: set[str], run_column: str | None, seconds: pd.Series | None) -> Tables:
    """An unprefixed runs-table download, given the prefixes of the API exports and read as they are."""
    def prefixed(column: str) -> str:
        if column == ROW:
            return column
        if column == run_column:
            return "run"
        if column in own or column.startswith(("_", "mlflow.")):
            return EXTRA_PREFIX + column
        return ("metric." if UI_METRIC.fullmatch(column) else "setting.") + column

    frame = frame.drop(columns=[c for c in ("Runtime", "Duration") if c in frame])
    return _runs_export(frame.rename(columns=prefixed), "setting.", "metric.", ["run"], seconds, shown_prefix="")


def wandb_ui(frame: pd.DataFrame, kind: str) -> Tables:
    """The CSV of the W&B web UI's runs table (Export as CSV): columns as shown there, without prefixes.

    Assumed columns: `Name` (the run's display name), `ID` (the run id, where the column is shown), `State` (only
    `finished` runs are read), `Notes`, `User`, `Tags`, `Created`, `Updated`, `Sweep`, `Group`, `Job Type`,
    `Hostname` (kept as extra), `Runtime` (seconds, or as shown: `1h 2m 3s`); then the config columns (settings:
    `model`, `dataset`, `protocol`, `lr`, ...) and the summary columns (`test_acc`, `val_acc`, ...), both
    unprefixed. The run is identified by `ID`, else by `Name` (a name two runs share is then reported as a
    duplicate key).
    """
    frame = finished_runs(frame)
    run_column = "ID" if "ID" in frame else "Name" if "Name" in frame else None
    seconds = frame["Runtime"].map(duration_seconds) if "Runtime" in frame else None
    return _ui_export(frame, WANDB_UI_COLUMNS - {run_column} if run_column else WANDB_UI_COLUMNS, run_column,
                      seconds)


def duration_seconds(text: object) -> float | str | None:
    """A duration as a tracker shows it in seconds: a number (seconds), MLflow's `850ms`, `32.1s`, `1.5min`, `2.0h`,
    `1.0d`, or W&B's `1h 2m 3s`, `2d 4h`; other text as it is (then refused as not a number), None where blank."""
    value = text_or_none(text)
    if value is None:
        return None
    parts = re.findall(r"([0-9]*\.?[0-9]+)\s*([a-z]*)", value.lower())
    if re.fullmatch(r"(\s*[0-9]*\.?[0-9]+\s*[a-z]*)+\s*", value.lower()) is None or \
            any(unit not in DURATION_UNITS for _, unit in parts) or (len(parts) > 1 and any(not u for _, u in parts)):
        return value
    return sum(float(number) * DURATION_UNITS[unit] for number, unit in parts)


def mlflow_ui(frame: pd.DataFrame, kind: str) -> Tables:
    """The CSV of the MLflow web UI's runs table (Download CSV): columns as shown there, without prefixes.

    Assumed columns: `Start Time`, `Duration` (as shown: `32.1s`, `1.5min`, `2.0h`), `Run ID`, `Name`,
    `Source Type`, `Source Name`, `User`, `Status` (only `FINISHED` runs are read; kept as extra, `Run ID`
    identifying the run); then the
    params (settings: `model`, `dataset`, `protocol`, `lr`, ...), the metrics (`test_acc`, `val_acc`, ...) and
    the tags, each unprefixed.
    """
    frame = finished_runs(frame)
    seconds = frame["Duration"].map(duration_seconds) if "Duration" in frame else None
    return _ui_export(frame, MLFLOW_UI_COLUMNS - {"Run ID"}, "Run ID" if "Run ID" in frame else None, seconds)


PRESETS: dict[str, Callable[[pd.DataFrame, str], Tables]] = {
    "long": long, "shift": shift, "transfergraph": transfergraph, "parc": parc, "mlflow": mlflow, "wandb": wandb,
    "mlflow-ui": mlflow_ui, "wandb-ui": wandb_ui,
}
JOBS_ONLY = {"shift", "transfergraph", "parc", "mlflow", "wandb", "mlflow-ui", "wandb-ui"}
