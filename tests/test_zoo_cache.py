"""The feature cache's writes, without any model."""

from __future__ import annotations

import numpy as np
import pytest

from recommender.zoo.cache import FeatureCache


def test_failed_save_leaves_no_temporary_file(tmp_path, monkeypatch) -> None:
    cache = FeatureCache(tmp_path)

    def disk_full(path, array):
        path.write_bytes(b"partial")
        raise OSError("No space left on device")

    monkeypatch.setattr(np, "save", disk_full)
    with pytest.raises(OSError):
        cache.put("k", np.zeros((2, 3)), {})
    assert list(tmp_path.iterdir()) == [] and cache.get("k") is None
