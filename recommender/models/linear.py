"""LR recommender (SPEC §3): S(z) = w0 + sum_i w_i z_i, fitted by ridge regression."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge

from recommender.errors import UserError
from recommender.models.base import PairRecommender


class LinearRecommender(PairRecommender):
    """Ridge-regularised linear model on the encoded pair features."""

    kind = "lr"

    def __init__(self, features: str = "d,m", alpha: float = 1.0, target: str = "zscore"):
        self.features = features
        self.alpha = alpha
        self.target = target

    def _fit_encoded(self, Z: np.ndarray, t: np.ndarray, datasets: pd.Series) -> None:
        """Closed-form ridge fit (the intercept is not penalised)."""
        if not (np.isfinite(self.alpha) and self.alpha >= 0):
            raise UserError(f"alpha must be finite and >= 0, got {self.alpha}")
        self.ridge_ = Ridge(alpha=self.alpha).fit(Z, t)

    def _predict_encoded(self, Z: np.ndarray) -> np.ndarray:
        """Linear scores."""
        return self.ridge_.predict(Z)

    @property
    def coef_(self) -> pd.Series:
        """Fitted weights w_i, indexed by encoded feature name."""
        return pd.Series(self.ridge_.coef_, index=self.encoder_.get_feature_names_out())

    @property
    def intercept_(self) -> float:
        """Fitted bias w0."""
        return float(self.ridge_.intercept_)
