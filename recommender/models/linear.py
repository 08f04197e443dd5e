"""LR recommender (SPEC §3): S(z) = w0 + sum_i w_i z_i, fitted by ridge regression."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge

from recommender.errors import UserError
from recommender.models.base import PairRecommender
from recommender.models.features import BLOCKS


def block_sources(*names: str) -> list[str]:
    """The pair-table columns of the named feature blocks."""
    return [c for n in names for c in BLOCKS[n].categorical + BLOCKS[n].scalar]


class LinearRecommender(PairRecommender):
    """Ridge-regularised linear model on the encoded pair features, optionally with model x dataset-side products.

    Without the products every new dataset gets the same model ranking (its id block is zero); the products
    z_model * z_dataset_side let a model's predicted rank move with the dataset's group, classes and size.
    The defaults (products on, alpha 10) won on inner dataset-grouped folds of SHiFT vision LOO training folds.
    """

    kind = "lr"

    def __init__(self, features: str = "d,m", alpha: float = 10.0, target: str = "zscore", interactions: bool = True):
        self.features = features
        self.alpha = alpha
        self.target = target
        self.interactions = interactions

    def _design(self, Z: np.ndarray) -> np.ndarray:
        """Z, plus the products of each model column with each dataset-side column when interactions are on."""
        if not self.interactions:
            return Z
        sources = self.encoder_.sources()
        model = Z[:, np.isin(sources, block_sources("m_id", "m_side"))]
        side = Z[:, np.isin(sources, block_sources("d_side"))]
        return np.hstack([Z, (model[:, :, None] * side[:, None, :]).reshape(len(Z), -1)])

    def _fit_encoded(self, Z: np.ndarray, t: np.ndarray, datasets: pd.Series) -> None:
        """Closed-form ridge fit (the intercept is not penalised)."""
        if not (np.isfinite(self.alpha) and self.alpha >= 0):
            raise UserError(f"alpha must be finite and >= 0, got {self.alpha}")
        self.ridge_ = Ridge(alpha=self.alpha).fit(self._design(Z), t)

    def _predict_encoded(self, Z: np.ndarray) -> np.ndarray:
        """Linear scores."""
        return self.ridge_.predict(self._design(Z))

    @property
    def coef_(self) -> pd.Series:
        """Fitted weights w_i of the encoded features (the interaction products, if any, are left out)."""
        names = self.encoder_.get_feature_names_out()
        return pd.Series(self.ridge_.coef_[: len(names)], index=names)

    @property
    def intercept_(self) -> float:
        """Fitted bias w0."""
        return float(self.ridge_.intercept_)
