"""Measures against the reference evaluation vectors and hand-checked tiny cases."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recommender.errors import UserError
from recommender.evaluation.measures import budget_measures, rank_correlations, summarize, weighted_tau

REFERENCE = Path(__file__).parents[1] / "data" / "reference" / "reference_vectors.json"
VECTORS = json.loads(REFERENCE.read_text())["evaluation_vectors"]
TABLES = VECTORS["tllib_readme_tables"]


def pearson_by_formula(x, y) -> float:
    """Pearson's r as centred dot product over the norms."""
    x, y = np.asarray(x, dtype=float) - np.mean(x), np.asarray(y, dtype=float) - np.mean(y)
    return float(x @ y / np.sqrt((x @ x) * (y @ y)))


def spearman_by_ranks(x, y) -> float:
    """Spearman's rho as Pearson's r of average ranks (ties share their mean rank), ranked by pandas."""
    return pearson_by_formula(pd.Series(x).rank().to_numpy(), pd.Series(y).rank().to_numpy())


@pytest.mark.parametrize("case", TABLES, ids=lambda c: f"{c['dataset']}-{c['method']}")
def test_published_tables(case, brute_weighted_tau, brute_kendall_tau_b):
    """Correlations and top-k measures of the 32 published tables (values computed with scipy/SFDA code;
    1e-9 = float noise).

    The correlations are also recomputed apart from scipy, which rank_correlations calls: weighted tau and tau-b
    pair by pair, Pearson and Spearman by formula (1e-12: float64 sums of at most a few hundred terms)."""
    s, t = case["scores"], case["finetune_acc"]
    corr = rank_correlations(s, t)
    assert corr["weighted_tau"] == pytest.approx(brute_weighted_tau(s, t), abs=1e-12)
    assert corr["kendall_tau"] == pytest.approx(brute_kendall_tau_b(s, t), abs=1e-12)
    assert corr["pearson"] == pytest.approx(pearson_by_formula(s, t), abs=1e-12)
    assert corr["spearman"] == pytest.approx(spearman_by_ranks(s, t), abs=1e-12)
    assert corr["weighted_tau"] == pytest.approx(case["weightedtau_scipy_default"], abs=1e-9)
    assert corr["kendall_tau"] == pytest.approx(case["kendalltau_b"], abs=1e-9)
    assert corr["pearson"] == pytest.approx(case["pearson"], abs=1e-9)
    one, three = budget_measures(s, t, 1), budget_measures(s, t, 3)
    assert one["rel"] == pytest.approx(case["rel_at_1"], abs=1e-9)
    assert three["rel"] == pytest.approx(case["rel_at_3"], abs=1e-9)
    assert one["regret"] == pytest.approx(case["regret_abs_top1"], abs=1e-9)
    assert one["relative_regret"] == pytest.approx(case["regret_rel_top1"], abs=1e-9)


@pytest.mark.parametrize("case", VECTORS["small_synthetic"], ids=range(3))
def test_small_cases_with_ties(case, brute_weighted_tau, brute_kendall_tau_b):
    """Tiny cases, one with tied scores: weighted tau and tau-b as scipy gave them when the reference was made,
    and as computed pair by pair here (1e-12: float noise)."""
    assert weighted_tau(case["x"], case["y"]) == pytest.approx(case["weightedtau_default"], abs=1e-12)
    assert weighted_tau(case["x"], case["y"]) == pytest.approx(brute_weighted_tau(case["x"], case["y"]), abs=1e-12)
    assert rank_correlations(case["x"], case["y"])["kendall_tau"] == pytest.approx(
        brute_kendall_tau_b(case["x"], case["y"]), abs=1e-12)
    assert rank_correlations(case["x"], case["y"])["kendall_tau"] == pytest.approx(case["kendalltau_b"], abs=1e-12)


def test_spearman_closed_form():
    """Spearman of a permutation against the identity: 1 - 6 sum d^2 / (n (n^2 - 1)) (exact up to float noise)."""
    perm = np.array([2, 1, 4, 3, 5, 7, 6])
    d2 = np.sum((perm - np.arange(1, 8)) ** 2)
    assert rank_correlations(perm, np.arange(7.0))["spearman"] == pytest.approx(1 - 6 * d2 / (7 * 48), abs=1e-12)


def test_ties_at_the_cut_are_an_exact_expectation():
    """Hand check: scores tie 2 models for one slot, so the pick is either with probability 1/2."""
    perf = np.array([0.5, 0.9, 0.7, 0.8])
    out = budget_measures([1.0, 3.0, 3.0, 0.0], perf, 1)
    assert out["regret"] == pytest.approx(0.5 * (0.9 - 0.9) + 0.5 * (0.9 - 0.7))
    assert out["recall"] == pytest.approx(0.5)
    # B=2 takes both tied models: the best is certainly picked.
    assert budget_measures([1.0, 3.0, 3.0, 0.0], perf, 2)["recall"] == 1.0


def test_random_pick_is_the_exact_mean_over_subsets():
    """A constant score = random subsets; compare with enumerating all C(5, 2) subsets."""
    from itertools import combinations

    perf = np.array([0.3, 0.9, 0.6, 0.6, 0.1])
    subsets = list(combinations(range(5), 2))
    regret = np.mean([perf.max() - perf[list(c)].max() for c in subsets])
    recall = np.mean([1 in c for c in subsets])
    out = budget_measures(np.zeros(5), perf, 2)
    assert out["regret"] == pytest.approx(regret, abs=1e-12)
    assert out["recall"] == pytest.approx(recall, abs=1e-12)
    assert out["rel"] == pytest.approx(1 - out["relative_regret"], abs=1e-12)


def test_nan_scores_rank_last_and_budget_beyond_pool():
    """A NaN score is picked only when the budget reaches it; B larger than the pool takes every model."""
    perf = np.array([0.2, 0.9, 0.5])
    assert budget_measures([1.0, np.nan, 0.0], perf, 2)["regret"] == pytest.approx(0.4)
    assert budget_measures([1.0, np.nan, 0.0], perf, 10)["regret"] == 0.0


def test_constant_inputs_are_undefined_not_zero():
    """Constant performance or score leaves correlations undefined (NaN), never a silent 0."""
    assert np.isnan(rank_correlations([1, 2, 3], [0.5, 0.5, 0.5])["weighted_tau"])
    assert np.isnan(rank_correlations([1, 1, 1], [0.1, 0.5, 0.3])["spearman"])


@pytest.mark.parametrize("score, perf, message", [
    ([1, 2], [0.1, np.nan], "NaN"), ([1, 2, 3], [0.1, 0.2], "length"), ([1], [0.3], "at least 2")])
def test_bad_input_is_one_clear_error(score, perf, message):
    """Bad input raises a UserError naming the problem."""
    with pytest.raises(UserError, match=message):
        rank_correlations(score, perf)


def test_summarize_std_over_repeats_and_ci():
    """Std is over repeat means when repeats are given; the bootstrap CI brackets the mean."""
    values = [0.1, 0.3, 0.2, 0.6]
    out = summarize(values, repeats=[0, 0, 1, 1])
    assert out["mean"] == pytest.approx(0.3)
    assert out["std"] == pytest.approx(np.std([0.2, 0.4], ddof=1))
    assert out["ci_low"] <= out["mean"] <= out["ci_high"]
    assert summarize(values)["std"] == pytest.approx(np.std(values, ddof=1))
    with pytest.raises(UserError, match="NaN"):
        summarize([0.1, np.nan])
