"""Scores from a source model's outputs on the target data: LEEP (probabilities) and NCE (hard labels)."""

from __future__ import annotations

import numpy as np

from recommender.arrays import as_numeric
from recommender.errors import UserError
from recommender.scores.inputs import check_classes, one_hot

ROW_SUM_TOLERANCE = 1e-4  # float32 softmax outputs sum to 1 within ~1e-6; anything further off is not a distribution


def check_probabilities(P: np.ndarray, name: str = "source probabilities") -> np.ndarray:
    """P as a float64 (n, Cs) array of finite, non-negative rows summing to 1."""
    P = np.asarray(as_numeric(P, name), dtype=np.float64)
    if P.ndim != 2:
        raise UserError(f"{name} must be a 2-D (n, source classes) array, got shape {P.shape}")
    if P.shape[0] < 2:
        raise UserError(f"{name} need at least 2 examples, got n = {P.shape[0]}")
    if not np.isfinite(P).all():
        raise UserError(f"{name} contain NaN or infinite values")
    if (P < 0).any():
        raise UserError(f"{name} contain negative values")
    worst = float(np.abs(P.sum(axis=1) - 1).max())
    if worst > ROW_SUM_TOLERANCE:
        raise UserError(f"{name} rows must sum to 1 (off by up to {worst:.3g}): pass softmax outputs")
    return P


def leep(P: np.ndarray, y: np.ndarray) -> float:
    """LEEP (Nguyen et al. 2020): mean log of the empirical predictor sum_z P(z|x) Q(y|z) at the true label."""
    P = check_probabilities(P)
    codes, n_classes = check_classes(y, P.shape[0])
    joint = one_hot(codes, n_classes).T @ P / P.shape[0]  # Q(y, z), (C, Cs)
    marginal = joint.sum(axis=0)
    # A source class never predicted has P_iz = 0 for every i, so its (undefined) column never contributes.
    conditional = np.divide(joint, marginal, out=np.zeros_like(joint), where=marginal > 0)
    expected = np.einsum("iz,iz->i", P, conditional[codes])
    return float(np.mean(np.log(expected)))


def nce(z: np.ndarray, y: np.ndarray) -> float:
    """NCE (Tran et al. 2019): minus the conditional entropy H(Y | Z) of target labels given source labels."""
    z = np.asarray(z)
    if z.ndim == 2 and z.shape[1] > 1:
        raise UserError(f"source labels must be 1-D hard labels, got shape {z.shape} (use argmax of probabilities)")
    z = z.reshape(-1)
    codes, n_classes = check_classes(y, len(z))
    _, source = np.unique(z, return_inverse=True)
    n_source = int(source.max()) + 1
    counts = np.bincount(codes * n_source + source, minlength=n_classes * n_source).reshape(n_classes, n_source)
    joint = counts / len(z)
    marginal = joint.sum(axis=0, keepdims=True)
    present = joint > 0
    return float(np.sum(joint[present] * np.log((joint / marginal)[present])))
