"""What the zoo commands write into the history store: a ranking's scores (`rank --log-scores`, `campaign`) and
fine-tuning jobs (`finetune`, `campaign`). The callers are the one writer: the parent process, never a worker."""

from __future__ import annotations

import pandas as pd

from recommender.contracts import score_column
from recommender.history import Store
from recommender.history.ingest import build_batch

RANK_SOURCE = "recommender rank"


def write_frame(store: Store, frame: pd.DataFrame, kind: str, label: str) -> dict[str, int]:
    """Write jobs or scores (long format) into the history store; rows added per table."""
    return store.write(build_batch(frame, label, kind=kind, source=label))


def scores_long(ranked: pd.DataFrame, scores: list[str]) -> pd.DataFrame:
    """The ranked table's computed scores in the store's long format; `run` is the features' cache key."""
    rows = [{"model": r["model"], "dataset": r["dataset"], "score": s, "run": r["features_key"],
             "value": r[score_column(s)], "seconds": r[f"seconds_{s}"]}
            for _, r in ranked.iterrows() for s in scores]
    return pd.DataFrame(rows, columns=["model", "dataset", "score", "run", "value", "seconds"]).dropna(subset=["value"])


def log_scores(ranked: pd.DataFrame, scores: list[str], url: str | None) -> int:
    """Write the ranking's scores into the store (created if needed); scores of the same features already logged
    are kept as they are."""
    from recommender.history.store import store_for_writing

    long = scores_long(ranked, scores)
    with store_for_writing(url) as store:
        stored = store.scores(scores)
        stored = stored.loc[stored["source"] == RANK_SOURCE, ["model", "dataset", "score", "run"]]
        # Same key = same model, weights, preprocessing and data; only the timings differ, so skip, never conflict.
        new = long.merge(stored, how="left", indicator=True).query("_merge == 'left_only'").drop(columns="_merge")
        return write_frame(store, new, "scores", RANK_SOURCE).get("scores", 0) if len(new) else 0
