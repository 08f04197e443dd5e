"""LR recommender (SPEC §3): S(z) = w0 + sum_i w_i z_i, fitted by ridge regression."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd

from recommender.models.base import PairRecommender
from recommender.models.estimator import check_fitted
from recommender.models.features import BLOCKS
from recommender.models.params import FEATURES, FLAG, TEXT, Rule, number
from recommender.models.saved import ArraySpec
from recommender.models.targets import check_target

if TYPE_CHECKING:
    from scipy import sparse


def block_sources(*names: str) -> list[str]:
    """The pair-table columns of the named feature blocks."""
    return [c for n in names for c in BLOCKS[n].categorical + BLOCKS[n].scalar]


class LinearRecommender(PairRecommender):
    """Ridge-regularised linear model on the encoded pair features, optionally with model x dataset-side products.

    Without the products every new dataset gets the same model ranking (its id block is zero); the products
    z_model * z_dataset_side let a model's predicted rank move with the dataset's group, classes and size, and,
    with the protocol block ``p``, with the protocol's facts (its history, examples, epochs, learning rate).
    The defaults (products on, alpha 10) won on inner dataset-grouped folds of SHiFT vision LOO training folds.
    """

    kind = "lr"
    PARAMETERS: ClassVar[dict[str, Rule]] = {
        "features": FEATURES, "alpha": number(0), "target": TEXT, "interactions": FLAG}

    def __init__(self, features: str = "d,m", alpha: float = 10.0, target: str = "zscore", interactions: bool = True):
        self.features = features
        self.alpha = alpha
        self.target = target
        self.interactions = interactions

    def _interaction_columns(self) -> tuple[np.ndarray, np.ndarray]:
        """Masks of the encoded model columns and dataset-side columns whose products the design adds."""
        sources = self.encoder_.sources()
        return np.isin(sources, block_sources("m_id", "m_side")), np.isin(sources, block_sources("d_side", "p"))

    def _design(self, Z: np.ndarray) -> np.ndarray:
        """Z, plus the products of each model column with each dataset-side column when interactions are on."""
        if not self.interactions:
            return Z
        model, side = (Z[:, mask] for mask in self._interaction_columns())
        return np.hstack([Z, (model[:, :, None] * side[:, None, :]).reshape(len(Z), -1)])

    def _fit_encoded(self, Z: np.ndarray, t: np.ndarray, datasets: pd.Series) -> None:
        """Closed-form ridge fit (the intercept is not penalised)."""
        from sklearn.linear_model import Ridge  # scikit-learn loads where an LR is fitted, not applied

        ridge = Ridge(alpha=self.alpha).fit(self._design(Z), t)
        self.weights_, self.bias_ = ridge.coef_, float(ridge.intercept_)

    def _sparse_design(self, Z: np.ndarray) -> sparse.csr_array:
        """`_design` as a sparse CSR array, the same columns in the same order, built without the dense products
        (a history of many models has wide, mostly zero ones: model one-hot columns times dataset facts)."""
        from scipy import sparse  # scipy loads where a sparse fit is made

        if not self.interactions:
            return sparse.csr_array(Z)
        model_mask, side_mask = self._interaction_columns()
        model, side = sparse.coo_array(Z[:, model_mask]), Z[:, side_mask]
        k = side.shape[1]
        # each nonzero model value times every side column, at column i * k + j as in `_design`'s reshape
        products = sparse.csr_array(((model.data[:, None] * side[model.row]).ravel(),
                                     (np.repeat(model.row, k), (model.col[:, None] * k + np.arange(k)).ravel())),
                                    shape=(len(Z), model.shape[1] * k))
        return sparse.hstack([sparse.csr_array(Z), products], format="csr")

    def _sparse_ridge(self, design: sparse.csr_array, t: np.ndarray, weights: np.ndarray | None = None
                      ) -> tuple[np.ndarray, float]:
        """The ridge of `_fit_encoded` (intercept not penalised; ``weights``: each row's weight in the squared loss,
        as scikit-learn's ``sample_weight``) on a sparse design: scipy's LSQR with damping sqrt(alpha) on the design
        centred by its weighted column means, applied as an operator, since the centred design is dense. Against
        scikit-learn's dense solve: 1e-11 on SHiFT vision's 2,293 columns. scipy's solver rather than scikit-learn's
        ``Ridge``, whose import alone costs `next` more than a second where a session refits."""
        from scipy.sparse.linalg import LinearOperator, lsqr  # scipy loads where a sparse fit is made

        w = np.ones(len(t)) if weights is None else np.asarray(weights, dtype=float)
        root, means, centre = np.sqrt(w), (design.T @ w) / w.sum(), float(w @ t / w.sum())
        centred = LinearOperator(design.shape, dtype=float, matvec=lambda v: root * (design @ v - means @ v),
                                 rmatvec=lambda u: design.T @ (root * u) - means * (root @ u))
        coef = lsqr(centred, root * (t - centre), damp=np.sqrt(self.alpha), atol=1e-14, btol=1e-14,
                    iter_lim=100_000)[0]
        return coef, centre - float(means @ coef)

    def fit_sparse(self, X: pd.DataFrame, sample_weight: np.ndarray | None = None) -> LinearRecommender:
        """`fit` solved on the sparse design (`_sparse_ridge`): the same model to about 1e-11, where a history of
        thousands of models makes the dense design and its solve too large. ``sample_weight``: each pair's weight in
        the squared loss (None: 1 each)."""
        Z, t, _ = self._encoded(X)
        self.weights_, self.bias_ = self._sparse_ridge(self._sparse_design(Z), t, _checked(sample_weight, len(t)))
        return self

    def reweighted(self, X: pd.DataFrame, sample_weight: np.ndarray) -> LinearRecommender:
        """A copy of this LR, fitted (`fit_sparse`) on ``X``, refitted with each pair of X weighted by
        ``sample_weight``. The encoder is kept, not fitted again: fitted on the same pairs it would be the same, and
        fitting it loads scikit-learn (a second), which a session's every step would pay."""
        check_fitted(self, "encoder_")
        t, _ = self._normalised(X, check_target(X["performance"], len(X)))
        out = copy.copy(self)  # the encoder and what a saved LR holds, shared: only the weights are replaced
        out.weights_, out.bias_ = self._sparse_ridge(self._sparse_design(self.encoder_.transform(X)), t,
                                                     _checked(sample_weight, len(t)))
        return out

    def held_out(self, X: pd.DataFrame, held: Sequence[np.ndarray]) -> list[np.ndarray]:
        """For each array of row positions in ``held``, those rows' predictions by this LR fitted on the other rows
        of the pair table ``X`` (its ``performance`` the target) as `fit_sparse` fits; the encoder is fitted once
        on the whole of X (on its features: no held-out result enters). ``self`` is left as it was."""
        scratch = type(self)(**self.get_params())
        Z, t, _ = scratch._encoded(X)  # the encoder fitted on every row, as `fit` fits it
        design = scratch._sparse_design(Z)
        out = []
        for rows in held:
            keep = np.setdiff1d(np.arange(len(t)), rows)
            coef, bias = self._sparse_ridge(design[keep], t[keep])
            out.append(np.asarray(design[rows] @ coef + bias, dtype=float))
        return out

    def _predict_encoded(self, Z: np.ndarray) -> np.ndarray:
        """Linear scores, computed as Ridge.predict computes them."""
        return self._design(Z) @ self.weights_ + self.bias_

    def _weight_spec(self) -> ArraySpec:
        """The design's weights and the bias, float64."""
        model, side = self._interaction_columns()
        width = self.encoder_.width + (int(model.sum()) * int(side.sum()) if self.interactions else 0)
        return {"coef": ((width,), "float64"), "intercept": ((), "float64")}

    def _get_weights(self) -> dict[str, np.ndarray]:
        """Weights and bias as arrays."""
        return {"coef": self.weights_, "intercept": np.asarray(self.bias_)}

    def _set_weights(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Install checked weights."""
        self.weights_, self.bias_ = arrays["coef"], float(arrays["intercept"])

    @property
    def coef_(self) -> pd.Series:
        """Fitted weights w_i of the encoded features (the interaction products, if any, are left out)."""
        names = self.encoder_.get_feature_names_out()
        return pd.Series(self.weights_[: len(names)], index=names)

    @property
    def intercept_(self) -> float:
        """Fitted bias w0."""
        return self.bias_


def _checked(sample_weight: np.ndarray | None, n: int) -> np.ndarray | None:
    """``sample_weight`` as floats, checked: one finite, non-negative weight per pair, not all zero (None: None)."""
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight, dtype=float)
    if w.shape != (n,) or not np.isfinite(w).all() or (w < 0).any() or not w.any():
        raise ValueError("sample_weight must hold one finite, non-negative weight per pair, not all zero")
    return w
