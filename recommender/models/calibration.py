"""The spread `recommend` prints, calibrated at training time on held-out training datasets.

A recommender's posterior standard deviation (the LR warm start's, `recommender.models.warm_start.warm_update`) is in
the units of a Bayesian model whose prior is "the static prediction is right"; it says how far results may move,
not how far they fall from the prediction. `spread_factor` refits the recommender without each of its training
datasets, up to 20 (`recommender.models.selection.inner_folds`; an LR by `LinearRecommender.held_out`, one sparse
solve each), and finds the factor by which that standard deviation must be multiplied so that 68% of the held-out
z-scored results fall within prediction +- factor x std. `train` saves it with the recommender, and `recommend` prints
std x factor: the half-width of a 68% interval.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recommender.models.base import PairRecommender
from recommender.models.linear import LinearRecommender
from recommender.models.rankers import without_truth
from recommender.models.selection import inner_folds, rankable
from recommender.models.warm_start import WARM_START, model_factors, warm_update
from recommender.normalise import ranking_groups

COVERAGE = 0.68
# refits at training time, each one more fit of the recommender (an FM on SHiFT vision: about a second): as many as
# `auto`'s inner folds. Five pinned the factor only roughly: an FM's interval held 78% and 57% of held-out results
MAX_FOLDS = 20


def held_out_ratios(train: pd.DataFrame, test: pd.DataFrame, predicted: np.ndarray) -> np.ndarray:
    """Given a recommender's predictions of the held-out ``test`` from ``train``, each result of the test's
    rankable groups as |z-scored result - prediction| / posterior std (NaN where the std is 0)."""
    predicted = np.asarray(predicted, dtype=float)
    factors = model_factors(train)
    ratios = [np.array([])]
    for _, rows in test.groupby(ranking_groups(test), sort=True):
        truth = rows["performance"].to_numpy(dtype=float)
        if not rankable(truth):
            continue
        at = test.index.get_indexer(rows.index)
        _, std = warm_update(predicted[at], rows["model"].astype(str).to_numpy(), pd.Series(dtype=float), factors,
                             WARM_START)
        z = (truth - truth.mean()) / truth.std()
        ratios.append(np.abs(z - predicted[at]) / np.where(std > 0, std, np.nan))
    return np.concatenate(ratios)


def spread_factor(est: PairRecommender, pairs: pd.DataFrame, max_folds: int = MAX_FOLDS) -> tuple[float, int] | None:
    """The factor that makes ``COVERAGE`` of held-out z-scored results fall within prediction +- factor x posterior
    std, from up to ``max_folds`` refits of an unfitted copy of ``est`` without one training dataset each (an LR:
    its `held_out` predictions), and the number of datasets it was measured on; None for a
    raw target (the prediction is not in z units) or fewer than two training datasets."""
    if est.target != "zscore" or pairs["dataset"].nunique() < 2:
        return None
    pairs = pairs.reset_index(drop=True)  # the folds' rows as positions
    folds = inner_folds(pairs, max_folds)
    if isinstance(est, LinearRecommender):
        predicted = LinearRecommender(**est.get_params(deep=False)).held_out(
            pairs, [pairs.index.get_indexer(fold.test.index) for fold in folds])
    else:
        predicted = [type(est)(**est.get_params(deep=False)).fit(fold.train).predict(without_truth(fold.test))
                     for fold in folds]
    ratios = [held_out_ratios(fold.train, fold.test, values) for fold, values in zip(folds, predicted, strict=True)]
    values = np.concatenate(ratios) if ratios else np.array([])
    values = values[np.isfinite(values)]
    return (float(np.quantile(values, COVERAGE)), sum(r.size > 0 for r in ratios)) if values.size else None
