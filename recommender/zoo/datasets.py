"""Labelled datasets for feature extraction: tables of text or images, image folders, numpy arrays."""

from __future__ import annotations

import hashlib
import io
import re
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from recommender.arrays import npz_array, open_npz, reason
from recommender.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class Dataset:
    """Examples (a list of texts, or uint8 images n x H x W [x 3]) with integer labels and class names."""

    name: str
    modality: str  # "text" or "image"
    items: list | np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.y)

    def fingerprint(self) -> str:
        """A content hash of the examples and labels (the cache key's dataset part)."""
        h = hashlib.sha256(self.modality.encode())
        if self.modality == "text":
            for t in self.items:
                h.update(t.encode("utf-8", "surrogatepass") + b"\0")
        else:
            h.update(np.ascontiguousarray(self.items).tobytes())
            h.update(str(np.shape(self.items)).encode())
        h.update(np.asarray(self.y, dtype=np.int64).tobytes())
        return h.hexdigest()[:20]


def _encode_labels(labels: pd.Series | np.ndarray, name: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Integer codes 0..C-1 for labels, refusing missing values and single-class data."""
    labels = pd.Series(labels)
    if labels.isna().any():
        raise UserError(f"dataset {name}: {int(labels.isna().sum())} labels are missing")
    codes, uniques = pd.factorize(labels.astype(str), sort=True)
    if len(uniques) < 2:
        raise UserError(f"dataset {name}: needs at least 2 classes, found {len(uniques)}")
    return codes.astype(np.int64), tuple(uniques)


def decode_image(data: bytes, where: str) -> np.ndarray:
    """Decode one encoded image (PNG, JPEG, ...) into a uint8 array, grey (H x W) or RGB (H x W x 3); one that
    cannot be decoded is a UserError naming `where` (its file, or its table and row)."""
    from PIL import Image

    try:
        img = Image.open(io.BytesIO(data))
        return np.asarray(img.convert("L" if img.mode in ("L", "1", "I;16") else "RGB"))
    # PIL: UnidentifiedImageError (an OSError) or a truncated file's OSError, a bad chunk's SyntaxError or
    # ValueError, a decompression bomb's error; TypeError: a cell that holds no bytes
    except (OSError, SyntaxError, ValueError, TypeError, EOFError, Image.DecompressionBombError) as exc:
        why = re.sub(r"\s*<_io\.BytesIO object at \w+>", "", reason(exc))  # PIL names its buffer, not the file
        raise UserError(f"{where}: not a readable image ({why})") from None


def _stack_images(images: list[np.ndarray], name: str) -> np.ndarray:
    """Stack images of one size into one array; mixed sizes are an error."""
    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        raise UserError(f"dataset {name}: images have {len(shapes)} different shapes {sorted(shapes)[:3]}; "
                        "resize them first")
    return np.stack(images)


def _drop_repeats(df: pd.DataFrame, columns: list[str], name: str) -> pd.DataFrame:
    """Drop repeated (example, label) rows, with a warning: a repeat adds no information, leaks between
    train and test splits, and makes an exact-fit score such as LogME unbounded where n < D."""
    repeated = df.duplicated(subset=columns)
    if repeated.any():
        warnings.warn(f"dataset {name}: dropped {int(repeated.sum())} repeated (example, label) rows", stacklevel=3)
    return df[~repeated]


def from_table(df: pd.DataFrame, name: str, text_col: str = "text", image_col: str = "image",
               label_col: str = "label") -> Dataset:
    """A dataset from a table with a label column and either a text column or an encoded-image column.

    Rows that repeat both the example and its label are dropped (with a warning)."""
    if label_col not in df.columns:
        raise UserError(f"dataset {name}: no label column {label_col!r} (columns: {', '.join(map(str, df.columns))})")
    content = text_col if text_col in df.columns else image_col
    if content in df.columns:
        df = _drop_repeats(df, [content, label_col], name)
    y, classes = _encode_labels(df[label_col], name)
    if text_col in df.columns:
        text = df[text_col]
        if text.isna().any():
            raise UserError(f"dataset {name}: {int(text.isna().sum())} texts are missing")
        return Dataset(name, "text", text.astype(str).tolist(), y, classes)
    if image_col in df.columns:
        images = [decode_image(b, f"dataset {name}: row {row}: {image_col}")
                  for row, b in enumerate(df[image_col], start=1)]
        return Dataset(name, "image", _stack_images(images, name), y, classes)
    raise UserError(f"dataset {name}: needs a {text_col!r} or {image_col!r} column next to {label_col!r}")


def load_table(path: str | Path, **columns: str) -> Dataset:
    """A dataset from a CSV or Parquet file (see `from_table` for the column names)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such data file: {path}")
    if path.suffix not in (".parquet", ".csv", ".tsv"):
        raise UserError(f"data file {path}: expected .csv, .tsv or .parquet")
    try:
        if path.suffix == ".parquet":
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",")
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError, ImportError) as exc:  # ArrowInvalid is a ValueError
        raise UserError(f"data file {path}: cannot read it as {path.suffix[1:]}: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    return from_table(df, path.stem, **columns)


def load_image_folder(path: str | Path) -> Dataset:
    """A dataset from a folder with one sub-folder of images per class (the sub-folder name is the label)."""
    root = Path(path)
    files = sorted(p for p in root.glob("*/*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"image folder {root}: no images found in its class sub-folders")
    images = [decode_image(p.read_bytes(), str(p)) for p in files]
    y, classes = _encode_labels(np.array([p.parent.name for p in files]), root.name)
    return Dataset(root.name, "image", _stack_images(images, root.name), y, classes)


def load_arrays(path: str | Path) -> Dataset:
    """A dataset from an .npz file holding `X` (n x H x W [x 3] images, or n x D flat grey squares) and `y`."""
    path = Path(path)
    with open_npz(path) as z:  # a damaged archive or an array of pickled objects: one line naming the file
        if "X" not in z.files or "y" not in z.files:
            raise UserError(f"array file {path}: needs arrays named X and y, found {', '.join(z.files)}")
        X, labels = npz_array(z, path, "X"), npz_array(z, path, "y")
    if not (np.issubdtype(X.dtype, np.integer) or np.issubdtype(X.dtype, np.floating)):
        raise UserError(f"array file {path}: X must hold numbers (pixel values), not {X.dtype}")
    if len(X) != len(labels):
        raise UserError(f"array file {path}: X has {len(X)} rows but y has {len(labels)}")
    if X.ndim == 2:  # flat pixel rows, e.g. MNIST's 784 columns: reshape to squares
        side = int(round(np.sqrt(X.shape[1])))
        if side * side != X.shape[1]:
            raise UserError(f"array file {path}: flat rows of {X.shape[1]} values are not square images")
        X = X.reshape(len(X), side, side)
    if not np.isfinite(X).all():
        raise UserError(f"array file {path}: X holds NaN or infinite values")
    if X.dtype != np.uint8:  # floats in [0, 1] or 0..255 integers
        X = np.clip(np.round(X * 255 if X.max() <= 1.0 else X), 0, 255).astype(np.uint8)
    y, classes = _encode_labels(labels, path.stem)
    return Dataset(path.stem, "image", X, y, classes)


def _shipped() -> resources.abc.Traversable:
    """The package-data folder of the shipped datasets (recommender/zoo/data), wherever the package is installed."""
    return resources.files("recommender.zoo") / "data"


def shipped_names() -> list[str]:
    """Names of the shipped datasets (package data, described in its SOURCES.md)."""
    return sorted(f.name.removesuffix(".parquet") for f in _shipped().iterdir() if f.name.endswith(".parquet"))


def load_dataset(spec: str | Path) -> Dataset:
    """A dataset by shipped name (e.g. `bbc_news`), or a path to a table, an .npz file or an image folder."""
    path = Path(spec)
    if str(spec) in shipped_names():
        with (_shipped() / f"{spec}.parquet").open("rb") as file:  # no file-system path needed (e.g. a zipped install)
            return from_table(pd.read_parquet(file), str(spec))
    if path.is_dir():
        return load_image_folder(path)
    if path.suffix == ".npz":
        return load_arrays(path)
    if path.suffix in (".csv", ".tsv", ".parquet"):
        return load_table(path)
    raise UserError(f"unknown dataset {spec!r}: give a shipped name ({', '.join(shipped_names())}) or a file/folder")


def subsample(ds: Dataset, n: int | None, seed: int = 0) -> Dataset:
    """A stratified random subset of n examples (all of them when n is None or >= the size)."""
    if n is None or n >= len(ds):
        return ds
    from sklearn.model_selection import train_test_split

    if n < len(ds.classes):
        raise UserError(f"dataset {ds.name}: {n} examples cannot cover its {len(ds.classes)} classes")
    try:
        idx, _ = train_test_split(np.arange(len(ds)), train_size=n, stratify=ds.y, random_state=seed)
    except ValueError as e:  # e.g. a class of one example cannot be stratified
        raise UserError(f"dataset {ds.name}: cannot draw a stratified subsample of {n} examples: {e}") from None
    idx = np.sort(idx)
    items = [ds.items[i] for i in idx] if ds.modality == "text" else ds.items[idx]
    return Dataset(ds.name, ds.modality, items, ds.y[idx], ds.classes)
