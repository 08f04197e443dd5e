"""Per-dataset measures of a model ranking (SPEC §5) and their averages with spread and confidence intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import comb

from recommender.errors import UserError
from recommender.models.selection import paired_vectors, weighted_tau
from recommender.regret import relative_regret

__all__ = ["budget_measures", "rank_correlations", "summarize", "weighted_tau"]

CORRELATIONS = ("weighted_tau", "kendall_tau", "pearson", "spearman")
BUDGET_MEASURES = ("regret", "relative_regret", "rel", "recall")


def rank_correlations(score, performance) -> dict[str, float]:
    """Weighted Kendall tau, Kendall tau-b, Pearson and Spearman of score against performance.

    A constant score or performance leaves a correlation undefined: it is returned as NaN, and callers
    report such datasets instead of averaging them in."""
    s, t = paired_vectors(score, performance)
    if not np.isfinite(s).all():
        raise UserError("score holds NaN or inf")
    if np.ptp(s) == 0 or np.ptp(t) == 0:
        return dict.fromkeys(CORRELATIONS, float("nan"))
    return {
        "weighted_tau": float(stats.weightedtau(s, t).statistic),
        "kendall_tau": float(stats.kendalltau(s, t).statistic),
        "pearson": float(stats.pearsonr(s, t).statistic),
        "spearman": float(stats.spearmanr(s, t).statistic),
    }


def _expected_max(values: np.ndarray, floor: float, k: int) -> float:
    """E[max(floor, max of a uniformly random k-subset of values)], exactly."""
    if k == 0:
        return floor
    v = np.sort(values)
    i = np.arange(1, v.size + 1)
    # P(the subset's maximum is the i-th smallest) = C(i-1, k-1) / C(n, k); ties need no care in an expectation.
    p = comb(i - 1, k - 1) / comb(v.size, k)
    return float(np.sum(np.maximum(v, floor) * p))


def budget_measures(score, performance, budget: int) -> dict[str, float]:
    """Regret, relative regret, rel@B and recall@B of fine-tuning the top-B models by score (SPEC §5).

    Ties in the score at the cut-off are broken uniformly at random and the measures are their exact
    expectation; a constant score therefore gives the random strategy's expected regret. NaN scores rank last."""
    s, t = paired_vectors(score, performance)
    if budget < 1:
        raise UserError(f"budget must be at least 1, got {budget}")
    s = np.where(np.isnan(s), -np.inf, s)
    b = min(budget, t.size)
    cut = np.sort(s)[::-1][b - 1]
    above, tied = s > cut, s == cut
    need = b - int(above.sum())
    best = t.max()
    floor = t[above].max() if above.any() else -np.inf
    picked = min(_expected_max(t[tied], floor, need), best)  # the sum of probabilities may round above best
    # recall: the same expectation over the indicator "a best model is among the picks".
    hit = (t == best).astype(float)
    recall = _expected_max(hit[tied], hit[above].max() if above.any() else 0.0, need)
    regret = best - picked
    relative = relative_regret(best, picked)
    rel = picked / best if best > 0 else float("nan")
    return {"regret": float(regret), "relative_regret": float(relative), "rel": float(rel), "recall": float(recall)}


def summarize(values, repeats=None, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Mean of per-unit values with std (over repeats when given, else over units) and a bootstrap CI of the mean.

    `repeats` labels each value with its seed or fold group; the std is then taken over the group means."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        raise UserError("nothing to summarize: no values")
    if not np.isfinite(v).all():
        raise UserError("summarize got NaN or inf: report undefined cases instead of averaging them")
    if repeats is not None and pd.Series(repeats).nunique() > 1:
        std = float(pd.Series(v).groupby(np.asarray(repeats)).mean().std(ddof=1))
    else:
        std = float(v.std(ddof=1)) if v.size > 1 else 0.0
    boot = stats.bootstrap((v,), np.mean, n_resamples=n_boot, confidence_level=level,
                           method="percentile", random_state=seed) if v.size > 1 and np.ptp(v) > 0 else None
    low, high = (boot.confidence_interval.low, boot.confidence_interval.high) if boot else (v.mean(), v.mean())
    return {"mean": float(v.mean()), "std": std, "ci_low": float(low), "ci_high": float(high), "n": int(v.size)}
