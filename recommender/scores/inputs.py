"""Validation of score inputs: every bad input becomes one clear UserError (a ValueError)."""

from __future__ import annotations

import numpy as np

from recommender.arrays import as_numeric
from recommender.errors import UserError


def check_features(F: np.ndarray, name: str = "features", upcast: bool = True) -> np.ndarray:
    """F as a finite (n, D) array with n >= 2, upcast to float64 so sums accumulate in float64 (unless upcast=False)."""
    F = as_numeric(F, name)
    if F.ndim != 2:
        raise UserError(f"{name} must be a 2-D (n, D) array, got shape {F.shape}")
    n, d = F.shape
    if n < 2:
        raise UserError(f"{name} need at least 2 examples, got n = {n}")
    if d < 1:
        raise UserError(f"{name} have no columns")
    if not np.isfinite(F).all():
        bad = int(np.count_nonzero(~np.isfinite(F)))
        raise UserError(f"{name} contain {bad} NaN or infinite values")
    return np.ascontiguousarray(F, dtype=np.float64) if upcast else F


def _check_length(values: np.ndarray, n: int, name: str) -> None:
    """Raise when values do not have one entry per example."""
    if values.shape[0] != n:
        raise UserError(f"{name} have {values.shape[0]} rows but there are {n} examples (length mismatch)")


def check_classes(y: np.ndarray, n: int, name: str = "labels") -> tuple[np.ndarray, int]:
    """Class labels as codes 0..C-1 and C; regression targets or fewer than 2 classes are errors."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise UserError(f"{name} for a class-based score must be 1-D class labels, got shape {y.shape} "
                        "(regression or multi-label targets: use task='regression' with logme or linear)")
    _check_length(y, n, name)
    if y.dtype.kind == "f":
        if not np.isfinite(y).all():
            raise UserError(f"{name} contain NaN or infinite values")
        if not np.array_equal(y, np.round(y)):
            raise UserError(f"{name} are not class labels (non-integer values: regression targets?); "
                            "this score needs classes")
    classes, codes = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise UserError(f"{name} hold {len(classes)} class: a class-based score needs at least 2 classes")
    return codes.astype(np.int64), len(classes)


def check_targets(Y: np.ndarray, n: int, name: str = "targets") -> np.ndarray:
    """Regression (or 0/1 multi-label) targets as a finite float64 (n, T) array with no constant-zero column."""
    Y = as_numeric(Y, name).astype(np.float64)
    if Y.ndim == 1:
        Y = Y[:, None]
    if Y.ndim != 2:
        raise UserError(f"{name} must be (n,) or (n, T), got shape {Y.shape}")
    _check_length(Y, n, name)
    if not np.isfinite(Y).all():
        raise UserError(f"{name} contain NaN or infinite values")
    zero = np.flatnonzero(~Y.any(axis=0))
    if len(zero):
        raise UserError(f"{name} column {int(zero[0])} is all zeros: its evidence is unbounded")
    return Y


def one_hot(codes: np.ndarray, n_classes: int) -> np.ndarray:
    """The (n, C) float64 0/1 matrix of class codes."""
    out = np.zeros((len(codes), n_classes))
    out[np.arange(len(codes)), codes] = 1.0
    return out
