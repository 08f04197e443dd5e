"""LogME: the maximum log evidence of a Bayesian linear model on the features (You et al. 2021, SPEC section 1)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from recommender.errors import UserError
from recommender.scores.inputs import (
    check_classes,
    check_targets,
    checked_value,
    one_hot,
)
from recommender.scores.spectrum import FeatureMatrix

TOLERANCE = 1e-10
MAX_ITER = 10_000
BOUNDARY = 1e-8  # a / b this far beyond the spectrum: the evidence is at its limit there
TASKS = ("classification", "regression")


@dataclass(frozen=True)
class EvidenceFit:
    """Per target column: evidence L(a*, b*) / n, prior precision a* (for the caller's F), noise precision b*.

    a* or b* is inf where the maximum lies at a limit.
    """

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


def _interior(lam, s, z2, rest, n):
    """Evidence L / n at a / b = lam with b at its optimum n / E(lam), where E = ||F m - y||^2 + lam m'm."""
    positive = s > 0
    # E(lam) / lam: one term per positive eigenvalue, plus what no positive direction explains.
    q = (z2[positive] / (lam + s[positive, None])).sum(axis=0) + rest / lam
    log_lam_terms = (np.count_nonzero(positive) - n) / 2 * np.log(lam)
    value = log_lam_terms - n / 2 * np.log(q) - np.log(lam + s[positive, None]).sum(axis=0) / 2
    beta = n / (lam * q)
    return (value + n / 2 * (np.log(n) - 1 - np.log(2 * np.pi))) / n, lam * beta, beta


def _at_zero(s, z2, rest, n):
    """Evidence L / n in the limit a / b -> 0 (b -> inf): finite only where F F' is invertible and fits y exactly."""
    positive = s > 0
    if np.count_nonzero(positive) < n:
        return np.full(z2.shape[1], -np.inf), np.zeros(z2.shape[1])
    q = (z2 / s[:, None]).sum(axis=0)
    value = -n / 2 * np.log(q) - np.log(s).sum() / 2 + n / 2 * (np.log(n) - 1 - np.log(2 * np.pi))
    return np.where(rest > 0, -np.inf, value / n), n / q


def _at_infinity(z2, outside, n):
    """Evidence L / n in the limit a -> inf: m = 0 and b = n / ||y||^2."""
    total = z2.sum(axis=0) + outside
    return (np.log(n / total) - 1 - np.log(2 * np.pi)) / 2, n / total


def unbounded_message(wide: bool, rank: int, n: int) -> str:
    """The error of a target column fitted exactly by rank-deficient features (rank < n), where LogME is unbounded."""
    # n < D: an exact fit needs rank < n, i.e. repeated examples; n >= D: the target is linear in F
    cause = ("repeated or linearly dependent examples with n < D; drop repeats or use more examples"
             if wide else f"rank {rank} < n = {n}: the target is a linear function of the features, "
                          "e.g. a label leaked into them")
    return f"LogME is unbounded: a target column is fitted exactly by rank-deficient features ({cause})"


def fit_evidence(fm: FeatureMatrix, Y: np.ndarray, FtY: np.ndarray | None = None) -> EvidenceFit:
    """Maximise the evidence for every column of Y at once by the fixed point of Algorithm 1, to convergence.

    The maximum may lie at a limit: a / b -> inf (y has no linear signal: m = 0) or a / b -> 0 (n <= D with
    F F' invertible: the noise-free interpolation, b -> inf). The iteration stops a column once a / b passes
    1e8 x the largest eigenvalue or 1e-8 x the smallest positive one, and LogME takes the best of the
    stationary point and the two limits.
    """
    fm.check_balanced("LogME")
    s, _ = fm.spectrum
    if s[-1] == 0:
        raise UserError("features are all zero: LogME is undefined")
    n = fm.n  # D drops out: the D - r zero eigenvalues add (D - r)/2 log a to both D/2 log a and log|A|/2
    z2, outside = _projections(fm, Y, FtY)
    low, high = s[s > 0][0] * BOUNDARY, s[-1] / BOUNDARY
    s2 = s[:, None]
    a = np.ones(Y.shape[1])
    b = np.ones(Y.shape[1])
    at_limit = np.zeros(Y.shape[1], dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for iteration in range(1, MAX_ITER + 1):  # noqa: B007 (the count is returned)
            g, mm, residual = _terms(a, b, s2, z2, outside)
            a_new, b_new = g / mm, (n - g) / residual
            at_limit |= ~((a_new / b_new > low) & (a_new / b_new < high))  # also catches 0/0 and inf/inf
            change = np.where(at_limit, 0.0, np.abs(a_new / b_new - a / b) / (a / b))
            a, b = np.where(at_limit, a, a_new), np.where(at_limit, b, b_new)
            if change.max() < TOLERANCE:
                break
        else:
            warnings.warn(f"LogME stopped after {MAX_ITER} iterations before reaching relative change {TOLERANCE}",
                          RuntimeWarning, stacklevel=2)
        rest = outside + z2[s == 0].sum(axis=0)
        rest = np.where(rest > 1e-12 * (z2.sum(axis=0) + outside), rest, 0.0)  # round-off of an exact fit
        rank = np.count_nonzero(s)
        if np.any((rest == 0) & (rank < n)):
            raise UserError(unbounded_message(fm.wide, int(rank), n))
        candidates = [_interior(a / b, s, z2, rest, n), _at_zero(s, z2, rest, n), _at_infinity(z2, outside, n)]
    values = np.nan_to_num(np.array([c[0] for c in candidates]), nan=-np.inf)
    best = values.argmax(axis=0)
    columns = np.arange(Y.shape[1])
    alpha = np.array([candidates[0][1], candidates[1][1], np.full(Y.shape[1], np.inf)])[best, columns]
    # L(a c^2, b; c F) = L(a, b; F): the evidence is scale-free, its prior precision is not.
    with np.errstate(over="ignore"):
        alpha = alpha / fm.scale / fm.scale
    beta = np.array([candidates[0][2], np.full(Y.shape[1], np.inf), candidates[2][1]])[best, columns]
    return EvidenceFit(values[best, columns], alpha, beta, iteration)


def logme_from(fm: FeatureMatrix, y: np.ndarray, task: str = "classification") -> float:
    """LogME on a prepared FeatureMatrix (shares its decomposition with other scores)."""
    if task not in TASKS:
        raise UserError(f"task must be one of {TASKS}, got {task!r}")
    if task == "classification":
        codes, n_classes = check_classes(y, fm.n)
        Y = one_hot(codes, n_classes)
        FtY = None if fm.wide else fm.class_sums(codes, n_classes).T
        return checked_value(fit_evidence(fm, Y, FtY).evidence.mean(), "LogME")
    return checked_value(fit_evidence(fm, check_targets(y, fm.n)).evidence.mean(), "LogME")


def logme(F: np.ndarray, y: np.ndarray, task: str = "classification") -> float:
    """LogME of features F (n, D) for class labels y, or targets y (n,) / (n, T) with task="regression"."""
    return logme_from(FeatureMatrix(F), y, task)
