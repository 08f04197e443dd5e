"""Turn tables in the long format into validated store rows, collecting every problem (never the first only).

Long format, one row per record. Jobs: `model, dataset, protocol, metric, value` (test value), optional
`val_value, seconds, source, run, ingested_at`, `hp.<name>` hyper-parameters, model/dataset feature columns
(copied to the feature tables), anything else kept as `extra`. Scores: `model, dataset, score, value`,
optional `seconds, source, run, ingested_at`. Models / datasets: the id, the features, `source`, the rest extra.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from recommender.history.schema import DATASET_FEATURES, FEATURES, ID_COLUMN, JOB_KEY, MODEL_FEATURES, SCORE_KEY

KINDS = ("jobs", "models", "datasets", "scores")
NUMERIC_FEATURES = {"input_size", "params_m", "gmacs", "imagenet_top1", "examples", "classes"}
HP_PREFIX, EXTRA_PREFIX = "hp.", "extra."
ROW = "_row"  # 1-based data row of the input file, carried so problems can name it


@dataclass
class Batch:
    """Validated rows of one input, per table, plus the problems found (empty when the input is clean)."""

    label: str
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def problem(self, row: object, column: str, reason: str) -> None:
        """Record one problem as `file: row N: column: reason`."""
        self.problems.append(f"{self.label}: row {row}: {column}: {reason}")


def now_utc() -> str:
    """The ingest time stamp (ISO 8601, UTC, seconds)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def canonical(value: object) -> object:
    """A JSON-ready value: None for missing, numbers for numeric text, ints for integral numbers."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            return text or None
        if not math.isfinite(number):
            return text
        value = number
    if isinstance(value, (int, float, np.integer, np.floating)):
        number = float(value)
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    return str(value)


def text_or_none(value: object) -> str | None:
    """A cell as stripped text (text kept as written, numbers in canonical form), None when missing or blank."""
    if isinstance(value, str):
        return value.strip() or None
    value = canonical(value)
    return None if value is None else str(value)


def to_json(values: dict) -> str:
    """Canonical JSON of a mapping: sorted keys, missing values dropped, so equal settings give equal text."""
    kept = {k: v for k, v in ((k, canonical(v)) for k, v in values.items()) if v is not None}
    return json.dumps(kept, sort_keys=True, separators=(",", ":"))


def _text_column(frame: pd.DataFrame, column: str, batch: Batch, default: str | None = None) -> pd.Series:
    """A required text column, stripped; a missing cell is a problem unless a default fills it."""
    if column in frame:
        values = frame[column].map(text_or_none).astype(object)
    else:
        values = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    if default is not None:
        values = values.fillna(default)
    for row in frame.loc[values.isna(), ROW]:
        batch.problem(row, column, f"missing {column}")
    return values


def _number_column(frame: pd.DataFrame, column: str, batch: Batch, required: bool) -> pd.Series:
    """A numeric column: text that is not a number, and NaN/inf, are problems; blanks allowed unless required."""
    raw = frame[column] if column in frame else pd.Series([None] * len(frame), index=frame.index, dtype=object)
    blank = raw.map(lambda v: canonical(v) is None).astype(bool)
    numbers = pd.to_numeric(raw.where(~blank), errors="coerce").astype(float)
    bad = (blank & required) | (~blank & ~np.isfinite(numbers))
    for row, value, is_blank, number in zip(frame.loc[bad, ROW], raw[bad], blank[bad], numbers[bad]):
        if is_blank:
            batch.problem(row, column, f"missing {column}")
        elif math.isnan(number):
            batch.problem(row, column, f"not a number: {value!r}")
        else:
            batch.problem(row, column, f"not finite: {value!r}")
    return numbers


def _json_column(frame: pd.DataFrame, columns: list[str], prefix: str) -> pd.Series:
    """One canonical JSON text per row from the given columns (their `prefix` stripped)."""
    names = [c[len(prefix):] if c.startswith(prefix) else c for c in columns]
    records = frame[columns].to_dict("records") if columns else [{}] * len(frame)
    return pd.Series([to_json(dict(zip(names, r.values()))) for r in records], index=frame.index, dtype=object)


def _run_column(frame: pd.DataFrame, rows: pd.DataFrame, key: tuple[str, ...]) -> pd.Series:
    """The `run` of each row: as given, else the ordinal of the row among repeats of the same settings."""
    given = frame["run"].map(text_or_none).astype(object) if "run" in frame else None
    ordinal = rows.groupby(list(key), sort=False).cumcount().astype(str)
    return ordinal if given is None else given.fillna(ordinal)


def _duplicates(rows: pd.DataFrame, key: tuple[str, ...], values: list[str], batch: Batch) -> pd.DataFrame:
    """Rows with repeats of a key dropped; a repeat with different values is a problem (equal ones are harmless)."""
    repeated = rows[rows.duplicated(list(key), keep=False)]
    for _, group in repeated.groupby(list(key), sort=False):
        first = group.iloc[0]
        for _, other in group.iloc[1:].iterrows():
            if not same_values(first[values], other[values]):
                batch.problem(other[ROW], "key", f"duplicate key with a different value (also row {first[ROW]})")
    return rows.drop(index=repeated.index[repeated.duplicated(list(key))])


def same_values(a: pd.Series, b: pd.Series) -> bool:
    """Equal as stored numbers: NaN equals NaN, and floats agree to 1e-9 relative (text formats round)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return bool(np.all(np.isclose(x, y, rtol=1e-9, atol=0.0, equal_nan=True)))


