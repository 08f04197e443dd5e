"""On-disk feature cache keyed by model, dataset content and preprocessing, so a second run does not recompute."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import warnings
from contextlib import suppress
from pathlib import Path

import numpy as np

from recommender.files import cache_root, write_atomic


def default_cache_dir() -> Path:
    """$RECOMMENDER_CACHE/features, else ~/.cache/recommender/features."""
    return cache_root() / "features"


class FeatureCache:
    """Feature matrices stored as .npy files named by a hash of (model, weights, preprocessing, dataset).

    Beside each `<key>.npy` a `<key>.json` sidecar describes it and holds the SHA-256 of its bytes. `get` checks an
    entry before returning it and treats a bad one (changed bytes, unreadable file, not a finite 2-D array of the
    recorded shape) as absent, with a warning naming the file, so the caller recomputes and `put` replaces it."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()

    @staticmethod
    def key(model: str, source: str, preprocessing: str, dataset: str) -> str:
        """The cache key: a hash of the model name, its weights' location, its preprocessing and the dataset
        fingerprint."""
        text = json.dumps([model, source, preprocessing, dataset])
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def path(self, key: str) -> Path:
        """Where the features of a key live."""
        return self.root / f"{key}.npy"

    def meta_path(self, key: str) -> Path:
        """Where the sidecar (description and checksum) of a key lives."""
        return self.path(key).with_suffix(".json")

    def get(self, key: str) -> np.ndarray | None:
        """The cached features, or None when absent or bad (a bad entry is removed, with a warning)."""
        path = self.path(key)
        if not path.exists() and not path.is_symlink():
            return None
        try:
            return self._verified(key)
        # every way a damaged entry fails to read (a folder in its place, a sidecar nested too deep to parse)
        except (OSError, ValueError, KeyError, TypeError, EOFError, RecursionError) as exc:
            reason = " ".join(str(exc).split())[:200] or type(exc).__name__
            warnings.warn(f"feature cache: {path} is damaged ({reason}); removing it and recomputing", stacklevel=2)
            for bad in (path, self.meta_path(key)):
                with suppress(OSError):  # a read-only cache: the recomputed features are still returned
                    if bad.is_dir() and not bad.is_symlink():
                        shutil.rmtree(bad)
                    else:
                        bad.unlink(missing_ok=True)
            return None

    def _verified(self, key: str) -> np.ndarray:
        """The array of an entry after checking its bytes against the sidecar's checksum and its shape."""
        data = self.path(key).read_bytes()
        meta_file = self.meta_path(key)
        meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
        if not isinstance(meta, dict):
            raise ValueError(f"{meta_file.name} holds a JSON {type(meta).__name__}, not an object")
        expected = meta.get("sha256")
        # entries written before checksums existed are checked by loading alone
        if expected is not None and hashlib.sha256(data).hexdigest() != expected:
            raise ValueError(f"checksum differs from {meta_file.name}")
        features = np.load(io.BytesIO(data), allow_pickle=False)
        if features.ndim != 2 or not np.issubdtype(features.dtype, np.floating):
            raise ValueError(f"holds a {features.dtype} array of shape {features.shape}, not 2-D features")
        if "n" in meta and "dim" in meta and features.shape != (meta["n"], meta["dim"]):
            raise ValueError(f"shape {features.shape} differs from {(meta['n'], meta['dim'])} in {meta_file.name}")
        if not np.isfinite(features).all():
            raise ValueError("holds NaN or infinite values")
        return features

    def put(self, key: str, features: np.ndarray, meta: dict) -> None:
        """Store features atomically (write then rename) with a JSON sidecar describing them and their checksum."""
        self.root.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.save(buffer, features, allow_pickle=False)
        data = buffer.getvalue()
        meta = meta | {"sha256": hashlib.sha256(data).hexdigest()}
        # array first: a kill before the sidecar is replaced leaves an old checksum (recomputed) or none (load check)
        write_atomic(self.path(key), lambda part: part.write_bytes(data))
        try:
            write_atomic(self.meta_path(key), lambda part: part.write_text(json.dumps(meta, indent=1)))
        except BaseException:
            self.path(key).unlink(missing_ok=True)  # a failed put leaves no entry behind
            raise
