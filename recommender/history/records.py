"""Turn tables in the long format into validated store rows, collecting every problem (never the first only).

Long format, one row per record. Jobs: `model, dataset, protocol, metric, value` (test value), optional
`val_value, seconds, source, seed, run`, `hp.<name>` hyper-parameters, model/dataset feature columns (copied to
the feature tables), anything else kept as `extra`. Scores: `model, dataset, score, value`, optional
`seconds, source, run`. Models / datasets: the id, the features, `source`, the rest extra. An `ingested_at`
column is ignored: the store stamps each row when it writes it.

Missing means an empty cell (CSV), null (JSON Lines, Parquet) or NaN; text such as `NA` or `None` is a name like
any other. In a number column, where no name is possible, the text `NA`, `NaN`, `null` or `None` is missing too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd

from recommender.contracts import DATASET_FACTS, MODEL_FACTS, PROTOCOL_FACTS, SAME_VALUE_RTOL

KINDS = ("jobs", "models", "datasets", "scores", "protocols")
# What identifies a job and a score besides `repeat` (schema.py: how their `key` is made), and the fields a feature
# table holds (besides its id, `source` and `extra`), by kind.
JOB_IDENTITY = ("model", "dataset", "protocol", "metric", "hparams", "seed")
SCORE_IDENTITY = ("source", "model", "dataset", "score", "run")
FEATURES = {"models": MODEL_FACTS, "datasets": DATASET_FACTS, "protocols": PROTOCOL_FACTS}
ID_COLUMN = {"models": "model", "datasets": "dataset", "protocols": "protocol"}
NUMERIC_FEATURES = {"input_size", "params_m", "gmacs", "imagenet_top1", "examples", "classes", "train_fraction",
                    "epochs", "lr_min", "lr_max", "lora_r"}
HP_PREFIX, EXTRA_PREFIX = "hp.", "extra."
ROW = "_row"  # 1-based data row of the input file, carried so problems can name it
MISSING_NUMBER = {"", "na", "nan", "null", "none"}  # text that means "no number" in a number column
BOOLEAN_TEXT = {"true": True, "false": False}  # a CSV's `True`, `true`: the boolean Parquet and JSON Lines hold
JOB_NUMBERS = ["test_value", "val_value", "seconds"]
SCORE_NUMBERS = ["value", "seconds"]
# The values two records of one key must agree on. Timing (`seconds`) is not among them: the same run timed again
# is the same run, and the stored time stands.
JOB_VALUES = ["test_value", "val_value"]
SCORE_VALUES = ["value"]
FILE_COLUMN = {"test_value": "value"}
# Protocol facts that span the jobs of several files (a learning-rate grid): combined, never in conflict.
RANGE_FEATURES = {"lr_min": min, "lr_max": max}  # store column -> the column name a file uses, for messages


# How to supply a required field a file has no column for, added to its problem line.
MISSING_HINTS = {
    "protocol": "add --set protocol=NAME (or --map COLUMN=protocol)",
    "metric": "add --set metric=NAME (or --map COLUMN=metric)",
    "model": "name the model column with --map COLUMN=model",
    "dataset": "name the dataset column with --map COLUMN=dataset",
    "value": "name the test value's column with --map COLUMN=value",
    "score": "add --set score=NAME (or --map COLUMN=score)",
}
SHOWN_RANGES = 8  # row ranges written out in one problem line before the rest are elided


@dataclass
class Batch:
    """Validated rows of one input, per table, plus the problems found (none when the input is clean)."""

    label: str
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    found: list[tuple[int, str, str]] = field(default_factory=list)  # (row, column, reason), in the order found

    def problem(self, row: object, column: str, reason: str) -> None:
        """Record one problem of a data row (1-based) in a column."""
        self.found.append((int(row), column, reason))  # type: ignore[call-overload]

    @property
    def problems(self) -> list[str]:
        """One line per distinct (column, reason), in the order first found: `file: row N: column: reason`, or
        `file: rows 1-3000 (3000 rows): column: reason` where rows share it."""
        rows: dict[tuple[str, str], list[int]] = {}
        for row, column, reason in self.found:
            rows.setdefault((column, reason), []).append(row)
        return [f"{self.label}: {row_span(numbers)}: {column}: {reason}" for (column, reason), numbers in rows.items()]


def row_span(rows: list[int]) -> str:
    """`row 5`, or `rows 1-3, 7 (4 rows)`: runs of consecutive rows as ranges (the first few, then `...`)."""
    rows = sorted(set(rows))
    if len(rows) == 1:
        return f"row {rows[0]}"
    ranges: list[list[int]] = []
    for row in rows:
        if ranges and row == ranges[-1][1] + 1:
            ranges[-1][1] = row
        else:
            ranges.append([row, row])
    written = [str(a) if a == b else f"{a}-{b}" for a, b in ranges[:SHOWN_RANGES]]
    more = ", ..." if len(ranges) > SHOWN_RANGES else ""
    return f"rows {', '.join(written)}{more} ({len(rows)} rows)"


def shown(value: object) -> str:
    """A value in a message: a plain Python repr (0.5, 'vit'), never numpy's (np.float64(0.5)); "nothing" when
    missing."""
    if is_missing(value):
        return "nothing"
    return repr(value.item() if isinstance(value, np.generic) else value)


def now_utc() -> str:
    """The ingest time stamp (ISO 8601, UTC, microseconds, so that two writes in one second keep their order)."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