def feature_rows(frame: pd.DataFrame, kind: str, batch: Batch, source: str) -> pd.DataFrame:
    """Validated rows of a feature table (models or datasets); the id column is required."""
    id_col, fields = ID_COLUMN[kind], FEATURES[kind]
    ids = _text_column(frame, id_col, batch)
    out = pd.DataFrame({ROW: frame[ROW], id_col: ids}, index=frame.index)
    for name in fields:
        if name in NUMERIC_FEATURES:
            out[name] = _number_column(frame, name, batch, required=False)
        else:
            out[name] = frame[name].map(text_or_none).astype(object) if name in frame else None
    out["source"] = _text_column(frame, "source", batch, default=source)
    skip = {id_col, "source", ROW, *fields}
    out["extra"] = _json_column(frame, [c for c in frame.columns if c not in skip], EXTRA_PREFIX)
    return out.dropna(subset=[id_col])


def job_rows(frame: pd.DataFrame, batch: Batch, source: str) -> pd.DataFrame:
    """Validated job rows in store form (one per input row; problems are added to the batch)."""
    out = pd.DataFrame({ROW: frame[ROW]}, index=frame.index)
    for name in ("model", "dataset", "metric"):
        out[name] = _text_column(frame, name, batch)
    out["protocol"] = _text_column(frame, "protocol", batch)
    out["source"] = _text_column(frame, "source", batch, default=source)
    out["test_value"] = _number_column(frame, "value", batch, required=True)
    out["val_value"] = _number_column(frame, "val_value", batch, required=False)
    out["seconds"] = _number_column(frame, "seconds", batch, required=False)
    for row in frame.loc[out["seconds"] < 0, ROW]:
        batch.problem(row, "seconds", "negative duration")
    hp = [c for c in frame.columns if c.startswith(HP_PREFIX)]
    out["hparams"] = _json_column(frame, hp, HP_PREFIX)
    known = {"model", "dataset", "metric", "protocol", "source", "value", "val_value", "seconds", "run",
             "ingested_at", ROW, *hp, *MODEL_FEATURES, *DATASET_FEATURES}
    out["extra"] = _json_column(frame, [c for c in frame.columns if c not in known], EXTRA_PREFIX)
    out["ingested_at"] = frame["ingested_at"].fillna(now_utc()) if "ingested_at" in frame else now_utc()
    valid = out.dropna(subset=["model", "dataset", "metric", "protocol", "source"])
    valid = valid.assign(run=_run_column(frame.loc[valid.index], valid, JOB_KEY[:-1]))
    return _duplicates(valid, JOB_KEY, ["test_value", "val_value", "seconds"], batch)


def score_rows(frame: pd.DataFrame, batch: Batch, source: str) -> pd.DataFrame:
    """Validated score rows in store form."""
    out = pd.DataFrame({ROW: frame[ROW]}, index=frame.index)
    for name in ("model", "dataset", "score"):
        out[name] = _text_column(frame, name, batch)
    out["source"] = _text_column(frame, "source", batch, default=source)
    out["value"] = _number_column(frame, "value", batch, required=True)
    out["seconds"] = _number_column(frame, "seconds", batch, required=False)
    out["ingested_at"] = frame["ingested_at"].fillna(now_utc()) if "ingested_at" in frame else now_utc()
    valid = out.dropna(subset=["model", "dataset", "score", "source"])
    valid = valid.assign(run=_run_column(frame.loc[valid.index], valid, SCORE_KEY[:-1]))
    return _duplicates(valid, SCORE_KEY, ["value", "seconds"], batch)


def merge_features(rows: pd.DataFrame, kind: str, batch: Batch) -> pd.DataFrame:
    """One row per id: values of repeated ids are combined; two different non-missing values are a problem."""
    id_col = ID_COLUMN[kind]
    # Jobs files repeat each id's features on every row: identical repeats need no comparison.
    rows = rows.drop_duplicates(subset=[id_col, *FEATURES[kind], "extra"])
    repeated = rows[id_col].duplicated(keep=False)
    merged = [rows[~repeated]]
    for ident, group in rows[repeated].groupby(id_col, sort=False):
        first = group.iloc[0]
        for _, other in group.iloc[1:].iterrows():
            first = combine_features(first, other, kind, lambda name: batch.problem(
                other[ROW], name, f"{kind[:-1]} {ident!r} has {first[name]!r} (row {first[ROW]}), not {other[name]!r}"))
        merged.append(first.to_frame().T)
    return pd.concat(merged).sort_values(ROW)


def combine_features(base: pd.Series, other: pd.Series, kind: str, conflict: Callable[[str], None]) -> pd.Series:
    """base with its missing features filled from other and extras merged; `conflict(name)` for each feature
    where both hold different values (base's value is kept)."""
    combined = base.copy()
    for name in FEATURES[kind]:
        if feature_conflict(base[name], other[name]):
            conflict(name)
        elif pd.isna(base[name]):
            combined[name] = other[name]
    combined["extra"] = merge_extra(base["extra"], other["extra"])
    return combined


def feature_conflict(a: object, b: object) -> bool:
    """Two feature values disagree (both present and different)."""
    if pd.isna(a) or pd.isna(b):
        return False
    if isinstance(a, str) or isinstance(b, str):
        return str(a) != str(b)
    return not math.isclose(float(a), float(b), rel_tol=1e-9)


def merge_extra(old: str, new: str) -> str:
    """Extra features of one id: keys from both, the older value kept where both have one."""
    return json.dumps({**json.loads(new), **json.loads(old)}, sort_keys=True, separators=(",", ":"))
