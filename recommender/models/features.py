"""Pair encoder: turns pair-table rows into the feature vector z of SPEC §3."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.pipeline import FeatureUnion, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted

from recommender.errors import UserError
from recommender.normalise import zscore_within

MISSING = "<missing>"  # category standing for a missing categorical value


@dataclass(frozen=True)
class Block:
    """Pair-table columns that one feature-set token adds: one-hot categoricals and scalars."""

    categorical: tuple[str, ...] = ()
    scalar: tuple[str, ...] = ()


BLOCKS: dict[str, Block] = {
    "d_id": Block(categorical=("dataset",)),
    "d_side": Block(categorical=("group", "modality"), scalar=("examples", "classes")),
    "m_id": Block(categorical=("model",)),
    "m_side": Block(
        categorical=("family", "pretrain_dataset"),
        scalar=("params_m", "gmacs", "input_size", "imagenet_top1"),
    ),
}
ALIASES: dict[str, tuple[str, ...]] = {"d": ("d_id", "d_side"), "m": ("m_id", "m_side")}
LINEAR_SCALARS = frozenset({"input_size", "imagenet_top1"})  # scalars that are not log-scaled (SPEC §3)


def parse_features(features: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Split a feature-set name like ``"d,m,logme"`` into (block names, score column names)."""
    tokens = [t.strip() for t in str(features).split(",") if t.strip()]
    if not tokens:
        raise UserError(f"empty feature set {features!r}: use e.g. 'd,m' or 'd,m,logme'")
    blocks: list[str] = []
    scores: list[str] = []
    for token in tokens:
        parts = ALIASES.get(token, (token,) if token in BLOCKS else ())
        if parts:
            blocks.extend(p for p in parts if p not in blocks)
            continue
        column = token if token.startswith("score_") else f"score_{token}"
        if column not in scores:
            scores.append(column)
    return tuple(blocks), tuple(scores)


def _check_columns(X: pd.DataFrame, columns: list[str]) -> None:
    """Raise a one-line error naming the first pair-table column the feature set needs but X lacks."""
    if not isinstance(X, pd.DataFrame):
        raise UserError(f"pairs must be a pandas DataFrame, got {type(X).__name__}")
    missing = [c for c in columns if c not in X.columns]
    if missing:
        raise UserError(f"pair table lacks column(s) {', '.join(missing)} needed by the feature set")


def numeric(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The named columns parsed as floats (files are read as text), or a one-line error naming the bad cell."""
    out = pd.DataFrame(index=frame.index)
    for col in columns:
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = frame[col].notna() & values.isna()
        if bad.any():
            raise UserError(f"column {col} holds a non-numeric value {frame[col][bad].iloc[0]!r}")
        out[col] = values.astype(float)
    return out


def normalise_scores(X: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """Z-score each score column within each dataset (SPEC §1: scores compare models on one dataset only)."""
    out = pd.DataFrame(index=X.index)
    groups = X["dataset"].astype(str)
    for col, values in numeric(X, list(columns)).items():
        if np.isinf(values).any():
            raise UserError(f"column {col} holds an infinite value")
        out[col] = zscore_within(values, groups)
    return out


def log_sizes(frame: pd.DataFrame) -> pd.DataFrame:
    """log1p of the size columns, so sizes spanning orders of magnitude become comparable (zeros stay finite);
    the other scalars (input size, ImageNet top-1) stay linear, as SPEC §3 lists them."""
    return frame.apply(lambda col: np.log1p(col) if col.name not in LINEAR_SCALARS else col)


def _scalar_pipeline() -> FeatureUnion:
    """Log sizes, mean imputation, standardisation; plus a 0/1 indicator for columns with missing training values."""
    values = make_pipeline(
        FunctionTransformer(log_sizes, feature_names_out="one-to-one"),
        SimpleImputer(strategy="mean", keep_empty_features=True),
        StandardScaler(),
    )
    return FeatureUnion([("value", values), ("missing", MissingIndicator(error_on_new=False))])


def _score_pipeline() -> SimpleImputer:
    """Missing (already normalised) scores become 0, the dataset mean, plus a 0/1 indicator column."""
    return SimpleImputer(strategy="constant", fill_value=0.0, add_indicator=True, keep_empty_features=True)


class PairEncoder(TransformerMixin, BaseEstimator):
    """Encodes (model, dataset) pairs as SPEC §3 vectors; fit on training rows only.

    Categoricals are one-hot with an all-zero block for values never seen in fit (cold start);
    sizes are log1p-scaled, all scalars standardised and given missing indicators; score columns are z-scored
    within each dataset of the frame being encoded.
    """

    def __init__(self, features: str = "d,m"):
        self.features = features

    def _columns(self) -> tuple[list[str], list[str], tuple[str, ...]]:
        """Categorical columns, scalar columns and score columns of the feature set."""
        blocks, scores = parse_features(self.features)
        categorical = [c for b in blocks for c in BLOCKS[b].categorical]
        scalar = [c for b in blocks for c in BLOCKS[b].scalar]
        return categorical, scalar, scores

    def _prepare(self, X: pd.DataFrame) -> pd.DataFrame:
        """Validated frame with categoricals as strings, scalars as floats and scores normalised."""
        categorical, scalar, scores = self._columns()
        _check_columns(X, categorical + scalar + list(scores) + (["dataset"] if scores else []))
        frame = pd.DataFrame(index=X.index)
        for col in categorical:
            frame[col] = X[col].astype(object).where(X[col].notna(), MISSING).astype(str).to_numpy(dtype=object)
        values = numeric(X, scalar)
        for col in scalar:
            if np.isinf(values[col]).any():
                raise UserError(f"column {col} holds an infinite value")
            if col not in LINEAR_SCALARS and (values[col] < 0).any():
                raise UserError(f"column {col} must hold non-negative values (it is log-scaled)")
            frame[col] = values[col]
        if scores:
            frame = frame.join(normalise_scores(X, scores))
        return frame

    def fit(self, X: pd.DataFrame, y: object = None) -> PairEncoder:
        """Learn vocabularies and scalers from the training pairs."""
        categorical, scalar, scores = self._columns()
        frame = self._prepare(X)
        if len(frame) == 0:
            raise UserError("cannot fit the encoder on an empty pair table")
        self.transformer_ = ColumnTransformer(
            [
                ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical),
                ("scalar", _scalar_pipeline(), scalar),
                ("score", _score_pipeline(), list(scores)),
            ],
            sparse_threshold=0.0,
            verbose_feature_names_out=True,
        ).fit(frame)
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """The encoded design matrix, float64 of shape (n_pairs, n_features)."""
        check_is_fitted(self, "transformer_")
        return np.asarray(self.transformer_.transform(self._prepare(X)), dtype=np.float64)

    def sources(self) -> np.ndarray:
        """The pair-table column each encoded column comes from (a one-hot level or a missing indicator included)."""
        check_is_fitted(self, "transformer_")
        categorical, scalar, scores = self._columns()
        onehot = self.transformer_.named_transformers_["onehot"]
        out = [c for c, cats in zip(categorical, getattr(onehot, "categories_", [])) for _ in cats]
        if scalar:
            indicator = self.transformer_.named_transformers_["scalar"].transformer_list[1][1]
            out += scalar + [scalar[i] for i in indicator.features_]
        if scores:
            imputer = self.transformer_.named_transformers_["score"]
            out += list(scores) + [scores[i] for i in imputer.indicator_.features_]
        return np.asarray(out, dtype=object)

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        """Names of the encoded columns, e.g. ``onehot__model_vit-base``."""
        check_is_fitted(self, "transformer_")
        return self.transformer_.get_feature_names_out()
