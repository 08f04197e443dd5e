"""Pairs to predict: a pool of models crossed with one (possibly new) dataset, with optional scores."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from recommender.contracts import DATASET_COLUMNS, MODEL_COLUMNS, SCORE_PREFIX, is_score_column
from recommender.errors import UserError
from recommender.models.features import numeric


def wide_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """Scores per model as ``score_<name>`` columns, from wide files or long ``model, score, value`` rows.

    A score given twice for one model takes its last row, as the store keeps the latest stored value: a score is
    one computation, never a mean (runs differ in data, e.g. a subsample and the full split)."""
    if "model" not in scores.columns:
        raise UserError("a scores file needs a 'model' column")
    if {"score", "value"} <= set(scores.columns):
        latest = scores.assign(value=numeric(scores, ["value"])["value"]).drop_duplicates(["model", "score"],
                                                                                          keep="last")
        wide = latest.pivot(index="model", columns="score", values="value")
        return wide.add_prefix(SCORE_PREFIX).reset_index().rename_axis(columns=None)
    columns = [c for c in scores.columns if is_score_column(c)]
    if not columns:
        raise UserError("a scores file needs 'score' and 'value' columns or 'score_<name>' columns")
    latest = numeric(scores, columns).assign(model=scores["model"]).drop_duplicates("model", keep="last")
    return latest[["model", *columns]].sort_values("model", ignore_index=True)


def candidate_pairs(pool: pd.DataFrame, dataset: dict[str, object], scores: pd.DataFrame | None = None) -> pd.DataFrame:
    """One pair-table row per pool model on ``dataset`` (its feature values), scores joined by model."""
    if "model" not in pool.columns:
        raise UserError("the model pool needs a 'model' column")
    models = pool.reindex(columns=list(MODEL_COLUMNS)).drop_duplicates("model")
    if models.empty:
        raise UserError("the model pool is empty")
    facts: dict[str, Any] = {c: dataset.get(c) for c in DATASET_COLUMNS}  # scalars, one per column
    rows = models.assign(**facts)
    if scores is not None:
        rows = rows.merge(wide_scores(scores), on="model", how="left")
    return rows.reset_index(drop=True)


def top_k(pairs: pd.DataFrame, predicted: np.ndarray, k: int) -> pd.DataFrame:
    """The k best-predicted models, ranked (ties keep pool order)."""
    if k < 1:
        raise UserError(f"--top-k must be >= 1, got {k}")
    ranked = pairs[["model"]].assign(predicted=predicted).sort_values("predicted", ascending=False, kind="stable")
    best = ranked.head(k).reset_index(drop=True)
    best.insert(0, "rank", range(1, len(best) + 1))
    return best
