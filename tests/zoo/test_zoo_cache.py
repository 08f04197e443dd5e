"""The feature cache's writes and checks, without any model."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from recommender.zoo.cache import FeatureCache


def test_failed_save_leaves_no_temporary_file(tmp_path, monkeypatch) -> None:
    cache = FeatureCache(tmp_path)

    def disk_full(path, data):
        Path.write_text(path, "partial")
        raise OSError("No space left on device")

    monkeypatch.setattr(Path, "write_bytes", disk_full)
    with pytest.raises(OSError):
        cache.put("k", np.zeros((2, 3)), {})
    assert list(tmp_path.iterdir()) == [] and cache.get("k") is None


def test_failed_sidecar_removes_the_array(tmp_path, monkeypatch) -> None:
    cache = FeatureCache(tmp_path)
    def disk_full(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", disk_full)
    with pytest.raises(OSError):
        cache.put("k", np.zeros((2, 3)), {})
    assert list(tmp_path.iterdir()) == []


def test_entry_round_trip_records_the_file_checksum(tmp_path) -> None:
    cache = FeatureCache(tmp_path)
    features = np.arange(12, dtype=np.float32).reshape(4, 3)
    cache.put("k", features, {"n": 4, "dim": 3})
    meta = json.loads(cache.meta_path("k").read_text())
    assert meta["sha256"] == hashlib.sha256(cache.path("k").read_bytes()).hexdigest()  # hashlib, not our helper
    np.testing.assert_array_equal(cache.get("k"), features)


def test_legacy_entry_without_checksum_is_load_checked(tmp_path) -> None:
    """An entry from before checksums (sidecar without sha256) is used when it loads as 2-D finite floats."""
    cache = FeatureCache(tmp_path)
    np.save(cache.path("k"), np.ones((2, 2), dtype=np.float32))
    cache.meta_path("k").write_text(json.dumps({"n": 2, "dim": 2}))
    np.testing.assert_array_equal(cache.get("k"), np.ones((2, 2)))
