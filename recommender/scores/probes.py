"""Task-aware proxies of "Which Model to Transfer?": leave-one-out kNN accuracy and a cross-validated linear probe."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from recommender.errors import UserError
from recommender.scores.inputs import (
    check_balanced,
    check_classes,
    check_features,
    check_targets,
    checked_value,
    column_scales,
    unit_scale,
)

SEED = 0


def _vote(neighbour_codes: np.ndarray, n_classes: int) -> np.ndarray:
    """Majority label of each row of neighbours (nearest first); a tie goes to the tied label seen nearest."""
    rows = np.arange(len(neighbour_codes))
    counts = np.zeros((len(neighbour_codes), n_classes), dtype=np.int64)
    np.add.at(counts, (rows[:, None], neighbour_codes), 1)
    tied = counts == counts.max(axis=1, keepdims=True)
    first = tied[rows[:, None], neighbour_codes].argmax(axis=1)  # first neighbour whose label is among the top
    return neighbour_codes[rows, first]


def knn_accuracy(F: np.ndarray, y: np.ndarray, k: int = 1) -> float:
    """Leave-one-out k-nearest-neighbour accuracy (Euclidean, fraction in [0, 1]) of F for class labels y.

    F is rescaled by a power of two (exact; neighbours do not depend on a global scale) so that squared
    distances neither overflow nor underflow.
    """
    F = check_features(F)
    F *= unit_scale(F)
    check_balanced(F, "kNN")
    codes, n_classes = check_classes(y, len(F))
    if not 1 <= k < len(F):
        raise UserError(f"k must be between 1 and n - 1 = {len(F) - 1}, got {k}")
    # kneighbors() without a query excludes each point from its own neighbours, even among duplicates.
    _, index = NearestNeighbors(n_neighbors=k).fit(F).kneighbors()
    return checked_value(np.mean(_vote(codes[index], n_classes) == codes), "kNN")


def linear_probe_accuracy(F: np.ndarray, y: np.ndarray, folds: int = 5, task: str = "classification") -> float:
    """Cross-validated linear probe on standardised F: logistic accuracy, or ridge R^2 for task="regression".

    Standardising makes the probe independent of each column's scale: columns are first brought to magnitude
    ~1 by powers of two (exact), so the scaler's variances cannot overflow.
    """
    F = check_features(F)
    F *= column_scales(F)
    if folds < 2:
        raise UserError(f"folds must be at least 2, got {folds}")
    if task == "regression":
        Y = check_targets(y, len(F))
        split = KFold(folds, shuffle=True, random_state=SEED)
        model = make_pipeline(StandardScaler(), Ridge())
        return checked_value(cross_val_score(model, F, Y, cv=split, scoring="r2").mean(), "linear probe")
    codes, _ = check_classes(y, len(F))
    smallest = int(np.bincount(codes).min())
    if smallest < 2:
        raise UserError("the smallest class has 1 example: a stratified linear probe needs 2 per class")
    # Every fold must see every class: folds are capped at the smallest class size.
    split = StratifiedKFold(min(folds, smallest), shuffle=True, random_state=SEED)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    return checked_value(cross_val_score(model, F, codes, cv=split, scoring="accuracy").mean(), "linear probe")