def is_missing(value: object) -> bool:
    """None, NaN, pd.NA or NaT: a cell with nothing in it."""
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def canonical(value: object) -> object:
    """A JSON-ready value, the same whatever file type it was read from: None for missing, booleans for `true` /
    `false` in any case, numbers for numeric text, ints for integral numbers, a float32 as the decimal it was
    written as."""
    if is_missing(value):
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in BOOLEAN_TEXT:
            return BOOLEAN_TEXT[text.lower()]
        try:
            number = float(text)
        except ValueError:
            return text or None
        if not math.isfinite(number):
            return text
        value = number
    if isinstance(value, np.float32):
        value = float(str(value))  # Parquet's float32 0.1 is the 0.1 a CSV writes, not 0.10000000149011612
    if isinstance(value, (int, float, np.integer, np.floating)):
        number = float(value)
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    return str(value)


def mapped(values: pd.Series, function: Callable[[object], object]) -> list:
    """`function` of each cell, computed once per distinct value of the column (and, in a column of Python objects,
    of its type: True is not 1); a missing cell is given as None."""
    if values.dtype != object:  # one type per column: pandas' factorisation tells the distinct values apart
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        results = np.empty(len(uniques) + 1, dtype=object)
        for i, value in enumerate(uniques.to_numpy() if values.dtype == np.float32 else uniques):  # float32 stays
            results[i] = function(value)
        results[-1] = function(None)  # code -1: missing
        return results[codes].tolist()
    cache: dict[tuple[type, object], object] = {}
    out = []
    for value in values.tolist():
        try:
            key = (type(value), value)
            result = cache[key] if key in cache else cache.setdefault(key, function(value))
        except TypeError:  # an unhashable cell (a list or dict from JSON Lines)
            result = function(value)
        out.append(result)
    return out


def text_cells(values: pd.Series) -> pd.Series:
    """`text_or_none` of each cell (stripped text, None where missing), as a column of objects."""
    return pd.Series(mapped(values, text_or_none), index=values.index, dtype=object)


