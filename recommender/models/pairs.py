"""Pairs to predict: a pool of models crossed with one (possibly new) dataset, with optional scores."""

from __future__ import annotations

import warnings
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


def tried_last(ranked: pd.DataFrame, observed: pd.Series) -> pd.DataFrame:
    """A ranked table (best first) with the models tried already (``observed``: result by model) moved after every
    untried one, unranked (rank NA), best observed first, their result in ``observed``: a tried model is never
    ranked above an untried one. The untried keep their order and are ranked 1, 2, ..."""
    out = ranked.assign(observed=ranked["model"].astype(str).map(observed.rename(index=str)).astype(float))
    tried = out["observed"].notna()
    head = out[~tried].assign(rank=np.arange(1, int((~tried).sum()) + 1))
    tail = out[tried].sort_values("observed", ascending=False, kind="stable").assign(rank=None)
    return pd.concat([head, tail], ignore_index=True).astype({"rank": "Int64"})


def model_modalities(table: pd.DataFrame) -> pd.Series:
    """Each model's modalities (a frozenset; empty when unknown) from the ``modality`` column of the rows it appears
    in: in a pair table the dataset's (a model measured on image datasets takes images), in a pool file the
    model's own."""
    models = table["model"].astype(str)
    found: dict[str, set[str]] = {m: set() for m in models.unique()}
    if "modality" in table.columns:
        # each distinct (model, modality) once: a pair table repeats them thousands of times
        known = pd.DataFrame({"model": models, "modality": table["modality"]}).dropna().drop_duplicates()
        for model, modality in zip(known["model"], known["modality"].astype(str), strict=True):
            found[model].add(modality)
    return pd.Series({m: frozenset(kinds) for m, kinds in found.items()}, dtype=object)


def same_modality(pool: pd.DataFrame, modality: object, dataset: str, history: pd.DataFrame | None = None
                  ) -> tuple[pd.DataFrame, str]:
    """The one modality rule of `recommend`, `rank`, `next` and `evaluate`: the rows of ``pool`` whose model takes
    the dataset's ``modality`` (the user's --modality, the store's dataset facts or the training pairs; None or NaN:
    unknown). A model's modalities come from the pool's own ``modality`` column and from ``history`` (a pair
    table); a model of another known modality is left out, one of unknown modality is kept. Returns the kept rows
    and a note naming what was left out ("" when nothing was).

    With the dataset's modality unknown and a pool of several modalities, nothing is left out and a warning says
    so in one line. No model of the modality at all is a one-line error."""
    known = model_modalities(pool)
    if history is not None and not history.empty:
        extra = model_modalities(history)
        known = pd.Series({m: known.get(m, frozenset()) | extra.get(m, frozenset()) for m in known.index},
                          dtype=object)
    kinds = sorted(set().union(*known)) if len(known) else []
    if modality is None or (isinstance(modality, float) and np.isnan(modality)):
        if len(kinds) > 1:
            warnings.warn(f"the modality of {dataset} is unknown and the pool mixes {' and '.join(kinds)} models: "
                          f"ranking all of them; pass --modality to rank only those of the dataset's",
                          stacklevel=2)
        return pool, ""
    modality = str(modality)
    takes = {m for m, kinds_of in known.items() if not kinds_of or modality in kinds_of}
    kept = pool[pool["model"].astype(str).isin(takes)]
    if kept.empty:
        raise UserError(f"{dataset} is {modality}, and no model of the pool takes {modality} (it holds "
                        f"{' and '.join(kinds) or 'models of unknown modality'} models)")
    left = len(known) - len(takes)
    note = (f"{dataset} is {modality}: only the pool's {len(takes)} {modality} models are ranked ({left} "
            f"{' and '.join(k for k in kinds if k != modality)} models left out)") if left else ""
    return kept, note
