"""Pair encoder: turns pair-table rows into the feature vector z of SPEC §3."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recommender.contracts import (
    CONFIG_HPARAMS,
    DATASET,
    DATASET_CATEGORICAL,
    DATASET_SCALARS,
    MODEL,
    MODEL_CATEGORICAL,
    MODEL_SCALARS,
    hparam_column,
    is_score_column,
    protocol_column,
    score_column,
)
from recommender.errors import UserError
from recommender.models.estimator import Estimator, check_fitted
from recommender.normalise import ranking_groups, zscore_within

MISSING = "<missing>"  # category standing for a missing categorical value


@dataclass(frozen=True)
class Block:
    """Pair-table columns that one feature-set token adds: one-hot categoricals and scalars."""

    categorical: tuple[str, ...] = ()
    scalar: tuple[str, ...] = ()


BLOCKS: dict[str, Block] = {
    "d_id": Block(categorical=(DATASET,)),
    "d_side": Block(categorical=DATASET_CATEGORICAL, scalar=DATASET_SCALARS),
    "m_id": Block(categorical=(MODEL,)),
    "m_side": Block(categorical=MODEL_CATEGORICAL, scalar=MODEL_SCALARS),
    # the protocol's facts (SPEC §2): its source history, PEFT method, optimiser; training examples, epochs,
    # learning-rate range, LoRA rank -- so one model can learn from several protocols and what carries across them
    "p": Block(categorical=tuple(map(protocol_column, ("history", "peft", "optimizer"))),
               scalar=tuple(map(protocol_column, ("examples", "epochs", "lr_min", "lr_max", "lora_r")))),
    # a job's configuration (learning rate, epochs), one-hot: rows of the job table, where one pair has several
    # settings. Not scalars: a model measured at one rate would have its interaction with the rate extrapolated to the
    # others (an FM then ranked the rarely better lr 0.1 first for every model of SHiFT's VTAB-1k)
    "h": Block(categorical=tuple(map(hparam_column, CONFIG_HPARAMS))),
}
ALIASES: dict[str, tuple[str, ...]] = {"d": ("d_id", "d_side"), "m": ("m_id", "m_side")}
LINEAR_SCALARS = frozenset({"input_size", "imagenet_top1"})  # scalars that are not log-scaled (SPEC §3)
# positive rates spanning decades: log10, not log1p
RATE_SCALARS = frozenset({protocol_column("lr_min"), protocol_column("lr_max")})


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
        column = token if is_score_column(token) else score_column(token)
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
    """Z-score each score column within each dataset, or (dataset, protocol) (SPEC §1: scores compare models on one
    dataset only)."""
    out = pd.DataFrame(index=X.index)
    groups = ranking_groups(X)
    for col, values in numeric(X, list(columns)).items():
        if np.isinf(values).any():
            raise UserError(f"column {col} holds an infinite value")
        out[col] = zscore_within(values, groups)
    return out


def log_sizes(frame: pd.DataFrame) -> pd.DataFrame:
    """log1p of the size columns, so sizes spanning orders of magnitude become comparable (zeros stay finite);
    log10 of learning rates (1e-5 and 1e-2 must differ by more than log1p's 0.01); the other scalars (input size,
    ImageNet top-1) stay linear, as SPEC §3 lists them."""
    def scale(col: pd.Series) -> pd.Series:
        if col.name in RATE_SCALARS:
            return np.log10(col)
        return col if col.name in LINEAR_SCALARS else np.log1p(col)
    return frame.apply(scale)


STATE_KEYS = ("categories", "impute", "mean", "scale", "scalar_missing", "score_missing")


def _strings(value: object, what: str) -> list[str]:
    """A JSON list of distinct strings, or a one-line error naming ``what``."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or len(set(value)) != len(value):
        raise UserError(f"{what} must be a list of distinct strings")
    return value


