"""Load feature, label and probability arrays from .npy, .npz, .csv and .parquet files.

One loader per file kind (`load_npy`, `open_npz` with `npz_array`, `read_parquet`, the CSV reader): each turns
whatever the library raises on a bad file into one UserError naming the file, and an array's .npy header is read
and checked (no pickled objects, as many bytes as it declares) before its data are allocated.
"""

from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from recommender.errors import UserError

SUFFIXES = (".npy", ".npz", ".csv", ".parquet")
HEADER_NAMES = frozenset({"label", "labels", "y", "target", "class"})  # a first cell that names a label column


# what numpy, pandas, pyarrow and zipfile raise on a file they cannot parse
PARSE_ERRORS = (ValueError, TypeError, KeyError, IndexError, OSError, EOFError, NotImplementedError, RecursionError,
                zipfile.BadZipFile)


def reason(exc: BaseException) -> str:
    """An exception's message on one short line (its type when it has none)."""
    text = " ".join(str(exc).split())
    return text[:300] or type(exc).__name__


@contextmanager
def reading(path: str | Path, what: str) -> Iterator[None]:
    """Turn every error a library raises while parsing `path` into one UserError naming the file."""
    try:
        yield
    except UserError:
        raise
    except MemoryError:
        raise UserError(f"{path}: too large to read as {what}") from None
    except Exception as exc:  # pyarrow's errors derive from its own ArrowException, not only the builtins
        if not isinstance(exc, PARSE_ERRORS) and not type(exc).__module__.startswith("pyarrow"):
            raise
        raise UserError(f"{path}: not a readable {what} ({reason(exc)})") from None


def npy_header(fh: IO[bytes], where: str) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype an .npy stream declares, read without its data (the stream is left at the data).

    Refused in one line naming `where`: no .npy header, and an array of Python objects (a pickle, never loaded)."""
    from numpy.lib import format as npy

    try:
        version = npy.read_magic(fh)
        read = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}.get(version)
        if read is None:
            raise ValueError(f"unsupported .npy format version {version}")
        shape, _fortran, dtype = read(fh)
    except (ValueError, TypeError, SyntaxError, EOFError, OSError) as exc:
        raise UserError(f"{where}: not an .npy array ({reason(exc)})") from None
    if dtype.hasobject:
        raise UserError(f"{where}: holds Python objects (dtype {dtype}), which are never loaded because loading "
                        "them can run code; save numbers or text")
    return tuple(shape), dtype


def _check_declared(where: str, shape: tuple[int, ...], dtype: np.dtype, available: int) -> None:
    """Refuse an .npy header that declares more bytes than follow it (before they are allocated)."""
    declared = math.prod(shape) * dtype.itemsize
    if declared > available:
        raise UserError(f"{where}: truncated: its header declares {dtype}{list(shape)} ({declared} bytes) but "
                        f"{available} bytes follow")


def load_npy(path: Path) -> np.ndarray:
    """The array of an .npy file; its header is checked before the data are read."""
    with reading(path, ".npy array"), open(path, "rb") as fh:
        shape, dtype = npy_header(fh, str(path))
        _check_declared(str(path), shape, dtype, os.fstat(fh.fileno()).st_size - fh.tell())
        fh.seek(0)
        return np.load(fh, allow_pickle=False)


@contextmanager
def open_npz(path: Path) -> Iterator[np.lib.npyio.NpzFile]:
    """An .npz archive opened for `npz_array`; anything but a zip archive is refused in one line."""
    with reading(path, ".npz archive"):
        with open(path, "rb") as fh:
            if fh.read(4) != b"PK\x03\x04":
                raise UserError(f"{path}: not an .npz archive")
        archive = np.load(path, allow_pickle=False)
    with archive:
        yield archive


def npz_array(archive: np.lib.npyio.NpzFile, path: Path, name: str,
              expect: tuple[tuple[int, ...], str] | None = None) -> np.ndarray:
    """The array `name` of an archive from `open_npz`: its header is read first and checked (no objects, the
    `expect`ed shape and dtype, no more bytes than the member holds), so nothing is allocated for a bad one."""
    where = f"{path}: array {name}"
    members = archive.zip
    assert members is not None, "npz_array needs an open archive"
    with reading(path, ".npz archive"):
        info = members.getinfo(f"{name}.npy")
        with members.open(info) as fh:
            shape, dtype = npy_header(fh, where)
            available = info.file_size - fh.tell()
        if expect is not None and (shape, dtype) != (tuple(expect[0]), np.dtype(expect[1])):
            raise UserError(f"{where} is {dtype}{list(shape)}, expected {np.dtype(expect[1])}{list(expect[0])}")
        _check_declared(where, shape, dtype, available)
        return archive[name]


def read_parquet(path: Path) -> pd.DataFrame:
    """A Parquet file as a DataFrame."""
    with reading(path, "Parquet file"):
        return pd.read_parquet(path)


def _split_key(spec: str | Path) -> tuple[Path, str | None]:
    """Split "file.npz:key" into the path and the key (a plain path has no key)."""
    text = str(spec)
    head, sep, key = text.rpartition(":")
    if sep and head.endswith(".npz") and key:
        return Path(head), key
    return Path(text), None


def _from_npz(path: Path, key: str | None) -> np.ndarray:
    """The one array of an .npz archive, or the one named by key."""
    with open_npz(path) as archive:
        names = list(archive.files)
        if key is None:
            if len(names) != 1:
                raise UserError(f"{path} holds arrays {names}: name one as {path}:KEY")
            key = names[0]
        if key not in names:
            raise UserError(f"{path} has no array {key!r} (it holds {names})")
        return npz_array(archive, path, key)


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
        return load_npy(path)
    if suffix == ".npz":
        return _from_npz(path, key)
    if suffix == ".csv":
        return _from_table(_read_csv(path, expect_rows, header))
    if suffix == ".parquet":
        return _from_table(read_parquet(path))
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
