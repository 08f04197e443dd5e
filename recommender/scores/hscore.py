"""H-score (Bao et al. 2019) and its Ledoit-Wolf regularised form (Ibrahim et al. 2022)."""

from __future__ import annotations

import numpy as np

from recommender.errors import UserError
from recommender.scores.inputs import check_classes, checked_value
from recommender.scores.spectrum import FeatureMatrix, indicator


def ledoit_wolf_shrinkage(fm: FeatureMatrix) -> float:
    """The Ledoit-Wolf shrinkage of the covariance of F (scikit-learn's estimator), from the shared Gram."""
    n, dim = fm.n, fm.dim
    centered = fm.centered_gram
    row_norms = fm.centered_row_norms
    trace_mean = row_norms.sum() / (n * dim)  # mu in Ledoit & Wolf: tr(S) / D with S = Fc'Fc / n
    squared = np.sum(centered**2) / n**2  # ||S||_F^2, equal on the n x n and D x D sides
    beta = (np.sum(row_norms**2) / n - squared) / (dim * n)
    delta = (squared - dim * trace_mean**2) / dim
    if delta <= 0:
        return 0.0
    return float(min(beta, delta) / delta) if beta > 0 else 0.0


def _between_class_coordinates(fm: FeatureMatrix, codes: np.ndarray, n_classes: int) -> np.ndarray:
    """q_i = v_i' cov(G) v_i on each eigenvector v_i of the centered Gram (ddof = 1, as np.cov)."""
    values, vectors = fm.centered_spectrum
    counts = np.bincount(codes, minlength=n_classes).astype(np.float64)
    if fm.wide:
        # v_i = Fc'u_i / sigma_i, so v_i'(mean_c - mean) = sigma_i * (sum of u_i over class c) / n_c.
        per_class = indicator(codes, n_classes) @ vectors
        return values * (per_class**2 / counts[:, None]).sum(axis=0) / (fm.n - 1)
    diffs = fm.class_sums(codes, n_classes) / counts[:, None] - fm.mean
    return counts @ (diffs @ vectors) ** 2 / (fm.n - 1)


def hscore_from(fm: FeatureMatrix, y: np.ndarray, regularized: bool = False) -> float:
    """H-score on a prepared FeatureMatrix: tr(pinv(cov F) cov G) in the eigenbasis of cov F.

    The plain H-score is invariant to scaling each column, so it is computed on the equilibrated F (exact powers
    of two), where small columns next to large ones keep their digits. The regularised one is not: Ledoit-Wolf
    shrinks towards a multiple of I, so it refuses columns too unequal for float64 (check_balanced).
    """
    codes, n_classes = check_classes(y, fm.n)
    name = "regularized H-score" if regularized else "H-score"
    if regularized:
        fm.check_balanced(name)
    else:
        fm = fm.equilibrated
    values, _ = fm.centered_spectrum
    if values[-1] == 0:
        raise UserError("features are constant: the H-score is undefined")
    between = _between_class_coordinates(fm, codes, n_classes)
    kept = values > 0  # pinv: directions of zero variance carry no between-class variance either
    if regularized:
        shrinkage = ledoit_wolf_shrinkage(fm)
        trace_mean = values.sum() / (fm.n * fm.dim)
        # S = (1 - d) cov0 + d mu I (cov0 with ddof = 0, scikit-learn's convention); cov G is scaled by 1 - d.
        shrunk = (1 - shrinkage) * values[kept] / fm.n + shrinkage * trace_mean
        return checked_value(np.sum((1 - shrinkage) * between[kept] / shrunk), name)
    return checked_value(np.sum(between[kept] / (values[kept] / (fm.n - 1))), name)


def hscore(F: np.ndarray, y: np.ndarray, regularized: bool = False) -> float:
    """H-score of features F (n, D) for class labels y; regularized=True uses Ledoit-Wolf shrinkage."""
    return hscore_from(FeatureMatrix(F), y, regularized)
