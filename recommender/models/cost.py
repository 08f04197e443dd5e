"""The expected fine-tuning cost of a (model, configuration) on a dataset, in seconds, from the history's jobs.

A ridge regression of log seconds per example-epoch (the job's seconds over its training examples times epochs,
so a protocol with more examples or epochs costs proportionally more) on a per-protocol offset, the model facts
(log parameters, log GMACs, log input size; a missing one mean-imputed with an indicator), the dataset's log
classes, and the model and dataset ids (shrunk by the ridge, so a model or dataset new to the history gets its
facts' prediction). The spread is the standard deviation of the log residuals on datasets held out of the fit
(leave-one-dataset-out folds of the fit's jobs): a new dataset's cost is known to within a factor of exp(spread).
numpy only, so `recommend` answers without scikit-learn.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

from recommender.contracts import hparam_column
from recommender.errors import UserError
from recommender.models.estimator import Estimator, check_fitted
from recommender.models.params import Rule, Validated, number

LOG_FACTS = ("params_m", "gmacs", "input_size", "classes")  # log-scaled, mean-imputed, with a missing indicator
IDS = ("protocol", "model", "dataset")  # one-hot, ridge-shrunk: an id never seen in fit adds nothing


def work(jobs: pd.DataFrame) -> np.ndarray:
    """Training examples times epochs of each row (1 where either is unknown): the unit seconds are normalised by."""
    examples = pd.to_numeric(jobs["examples"], errors="coerce").to_numpy(dtype=float)
    epochs = pd.to_numeric(jobs[hparam_column("epochs")], errors="coerce").to_numpy(dtype=float)
    out = np.where(np.isfinite(examples) & (examples > 0), examples, 1.0)
    return out * np.where(np.isfinite(epochs) & (epochs > 0), epochs, 1.0)


def timed(jobs: pd.DataFrame) -> pd.DataFrame:
    """The jobs that logged a positive, finite number of seconds."""
    seconds = pd.to_numeric(jobs["seconds"], errors="coerce")
    return jobs[np.isfinite(seconds) & (seconds > 0)]


def _log_facts(jobs: pd.DataFrame) -> np.ndarray:
    """log of each of ``LOG_FACTS`` per row; NaN where unknown or not positive."""
    values = np.column_stack([pd.to_numeric(jobs[c], errors="coerce").to_numpy(dtype=float) for c in LOG_FACTS])
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(values.reshape(len(jobs), len(LOG_FACTS)))
    return np.where(np.isfinite(logs), logs, np.nan)


class CostModel(Validated, Estimator):
    """Expected seconds of fine-tuning jobs (rows of `recommender.history.job_table`); ``alpha`` is the ridge
    penalty on every coefficient but the intercept (1.0 won over 0.1, 10 and 100 on inner leave-one-dataset-out
    folds of SHiFT vision VTAB-1k's training folds, `experiments/cost_tables.py`)."""

    PARAMETERS: ClassVar[dict[str, Rule]] = {"alpha": number(0)}

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha

    def _design(self, jobs: pd.DataFrame) -> np.ndarray:
        """Intercept, standardised log facts, missing indicators, then the one-hot ids of fit's vocabularies."""
        logs = _log_facts(jobs)
        missing = np.isnan(logs)
        scaled = (np.where(missing, self.mean_, logs) - self.mean_) / self.scale_
        ids = []
        for column, vocabulary in zip(IDS, self.vocabularies_, strict=True):
            codes = pd.Index(vocabulary).get_indexer(jobs[column].astype(str))
            onehot = np.zeros((len(jobs), len(vocabulary)))
            onehot[np.flatnonzero(codes >= 0), codes[codes >= 0]] = 1.0
            ids.append(onehot)
        return np.hstack([np.ones((len(jobs), 1)), scaled, missing.astype(float), *ids])

    def fit(self, jobs: pd.DataFrame, y: object = None) -> CostModel:
        """Fit on the jobs with seconds; the spread from inner folds that hold datasets out."""
        self._validate_params()
        jobs = timed(jobs)
        if jobs.empty:
            raise UserError("no job with seconds to learn the cost from: the history logs no fine-tuning time")
        logs = pd.DataFrame(_log_facts(jobs))  # pandas' mean and std skip NaN (a fact never known: NaN, then 0, 1)
        self.mean_ = logs.mean().fillna(0.0).to_numpy()
        scale = logs.std(ddof=0).to_numpy()
        self.scale_ = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
        self.vocabularies_ = [sorted(jobs[c].astype(str).unique()) for c in IDS]
        X = self._design(jobs)
        target = np.log(pd.to_numeric(jobs["seconds"]).to_numpy(dtype=float) / work(jobs))
        penalty = np.full(X.shape[1], float(self.alpha))
        penalty[0] = 0.0
        gram, moment = X.T @ X + np.diag(penalty), X.T @ target
        self.coef_ = np.linalg.solve(gram, moment)
        # each held-out dataset: the same normal equations less its rows (its id column then has no data and a
        # zero coefficient, as a dataset new to the fit), with the fit's scalers
        datasets = jobs["dataset"].astype(str).to_numpy()
        residuals = []
        for name in self.vocabularies_[IDS.index("dataset")]:
            held = datasets == name
            Xh, th = X[held], target[held]
            coef = np.linalg.solve(gram - Xh.T @ Xh, moment - Xh.T @ th)
            residuals.append(th - Xh @ coef)
        # with fewer than two datasets no fold holds one out: the in-sample residuals
        residuals = residuals if len(self.vocabularies_[IDS.index("dataset")]) > 1 else [target - X @ self.coef_]
        self.spread_ = float(np.sqrt(np.mean(np.concatenate(residuals) ** 2)))
        return self

    def predict_log(self, jobs: pd.DataFrame) -> np.ndarray:
        """Predicted log seconds of each row."""
        check_fitted(self, "coef_")
        return self._design(jobs) @ self.coef_ + np.log(work(jobs))

    def predict(self, jobs: pd.DataFrame) -> np.ndarray:
        """Predicted seconds of each row (the median of the log-normal the regression describes)."""
        return np.exp(self.predict_log(jobs))

    def log_residuals(self, jobs: pd.DataFrame) -> np.ndarray:
        """log(observed seconds) - log(predicted) of the timed rows."""
        jobs = timed(jobs)
        return np.log(pd.to_numeric(jobs["seconds"]).to_numpy(dtype=float)) - self.predict_log(jobs)
