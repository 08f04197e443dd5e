"""Shared scikit-learn-style plumbing of the learned recommenders: fit/predict on pair tables, save/load."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from functools import partial
from pathlib import Path
from typing import ClassVar

import joblib
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from recommender import __version__
from recommender.errors import UserError
from recommender.files import write_atomic
from recommender.models.features import PairEncoder
from recommender.models.targets import check_target, normalise_target

META_FILE = "recommender.json"
STATE_FILE = "estimator.joblib"


class PairRecommender(BaseEstimator, ABC):
    """Base of LR and FM: encodes the pair table, normalises the target, delegates to ``_fit_encoded``."""

    kind: ClassVar[str] = ""

    def fit(self, X: pd.DataFrame, y: object = None) -> PairRecommender:
        """Fit on pair-table rows; ``y`` defaults to the ``performance`` column."""
        if y is None:
            if not isinstance(X, pd.DataFrame) or "performance" not in X.columns:
                raise UserError("no target: pass y or a pair table with a 'performance' column")
            y = X["performance"]
        target = check_target(y, len(X))
        self.encoder_ = PairEncoder(self.features).fit(X)
        Z = self.encoder_.transform(X)
        datasets = X["dataset"] if "dataset" in X.columns else pd.Series("all", index=X.index)
        self._fit_encoded(Z, normalise_target(target, datasets, self.target), datasets)
        self.n_features_ = Z.shape[1]
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Predicted (normalised) performance of each pair; higher means a better pick."""
        check_is_fitted(self, "encoder_")
        if len(X) == 0:
            return np.empty(0)
        pred = self._predict_encoded(self.encoder_.transform(X))
        if not np.isfinite(pred).all():
            raise UserError(f"{self.kind} produced non-finite predictions (diverged training?)")
        return pred

    @abstractmethod
    def _fit_encoded(self, Z: np.ndarray, t: np.ndarray, datasets: pd.Series) -> None:
        """Fit the model on the encoded matrix Z and normalised target t."""

    @abstractmethod
    def _predict_encoded(self, Z: np.ndarray) -> np.ndarray:
        """Scores for the encoded matrix Z."""

    def save(self, path: str | Path) -> Path:
        """Write the fitted recommender (encoder included) to directory ``path``."""
        check_is_fitted(self, "encoder_")
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {"kind": self.kind, "params": self.get_params(), "version": __version__}
        # each file whole or not at all; the state first, so a folder with new metadata never holds an old model
        write_atomic(folder / STATE_FILE, partial(joblib.dump, self))
        write_atomic(folder / META_FILE, lambda part: part.write_text(json.dumps(meta, indent=2) + "\n"))
        return folder

    @classmethod
    def load(cls, path: str | Path) -> PairRecommender:
        """Read a recommender written by ``save`` (only open folders you trust: it unpickles)."""
        folder = Path(path)
        if not (folder / META_FILE).is_file():
            raise UserError(f"{folder} holds no saved recommender ({META_FILE} missing)")
        est = joblib.load(folder / STATE_FILE)
        if not isinstance(est, cls):
            raise UserError(f"{folder} holds a {type(est).__name__}, not a {cls.__name__}")
        return est
