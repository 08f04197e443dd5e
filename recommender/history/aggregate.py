"""From jobs to pair performance (SPEC §2): the best over hyper-parameters."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from recommender.errors import UserError

PAIR = ["model", "dataset"]
AGGREGATED = [*PAIR, "test_value", "val_value"]  # the job columns the aggregation reads


def best_over_hparams(jobs: pd.DataFrame, select: str = "val", by: Sequence[str] = ()) -> pd.DataFrame:
    """Performance per (model, dataset): the test value of the job that is best on validation, where logged; per
    (``by``..., model, dataset) where ``by`` names more columns of the jobs (a table of several protocols).

    `select="val"`: among a pair's jobs that logged a validation value, take those with the highest one and
    average their test values (several settings often tie on a 200-example validation split); a pair with no
    validation value falls back to its best test value and says so in `selected_by`. `select="test"`: the best
    test value, as SHiFT reports.
    """
    if select not in ("val", "test"):
        raise UserError(f"select must be 'val' or 'test', not {select!r}")
    key = [*by, *PAIR]
    columns = [*key, "performance", "selected_by"]
    if jobs.empty:
        return pd.DataFrame(columns=columns)
    # a protocol without any validation value reads val_value as object (all NULL): pandas' groupby then falls
    # back to one Python call per group, a hundred times slower
    jobs = jobs[[*by, *AGGREGATED]].astype({"test_value": float, "val_value": float})
    by_test = jobs.groupby(key, sort=True)["test_value"].max().rename("performance").reset_index()
    by_test["selected_by"] = "test"
    if select == "test":
        return by_test[columns]
    best_val = jobs.groupby(key)["val_value"].transform("max")
    chosen = jobs[jobs["val_value"].notna() & (jobs["val_value"] == best_val)]
    by_val = chosen.groupby(key, sort=True)["test_value"].mean().rename("performance").reset_index()
    by_val["selected_by"] = "val"
    fallback = by_test.merge(by_val[key], on=key, how="left", indicator=True)
    fallback = fallback[fallback["_merge"] == "left_only"].drop(columns="_merge")
    return pd.concat([by_val, fallback], ignore_index=True).sort_values(key, ignore_index=True)[columns]
