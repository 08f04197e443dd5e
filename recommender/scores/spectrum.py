"""A checked feature matrix whose Gram product and eigendecompositions are computed once and shared by scores."""

from __future__ import annotations

from functools import cached_property

import numpy as np
import scipy.linalg
import scipy.sparse

from recommender.scores.inputs import (
    BALANCE_BITS,
    check_balanced,
    check_features,
    column_scales,
    unit_scale,
)

OFFSET_RATIO = 100.0  # n ||mean||^2 over the centred sum of squares beyond which centring is done on F itself


def _eigh(gram: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (ascending) and eigenvectors of a PSD matrix; round-off eigenvalues are set to exact zeros."""
    values, vectors = scipy.linalg.eigh(gram, driver="evd", check_finite=False)
    # Same cut as numpy.linalg.matrix_rank: below it an eigenvalue is indistinguishable from zero.
    tol = max(values[-1], 0.0) * scale * np.finfo(np.float64).eps
    values = np.where(values > tol, values, 0.0)
    return values, vectors


def indicator(codes: np.ndarray, n_classes: int) -> scipy.sparse.csr_matrix:
    """The sparse (C, n) class-membership matrix: its product with an (n, D) array sums each class in O(n D)."""
    n = len(codes)
    return scipy.sparse.csr_matrix((np.ones(n), (codes, np.arange(n))), shape=(n_classes, n))


class FeatureMatrix:
    """Features F (n, D) in float64 with the products scores share, each computed on first use.

    Where n < D ("wide") every product lives on the n x n side (F F'), otherwise on the D x D side (F'F).
    F is kept multiplied by `scale`, the power of two that brings max |F| into [0.5, 1): exact, and the scores
    computed here do not depend on a global scale, so F x 1e200 neither overflows nor differs from F.
    """

    def __init__(self, F: np.ndarray) -> None:
        """Check F (finite, 2-D, n >= 2) and keep it as float64, rescaled by a power of two."""
        self.F = check_features(F)  # a float64 copy of the caller's array: scaled in place
        self.scale = unit_scale(self.F)
        self.F *= self.scale
        self.n, self.dim = self.F.shape
        self._class_sums: dict[bytes, np.ndarray] = {}
        self._balanced = False

    def check_balanced(self, score: str) -> None:
        """Raise UserError when F's columns differ too much in magnitude for `score` (see inputs.check_balanced)."""
        if not self._balanced:
            check_balanced(self.F, score)
            self._balanced = True

    @cached_property
    def equilibrated(self) -> FeatureMatrix:
        """F with every column scaled by a power of two to [0.5, 1) in magnitude, for scores invariant to it.

        Shares this matrix while the column magnitudes differ by less than 2^BALANCE_BITS; beyond that F'F
        cannot resolve the small columns, while the equilibrated F'F can.
        """
        scales = column_scales(self.F)
        if np.log2(scales.max() / scales.min()) <= BALANCE_BITS:
            return self
        return FeatureMatrix(self.F * scales)

    @property
    def wide(self) -> bool:
        """Whether n < D, so the n x n side is the small one."""
        return self.n < self.dim

    @cached_property
    def gram(self) -> np.ndarray:
        """F'F (D x D), or F F' (n x n) when n < D."""
        F = self.F
        return F @ F.T if self.wide else F.T @ F

    @cached_property
    def spectrum(self) -> tuple[np.ndarray, np.ndarray]:
        """Eigenvalues and eigenvectors of `gram` (the nonzero eigenvalues are those of both F'F and F F')."""
        return _eigh(self.gram, max(self.n, self.dim))

    @cached_property
    def mean(self) -> np.ndarray:
        """Column means of F (D,); a constant column's mean is its value exactly, so centring makes it zeros."""
        mean = self.F.mean(axis=0)
        constant = self.F.max(axis=0) == self.F.min(axis=0)  # a rounded sum of n equal values may miss it
        mean[constant] = self.F[0, constant]
        return mean

    @cached_property
    def centered_gram(self) -> np.ndarray:
        """Fc'Fc, or Fc Fc' when n < D, for Fc = F minus its column means.

        Derived from `gram` in O(side^2) unless the mean dominates the spread (the subtraction would then lose
        digits to cancellation), where it is recomputed from the centred features.
        """
        offset = self.n * self.mean @ self.mean
        if offset > OFFSET_RATIO * (np.einsum("ij,ij->", self.F, self.F) - offset):
            Fc = self.F - self.mean
            return Fc @ Fc.T if self.wide else Fc.T @ Fc
        if self.wide:
            k = self.gram
            row = k.mean(axis=1)
            return k - row[:, None] - row[None, :] + row.mean()
        return self.gram - self.n * np.outer(self.mean, self.mean)

    @cached_property
    def centered_row_norms(self) -> np.ndarray:
        """||x_i - mean||^2 for every example, centred block by block (no cancellation, no full copy of F)."""
        if self.wide:
            return np.diag(self.centered_gram).copy()
        step = max(1, 2**22 // self.dim)
        blocks = (self.F[i:i + step] - self.mean for i in range(0, self.n, step))
        return np.concatenate([np.einsum("ij,ij->i", block, block) for block in blocks])

    @cached_property
    def centered_spectrum(self) -> tuple[np.ndarray, np.ndarray]:
        """Eigenvalues and eigenvectors of `centered_gram`."""
        return _eigh(self.centered_gram, max(self.n, self.dim))

    def set_centered(self, gram: np.ndarray, spectrum: tuple[np.ndarray, np.ndarray]) -> None:
        """Use a centred Gram product and its eigendecomposition computed elsewhere (the torch path's batched
        eigh, with `_eigh`'s cut) as `centered_gram` and `centered_spectrum`, instead of computing them here.

        For matrices that already exist when the batch is decomposed: the scores still reach them only through
        the two properties. A cached_property takes a plain assignment (it has no setter to refuse it).
        """
        side = self.n if self.wide else self.dim
        values, vectors = spectrum
        if gram.shape != (side, side) or values.shape != (side,) or vectors.shape != (side, side):
            raise ValueError(f"a centred Gram of shape {gram.shape} with spectrum {values.shape}, {vectors.shape}: "
                             f"this matrix's side is {side}")
        self.centered_gram = gram
        self.centered_spectrum = (values, vectors)

    def class_sums(self, codes: np.ndarray, n_classes: int) -> np.ndarray:
        """Per-class sums of F, shape (C, D), cached per label vector."""
        key = codes.tobytes()
        if key not in self._class_sums:
            self._class_sums[key] = indicator(codes, n_classes) @ self.F
        return self._class_sums[key]
