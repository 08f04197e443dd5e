"""The folder a recommender is saved in: JSON metadata and an .npz of plain arrays, never a pickle.

``recommender.json`` holds the kind, the hyper-parameters, the encoder's vocabularies and statistics, what the
recommender was trained on and the SHA-256 of ``weights.npz``; the arrays are read with ``allow_pickle=False``.
Everything is checked before use, so a shared folder can hold wrong numbers at worst, never code.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from recommender.arrays import npz_array
from recommender.errors import UserError
from recommender.files import file_sha256, write_atomic

FORMAT = "recommender-state"
FORMAT_VERSION = 1
META_FILE = "recommender.json"
WEIGHTS_FILE = "weights.npz"
LEGACY_FILE = "estimator.joblib"  # the pickle of versions before FORMAT_VERSION 1: refused, never opened
MAX_META_BYTES = 64 << 20  # vocabularies of a few thousand models take well under 1 MiB
NPY_HEADER_BYTES = 4096  # room for an .npy header beside the array's own bytes
ZIP_ENTRY_BYTES = 1024  # room for a zip entry's headers (np.savez stores arrays uncompressed)
MAX_WEIGHT_BYTES = 1 << 30  # a recommender over a few thousand models and datasets needs a few MiB
ArraySpec = Mapping[str, tuple[tuple[int, ...], str]]  # name -> (shape, dtype)


def write_saved(folder: Path, meta: dict[str, object], arrays: Mapping[str, np.ndarray]) -> Path:
    """Write the weights, then the metadata naming their checksum; each file whole or not at all.

    The metadata comes last and pins the weights' SHA-256, so a folder caught between two saves is refused on
    load instead of pairing new weights with old metadata. A pickle left by an older version is removed.
    """
    folder.mkdir(parents=True, exist_ok=True)
    digest: dict[str, str] = {}

    def write_weights(part: Path) -> None:
        # mypy cannot tell that the array names exclude savez's own `allow_pickle` keyword
        np.savez(part, **arrays)  # type: ignore[arg-type]
        digest["sha256"] = file_sha256(part)

    write_atomic(folder / WEIGHTS_FILE, write_weights)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **meta, "weights": digest}
    text = json.dumps(meta, indent=2, allow_nan=False) + "\n"
    write_atomic(folder / META_FILE, lambda part: part.write_text(text, encoding="utf-8"))
    (folder / LEGACY_FILE).unlink(missing_ok=True)
    return folder


def _legacy_refusal(folder: Path) -> UserError:
    """The one line for a folder saved as a pickle by an older version."""
    kind = "lr"
    try:
        old = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        kind = old["kind"] if old.get("kind") in ("lr", "fm") else kind
    except (OSError, ValueError, AttributeError, RecursionError):
        pass  # the kind only fills in the example command
    return UserError(f"{folder} holds a recommender saved as a pickle ({LEGACY_FILE}) by an older version; pickles "
                     f"are never loaded because they can run code: retrain it with `recommender train --recommender "
                     f"{kind} --out {folder}` and the --features/--protocol/--modality it was trained with")


def read_metadata(folder: str | Path) -> dict[str, object]:
    """The checked top level of ``recommender.json`` (format, version, kind); a one-line UserError otherwise."""
    folder = Path(folder)
    meta_path = folder / META_FILE
    if (folder / LEGACY_FILE).exists() and not (folder / WEIGHTS_FILE).exists():
        raise _legacy_refusal(folder)
    if not meta_path.is_file():
        raise UserError(f"{folder} holds no saved recommender ({META_FILE} missing)")
    if meta_path.stat().st_size > MAX_META_BYTES:
        raise UserError(f"{meta_path}: larger than {MAX_META_BYTES >> 20} MiB, not a saved recommender")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise UserError(f"{meta_path}: not valid JSON ({type(exc).__name__})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError(f"{meta_path}: not a saved recommender (no \"format\": \"{FORMAT}\")")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise UserError(f"{meta_path}: format version {version!r}, this version reads {FORMAT_VERSION}: "
                        f"retrain with `recommender train`")
    if not isinstance(meta.get("kind"), str):
        raise UserError(f"{meta_path}: \"kind\" must be a string")
    return meta


def read_weights(folder: str | Path, meta: Mapping[str, object], spec: ArraySpec) -> dict[str, np.ndarray]:
    """The arrays of ``weights.npz``, checked against the metadata's checksum and ``spec``; finite values only."""
    path = Path(folder) / WEIGHTS_FILE
    sizes = {name: int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
             for name, (shape, dtype) in spec.items()}
    if sum(sizes.values()) > MAX_WEIGHT_BYTES:  # a vocabulary inflated by hand: refuse before reading or allocating
        raise UserError(f"{Path(folder) / META_FILE}: its encoder and hyper-parameters call for "
                        f"{sum(sizes.values()) >> 20} MiB of weights, more than {MAX_WEIGHT_BYTES >> 20} MiB")
    pinned = meta.get("weights")
    if not isinstance(pinned, dict) or not isinstance(pinned.get("sha256"), str):
        raise UserError(f"{Path(folder) / META_FILE}: \"weights\" must hold the sha256 of {WEIGHTS_FILE}")
    if not path.is_file():
        raise UserError(f"{path} missing: the saved recommender is incomplete")
    limit = sum(size + NPY_HEADER_BYTES + ZIP_ENTRY_BYTES + 2 * len(name) for name, size in sizes.items())
    if path.stat().st_size > limit + ZIP_ENTRY_BYTES:  # before hashing: the file may be a link to a huge one
        raise UserError(f"{path}: {path.stat().st_size} bytes, more than the {limit + ZIP_ENTRY_BYTES} that "
                        f"{META_FILE}'s arrays take: not the weights of this recommender")
    if file_sha256(path) != pinned["sha256"]:
        raise UserError(f"{path} does not match {META_FILE} (changed, truncated or left by another save): "
                        f"retrain or copy the whole folder again")
    with open(path, "rb") as fh:
        if fh.read(4) != b"PK\x03\x04":
            raise UserError(f"{path}: not an .npz archive")
    out = {}
    try:
        with np.load(path, allow_pickle=False) as archive:
            if sorted(archive.files) != sorted(spec):
                raise UserError(f"{path}: holds arrays {', '.join(sorted(archive.files)) or 'none'}, "
                                f"expected {', '.join(sorted(spec))}")
            for name, (shape, dtype) in spec.items():
                # the header is checked against the spec before anything is allocated (a compressed entry of a few
                # bytes can declare terabytes)
                value = npz_array(archive, path, name, expect=(shape, dtype))
                if not np.isfinite(value).all():
                    raise UserError(f"{path}: array {name} holds NaN or infinite values")
                out[name] = value
    except UserError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        reason = (str(exc).splitlines() or [""])[0]
        raise UserError(f"{path}: unreadable weights archive ({type(exc).__name__}: {reason})") from None
    return out
