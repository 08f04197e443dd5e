"""On-disk feature cache keyed by model, dataset content and preprocessing, so a second run does not recompute."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from recommender.files import write_atomic


def default_cache_dir() -> Path:
    """$RECOMMENDER_CACHE, else ~/.cache/recommender/features."""
    return Path(os.environ.get("RECOMMENDER_CACHE", Path.home() / ".cache" / "recommender")) / "features"


class FeatureCache:
    """Feature matrices stored as .npy files named by a hash of (model, weights, preprocessing, dataset)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()

    @staticmethod
    def key(model: str, source: str, preprocessing: str, dataset: str) -> str:
        """The cache key: a hash of the model name, its weights' location, its preprocessing and the dataset fingerprint."""
        text = json.dumps([model, source, preprocessing, dataset])
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def path(self, key: str) -> Path:
        """Where the features of a key live."""
        return self.root / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        """The cached features, or None when absent."""
        p = self.path(key)
        return np.load(p) if p.is_file() else None

    def put(self, key: str, features: np.ndarray, meta: dict) -> None:
        """Store features atomically (write then rename) with a JSON sidecar describing them."""
        self.root.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path(key), lambda part: np.save(part, features))
        self.path(key).with_suffix(".json").write_text(json.dumps(meta, indent=1))