def _floats(value: object, n: int, what: str) -> np.ndarray:
    """A JSON list of n finite numbers as float64, or a one-line error naming ``what``."""
    if (not isinstance(value, list) or len(value) != n
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise UserError(f"{what} must be a list of {n} numbers")
    out = np.asarray(value, dtype=np.float64)
    if not np.isfinite(out).all():
        raise UserError(f"{what} holds a non-finite value")
    return out


def _ordered_subset(value: object, columns: list[str], what: str) -> list[str]:
    """Names among ``columns``, in their order (the order fixes the encoded columns), or a one-line error."""
    names = _strings(value, what)
    if names != [c for c in columns if c in names]:
        raise UserError(f"{what} must name columns among {', '.join(columns) or 'none'}, in that order")
    return names


class PairEncoder(Estimator):
    """Encodes (model, dataset) pairs as SPEC §3 vectors; fit on training rows only.

    Categoricals are one-hot with an all-zero block for values never seen in fit (cold start);
    sizes are log1p-scaled, all scalars mean-imputed, standardised and given missing indicators (for the columns
    with a missing value in fit); score columns are z-scored within each dataset of the frame being encoded, a
    missing one becomes 0 (the dataset mean) with an indicator. The fitted state is plain lists and numbers
    (``get_state``/``from_state``), so a saved encoder is JSON.
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
            if col in RATE_SCALARS and (values[col] == 0).any():
                raise UserError(f"column {col} must hold positive values (a learning rate, log-scaled)")
            frame[col] = values[col]
        if scores:
            frame = frame.join(normalise_scores(X, scores))
        return frame

    def fit(self, X: pd.DataFrame, y: object = None) -> PairEncoder:
        """Learn vocabularies, imputation values and scalers from the training pairs."""
        categorical, scalar, scores = self._columns()
        frame = self._prepare(X)
        if len(frame) == 0:
            raise UserError("cannot fit the encoder on an empty pair table")
        self.categories_ = {col: sorted(frame[col].unique()) for col in categorical}
        self.impute_ = self.mean_ = self.scale_ = np.empty(0)
        if scalar:
            from sklearn.impute import SimpleImputer  # scikit-learn loads where an encoder is fitted, not applied
            from sklearn.preprocessing import StandardScaler

            logged = log_sizes(frame[scalar]).to_numpy(dtype=np.float64)
            imputer = SimpleImputer(strategy="mean", keep_empty_features=True).fit(logged)
            scaler = StandardScaler().fit(imputer.transform(logged))
            self.impute_, self.mean_, self.scale_ = imputer.statistics_, scaler.mean_, scaler.scale_
        self.scalar_missing_ = [c for c in scalar if frame[c].isna().any()]
        self.score_missing_ = [c for c in scores if frame[c].isna().any()]
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """The encoded design matrix, float64 of shape (n_pairs, n_features)."""
        check_fitted(self, "categories_")
        _, scalar, scores = self._columns()
        frame = self._prepare(X)
        blocks = []
        for col, categories in self.categories_.items():
            codes = pd.Index(categories).get_indexer(frame[col])  # -1 for a value never seen in fit
            onehot = np.zeros((len(frame), len(categories)))
            onehot[np.flatnonzero(codes >= 0), codes[codes >= 0]] = 1.0
            blocks.append(onehot)
        if scalar:
            logged = log_sizes(frame[scalar]).to_numpy(dtype=np.float64)
            # the same operations as SimpleImputer then StandardScaler, so the values match scikit-learn's bit for bit
            blocks.append((np.where(np.isnan(logged), self.impute_, logged) - self.mean_) / self.scale_)
            blocks.append(frame[self.scalar_missing_].isna().to_numpy(dtype=np.float64))
        if scores:
            values = frame[list(scores)].to_numpy(dtype=np.float64)
            blocks.append(np.where(np.isnan(values), 0.0, values))
            blocks.append(frame[self.score_missing_].isna().to_numpy(dtype=np.float64))
        return np.hstack(blocks)

    def sources(self) -> np.ndarray:
        """The pair-table column each encoded column comes from (a one-hot level or a missing indicator included)."""
        check_fitted(self, "categories_")
        _, scalar, scores = self._columns()
        out = [c for c, cats in self.categories_.items() for _ in cats]
        out += scalar + self.scalar_missing_ + list(scores) + self.score_missing_
        return np.asarray(out, dtype=object)

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        """Names of the encoded columns, e.g. ``onehot__model_vit-base`` (scikit-learn's ColumnTransformer style)."""
        check_fitted(self, "categories_")
        _, scalar, scores = self._columns()
        names = [f"onehot__{c}_{cat}" for c, cats in self.categories_.items() for cat in cats]
        names += [f"scalar__value__{c}" for c in scalar]
        names += [f"scalar__missing__missingindicator_{c}" for c in self.scalar_missing_]
        names += [f"score__{c}" for c in scores] + [f"score__missingindicator_{c}" for c in self.score_missing_]
        return np.asarray(names, dtype=object)

    @property
    def width(self) -> int:
        """Number of encoded columns."""
        return len(self.sources())

    def get_state(self) -> dict[str, object]:
        """The fitted state as JSON-ready lists (floats are written exactly: JSON keeps the shortest repr)."""
        check_fitted(self, "categories_")
        return {
            "categories": {c: list(cats) for c, cats in self.categories_.items()},
            "impute": [float(v) for v in self.impute_],
            "mean": [float(v) for v in self.mean_],
            "scale": [float(v) for v in self.scale_],
            "scalar_missing": list(self.scalar_missing_),
            "score_missing": list(self.score_missing_),
        }

    @classmethod
    def from_state(cls, features: str, state: object) -> PairEncoder:
        """A fitted encoder from ``get_state``'s dict, every field checked; a one-line UserError otherwise."""
        enc = cls(features)
        categorical, scalar, scores = enc._columns()
        if not isinstance(state, dict) or sorted(state) != sorted(STATE_KEYS):
            raise UserError(f"encoder state must hold exactly {', '.join(STATE_KEYS)}")
        categories = state["categories"]
        if not isinstance(categories, dict) or list(categories) != categorical:
            raise UserError(f"encoder categories must list {', '.join(categorical) or 'no columns'} for features "
                            f"{features!r}, in that order")
        enc.categories_ = {}
        for col, values in categories.items():
            enc.categories_[col] = _strings(values, f"encoder categories of {col}")
            if not values:
                raise UserError(f"encoder categories of {col} are empty")
        enc.impute_ = _floats(state["impute"], len(scalar), "encoder impute")
        enc.mean_ = _floats(state["mean"], len(scalar), "encoder mean")
        enc.scale_ = _floats(state["scale"], len(scalar), "encoder scale")
        if (enc.scale_ <= 0).any():
            raise UserError("encoder scale must be positive")
        enc.scalar_missing_ = _ordered_subset(state["scalar_missing"], scalar, "encoder scalar_missing")
        enc.score_missing_ = _ordered_subset(state["score_missing"], list(scores), "encoder score_missing")
        return enc
