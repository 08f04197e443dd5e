"""Training targets: performance normalised within each dataset, and the ranking measure used in tuning."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recommender.errors import UserError
from recommender.models.selection import ranking_taus
from recommender.normalise import zscore_within

TARGETS = ("zscore", "raw")


def check_target(y: object, n_rows: int) -> np.ndarray:
    """The performance vector as finite float64, or a one-line error."""
    values = np.asarray(y, dtype=np.float64).reshape(-1)
    if values.shape[0] != n_rows:
        raise UserError(f"performance has {values.shape[0]} values for {n_rows} pairs")
    if not np.isfinite(values).all():
        raise UserError("performance holds NaN or infinite values")
    return values


def check_target_name(how: object) -> None:
    """A one-line error unless ``how`` names a target normalisation."""
    if how not in TARGETS:
        raise UserError(f"unknown target {how!r}: use one of {', '.join(TARGETS)}")


def normalise_target(y: np.ndarray, datasets: pd.Series, how: str = "zscore") -> np.ndarray:
    """Performance z-scored within each group of ``datasets`` (``"zscore"``; a dataset, or a (dataset, protocol)
    label of ``recommender.normalise.ranking_groups``) or left as is (``"raw"``)."""
    check_target_name(how)
    if how == "raw":
        return np.asarray(y, dtype=np.float64)
    values = pd.Series(np.asarray(y, dtype=np.float64), index=datasets.index)
    return zscore_within(values, datasets.astype(str)).to_numpy()


def mean_weighted_tau(pred: np.ndarray, y: np.ndarray, datasets: pd.Series) -> float:
    """The weighted Kendall tau of each rankable group of ``datasets`` (a dataset or a (dataset, protocol) label),
    averaged; NaN where no group is rankable.

    Groups count as evaluation counts them (`recommender.models.selection.ranking_taus`: at least 3 models and
    performance that is not constant), so tuning optimises the measure that is reported."""
    taus = ranking_taus(pred, y, datasets.astype(str).to_numpy())
    return float(np.mean(taus)) if taus else float("nan")
