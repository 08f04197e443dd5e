"""The Gaussian combination of ranking sources by their reliability, `auto`'s arithmetic (`recommender.models.auto`).

Within one ranking group each source is z-scored over the candidates (`source_matrix`), and the true z-scored result
is jointly Gaussian with them: given each source's reliability (its correlation with the truth) and the sources'
correlations with each other, the posterior mean ranks the candidates and its variance is the spread (`posterior`).
`agreements` is what predicts a source's reliability on a new task; `pooled` moves it towards the correlation seen
on observed results."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recommender.models.session import MIN_CORRELATION

MAX_RELIABILITY = 0.95  # no source is taken for the truth itself
MIN_OBSERVED = MIN_CORRELATION  # observed results before their correlation with a source moves its reliability
MIN_VARIANCE = 0.05  # the posterior never claims to know a result to better than this (in z units squared)


def correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's r, 0 where either side has no spread."""
    x, y = x - x.mean(), y - y.mean()
    denominator = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / denominator) if denominator > 0 else 0.0



def agreements(z: np.ndarray) -> np.ndarray:
    """For each source (column of z), its correlation with the mean of the other sources; 0 with one source."""
    k = z.shape[1]
    if k < 2:
        return np.zeros(k)
    total = z.sum(axis=1)
    return np.array([correlation(z[:, s], (total - z[:, s]) / (k - 1)) for s in range(k)])


@dataclass(frozen=True)
class Posterior:
    """One ranking group's combination: the mean and standard deviation (z units) of each candidate's result, and
    each source's predicted reliability and weight (its coefficient in the mean)."""

    mean: np.ndarray
    std: float
    reliability: pd.Series
    weight: pd.Series


def posterior(z: np.ndarray, names: list[str], reliability: np.ndarray, shrinkage: float) -> Posterior:
    """The Gaussian posterior of the z-scored truth given the z-scored sources (columns of z) and their
    reliabilities; the sources' correlation matrix is shrunk towards the identity by ``shrinkage``."""
    r = np.clip(reliability, 0.0, MAX_RELIABILITY)
    c = np.corrcoef(z, rowvar=False) if z.shape[1] > 1 else np.ones((1, 1))
    c = (1 - shrinkage) * np.nan_to_num(np.atleast_2d(c)) + shrinkage * np.eye(len(r))
    coef = np.linalg.solve(c, r)
    explained = float(r @ coef)
    if explained > 1 - MIN_VARIANCE:  # reliabilities the sources' own correlations cannot all hold: scale them down
        coef *= (1 - MIN_VARIANCE) / explained
        explained = 1 - MIN_VARIANCE
    return Posterior(z @ coef, float(np.sqrt(1 - explained)), pd.Series(r, index=names), pd.Series(coef, index=names))


def source_matrix(values: pd.DataFrame) -> tuple[np.ndarray, list[int]]:
    """Each column z-scored over the rows (missing values at the centre, 0), and the columns available: those
    with at least two distinct known values."""
    z = np.zeros(values.shape)
    available = []
    for j, column in enumerate(values.columns):
        v = values[column].to_numpy(dtype=float)
        known = np.isfinite(v)
        if known.sum() >= 2 and np.ptp(v[known]) > 0:
            z[known, j] = (v[known] - v[known].mean()) / v[known].std()
            available.append(j)
    return z, available


def pooled(reliability: np.ndarray, z: np.ndarray, results: np.ndarray, strength: float) -> np.ndarray:
    """Each source's reliability moved towards its correlation with the observed results (Fisher z, the
    prediction worth ``strength`` results, the observation ``n - 3``); unchanged below ``MIN_OBSERVED`` results."""
    n = len(results)
    if n < MIN_OBSERVED or np.ptp(results) == 0:
        return reliability
    seen = np.clip([correlation(z[:, s], results) for s in range(z.shape[1])], -MAX_RELIABILITY, MAX_RELIABILITY)
    prior = np.arctanh(np.clip(reliability, -MAX_RELIABILITY, MAX_RELIABILITY))
    return np.tanh((strength * prior + (n - 3) * np.arctanh(seen)) / (strength + n - 3))
