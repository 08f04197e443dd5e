"""`BlendSearch`: (1 - weight) x the similarity score + weight x the warm start's, each standardised over the
candidates; the spread is the same blend of the two spreads in those units."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import pandas as pd

from recommender.contracts import ADAPTIVE_BUDGETS
from recommender.models.params import BUDGETS, FOLDS, Rule
from recommender.models.params import number as in_range  # `number` is a loop variable below
from recommender.models.session import AdaptiveRecommender, Ranking, Session, standardise
from recommender.models.similarity import SimilaritySearch
from recommender.models.warm_start import WarmStartLR


def _unit(v: np.ndarray) -> np.ndarray:
    """v centred and scaled over its finite entries (NaN stays NaN); all zeros where it has no spread."""
    known = np.isfinite(v)
    out = np.full(v.shape, np.nan)
    if known.any():
        out[known] = standardise(v[known])
    return out


class _BlendSession(Session):
    def __init__(self, similarity: Session, warm: Session, weight: float):
        self.similarity, self.warm, self.weight = similarity, warm, weight

    def rank(self, picked: Sequence[int], values: Sequence[float] | np.ndarray, explain: bool = False) -> Ranking:
        a = self.similarity.rank(picked, values, explain)
        b = self.warm.rank(picked, values, explain)
        w = self.weight
        # each score in its own std units; a candidate one side has no opinion on takes the other side's alone
        sa, sb = _unit(a.score), _unit(b.score)
        score = np.where(np.isnan(sa), sb, np.where(np.isnan(sb), sa, (1 - w) * sa + w * sb))
        spread = np.nan_to_num((1 - w) * a.spread / (np.nanstd(a.score) or 1.0)) + np.nan_to_num(
            w * b.spread / (np.nanstd(b.score) or 1.0))
        reasons = None
        if explain and a.reasons is not None and b.reasons is not None:
            reasons = [f"{1 - w:.2f} x similarity ({ra}); {w:.2f} x LR warm start ({rb})"
                       for ra, rb in zip(a.reasons, b.reasons, strict=True)]
        return Ranking(score, spread, reasons)


class BlendSearch(AdaptiveRecommender):
    """(1 - weight) x the similarity score + weight x the LR warm start's, each standardised over the candidates.

    Each part chooses its own hyper-parameters on inner folds of the training pairs; the weight is then chosen on
    the same inner folds with the parts' choices fixed (weight 0 is adaptive:similarity, 1 adaptive:lr)."""

    GRID = {"weight": (0.0, 0.25, 0.5, 0.75, 1.0)}
    PARAMETERS: ClassVar[dict[str, Rule]] = {"weight": in_range(0, 1).or_none(), "budgets": BUDGETS,
                                             "max_inner_folds": FOLDS}

    def __init__(self, weight: float | None = None, budgets: tuple[int, ...] = ADAPTIVE_BUDGETS,
                 max_inner_folds: int = 8):
        self.weight = weight
        self.budgets = budgets
        self.max_inner_folds = max_inner_folds

    def fit(self, train: pd.DataFrame) -> BlendSearch:
        """Fit the two parts (each choosing its hyper-parameters on inner folds), then choose the weight on the same
        folds, with the parts' preparations of each fold (an LR fit, a z-matrix) made once."""
        self._validate_params()
        similarity: dict[str, object] = {}
        warm: dict[str, object] = {}
        self.similarity_ = SimilaritySearch(budgets=self.budgets, max_inner_folds=self.max_inner_folds)._fit(
            train, similarity)
        self.warm_ = WarmStartLR(budgets=self.budgets, max_inner_folds=self.max_inner_folds)._fit(train, warm)
        inner = {name: (similarity[name], warm[name]) for name in similarity.keys() & warm.keys()}
        self._fit(train, inner, (self.similarity_.prepared_, self.warm_.prepared_))
        return self

    def _prepare(self, train: pd.DataFrame) -> tuple:
        return self.similarity_._prepare(train), self.warm_._prepare(train)

    def _view(self, prepared: tuple, candidates: pd.DataFrame) -> tuple:
        return self.similarity_._view(prepared[0], candidates), self.warm_._view(prepared[1], candidates)

    def _open(self, view: tuple, params: dict) -> Session:
        return _BlendSession(self.similarity_._open(view[0], self.similarity_.params_),
                             self.warm_._open(view[1], self.warm_.params_), params["weight"])
