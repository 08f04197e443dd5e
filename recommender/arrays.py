"""Load feature, label and probability arrays from .npy, .npz, .csv and .parquet files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recommender.errors import UserError

SUFFIXES = (".npy", ".npz", ".csv", ".parquet")


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


def _read_csv(path: Path) -> pd.DataFrame:
    """A CSV with or without a header row (a first row that is not all numbers is a header)."""
    frame = pd.read_csv(path, header=None)
    first = pd.to_numeric(frame.iloc[0], errors="coerce") if len(frame) else None
    if first is not None and first.isna().all() and len(frame) > 1:
        frame = pd.read_csv(path)
    return frame


def load_array(spec: str | Path) -> np.ndarray:
    """Read one array from FILE (.npy, .parquet, .csv) or FILE.npz[:KEY]; tables give their values."""
    path, key = _split_key(spec)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if suffix == ".npz":
        return _from_npz(path, key)
    if suffix == ".csv":
        return _from_table(_read_csv(path))
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
