"""The cost model (against numpy's least squares and an exactly log-linear history), the Pareto front (against
brute force) and the configuration and cost-budget regrets (by hand on tiny tables)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recommender.errors import UserError
from recommender.evaluation.cost import budget_regret, config_regret, cost_aware_run, truncated_run
from recommender.models.configs import pareto_front
from recommender.models.cost import CostModel


def jobs(seconds: float | None = None, noise: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """6 models x 4 datasets x 2 learning rates under one protocol; seconds 0.002 x params x examples x epochs
    (times a log-normal noise) unless given."""
    rng = np.random.default_rng(seed)
    rows = [{"model": f"m{i}", "dataset": f"d{d}", "protocol": "p", "params_m": 5.0 * (i + 1),
             "gmacs": 1.0 + i, "input_size": 224.0, "classes": 10.0, "examples": 200.0 * (d + 1),
             "h_epochs": 5.0 + d, "h_lr": lr} for i in range(6) for d in range(4) for lr in (0.01, 0.1)]
    table = pd.DataFrame(rows)
    base = 0.002 * table["params_m"] * table["examples"] * table["h_epochs"]
    table["seconds"] = base * np.exp(rng.normal(0, noise, len(table))) if seconds is None else float(seconds)
    return table


def test_fit_matches_numpy_least_squares():
    """With a vanishing penalty, the fitted log seconds are the least-squares projection of log(seconds / work) on
    the same span (intercept, log facts, one-hot protocol, model and dataset), computed with numpy's lstsq."""
    table = jobs(noise=0.3)
    model = CostModel(alpha=1e-9).fit(table)
    work = table["examples"] * table["h_epochs"]
    design = pd.concat([pd.Series(1.0, index=table.index, name="one"),
                        np.log(table[["params_m", "gmacs"]]),
                        pd.get_dummies(table[["model", "dataset"]], dtype=float)], axis=1).to_numpy()
    target = np.log(table["seconds"] / work).to_numpy()
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    np.testing.assert_allclose(model.predict_log(table), design @ coef + np.log(work), atol=1e-6)


def test_exactly_log_linear_history_predicts_a_new_dataset_exactly():
    """Seconds exactly proportional to parameters x examples x epochs: a dataset never seen, with other examples
    and epochs, is predicted to the second for a known model, and the held-out spread is (almost) zero."""
    table = jobs()
    model = CostModel(alpha=1e-9).fit(table)
    new = table[table["model"] == "m2"].head(1).assign(dataset="new", examples=3000.0, h_epochs=2.0)
    np.testing.assert_allclose(model.predict(new), 0.002 * 15.0 * 3000.0 * 2.0, rtol=1e-5)
    assert model.spread_ < 1e-5


def test_spread_is_measured_on_held_out_datasets():
    """A dataset twice as slow as its facts say is a factor the held-out folds see: the spread is about
    log(2) x (a share of the rows), far above the in-sample residual, which is zero."""
    table = jobs()
    table.loc[table["dataset"] == "d3", "seconds"] *= 2.0
    model = CostModel(alpha=1e-9).fit(table)
    np.testing.assert_allclose(model.log_residuals(table), 0.0, atol=1e-5)  # the dataset id absorbs it in fit
    assert 0.2 < model.spread_ < np.log(2.0)


def test_no_seconds_is_one_line():
    with pytest.raises(UserError, match="no job with seconds"):
        CostModel().fit(jobs(seconds=np.nan))
    with pytest.raises(UserError, match="alpha"):
        CostModel(alpha=-1.0).fit(jobs())


@pytest.mark.parametrize("seed", range(5))
def test_pareto_front_is_the_brute_force_set(seed):
    """Every point no other dominates, by the O(n^2) definition; ties and NaN included."""
    rng = np.random.default_rng(seed)
    perf = rng.integers(0, 6, 40).astype(float)
    cost = rng.integers(1, 8, 40).astype(float)
    perf[3] = np.nan
    front = pareto_front(perf, cost)
    for i in range(40):
        dominated = any((perf[j] >= perf[i]) and (cost[j] <= cost[i]) and (perf[j] > perf[i] or cost[j] < cost[i])
                        for j in range(40) if j != i and np.isfinite(perf[j]))
        assert front[i] == (np.isfinite(perf[i]) and not dominated), i


def test_configuration_regret_by_hand():
    truth = np.array([0.5, 0.8, 0.6, 0.4])
    predicted = np.array([0.9, 0.1, 0.7, 0.8])  # order: rows 0, 3, 2, 1
    assert config_regret(predicted, truth, 1) == pytest.approx((0.8 - 0.5) / 0.8)
    assert config_regret(predicted, truth, 3) == pytest.approx((0.8 - 0.6) / 0.8)
    assert config_regret(predicted, truth, 4) == 0.0


def test_cost_budget_regret_by_hand():
    """Rows (truth, real cost, expected cost): the blind order runs the expensive best-predicted row first."""
    truth = np.array([0.9, 0.6, 0.7, 0.3])
    cost = np.array([100.0, 10.0, 30.0, 5.0])
    expected = np.array([90.0, 12.0, 25.0, 5.0])
    predicted = np.array([0.95, 0.5, 0.6, 0.2])
    order = np.argsort(-predicted)  # 0, 2, 1, 3
    assert truncated_run(order, cost, 50.0) == []  # row 0 does not fit: the blind run stops at once
    assert truncated_run(order, cost, 140.0) == [0, 2, 1]  # 100 + 30 + 10 = 140 fits; row 3 (5 more) does not
    assert truncated_run(order, cost, 139.0) == [0, 2]  # row 1 no longer fits, and the run stops there
    # cost-aware with 50 s: row 2 (expected 25 fits, best predicted; real 30), then 20 left: row 1 (12 expected,
    # real 10), then 10 left: row 3 (5, 5)
    assert cost_aware_run(predicted, expected, cost, 50.0) == [2, 1, 3]
    # the oracle within 50 s is row 2 (0.7): regret 0 for the cost-aware run, 1 for nothing reached
    assert budget_regret([2, 1, 3], truth, cost, 50.0) == 0.0
    assert budget_regret([], truth, cost, 50.0) == 1.0
    assert budget_regret([1], truth, cost, 50.0) == pytest.approx((0.7 - 0.6) / 0.7)
    assert np.isnan(budget_regret([], truth, cost, 4.0))  # nothing costs 4 s or less: undefined
    # a row that overruns its expected cost and what is left ends the cost-aware run unfinished
    assert cost_aware_run(predicted, expected, np.array([100.0, 10.0, 45.0, 5.0]), 40.0) == []
