"""LFC (Deshpande et al. 2021): correlation of the linear kernel F F' with the label-agreement matrix."""

from __future__ import annotations

import numpy as np

from recommender.errors import UserError
from recommender.scores.inputs import check_classes, checked_value
from recommender.scores.spectrum import FeatureMatrix


def lfc_from(fm: FeatureMatrix, y: np.ndarray) -> float:
    """LFC in an exact linear form from centred features: never the n x n kernel, no cancellation of the mean.

    With Fc = F - 1 m' (m the column means) and u = Fc m, the centred kernel is Kc = Fc Fc' + u 1' + 1 u', so
    ||Kc||^2 = ||Fc'Fc||^2 + 2 n ||u||^2 and <Kc, L> = <Fc Fc', L> + 2 sum_c (2 n_c - n) (Fc' 1_c) . m, where
    L = 2 [y_i = y_j] - 1 gives <Fc Fc', L> = 2 sum_c ||Fc' 1_c||^2 - ||Fc' 1||^2.
    """
    codes, n_classes = check_classes(y, fm.n)
    fm.check_balanced("LFC")
    n, mean = fm.n, fm.mean
    counts = np.bincount(codes, minlength=n_classes).astype(np.float64)
    sums = fm.class_sums(codes, n_classes) - counts[:, None] * mean  # Fc' 1_c
    total = sums.sum(axis=0)
    inner = 2 * np.sum(sums**2) - total @ total + 2 * (2 * counts - n) @ (sums @ mean)
    # ||Fc m||^2 from the small centred Gram, or directly on the n x n side
    u_sq = float(mean @ fm.centered_gram @ mean) if not fm.wide else float(np.sum(((fm.F - mean) @ mean) ** 2))
    kernel_sq = np.sum(fm.centered_gram**2) + 2 * n * max(u_sq, 0.0)
    if kernel_sq <= 0:
        raise UserError("features are constant across examples: LFC is undefined")
    label_mean = (2 * counts @ counts - n**2) / n**2
    label_sq = n**2 * (1 - label_mean**2)
    return checked_value(inner / np.sqrt(kernel_sq * label_sq), "LFC")


def lfc(F: np.ndarray, y: np.ndarray) -> float:
    """LFC of features F (n, D) for class labels y (global-mean-centred kernels, Frobenius-normalised)."""
    return lfc_from(FeatureMatrix(F), y)
