"""Load feature, label and probability arrays from .npy, .npz, .csv and .parquet files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recommender.errors import UserError

SUFFIXES = (".npy", ".npz", ".csv", ".parquet")
HEADER_NAMES = frozenset({"label", "labels", "y", "target", "class"})  # a first cell that names a label column


def _split_key(spec: str | Path) -> tuple[Path, str | None]:
    """Split "file.npz:key" into the path and the key (a plain path has no key)."""
    text = str(spec)
    head, sep, key = text.rpartition(":")
    if sep and head.endswith(".npz") and key:
        return Path(head), key
    return Path(text), None


def _from_npz(path: Path, key: str | None) -> np.ndarray:
    """The one array of an .npz archive, or the one named by key."""
    with np.load(path, allow_pickle=False) as archive:
        names = list(archive.files)
        if key is None:
            if len(names) != 1:
                raise UserError(f"{path} holds arrays {names}: name one as {path}:KEY")
            key = names[0]
        if key not in names:
            raise UserError(f"{path} has no array {key!r} (it holds {names})")
        return archive[key]


def _from_table(frame: pd.DataFrame) -> np.ndarray:
    """A table's values: one column becomes a 1-D array."""
    values = frame.to_numpy()
    return values[:, 0] if values.shape[1] == 1 else values


def _has_header(frame: pd.DataFrame, expect_rows: int | None) -> bool:
    """Whether the first row of a CSV read without a header is its header (see load_array)."""
    if len(frame) < 2 or not pd.to_numeric(frame.iloc[0], errors="coerce").isna().all():
        return False
    if expect_rows is not None:
        return len(frame) - 1 == expect_rows
    rest = frame.iloc[1:]
    numeric = rest.apply(pd.to_numeric, errors="coerce").notna() | rest.isna()  # empty cells are no evidence
    return str(frame.iat[0, 0]).strip().lower() in HEADER_NAMES or bool(numeric.all().all())


def _is_default_header(path: Path) -> bool:
    """Whether the first line is pandas' default header `0,1,...,D-1` (a lone `0` for one column)."""
    first = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False)
    return [cell.strip() for cell in first.iloc[0]] == [str(i) for i in range(first.shape[1])]


def _csv_header(path: Path, frame: pd.DataFrame, header: bool | None, expect_rows: int | None) -> bool:
    """Whether the CSV read as `frame` (no header) starts with a header row; see load_array."""
    if header is not None:
        return header
    if _is_default_header(path):
        if expect_rows is not None:
            return len(frame) != expect_rows  # exactly n rows: the first one is data
        if frame.shape[1] > 1:
            return True
        raise UserError(f"{path}: row 1: the first value 0 may be pandas' default header or a value: "
                        "pass --header or --no-header (header=True / False)")
    return _has_header(frame, expect_rows)


def _read_csv(path: Path, expect_rows: int | None, header: bool | None) -> pd.DataFrame:
    """A CSV with or without a header row; a file pandas cannot parse is one UserError naming it."""
    try:
        frame = pd.read_csv(path, header=None)
        return pd.read_csv(path) if _csv_header(path, frame, header, expect_rows) else frame
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a readable CSV table ({' '.join(str(exc).split())})") from None


def load_array(spec: str | Path, expect_rows: int | None = None, header: bool | None = None) -> np.ndarray:
    """Read one array from FILE (.npy, .parquet, .csv) or FILE.npz[:KEY]; tables give their values.

    A CSV's first row is a header when `header` is True, data when it is False; with header None it is decided:
    - pandas' default header `0,1,...,D-1` (what `DataFrame.to_csv(index=False)` writes) is a header, unless the
      file has exactly `expect_rows` rows; a lone `0` in a one-column file without `expect_rows` could be
      either, and is an error asking for `header`;
    - a row holding no number is a header when the file then has exactly `expect_rows` data rows or, with
      `expect_rows` None, when it starts with a usual column name (label, y, ...) or the rest is numeric: a
      header-less column of string labels keeps its first row.
    """
    path, key = _split_key(spec)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if suffix == ".npz":
        return _from_npz(path, key)
    if suffix == ".csv":
        return _from_table(_read_csv(path, expect_rows, header))
    if suffix == ".parquet":
        return _from_table(pd.read_parquet(path))
    raise UserError(f"{path}: unsupported file type {suffix!r} (use one of {', '.join(SUFFIXES)})")


def as_numeric(values: np.ndarray, name: str) -> np.ndarray:
    """The array as float64 (float32 kept), with a clear error when it holds non-numbers."""
    array = np.asarray(values)
    if array.dtype == np.float32:
        return array
    if array.dtype.kind in "cmMV":  # complex, timestamps, durations, records: no real value to take
        raise UserError(f"{name} must be real numbers, got dtype {array.dtype}")
    try:
        return array.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{name} must be numeric ({exc})") from None
