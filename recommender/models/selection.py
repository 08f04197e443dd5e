"""Choosing on folds of the training pairs alone: the folds, the scores and the choice, each written once.

The shape of scikit-learn's ``GridSearchCV`` with ``LeaveOneGroupOut`` and a scorer: `inner_folds` holds out one
training dataset at a time (at most ``max_folds`` of them, evenly spread: `spread`), or held-out models on a single
dataset; `choose` fits and scores each grid point on each fold and keeps the best; `ranking_taus` is the ranking
score, over the groups that `rankable` admits (the rule evaluation reports by: ``contracts.MIN_MODELS``).
`grouped_splits` are Optuna tuning's group k-fold splits. The evaluation's splits (`recommender.evaluation.splits`)
are built on `loo_folds` and `unseen_model_folds`.

No scikit-learn or SciPy at import: ``recommender next`` loads the adaptive recommenders that use this module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
import pandas as pd

from recommender.contracts import MIN_MODELS
from recommender.errors import UserError
from recommender.normalise import ranking_groups

T = TypeVar("T")
P = TypeVar("P")


@dataclass(frozen=True)
class Fold:
    """One train/test split: strategies fit on `train` and rank the models of each dataset in `test`."""

    name: str
    repeat: int
    train: pd.DataFrame
    test: pd.DataFrame
    seen: frozenset[str] | None = None  # cross-protocol: the test datasets that training holds under its protocols


def loo_folds(pairs: pd.DataFrame) -> Iterator[Fold]:
    """One fold per dataset: train on every other dataset, test on this one."""
    if pairs["dataset"].nunique() < 2:
        raise UserError("leave-one-dataset-out needs at least 2 datasets")
    for dataset in sorted(pairs["dataset"].unique()):
        held = pairs["dataset"] == dataset
        yield Fold(dataset, 0, pairs.loc[~held], pairs.loc[held])


def unseen_model_folds(pairs: pd.DataFrame, seeds: Sequence[int] = (0, 1, 2, 3, 4),
                       test_fraction: float = 0.2) -> Iterator[Fold]:
    """Per dataset (and protocol) and seed: train on a random (1 - test_fraction) of its models, test on the rest."""
    if not 0 < test_fraction < 1:
        raise UserError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    for dataset, part in pairs.groupby(ranking_groups(pairs), sort=True):
        models = np.sort(part["model"].unique())
        n_test = max(1, int(round(test_fraction * models.size)))
        if models.size - n_test < 1:
            continue  # nothing to train on; reported by the runner as a dataset without folds
        for seed in seeds:
            held = np.random.default_rng(seed).choice(models, n_test, replace=False)
            is_test = part["model"].isin(held)
            yield Fold(f"{dataset}/seed{seed}", seed, part.loc[~is_test], part.loc[is_test])


def spread(items: Sequence[T], n: int) -> list[T]:
    """At most n of the items, evenly spread from the first to the last (deterministic)."""
    keep = np.unique(np.linspace(0, len(items) - 1, min(n, len(items))).astype(int))
    return [items[i] for i in keep]


def inner_folds(train: pd.DataFrame, max_folds: int) -> list[Fold]:
    """At most `max_folds` folds inside the training pairs alone (evenly spread): leave-one-dataset-out, or
    unseen-model folds (one per seed) when training holds a single dataset."""
    if train["dataset"].nunique() >= 2:
        folds = list(loo_folds(train))
    else:
        folds = list(unseen_model_folds(train, seeds=range(max_folds)))
    return spread(folds, max_folds)


def grouped_splits(X: pd.DataFrame, n_splits: int = 3) -> list[tuple[np.ndarray, np.ndarray]]:
    """Optuna tuning's validation splits (positions): group k-fold by dataset, or by model when the pairs hold a
    single dataset."""
    from sklearn.model_selection import GroupKFold  # scikit-learn only where a recommender is tuned

    key = "dataset" if X["dataset"].nunique() >= 2 else "model"
    groups = X[key].astype(str).to_numpy()
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise UserError("tuning needs at least two datasets, or two models on one dataset")
    return list(GroupKFold(n_splits=min(n_splits, n_groups)).split(X, groups=groups))


# --- scores -----------------------------------------------------------------------------------------------------

def paired_vectors(score: object, performance: object) -> tuple[np.ndarray, np.ndarray]:
    """Both inputs as float vectors of one length, finite performance, at least two entries."""
    s = np.asarray(score, dtype=float).ravel()
    t = np.asarray(performance, dtype=float).ravel()
    if s.shape != t.shape:
        raise UserError(f"score and performance differ in length ({s.size} vs {t.size})")
    if t.size < 2:
        raise UserError(f"a ranking needs at least 2 models, got {t.size}")
    if not np.isfinite(t).all():
        raise UserError("performance holds NaN or inf")
    return s, t


def weighted_tau(score: object, performance: object) -> float:
    """scipy.stats.weightedtau with its defaults (hyperbolic weights, both lexicographic rankings averaged)."""
    from scipy import stats  # a second to import: only where rankings are scored

    s, t = paired_vectors(score, performance)
    if not np.isfinite(s).all():
        raise UserError("score holds NaN or inf")
    return float(stats.weightedtau(s, t).statistic)


def rankable(truth: np.ndarray) -> bool:
    """Whether a group's performance can be ranked: at least ``MIN_MODELS`` models, not all equal (the rule the
    evaluation reports by: `recommender.evaluation.checks.rankable`)."""
    return truth.size >= MIN_MODELS and bool(np.ptp(truth) > 0)


def ranking_taus(pred: np.ndarray, truth: np.ndarray, groups: Iterable[object]) -> list[float]:
    """Weighted tau of `pred` against `truth` in each rankable group (in sorted group order). A model without a
    prediction (NaN) ranks below every predicted one; a prediction without spread ranks nothing: 0."""
    pred, truth = np.asarray(pred, dtype=float), np.asarray(truth, dtype=float)
    labels = np.asarray(list(groups) if not isinstance(groups, (np.ndarray, pd.Series)) else groups)
    taus = []
    for g in np.unique(labels):
        mine = labels == g
        p, t = pred[mine], truth[mine]
        if not rankable(t):
            continue
        known = np.isfinite(p)
        p = np.where(known, p, p[known].min() - 1 if known.any() else 0.0)
        taus.append(weighted_tau(p, t) if np.ptp(p) > 0 else 0.0)
    return taus


# --- the choice -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Choice(Generic[P]):
    """The grid point chosen, its position, and each point's total score over the `units` scored."""

    best: P
    index: int
    totals: np.ndarray
    units: int


def choose(grid: Sequence[P], fit_score: Callable[[T], Iterable[Sequence[float]]], folds: Iterable[T],
           lower_is_better: bool = False, default: int = 0) -> Choice[P]:
    """The grid point with the best total score over the folds (ties: the earlier point).

    `fit_score(fold)` fits on the fold's training side and yields one row per unit it scores (a held-out ranking
    group or dataset), each with one score per grid point; rows are summed in order. With no unit scored, the
    point at `default` is chosen."""
    totals = np.zeros(len(grid))
    units = 0
    for fold in folds:
        for row in fit_score(fold):
            totals += np.asarray(row, dtype=float)
            units += 1
    index = default if not units else int(np.argmin(totals) if lower_is_better else np.argmax(totals))
    return Choice(grid[index], index, totals, units)
