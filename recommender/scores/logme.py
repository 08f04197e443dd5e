"""LogME: the maximum log evidence of a Bayesian linear model on the features (You et al. 2021, SPEC section 1)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from recommender.errors import UserError
from recommender.scores.inputs import check_classes, check_targets, one_hot
from recommender.scores.spectrum import FeatureMatrix

TOLERANCE = 1e-10
MAX_ITER = 10_000
TASKS = ("classification", "regression")


@dataclass(frozen=True)
class EvidenceFit:
    """Per target column: evidence L(a*, b*) / n, the prior precision a*, the noise precision b*."""

    evidence: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    iterations: int


def _projections(fm: FeatureMatrix, Y: np.ndarray, FtY: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Squared target coordinates z^2 (r, K) on the Gram eigenvectors, and the residual outside col(F) (K,)."""
    s, vectors = fm.spectrum
    if fm.wide:
        # The n x n eigenvectors span R^n: nothing of Y lies outside them.
        z = vectors.T @ Y
        return z * z, np.zeros(Y.shape[1])
    w = vectors.T @ (fm.F.T @ Y if FtY is None else FtY)  # coordinates of F'y: w_i = sigma_i z_i
    z2 = np.zeros_like(w)
    positive = s > 0
    z2[positive] = w[positive] ** 2 / s[positive, None]
    outside = np.einsum("ij,ij->j", Y, Y) - z2.sum(axis=0)
    return z2, np.maximum(outside, 0.0)


def _terms(a, b, s, z2, outside):
    """g, m'm and ||F m - y||^2 for every column at once, with m = b A^-1 F'y in the eigenbasis."""
    denom = a + b * s
    g = (b * s / denom).sum(axis=0)
    inv2 = z2 / denom**2
    mm = b**2 * (s * inv2).sum(axis=0)
    residual = outside + a**2 * inv2.sum(axis=0)
    return g, mm, residual


def fit_evidence(fm: FeatureMatrix, Y: np.ndarray, FtY: np.ndarray | None = None) -> EvidenceFit:
    """Maximise the evidence for every column of Y at once by the fixed point of Algorithm 1, to convergence."""
    s, _ = fm.spectrum
    if s[-1] == 0:
        raise UserError("features are all zero: LogME is undefined")
    n, dim = fm.n, fm.dim
    z2, outside = _projections(fm, Y, FtY)
    # Beyond this ratio a/b the prior swamps every eigen-direction (b s / a < eps): the evidence has reached its
    # limit a -> inf, where a column with no linear signal has its maximum.
    flat_ratio = s[-1] / np.finfo(np.float64).eps
    s = s[:, None]
    a = np.ones(Y.shape[1])
    b = np.ones(Y.shape[1])
    flat = np.zeros(Y.shape[1], dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for iteration in range(1, MAX_ITER + 1):
            g, mm, residual = _terms(a, b, s, z2, outside)
            a_new, b_new = g / mm, (n - g) / residual
            flat |= (mm == 0) | (a_new / b_new > flat_ratio)
            change = np.where(flat, 0.0, np.abs(a_new / b_new - a / b) / (a / b))
            a, b = np.where(flat, a, a_new), np.where(flat, b, b_new)
            if not np.isfinite(change).all() or change.max() < TOLERANCE:
                break
        else:
            warnings.warn(f"LogME stopped after {MAX_ITER} iterations before reaching relative change {TOLERANCE}",
                          RuntimeWarning, stacklevel=2)
        if not (np.isfinite(a).all() and np.isfinite(b).all()):
            raise UserError("LogME diverged: a target column is fitted exactly by the features")
        _, mm, residual = _terms(a, b, s, z2, outside)
        # All D eigenvalues count: the D - r zeros beyond the small side add (D - r) log a to log|A|.
        log_det = np.log(a + b * s).sum(axis=0) + (dim - s.shape[0]) * np.log(a)
        evidence = (dim / 2 * np.log(a) + n / 2 * np.log(b) - n / 2 * np.log(2 * np.pi)
                    - b / 2 * residual - a / 2 * mm - log_det / 2)
    # At a = inf: m = 0, b = n / ||y||^2, and the a-terms cancel.
    norms = z2.sum(axis=0) + outside
    limit = n / 2 * (np.log(n / norms) - np.log(2 * np.pi) - 1)
    return EvidenceFit(np.where(flat, limit, evidence) / n, np.where(flat, np.inf, a), b, iteration)


def logme_from(fm: FeatureMatrix, y: np.ndarray, task: str = "classification") -> float:
    """LogME on a prepared FeatureMatrix (shares its decomposition with other scores)."""
    if task not in TASKS:
        raise UserError(f"task must be one of {TASKS}, got {task!r}")
    if task == "classification":
        codes, n_classes = check_classes(y, fm.n)
        Y = one_hot(codes, n_classes)
        FtY = None if fm.wide else fm.class_sums(codes, n_classes).T
        return float(fit_evidence(fm, Y, FtY).evidence.mean())
    return float(fit_evidence(fm, check_targets(y, fm.n)).evidence.mean())


def logme(F: np.ndarray, y: np.ndarray, task: str = "classification") -> float:
    """LogME of features F (n, D) for class labels y, or targets y (n,) / (n, T) with task="regression"."""
    return logme_from(FeatureMatrix(F), y, task)
