"""Shared scikit-learn-style plumbing of the learned recommenders: fit/predict on pair tables, save/load."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from recommender import __version__
from recommender.errors import UserError
from recommender.models.estimator import Estimator, check_fitted
from recommender.models.features import PairEncoder, parse_features
from recommender.models.params import Validated
from recommender.models.saved import META_FILE, ArraySpec, read_metadata, read_weights, write_saved
from recommender.models.targets import check_target, check_target_name, normalise_target
from recommender.normalise import ranking_groups

JSON_SCALARS = (str, int, float, bool, type(None))


def training_summary(X: pd.DataFrame) -> dict[str, object]:
    """What a recommender was fitted on: its modalities (checked when it is applied) and the pair counts."""
    column = X["modality"] if "modality" in X.columns else pd.Series(dtype=object)
    return {"modalities": sorted(column.dropna().astype(str).unique()), "pairs": len(X),
            "models": int(X["model"].nunique()) if "model" in X.columns else None,
            "datasets": int(X["dataset"].nunique()) if "dataset" in X.columns else None}


def check_training(value: object) -> dict[str, object]:
    """The metadata's "training" section: JSON scalars, plus "modalities", a list of strings."""
    if not isinstance(value, dict):
        raise UserError('"training" must be an object')
    modalities = value.get("modalities")
    if not isinstance(modalities, list) or not all(isinstance(m, str) for m in modalities):
        raise UserError('"training"."modalities" must be a list of strings')
    bad = [k for k, v in value.items() if k != "modalities" and not isinstance(v, JSON_SCALARS)]
    if bad:
        raise UserError(f'"training"."{bad[0]}" must be a string, number, boolean or null')
    if not isinstance(value.get("protocol", ""), str):
        raise UserError('"training"."protocol" must be a string')
    return dict(value)


class PairRecommender(Validated, Estimator, ABC):
    """Base of LR and FM: encodes the pair table, normalises the target, delegates to ``_fit_encoded``.

    Saved as JSON (hyper-parameters, encoder state, training summary) plus an .npz of weights; see
    ``recommender.models.saved``.
    """

    kind: ClassVar[str] = ""
    features: str  # every kind's constructor takes the feature set and the target normalisation
    target: str

    def fit(self, X: pd.DataFrame, y: object = None) -> PairRecommender:
        """Fit on pair-table rows; ``y`` defaults to the ``performance`` column."""
        Z, t, datasets = self._encoded(X, y)
        self._fit_encoded(Z, t, datasets)
        return self

    def _encoded(self, X: pd.DataFrame, y: object = None) -> tuple[np.ndarray, np.ndarray, pd.Series]:
        """What every fit starts from: the checked target (``y``, default the ``performance`` column), the encoder
        fitted on X and the training summary set; returns the encoded X, the normalised target and the groups."""
        if y is None:
            if not isinstance(X, pd.DataFrame) or "performance" not in X.columns:
                raise UserError("no target: pass y or a pair table with a 'performance' column")
            y = X["performance"]
        target = check_target(y, len(X))
        self._validate_params()
        self.encoder_ = PairEncoder(self.features).fit(X)
        Z = self.encoder_.transform(X)
        self.n_features_ = Z.shape[1]
        self.training_ = training_summary(X)
        return Z, *self._normalised(X, target)

    def _normalised(self, X: pd.DataFrame, target: np.ndarray) -> tuple[np.ndarray, pd.Series]:
        """The checked target of the pairs X normalised as ``self.target`` says, and the groups it is normalised
        within: each dataset, or each (dataset, protocol) of a table with protocols."""
        datasets = ranking_groups(X) if "dataset" in X.columns else pd.Series("all", index=X.index)
        return normalise_target(target, datasets, self.target), datasets

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Predicted (normalised) performance of each pair; higher means a better pick."""
        check_fitted(self, "encoder_")
        if len(X) == 0:
            return np.empty(0)
        pred = self._predict_encoded(self.encoder_.transform(X))
        if not np.isfinite(pred).all():
            raise UserError(f"{self.kind} produced non-finite predictions (diverged training?)")
        return pred

    def _validate_params(self) -> None:
        """Every parameter against the ``PARAMETERS`` table, then the feature set's and the target's own
        one-line errors."""
        super()._validate_params()
        parse_features(self.features)
        check_target_name(self.target)

    @abstractmethod
    def _fit_encoded(self, Z: np.ndarray, t: np.ndarray, datasets: pd.Series) -> None:
        """Fit the model on the encoded matrix Z and normalised target t."""

    @abstractmethod
    def _predict_encoded(self, Z: np.ndarray) -> np.ndarray:
        """Scores for the encoded matrix Z."""

    @abstractmethod
    def _weight_spec(self) -> ArraySpec:
        """Name -> (shape, dtype) of the fitted weights, given the hyper-parameters and ``encoder_``."""

    @abstractmethod
    def _get_weights(self) -> dict[str, np.ndarray]:
        """The fitted weights as plain arrays, as ``_weight_spec`` describes them."""

    @abstractmethod
    def _set_weights(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Install weights checked against ``_weight_spec``."""

    def save(self, path: str | Path, training: Mapping[str, object] | None = None) -> Path:
        """Write the fitted recommender to folder ``path``; ``training`` adds facts (e.g. the protocol) to the
        training summary kept in the metadata."""
        check_fitted(self, "encoder_")
        meta: dict[str, object] = {
            "kind": self.kind, "version": __version__, "params": self.get_params(),
            "encoder": self.encoder_.get_state(), "training": {**self.training_, **(training or {})}}
        return write_saved(Path(path), meta, self._get_weights())

    @classmethod
    def load(cls, path: str | Path) -> PairRecommender:
        """Read a recommender written by ``save``, every field checked; a one-line UserError otherwise."""
        return cls.from_metadata(path, read_metadata(path))

    @classmethod
    def from_metadata(cls, path: str | Path, meta: Mapping[str, object]) -> PairRecommender:
        """The recommender of folder ``path`` whose checked top-level metadata (``read_metadata``) is ``meta``."""
        folder = Path(path)
        if meta["kind"] != cls.kind:
            raise UserError(f"{folder} holds a {meta['kind']!r} recommender, not a {cls.__name__}")
        try:
            est = cls.with_encoder(meta.get("params"), meta.get("encoder"))
            est.training_ = check_training(meta.get("training"))
        except UserError as exc:
            raise UserError(f"{folder / META_FILE}: {exc}") from None
        est._set_weights(read_weights(folder, meta, est._weight_spec()))
        return est

    @classmethod
    def with_encoder(cls, params: object, encoder: object) -> PairRecommender:
        """A recommender of checked hyper-parameters (exactly this kind's, JSON scalars) and encoder state, its
        weights still to set (``_set_weights``); a one-line UserError names the first wrong field."""
        est = cls()
        if not isinstance(params, dict) or set(params) != set(est.get_params()):
            raise UserError(f'"params" must hold exactly the {cls.kind} hyper-parameters '
                            f"{', '.join(sorted(est.get_params()))}")
        bad = [k for k, v in params.items() if not isinstance(v, JSON_SCALARS)]
        if bad:
            raise UserError(f'"params"."{bad[0]}" must be a string, number, boolean or null')
        est.set_params(**params)._validate_params()
        est.encoder_ = PairEncoder.from_state(est.features, encoder)
        est.n_features_ = est.encoder_.width
        return est
