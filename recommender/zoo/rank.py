"""Rank candidate models for a dataset: extract features, compute transferability scores, predict with a recommender."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd

from recommender.errors import UserError
from recommender.zoo.cache import FeatureCache
from recommender.zoo.datasets import Dataset
from recommender.zoo.extract import extract
from recommender.zoo.providers import Provider

DEFAULT_SCORES = ("logme", "hscore_reg", "lfc", "parc", "knn", "linear")


def dataset_row(ds: Dataset, group: str | None = None) -> dict:
    """Pair-table dataset features of ds (docs/contracts.md)."""
    return {"dataset": ds.name, "examples": float(len(ds)), "classes": float(len(ds.classes)), "modality": ds.modality, "group": group or math.nan}


def scores_or_nan(F: np.ndarray, y: np.ndarray, scores: Sequence[str], model: str) -> pd.DataFrame:
    """score_all's table; a score that cannot be computed on these features becomes NaN with a warning."""
    from recommender.scores import score_all

    table = score_all(F, y, names=list(scores), task="classification", errors="nan")
    for _, row in table[table["error"].notna()].iterrows():
        print(f"warning: {row['score']} on {model}: {row['error']}; left as NaN", file=sys.stderr)
    return table.drop(columns="error")


def score_pool(providers: Sequence[Provider], ds: Dataset, scores: Sequence[str] = DEFAULT_SCORES, cache: FeatureCache | None = None, progress: bool = True) -> pd.DataFrame:
    """One pair-table row per model: facts, dataset features, `score_<name>` values and the seconds of each step."""
    rows = []
    for p in providers:
        got = extract(p, ds, cache=cache, progress=progress)
        table = scores_or_nan(got.features, ds.y, scores, p.name).set_index("score")
        row = {"model": p.name, **p.facts.as_row(), **dataset_row(ds), "feature_dim": got.features.shape[1]}
        row |= {f"score_{s}": float(table.at[s, "value"]) for s in scores}
        row |= {"seconds_extract": got.seconds, "cached": got.cached, "features_key": got.key}
        row |= {f"seconds_{s}": float(table.at[s, "seconds"]) for s in scores}
        rows.append(row)
    return pd.DataFrame(rows)


def with_store_facts(pairs: pd.DataFrame, store_models: pd.DataFrame) -> pd.DataFrame:
    """Fill missing model facts from the store's model features (indexed by model id)."""
    out = pairs.set_index("model")
    known = store_models.reindex(out.index)
    for col in known.columns.intersection(out.columns):
        out[col] = out[col].where(out[col].notna(), known[col])
    return out.reset_index()


def load_checked_recommender(path: str, ds: Dataset, scores: Sequence[str],
                             allow_modality_mismatch: bool = False) -> object:
    """The saved recommender at ``path``, checked before any feature is extracted: it must be trained on ds's
    modality (unless ``allow_modality_mismatch``, then a warning) and its features may use only the given scores."""
    from recommender.models.evidence import check_modality
    from recommender.models.factory import load_recommender
    from recommender.models.features import parse_features

    est = load_recommender(path)
    needed = [name for name in (c.removeprefix("score_") for c in parse_features(est.features)[1])
              if name not in scores]
    if needed:
        raise UserError(f"the recommender's features {est.features} need score(s) {', '.join(needed)}: "
                        f"add them to --scores")
    check_modality(est, pd.DataFrame([dataset_row(ds)]), allow_modality_mismatch)
    return est


def rank_pool(pairs: pd.DataFrame, scores: Sequence[str], recommender: object | None = None) -> pd.DataFrame:
    """Order the pool by the recommender's predicted performance when given (with a warning for each kind of
    missing evidence, e.g. a model it knows nothing about), else by the first score."""
    out = pairs.copy()
    if recommender is not None:
        from recommender.models.evidence import warn_missing_evidence

        warn_missing_evidence(recommender, out)
        start = time.perf_counter()
        out["predicted"] = np.asarray(recommender.predict(out), dtype=float)
        out["seconds_predict"] = time.perf_counter() - start
        key = "predicted"
    else:
        key = f"score_{scores[0]}"
    if out[key].isna().all():
        raise UserError(f"cannot rank: {key} is missing for every model")
    out = out.sort_values(key, ascending=False, na_position="last").reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out
