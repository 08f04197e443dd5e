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


def _read_csv(path: Path, expect_rows: int | None) -> pd.DataFrame:
    """A CSV with or without a header row."""
    frame = pd.read_csv(path, header=None)
    return pd.read_csv(path) if _has_header(frame, expect_rows) else frame


def load_array(spec: str | Path, expect_rows: int | None = None) -> np.ndarray:
    """Read one array from FILE (.npy, .parquet, .csv) or FILE.npz[:KEY]; tables give their values.

    A CSV's first row is a header when it holds no number and either the file then has exactly `expect_rows`
    data rows or, with `expect_rows` None, it starts with a usual column name (label, y, ...) or the rest is
    numeric: a header-less column of string labels keeps its first row.
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
        return _from_table(_read_csv(path, expect_rows))
    if suffix == ".parquet":
        return _from_table(pd.read_parquet(path))
    raise UserError(f"{path}: unsupported file type {suffix!r} (use one of {', '.join(SUFFIXES)})")


def as_numeric(values: np.ndarray, name: str) -> np.ndarray:
    """The array as float64 (float32 kept), with a clear error when it holds non-numbers."""
    array = np.asarray(values)
    if array.dtype == np.float32:
        return array
    try:
        return array.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{name} must be numeric ({exc})") from None
