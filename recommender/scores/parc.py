"""PARC (Bolya et al. 2021): Spearman correlation of the feature and label dissimilarity matrices."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.stats
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from recommender.errors import UserError
from recommender.scores.inputs import (
    check_balanced,
    check_classes,
    check_features,
    checked_value,
    column_scales,
    unit_scale,
)

MAX_EXAMPLES = 5_000  # 12.5 M pairs: ~2 s and ~0.4 GB; beyond it the O(n^2) pairs are subsampled
BLOCK_ROWS = 512


def stratified_subsample(codes: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Sorted indices of a seeded subsample of `size` examples keeping the class proportions."""
    keep, _ = train_test_split(np.arange(len(codes)), train_size=size, stratify=codes, random_state=seed)
    return np.sort(keep)


def _upper_pairs(Z: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every pair i < j (row-major order): 1 - corr(Z_i, Z_j) and whether y_i != y_j, built in row blocks."""
    n = len(Z)
    dissimilarity = np.empty(n * (n - 1) // 2)
    different = np.empty(n * (n - 1) // 2, dtype=bool)
    at = 0
    for start in range(0, n - 1, BLOCK_ROWS):
        stop = min(start + BLOCK_ROWS, n)
        upper = np.arange(start, n)[None, :] > np.arange(start, stop)[:, None]
        block = 1 - Z[start:stop] @ Z[start:].T
        count = int(upper.sum())
        dissimilarity[at:at + count] = block[upper]
        different[at:at + count] = (codes[start:stop, None] != codes[None, start:])[upper]
        at += count
    return dissimilarity, different


def parc(F: np.ndarray, y: np.ndarray, pca_dim: int | None = None,
         max_examples: int = MAX_EXAMPLES, seed: int = 0) -> float:
    """PARC x 100 of features F (n, D) for class labels y; above max_examples a seeded stratified subsample is used."""
    F = check_features(F, upcast=False)  # upcast after subsampling: a float64 copy of all n rows is not needed
    codes, _ = check_classes(y, len(F))
    if len(F) > max_examples:
        warnings.warn(f"PARC: n = {len(F)} > {max_examples}: using a stratified subsample of {max_examples} "
                      f"examples (seed {seed}) to bound its O(n^2) pairs", UserWarning, stacklevel=2)
        keep = stratified_subsample(codes, max_examples, seed)
        F, codes = F[keep], codes[keep]
    F = F.astype(np.float64)
    # Exact powers of two, so their variances cannot overflow: standardising undoes a scale per column, while
    # PCA (before it) is only invariant to one global scale.
    F *= unit_scale(F) if pca_dim is not None else column_scales(F)
    if pca_dim is not None:
        check_balanced(F, "PARC with PCA")  # the SVD resolves small columns only to eps x the largest
        F = PCA(n_components=min(pca_dim, *F.shape), svd_solver="full").fit_transform(F)
    Z = StandardScaler().fit_transform(F)
    Z -= Z.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(Z, axis=1)
    if (norms == 0).any():
        raise UserError("PARC: an example has the same standardised value in every feature (correlation undefined)")
    Z /= norms[:, None]
    dissimilarity, different = _upper_pairs(Z, codes)
    share = different.mean()
    if share == 1.0:
        raise UserError("PARC: every example has its own class, so the label dissimilarity is constant")
    # Label dissimilarity takes two values (0 for same class, C/(C-1) otherwise): Spearman's rho with it is the
    # Pearson correlation of the feature ranks with the binary indicator, from the mean rank of each group.
    ranks = scipy.stats.rankdata(dissimilarity)
    if ranks.min() == ranks.max():
        raise UserError("PARC: every pair of examples is equally dissimilar, so the rank correlation is undefined")
    covariance = share * (ranks[different].mean() - ranks.mean())
    rho = covariance / (ranks.std() * np.sqrt(share * (1 - share)))
    return checked_value(100 * rho, "PARC")
