"""Validation of score inputs: every bad input becomes one clear UserError (a ValueError)."""

from __future__ import annotations

import numpy as np

from recommender.arrays import as_numeric
from recommender.errors import UserError

BALANCE_BITS = 26  # log2 of the largest over the typical column magnitude that F'F still resolves (check_balanced)


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


def unit_scale(values: np.ndarray) -> float:
    """The power of two 2^-e that brings max |values| into [0.5, 1) (1 for all zeros).

    Multiplying by it is exact, so F and F x 2^k give bitwise equal scale-invariant scores, and squares and
    products of the scaled values can neither overflow nor underflow where the magnitudes are alike.
    """
    peak = max(float(values.max(initial=0.0)), -float(values.min(initial=0.0)))
    return float(np.ldexp(1.0, -np.frexp(peak)[1])) if peak > 0 else 1.0


def column_scales(F: np.ndarray) -> np.ndarray:
    """unit_scale of every column of F (D,): dividing columns by powers of two leaves standardised F unchanged."""
    peaks = np.maximum(F.max(axis=0), -F.min(axis=0))
    return np.where(peaks > 0, np.ldexp(1.0, -np.frexp(peaks)[1]), 1.0)


def check_balanced(F: np.ndarray, score: str) -> None:
    """Refuse F whose typical column is too small next to its largest column for float64 to resolve it.

    Beyond 2^26 (1/sqrt(eps)) the typical column's squares fall below the round-off of the largest one's, so F'F
    and distances hold the large columns alone: the score would silently be that of a different matrix. The
    typical magnitude is the median of the nonzero columns' binary exponents (all-zero columns carry nothing).
    """
    peaks = np.maximum(F.max(axis=0), -F.min(axis=0))
    exponents = np.frexp(peaks[peaks > 0])[1]
    if len(exponents) < 2:
        return
    spread = int(exponents.max()) - float(np.median(exponents))
    if spread > BALANCE_BITS:
        typical = float(np.median(exponents))
        big = np.flatnonzero((peaks > 0) & (np.frexp(peaks)[1] > typical + BALANCE_BITS))
        shown = ", ".join(map(str, big[:5])) + (", ..." if len(big) > 5 else "")
        raise UserError(f"{score}: feature column(s) {shown} are about 1e{spread * np.log10(2):.0f} times "
                        f"larger than the typical column; float64 cannot resolve the other columns next to them "
                        f"(limit 2^{BALANCE_BITS}): rescale or drop those columns")


def checked_value(value: float, score: str) -> float:
    """A score's value as a float, or one clear error instead of a NaN or infinite result."""
    value = float(value)
    if not np.isfinite(value):
        raise UserError(f"{score} could not be computed on these features (it came out {value}): "
                        "check them for extreme or degenerate values")
    return value


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
    if y.dtype.kind in "cmMV":
        raise UserError(f"{name} must be class labels (numbers or strings), got dtype {y.dtype}")
    if y.dtype.kind == "O":
        _check_objects(y, name)
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


def _check_objects(y: np.ndarray, name: str) -> None:
    """Refuse missing values and a mix of strings and numbers in an object array of labels."""
    for row, value in enumerate(y, start=1):
        if value is None or (isinstance(value, float) and not np.isfinite(value)):
            raise UserError(f"{name}: row {row}: missing label ({value!r})")
    kinds = {isinstance(value, str) for value in y}
    if len(kinds) > 1:
        row = next(i for i, value in enumerate(y, start=1) if isinstance(value, str) != isinstance(y[0], str))
        raise UserError(f"{name}: row {row}: {y[row - 1]!r} mixes strings and numbers among the labels")
    try:
        np.unique(y)
    except TypeError as exc:
        raise UserError(f"{name} cannot be compared as class labels ({exc})") from None


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
