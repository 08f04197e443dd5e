"""Pairs to predict: a pool of models crossed with one (possibly new) dataset, with optional scores."""

from __future__ import annotations

import pandas as pd

from recommender.errors import UserError
from recommender.models.features import BLOCKS, numeric

MODEL_COLUMNS = ("model", *BLOCKS["m_side"].categorical, *BLOCKS["m_side"].scalar)
DATASET_COLUMNS = ("dataset", *BLOCKS["d_side"].categorical, *BLOCKS["d_side"].scalar)


def wide_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """Scores per model as ``score_<name>`` columns, from wide files or long ``model, score, value`` rows."""
    if "model" not in scores.columns:
        raise UserError("a scores file needs a 'model' column")
    if {"score", "value"} <= set(scores.columns):
        wide = scores.assign(value=numeric(scores, ["value"])["value"]).pivot_table(index="model", columns="score", values="value", aggfunc="mean")
        return wide.add_prefix("score_").reset_index().rename_axis(columns=None)
    columns = [c for c in scores.columns if c.startswith("score_")]
    if not columns:
        raise UserError("a scores file needs 'score' and 'value' columns or 'score_<name>' columns")
    return numeric(scores, columns).assign(model=scores["model"]).groupby("model", as_index=False).mean()


def candidate_pairs(pool: pd.DataFrame, dataset: dict[str, object], scores: pd.DataFrame | None = None) -> pd.DataFrame:
    """One pair-table row per pool model on ``dataset`` (its feature values), scores joined by model."""
    if "model" not in pool.columns:
        raise UserError("the model pool needs a 'model' column")
    models = pool.reindex(columns=list(MODEL_COLUMNS)).drop_duplicates("model")
    if models.empty:
        raise UserError("the model pool is empty")
    rows = models.assign(**{c: dataset.get(c) for c in DATASET_COLUMNS})
    if scores is not None:
        rows = rows.merge(wide_scores(scores), on="model", how="left")
    return rows.reset_index(drop=True)


def top_k(pairs: pd.DataFrame, predicted: object, k: int) -> pd.DataFrame:
    """The k best-predicted models, ranked (ties keep pool order)."""
    if k < 1:
        raise UserError(f"--top-k must be >= 1, got {k}")
    ranked = pairs[["model"]].assign(predicted=predicted).sort_values("predicted", ascending=False, kind="stable")
    best = ranked.head(k).reset_index(drop=True)
    best.insert(0, "rank", range(1, len(best) + 1))
    return best
