"""Checks on a pair table before evaluation: what cannot be ranked is set aside and reported, never averaged in."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recommender.contracts import MIN_MODELS
from recommender.errors import UserError
from recommender.normalise import ranking_groups

ISSUE_COLUMNS = ["dataset", "model", "issue", "detail"]


def issues_frame(rows: list[dict]) -> pd.DataFrame:
    """A table of issues with the standard columns (empty when there are none)."""
    return pd.DataFrame(rows, columns=ISSUE_COLUMNS)


def check_pairs(pairs: pd.DataFrame, broken_fraction: float = 0.01, drop_broken: bool = True
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate a pair table; return the usable pairs and a table of what was set aside or flagged.

    Dropped: pairs without a finite performance; near-zero broken runs (performance below `broken_fraction`
    of the dataset's best, e.g. SHiFT's 0.0-accuracy runs) unless `drop_broken` is False, when they are only
    flagged. A pair appears once per (model, dataset), or once per (model, dataset, protocol) in a table with a
    protocol column; a duplicate means mixed protocols and raises. Runs are compared within each dataset, or each
    (dataset, protocol) (`recommender.normalise.ranking_groups`)."""
    missing = {"model", "dataset", "performance"} - set(pairs.columns)
    if missing:
        raise UserError(f"pair table lacks column(s) {sorted(missing)}")
    key = ["model", "dataset", *(["protocol"] if "protocol" in pairs.columns else [])]
    dup = pairs.duplicated(key)
    if dup.any():
        first = pairs.loc[dup, key].iloc[0]
        where = (" under one protocol" if "protocol" in key
                 else ": one protocol per pair table without a protocol column")
        raise UserError(f"pair ({', '.join(map(str, first))}) appears twice{where}")
    perf = pd.to_numeric(pairs["performance"], errors="coerce")
    bad = ~np.isfinite(perf.to_numpy(dtype=float))
    rows = [{"dataset": d, "model": m, "issue": "missing performance", "detail": "dropped"}
            for d, m in pairs.loc[bad, ["dataset", "model"]].itertuples(index=False)]
    kept = pairs.loc[~bad].assign(performance=perf[~bad].astype(float))
    best = kept.groupby(ranking_groups(kept))["performance"].transform("max")
    broken = (best > 0) & (kept["performance"] < broken_fraction * best)
    action = "dropped" if drop_broken else "kept"
    rows += [{"dataset": d, "model": m, "issue": "broken run",
              "detail": f"performance {p:.4g} < {broken_fraction:g} x best ({action})"}
             for d, m, p in kept.loc[broken, ["dataset", "model", "performance"]].itertuples(index=False)]
    if drop_broken:
        kept = kept.loc[~broken]
    return kept.reset_index(drop=True), issues_frame(rows)


def rankable(test: pd.DataFrame) -> tuple[list[str], pd.DataFrame]:
    """The ranking groups (datasets, or (dataset, protocol) labels of `ranking_groups`) of a test table that can be
    ranked, and issues for those that cannot (too few models, constant performance)."""
    ok, rows = [], []
    for dataset, part in test.groupby(ranking_groups(test), sort=True):
        if len(part) < MIN_MODELS:
            rows.append({"dataset": dataset, "model": None, "issue": "too few models",
                         "detail": f"{len(part)} < {MIN_MODELS} models: not evaluated"})
        elif np.ptp(part["performance"].to_numpy(dtype=float)) == 0:
            rows.append({"dataset": dataset, "model": None, "issue": "constant performance",
                         "detail": "every model scores the same: rankings undefined, not evaluated"})
        else:
            ok.append(dataset)
    return ok, issues_frame(rows)