def real_number(value: object) -> tuple[float, str | None]:
    """A cell as a finite real number: (number, None), (NaN, None) when missing, or (NaN, why it is not one)."""
    if is_missing(value):
        return math.nan, None
    if isinstance(value, (bool, np.bool_)):
        return math.nan, f"not a real number: boolean {shown(value)}"
    if isinstance(value, (complex, np.complexfloating)):
        return math.nan, f"not a real number: complex {shown(value)}"
    if isinstance(value, (dt.date, dt.time, dt.timedelta, np.datetime64, np.timedelta64)):
        return math.nan, f"not a real number: time {str(value)!r}"
    if isinstance(value, str):
        if value.strip().lower() in MISSING_NUMBER:
            return math.nan, None
        try:
            number = float(value)
        except ValueError:
            return math.nan, f"not a number: {shown(value)}"
    elif isinstance(value, (int, float, np.integer, np.floating)):
        number = float(value)
    else:
        return math.nan, f"not a number: {shown(value)}"
    return (number, None) if math.isfinite(number) else (math.nan, f"not finite: {shown(value)}")


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


KEY_JSON = json.JSONEncoder(ensure_ascii=False)  # one encoder for every key (json.dumps would make one per call)


def key_of(*parts: object) -> str:
    """A record's identity as a fixed-length text: the SHA-256 of its identifying values."""
    return hashlib.sha256(KEY_JSON.encode(parts).encode()).hexdigest()


def keys_of(tag: str, rows: pd.DataFrame, columns: list[str]) -> list[str]:
    """`key_of(tag, *row[columns])` of every row, byte for byte, each column's values encoded once."""
    def encoded(value: object) -> str:
        return KEY_JSON.encode(value.item() if isinstance(value, np.generic) else value)

    parts = [mapped(rows[column], encoded) for column in columns]
    head = "[" + KEY_JSON.encode(tag) + ", "
    return [hashlib.sha256((head + ", ".join(row) + "]").encode()).hexdigest() for row in zip(*parts, strict=True)]


def _text_column(frame: pd.DataFrame, column: str, batch: Batch, default: str | None = None) -> pd.Series:
    """A required text column, stripped; a missing cell is a problem unless a default fills it."""
    values = _optional_text(frame, column)
    if default is not None:
        values = values.fillna(default)
    for row in frame.loc[values.isna(), ROW]:
        batch.problem(row, column, missing(frame, column))
    return values


def missing(frame: pd.DataFrame, column: str) -> str:
    """The reason for a missing required cell; where the file has no such column, how to supply one."""
    hint = MISSING_HINTS.get(column) if column not in frame else None
    return f"missing {column}" + (f"; {hint}" if hint else "")


def _optional_text(frame: pd.DataFrame, column: str) -> pd.Series:
    """A text column, stripped, None where missing or absent."""
    if column not in frame:
        return pd.Series([None] * len(frame), index=frame.index, dtype=object)
    return text_cells(frame[column])


def _number_column(frame: pd.DataFrame, column: str, batch: Batch, required: bool) -> pd.Series:
    """A numeric column of finite real numbers; anything else is a problem; blanks allowed unless required."""
    if column not in frame:
        raw = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    else:
        raw = frame[column]
    if pd.api.types.is_float_dtype(raw) or (pd.api.types.is_integer_dtype(raw) and not
                                            pd.api.types.is_bool_dtype(raw)):
        numbers = raw.astype(float)  # a typed column (Parquet, JSON Lines): only infinities can be wrong
        reasons = pd.Series([f"not finite: {shown(v)}" if math.isinf(n) else None
                             for v, n in zip(raw, numbers, strict=True)],
                            index=frame.index, dtype=object)
        numbers = numbers.where(np.isfinite(numbers))
    else:
        numbers, reasons = _parsed_numbers(raw)
    if required:
        reasons = reasons.where(reasons.notna() | numbers.notna(), missing(frame, column))
    wrong = reasons.notna()
    if wrong.any():  # (most columns have no problem: the look-up is skipped)
        for row, reason in zip(frame.loc[wrong, ROW], reasons[wrong], strict=True):
            batch.problem(row, column, reason)
    return numbers


