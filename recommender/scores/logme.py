"""LogME: the maximum log evidence of a Bayesian linear model on the features (You et al. 2021, SPEC section 1)."""

from __future__ import annotations

import numpy as np

from recommender.errors import UserError
from recommender.scores.evidence import EvidenceFit, maximise_evidence, projections
from recommender.scores.inputs import (
    check_classes,
    check_targets,
    checked_value,
    one_hot,
)
from recommender.scores.spectrum import FeatureMatrix

TASKS = ("classification", "regression")


def _projections(fm: FeatureMatrix, Y: np.ndarray, FtY: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Squared target coordinates z^2 (r, K) on the Gram eigenvectors, and the residual outside col(F) (K,)."""
    s, vectors = fm.spectrum
    FtY_batch = None if fm.wide else (fm.F.T @ Y if FtY is None else FtY)[None]  # a batch of one model
    z2, outside = projections(np, s[None], vectors[None], Y, FtY_batch)
    return z2[0], outside[0]


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
    stationary point and the two limits (`evidence.maximise_evidence`, here a batch of one model).
    """
    fm.check_balanced("LogME")
    s, _ = fm.spectrum
    if s[-1] == 0:
        raise UserError("features are all zero: LogME is undefined")
    z2, outside = _projections(fm, Y, FtY)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # the limits are inf, 0 and 0/0 on purpose
        fit, rank, unbounded = maximise_evidence(np, s[None], z2[None], outside[None], fm.n, np.array([fm.scale]))
    if unbounded[0]:
        raise UserError(unbounded_message(fm.wide, int(rank[0]), fm.n))
    return EvidenceFit(fit.evidence[0], fit.alpha[0], fit.beta[0], int(fit.iterations[0]))


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
