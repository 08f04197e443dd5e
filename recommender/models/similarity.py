"""`SimilaritySearch`: weight each training dataset by the agreement (Pearson) of its within-dataset z-scores with
the observed results, softmax(beta * n / (n + shrink) * r), and rank by the weighted mean z-score; with few results
the weights shrink to equal ones, i.e. to mean-perf. The spread is the weighted std across datasets. With
`explore` > 0 it ranks by an upper confidence bound: score + explore * spread."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import pandas as pd

from recommender.contracts import ADAPTIVE_BUDGETS
from recommender.models.params import BUDGETS, FOLDS, Rule
from recommender.models.params import number as in_range  # `number` is a loop variable below
from recommender.models.session import (
    MIN_CORRELATION,
    TOP_REASONS,
    AdaptiveRecommender,
    Ranking,
    Session,
    zscore_matrix,
)


class SimilaritySession(Session):
    """`SimilaritySearch` on one target's candidates: ``Z`` holds their z-scores on each training dataset
    (``names``)."""

    def __init__(self, Z: np.ndarray, names: np.ndarray, beta: float, shrink: float, explore: float):
        self.Z, self.names, self.beta, self.shrink, self.explore = Z, names, beta, shrink, explore
        self.known = np.isfinite(Z)
        self.Z0 = np.where(self.known, Z, 0.0)

    def agreement(self, picked: Sequence[int], values: np.ndarray) -> np.ndarray:
        """Pearson r of the observed results with each training dataset's z-scores on the observed models (0 where
        fewer than 2 of them are known there or either side is constant)."""
        r = np.zeros(self.Z.shape[1])
        if len(picked) < 2:
            return r
        known = self.known[picked]  # observed models x training datasets, every dataset at once
        x, y = self.Z0[picked], np.where(known, np.asarray(values, dtype=float)[:, None], 0.0)

        def varies(v: np.ndarray) -> np.ndarray:  # two distinct known values (np.ptp > 0 over the known ones)
            return np.where(known, v, np.inf).min(0) < np.where(known, v, -np.inf).max(0)

        use = varies(x) & varies(y)
        if use.any():
            k, n = known[:, use], known[:, use].sum(0)
            dx = np.where(k, x[:, use] - x[:, use].sum(0) / n, 0.0)
            dy = np.where(k, y[:, use] - y[:, use].sum(0) / n, 0.0)
            r[use] = np.clip((dx * dy).sum(0) / np.sqrt((dx * dx).sum(0) * (dy * dy).sum(0)), -1.0, 1.0)
        return r

    def weights(self, picked: Sequence[int], values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Dataset weights softmax(beta * n/(n+shrink) * r), summing to 1, and the agreements r."""
        r = self.agreement(picked, np.asarray(values, dtype=float))
        n = len(picked)
        logit = self.beta * n / (n + self.shrink) * r if n else np.zeros_like(r)
        w = np.exp(logit - logit.max())
        return w / w.sum(), r

    def rank(self, picked: Sequence[int], values: Sequence[float] | np.ndarray, explain: bool = False) -> Ranking:
        w, r = self.weights(list(picked), np.asarray(values, dtype=float))
        mass = self.known @ w
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (self.Z0 @ w) / mass
            var = ((self.known * (self.Z0 - mean[:, None]) ** 2) @ w) / mass
        spread = np.sqrt(np.maximum(var, 0.0))
        reasons = None
        if explain:
            reasons = [moved_datasets(self.names, w, r, len(picked))] * len(mean)
        return Ranking(mean + self.explore * spread, spread, reasons)


def moved_datasets(names: np.ndarray, w: np.ndarray, r: np.ndarray, n: int, prior: str = "mean z-score") -> str:
    """Which training datasets the n observed results moved the weights towards (weight against the equal share,
    and the agreement r); below ``MIN_CORRELATION`` results, that there are too few for a correlation. ``prior``
    names what the weights weigh (`auto`'s session: its mean and its refitted LR)."""
    share = np.round(w * len(w), 9)  # against the equal share; equal to 9 decimals (rounding apart): the first named
    top = [d for d in np.argsort(-share, kind="stable")[:TOP_REASONS] if share[d] > 1]
    if n < MIN_CORRELATION:
        moved = f"; weight moved towards {', '.join(f'{names[d]} (x{w[d] * len(w):.1f})' for d in top)}" if top else ""
        return (f"{n} result(s) observed, fewer than the {MIN_CORRELATION} a correlation needs: {prior} over "
                f"the {len(w)} training datasets{moved}")
    if not top:
        return f"no training dataset agrees with the {n} results more than the others: the {prior}"
    return "agrees with " + ", ".join(f"{names[d]} (weight x{w[d] * len(w):.1f}, r {r[d]:+.2f})" for d in top)


class SimilaritySearch(AdaptiveRecommender):
    """Dataset similarity made sound: z-score agreement, shrunk to equal weights (mean-perf) when little is seen."""

    GRID = {"beta": (2.0, 5.0, 10.0, 20.0), "shrink": (1.0, 4.0, 16.0), "explore": (0.25, 0.5, 1.0)}
    PARAMETERS: ClassVar[dict[str, Rule]] = {"beta": in_range(0).or_none(), "shrink": in_range(0).or_none(),
                                             "explore": in_range(0).or_none(), "budgets": BUDGETS,
                                             "max_inner_folds": FOLDS}

    def __init__(self, beta: float | None = None, shrink: float | None = None, explore: float | None = 0.0,
                 budgets: tuple[int, ...] = ADAPTIVE_BUDGETS, max_inner_folds: int = 8):
        self.beta = beta
        self.shrink = shrink
        self.explore = explore
        self.budgets = budgets
        self.max_inner_folds = max_inner_folds

    def _prepare(self, train: pd.DataFrame) -> pd.DataFrame:
        return zscore_matrix(train)

    def _view(self, prepared: pd.DataFrame, candidates: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        return prepared.reindex(candidates["model"].to_numpy()).to_numpy(dtype=float), prepared.columns.to_numpy()

    def _open(self, view: tuple[np.ndarray, np.ndarray], params: dict) -> Session:
        Z, names = view
        return SimilaritySession(Z, names, params["beta"], params["shrink"], params["explore"])