def _parsed_numbers(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    """`real_number` of each cell of a column that is not typed as numbers: (numbers, reasons)."""
    if pd.api.types.is_string_dtype(raw) and raw.dtype != object:
        present = raw.notna().to_numpy()
        try:  # text that is all numbers or blank (a CSV's values): parsed as `float` parses it, in one pass
            parsed = raw.to_numpy(object)[present].astype(float)
        except ValueError:
            pass
        else:
            if np.isfinite(parsed).all():
                numbers = np.full(len(raw), np.nan)
                numbers[present] = parsed
                return pd.Series(numbers, index=raw.index), pd.Series(None, index=raw.index, dtype=object)
    checked = mapped(raw, real_number)
    return (pd.Series([n for n, _ in checked], index=raw.index, dtype=float),
            pd.Series([r for _, r in checked], index=raw.index, dtype=object))


def _json_column(frame: pd.DataFrame, columns: list[str], prefix: str, batch: Batch) -> pd.Series:
    """One canonical JSON text per row from the given columns (their `prefix` stripped); complex cells refused.

    The text is `to_json` of the row's mapping (sorted keys, missing values dropped; of two columns with one name
    the last counts), built from one `"name":value` piece per distinct value of each column."""
    for column in columns:
        if pd.api.types.is_complex_dtype(frame[column]) or frame[column].dtype == object:
            for row, value in zip(frame[ROW], frame[column], strict=True):
                if isinstance(value, (complex, np.complexfloating)):
                    batch.problem(row, column, f"complex numbers are not supported: {shown(value)}")
    names = {(c[len(prefix):] if c.startswith(prefix) else c): c for c in columns}  # the last column of a name
    pieces = []
    for name in sorted(names):
        pieces.append(mapped(frame[names[name]], partial(_json_piece, json.dumps(name) + ":")))
    rows = zip(*pieces, strict=True) if pieces else ([] for _ in range(len(frame)))
    return pd.Series(["{" + ",".join(p for p in row if p) + "}" for row in rows], index=frame.index, dtype=object)


def _json_piece(label: str, value: object) -> str | None:
    """`"name":value` in canonical JSON (as `to_json` writes it), None where the value is missing."""
    value = canonical(value)
    return None if value is None else label + json.dumps(value)


def _number_repeats(rows: pd.DataFrame, group: list[str], order: list[str]) -> pd.Series:
    """Each row's repeat: 0, 1, ... among the rows with the same `group` values and no run id, numbered in the
    order of their values, so that neither the order of rows nor of files changes a record's identity."""
    repeat = pd.Series(0, index=rows.index, dtype=int)
    unnamed = rows[rows["run"].isna()].sort_values(order, kind="stable", na_position="last")
    repeat[unnamed.index] = unnamed.groupby(group, dropna=False, sort=False).cumcount()
    return repeat


def _duplicates(rows: pd.DataFrame, compared: list[str], batch: Batch) -> pd.DataFrame:
    """Rows with a repeated key dropped; a repeat with other values is a problem (equal ones are harmless)."""
    repeated = rows[rows.duplicated("key", keep=False)]
    for _, group in repeated.groupby("key", sort=False):
        first = group.iloc[0]
        for _, other in group.iloc[1:].iterrows():
            if any(not same_value(first[c], other[c]) for c in compared):
                batch.problem(other[ROW], "key", f"duplicate key with a different value (also row {first[ROW]})")
    return rows.drop(index=repeated.index[repeated.duplicated("key")])


def same_value(a: object, b: object) -> bool:
    """Equal as stored: missing equals missing, numbers within SAME_VALUE_RTOL (text formats round), text exactly."""
    if is_missing(a) or is_missing(b):
        return is_missing(a) and is_missing(b)
    if isinstance(a, (int, float, np.integer, np.floating)) and isinstance(b, (int, float, np.integer, np.floating)):
        return math.isclose(float(a), float(b), rel_tol=SAME_VALUE_RTOL, abs_tol=0.0)
    return a == b


def check_text(rows: pd.DataFrame, table: str, batch: Batch) -> None:
    """Text longer than its column allows is a problem: the same limit on SQLite (which would store it) and
    PostgreSQL (which would refuse it without naming the row)."""
    from recommender.history import schema  # SQLAlchemy: loaded where rows are checked for writing

    for column in schema.metadata.tables[table].columns:
        limit = getattr(column.type, "length", None)
        if limit is None or column.name not in rows or column.name == "key":
            continue
        lengths = _lengths(rows[column.name])
        if not (lengths > limit).any():
            continue
        for row, length in zip(rows.loc[lengths > limit, ROW], lengths[lengths > limit], strict=True):
            batch.problem(row, column.name, f"{length} characters, more than the {limit} allowed")


def _lengths(values: pd.Series) -> pd.Series:
    """The length of each text cell (0 for anything else)."""
    if values.isna().all():
        return pd.Series(0, index=values.index)
    try:
        return values.str.len().fillna(0).astype(int)  # text and missing cells only: pandas counts in one pass
    except AttributeError:  # cells of other types
        return pd.Series(mapped(values, lambda v: len(v) if isinstance(v, str) else 0), index=values.index)


def check_cells(frame: pd.DataFrame, batch: Batch) -> None:
    """A NUL character in any text cell is a problem (PostgreSQL cannot store it, so neither store takes it)."""
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_datetime64_any_dtype(values):
            continue
        if pd.api.types.is_string_dtype(values) and values.dtype != object:
            nul = values.str.contains("\x00", regex=False, na=False)
        else:
            nul = pd.Series(mapped(values, lambda v: isinstance(v, str) and "\x00" in v), index=frame.index)
        if nul.any():
            for row in frame.loc[nul.astype(bool), ROW]:
                batch.problem(row, str(column), "contains a NUL character")


def feature_rows(frame: pd.DataFrame, kind: str, batch: Batch, source: str) -> pd.DataFrame:
    """Validated rows of a feature table (models or datasets); the id column is required."""
    id_col, fields = ID_COLUMN[kind], FEATURES[kind]
    ids = _text_column(frame, id_col, batch)
    out = pd.DataFrame({ROW: frame[ROW], id_col: ids}, index=frame.index)
    for name in fields:
        if name in NUMERIC_FEATURES:
            out[name] = _number_column(frame, name, batch, required=False)
        else:
            out[name] = _optional_text(frame, name)
    out["source"] = _text_column(frame, "source", batch, default=source)
    skip = {id_col, "source", ROW, "ingested_at", *fields}
    out["extra"] = _json_column(frame, [c for c in frame.columns if c not in skip], EXTRA_PREFIX, batch)
    check_text(out, kind, batch)
    if kind == "protocols":
        check_protocol_facts(out, batch)
    return out.dropna(subset=[id_col])


# What a protocol fact can be: (test, the rule in words) for each numeric fact.
PROTOCOL_RULES: dict[str, tuple[Callable[[float], bool], str]] = {
    "examples": (lambda n: n >= 1, "at least 1"),
    "train_fraction": (lambda n: 0 < n <= 1, "a fraction in (0, 1]"),
    "epochs": (lambda n: n > 0, "more than 0"),
    "lr_min": (lambda n: n > 0, "more than 0"),
    "lr_max": (lambda n: n > 0, "more than 0"),
    "lora_r": (lambda n: n >= 1 and float(n).is_integer(), "a whole number of at least 1"),
}


def check_protocol_facts(rows: pd.DataFrame, batch: Batch) -> None:
    """A protocol fact that cannot describe a fine-tuning run (negative epochs, no examples, a fraction over 1, a
    learning-rate range whose minimum exceeds its maximum) is a problem."""
    for name, (valid, rule) in PROTOCOL_RULES.items():
        if name not in rows:
            continue
        present = rows[name].notna()
        for row, value in zip(rows.loc[present, ROW], rows.loc[present, name], strict=True):
            if not valid(value):
                batch.problem(row, name, f"must be {rule}, not {shown(canonical(value))}")
    if {"lr_min", "lr_max"} <= set(rows.columns):
        inverted = rows["lr_min"] > rows["lr_max"]
        for row, low, high in zip(rows.loc[inverted, ROW], rows.loc[inverted, "lr_min"],
                                  rows.loc[inverted, "lr_max"], strict=True):
            batch.problem(row, "lr_min", f"{shown(canonical(low))} is more than lr_max {shown(canonical(high))}")


def job_rows(frame: pd.DataFrame, batch: Batch, source: str) -> pd.DataFrame:
    """Validated job rows in store form (one per input row; problems are added to the batch)."""
    out = pd.DataFrame({ROW: frame[ROW]}, index=frame.index)
    for name in ("model", "dataset", "metric", "protocol"):
        out[name] = _text_column(frame, name, batch)
    out["source"] = _text_column(frame, "source", batch, default=source)
    out["test_value"] = _number_column(frame, "value", batch, required=True)
    out["val_value"] = _number_column(frame, "val_value", batch, required=False)
    out["seconds"] = _number_column(frame, "seconds", batch, required=False)
    for row in frame.loc[out["seconds"] < 0, ROW]:
        batch.problem(row, "seconds", "negative duration")
    hp = [c for c in frame.columns if c.startswith(HP_PREFIX)]
    out["hparams"] = _json_column(frame, hp, HP_PREFIX, batch)
    out["seed"], out["run"] = _optional_text(frame, "seed"), _optional_text(frame, "run")
    known = {"model", "dataset", "metric", "protocol", "source", "value", "val_value", "seconds", "seed", "run",
             "ingested_at", "history", ROW, *hp, *MODEL_FACTS, *DATASET_FACTS}
    out["extra"] = _json_column(frame, [c for c in frame.columns if c not in known], EXTRA_PREFIX, batch)
    check_text(out, "jobs", batch)
    valid = out.dropna(subset=["model", "dataset", "metric", "protocol", "source"])
    valid = valid.assign(repeat=_number_repeats(valid, list(JOB_IDENTITY), [*JOB_NUMBERS, "extra"]))
    # A run id names one run wherever it is read from; without one, the run is what it ran and measured.
    by_run = valid["run"].map(lambda run: isinstance(run, str)).astype(bool)
    keys = pd.Series(keys_of("job", valid, [*JOB_IDENTITY, "repeat"]), index=valid.index, dtype=object)
    valid = valid.assign(key=keys.where(~by_run, pd.Series(keys_of("run", valid[by_run], ["run", "metric"]),
                                                           index=valid.index[by_run], dtype=object)))
    return _duplicates(valid, [*JOB_IDENTITY, *JOB_VALUES, "extra"], batch)


def score_rows(frame: pd.DataFrame, batch: Batch, source: str) -> pd.DataFrame:
    """Validated score rows in store form."""
    out = pd.DataFrame({ROW: frame[ROW]}, index=frame.index)
    for name in ("model", "dataset", "score"):
        out[name] = _text_column(frame, name, batch)
    out["source"] = _text_column(frame, "source", batch, default=source)
    out["value"] = _number_column(frame, "value", batch, required=True)
    out["seconds"] = _number_column(frame, "seconds", batch, required=False)
    out["run"] = _optional_text(frame, "run")
    check_text(out, "scores", batch)
    valid = out.dropna(subset=["model", "dataset", "score", "source"])
    valid = valid.assign(repeat=_number_repeats(valid, list(SCORE_IDENTITY), SCORE_NUMBERS))
    valid = valid.assign(key=keys_of("score", valid, [*SCORE_IDENTITY, "repeat"]))
    return _duplicates(valid, SCORE_VALUES, batch)


def protocol_dataset_rows(frame: pd.DataFrame, batch: Batch, source: str) -> pd.DataFrame:
    """Validated (protocol, dataset, examples) rows: a protocol's training examples on one dataset."""
    out = pd.DataFrame({ROW: frame[ROW]}, index=frame.index)
    for name in ("protocol", "dataset"):
        out[name] = _text_column(frame, name, batch)
    out["examples"] = _number_column(frame, "examples", batch, required=True)
    check_protocol_facts(out, batch)
    out["source"] = _text_column(frame, "source", batch, default=source)
    check_text(out, "protocol_datasets", batch)
    out = out.dropna(subset=["protocol", "dataset"])
    # pandas-stubs reject a list of tuples as a column; pandas stores one tuple per row
    keys = list(zip(out["protocol"], out["dataset"], strict=True))
    return _duplicates(out.assign(key=keys), ["examples"], batch)  # type: ignore[arg-type]


def alias_rows(frame: pd.DataFrame, batch: Batch, source: str) -> pd.DataFrame:
    """Validated (alias, dataset, source) rows; an alias naming itself or defined twice differently is a problem."""
    out = pd.DataFrame({ROW: frame[ROW]}, index=frame.index)
    for name in ("alias", "dataset"):
        out[name] = _text_column(frame, name, batch)
    out["source"] = _text_column(frame, "source", batch, default=source)
    for row in out.loc[out["alias"] == out["dataset"], ROW]:
        batch.problem(row, "alias", "an alias must differ from its dataset")
    check_text(out, "dataset_aliases", batch)
    out = out.dropna(subset=["alias", "dataset"])
    targets = set(out.loc[out["alias"] != out["dataset"], "dataset"])
    for row, alias in zip(out[ROW], out["alias"], strict=True):
        if alias in targets:
            batch.problem(row, "alias", f"{alias!r} is also the dataset of another alias (aliases name a dataset "
                                        "directly, never another alias)")
    return _duplicates(out.assign(key=out["alias"]), ["dataset"], batch)


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
            def conflict(name: str, old: object, new: object, other: pd.Series = other, ident: object = ident,
                         first: pd.Series = first) -> None:
                batch.problem(other[ROW], name,
                              f"{kind[:-1]} {ident!r} has {shown(old)} (row {first[ROW]}), not {shown(new)}")

            first = combine_features(first, other, kind, conflict)
        merged.append(first.to_frame().T)
    return pd.concat(merged).sort_values(ROW)


Conflict = Callable[[str, object, object], None]


def combine_features(base: pd.Series, other: pd.Series, kind: str, conflict: Conflict,
                     replace: bool = False) -> pd.Series:
    """base with its missing features (and extra features) filled from other. Where both hold different values,
    `conflict(name, base value, other value)` is called and base's value kept, or with `replace` other's taken."""
    combined = base.copy()
    for name in FEATURES[kind]:
        if is_missing(other[name]) or same_value(base[name], other[name]):
            continue
        if name in RANGE_FEATURES and not is_missing(base[name]):
            combined[name] = RANGE_FEATURES[name](base[name], other[name])  # a range widens, never conflicts
            continue
        if replace or is_missing(base[name]):
            combined[name] = other[name]
        else:
            conflict(name, base[name], other[name])
    combined["extra"] = combine_extra(base["extra"], other["extra"], conflict, replace)
    return combined


def combine_extra(old: str, new: str, conflict: Conflict, replace: bool = False) -> str:
    """Extra features (JSON) of one record: keys from both; a key both hold with different values calls
    `conflict("extra.<key>", old value, new value)` and keeps the old value, or with `replace` takes the new."""
    old_values, new_values = json.loads(old), json.loads(new)
    merged = {**new_values, **old_values} if not replace else {**old_values, **new_values}
    for name in sorted(set(old_values) & set(new_values)):
        if not replace and not same_value(old_values[name], new_values[name]):
            conflict(EXTRA_PREFIX + name, old_values[name], new_values[name])
    return json.dumps(merged, sort_keys=True, separators=(",", ":"))
