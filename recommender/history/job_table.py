"""The job table: one row per fine-tuning job, with its pair's features (the pair table's columns), its configuration
(`h_<name>`: learning rate, epochs) and its seconds. The pair table keeps the best over hyper-parameters; the
configuration-level recommenders and the cost model learn from the jobs themselves."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pandas as pd

from recommender.contracts import CONFIG_HPARAMS, PAIR_TABLE_COLUMNS, hparam_column, protocol_column
from recommender.history.store import Store

KEY = ["model", "dataset", "protocol"]
HPARAM_COLUMNS = tuple(hparam_column(name) for name in CONFIG_HPARAMS)
JOB_COLUMNS = ("seconds", "batch_size")  # what a job adds besides its configuration: its cost and batch size


def _hparam(raw: pd.Series, name: str) -> pd.Series:
    """One numeric hyper-parameter of each job's hparams JSON text (NaN where absent or not a number)."""
    def value(text: object) -> object:
        try:
            parsed = json.loads(str(text))
        except json.JSONDecodeError:
            return None
        return parsed.get(name) if isinstance(parsed, dict) else None
    return pd.to_numeric(raw.map(value), errors="coerce").astype(float)


def job_table(store: Store, protocol: str | Sequence[str], modality: str | None = None,
              metric: str | None = None) -> pd.DataFrame:
    """One row per job of the protocol(s) (each protocol's `metric`, or its default one): the pair table's columns
    (``performance`` is the job's test value, ``selected_by`` "job"), then ``h_lr``, ``h_epochs`` (the job's own,
    else its protocol's one learning rate and epochs), ``seconds`` and ``batch_size`` (NaN where not logged)."""
    pairs = store.pair_table(protocol, modality, select="test", metric=metric)
    parts = []
    for name in pairs["protocol"].unique():
        jobs = store.jobs(protocol=name, metric=metric or store.default_metric(name), modality=modality)
        own = {hparam_column(h): _hparam(jobs["hparams"], h) for h in (*CONFIG_HPARAMS, "batch_size")}
        parts.append(jobs[["model", "dataset", "protocol", "test_value", "seconds"]].assign(**own))
    columns = [*PAIR_TABLE_COLUMNS, *HPARAM_COLUMNS, *JOB_COLUMNS]
    if not parts:
        return pd.DataFrame(columns=columns)
    jobs = pd.concat(parts, ignore_index=True)
    table = jobs.merge(pairs.drop(columns=["performance", "selected_by"]), on=KEY, how="inner")
    # a protocol with one learning rate (lr_min == lr_max) or fixed epochs says what its jobs ran with
    low, high = table[protocol_column("lr_min")], table[protocol_column("lr_max")]
    one_lr = low.where(low == high)
    table[hparam_column("lr")] = table[hparam_column("lr")].fillna(one_lr)
    table[hparam_column("epochs")] = table[hparam_column("epochs")].fillna(table[protocol_column("epochs")])
    table = table.rename(columns={"test_value": "performance", hparam_column("batch_size"): "batch_size"})
    table["selected_by"] = "job"
    return table[columns].sort_values([*KEY, *HPARAM_COLUMNS], ignore_index=True, kind="stable")
