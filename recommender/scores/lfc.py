"""LFC (Deshpande et al. 2021): correlation of the linear kernel F F' with the label-agreement matrix."""

from __future__ import annotations

import numpy as np

from recommender.errors import UserError
from recommender.scores.inputs import check_classes
from recommender.scores.spectrum import FeatureMatrix


def lfc_from(fm: FeatureMatrix, y: np.ndarray) -> float:
    """LFC in its exact linear form: <K, L> and ||K||_F from class sums and the small Gram, never the n x n kernel."""
    codes, n_classes = check_classes(y, fm.n)
    n = fm.n
    counts = np.bincount(codes, minlength=n_classes).astype(np.float64)
    sums = fm.class_sums(codes, n_classes)  # s_c = F' 1_c
    total = sums.sum(axis=0)
    # L = 2 [y_i = y_j] - 1, so <K, L> = 2 sum_c ||s_c||^2 - ||s||^2; ||F F'||_F = ||F'F||_F.
    inner = 2 * np.sum(sums**2) - total @ total
    kernel_mean = total @ total / n**2
    label_mean = (2 * counts @ counts - n**2) / n**2
    kernel_sq = np.sum(fm.gram**2) - n**2 * kernel_mean**2
    label_sq = n**2 * (1 - label_mean**2)
    if kernel_sq <= 0:
        raise UserError("features are constant across examples: LFC is undefined")
    return float((inner - n**2 * kernel_mean * label_mean) / np.sqrt(kernel_sq * label_sq))


def lfc(F: np.ndarray, y: np.ndarray) -> float:
    """LFC of features F (n, D) for class labels y (global-mean-centred kernels, Frobenius-normalised)."""
    return lfc_from(FeatureMatrix(F), y)
