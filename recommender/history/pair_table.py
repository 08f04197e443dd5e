"""Assembling the pair table of docs/contracts.md from the store: performance per pair, features, facts, scores."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from recommender.contracts import (
    EXAMPLES_FULL,
    PAIR_TABLE_COLUMNS,
    PROTOCOL_COLUMNS,
    PROTOCOL_PREFIX,
    protocol_examples,
    protocol_names,
    score_column,
)
from recommender.errors import UserError
from recommender.history.aggregate import AGGREGATED, best_over_hparams
from recommender.history.queries import Queries


class PairTables(Queries):
    """Pair tables, performance matrices and score tables built from the store's queries (a base of `Store`)."""

    def pairs(self, protocol: str, select: str = "val", metric: str | None = None,
              modality: str | None = None, stored: pd.DataFrame | None = None) -> pd.DataFrame:
        """One row per (model, dataset) of a protocol: performance aggregated over hyper-parameters, selected_by
        (``stored``: `protocols()`, where read already)."""
        metric = metric or self.default_metric(protocol, stored)
        jobs = self.jobs(protocol=protocol, metric=metric, modality=modality, columns=AGGREGATED)
        return best_over_hparams(jobs, select)

    def logged_results(self, protocol: str, dataset: str, select: str = "val", metric: str | None = None
                       ) -> tuple[pd.DataFrame, dict[str, int]]:
        """One dataset's pairs under one protocol in its ``metric`` (default: the protocol's), as `pairs` gives them
        but named ``dataset`` as asked (an alias too), whatever facts the store holds of the dataset: a dataset of the
        user's own has none, and a pair table of one modality leaves it out. Also the number of its jobs under each
        other metric (other units: not used)."""
        jobs = self.jobs(protocol=protocol, dataset=dataset, columns=[*AGGREGATED, "metric"])
        if jobs.empty:
            return best_over_hparams(jobs, select), {}
        mine = jobs["metric"] == (metric or self.default_metric(protocol))
        others = jobs.loc[~mine, "metric"].astype(str).value_counts()
        pairs = best_over_hparams(jobs[mine], select).assign(dataset=dataset)
        return pairs, {str(name): int(n) for name, n in others.items()}

    def performance_matrix(self, protocol: str, select: str = "val", metric: str | None = None) -> pd.DataFrame:
        """Models x datasets performance under one protocol (NaN where a pair was not run)."""
        pairs = self.pairs(protocol, select, metric)
        return pairs.pivot(index="model", columns="dataset", values="performance")

    def latest_scores(self, names: Sequence[str] = (), source: str | None = None) -> pd.DataFrame:
        """The stored scores (`scores()`, long format; of `source` if given), only the most recently ingested row of
        each (model, dataset, score): the one computation the pair table uses."""
        # One stored computation, never a mean: sources and runs differ in data (a subsample, the full split).
        long = self.scores(names)
        if source is not None:
            long = long[long["source"] == source]
        # scores() is in insertion order, so a stable sort leaves the last-written row last among equal times.
        return long.sort_values("ingested_at", kind="stable").drop_duplicates(["model", "dataset", "score"],
                                                                             keep="last")

    def score_table(self, names: Sequence[str], source: str | None = None) -> pd.DataFrame:
        """Scores per (model, dataset) as `score_<name>`: the most recently ingested value (of `source` if given)."""
        latest = self.latest_scores(names, source)
        missing = sorted(set(names) - set(latest["score"]))
        if missing:
            have = ", ".join(sorted(self.scores()["score"].unique())) or "none"
            where = f" from source {source!r}" if source is not None else ""
            raise UserError(f"no stored score named {', '.join(missing)}{where} (stored scores: {have})")
        wide = latest.pivot(index=["model", "dataset"], columns="score", values="value")
        return wide[list(names)].rename(columns=score_column).reset_index().rename_axis(columns=None)

    def pair_table(self, protocol: str | Sequence[str], modality: str | None = None, scores: Sequence[str] = (),
                   select: str = "val", metric: str | None = None, score_source: str | None = None,
                   stored: pd.DataFrame | None = None) -> pd.DataFrame:
        """The pair table of docs/contracts.md for one protocol, a list of them, or "all" (every stored protocol).

        Pairs are identified within one (dataset, protocol); each row carries its `protocol` and the protocol's
        facts as `p_<fact>`, with `p_examples` the training examples on that dataset (`examples` too, falling back
        to `examples_full` where the protocol does not say). Scores as `score_table` picks them (per model and
        dataset, whatever the protocol). Each protocol's performance uses `metric`, or its own default metric
        (``stored``: `protocols()`, where the caller has read it already).
        """
        stored = self.protocols() if stored is None else stored  # read once: it counts every job
        names = protocol_names(protocol, list(stored["protocol"].unique()))
        metrics = pd.DataFrame({"protocol": names, "metric": [metric or self.default_metric(name, stored)
                                                              for name in names]})
        # one query and one aggregation for every protocol: each protocol's jobs in its metric
        jobs = self.jobs(protocol=names, modality=modality, columns=["protocol", "metric", *AGGREGATED])
        jobs = jobs.merge(metrics, on=["protocol", "metric"])
        pairs = best_over_hparams(jobs, select, by=["protocol"])
        models = self.model_features().drop(columns=["source", "extra"])
        datasets = self.dataset_features().drop(columns=["source", "extra"]).rename(
            columns={"examples": EXAMPLES_FULL})
        facts = self.protocol_facts().drop(columns=["source", "extra"]).add_prefix(PROTOCOL_PREFIX)
        per_dataset = self.protocol_examples().drop(columns="source").rename(columns={"examples": "examples_pd"})
        table = (pairs.merge(models, on="model", how="left").merge(datasets, on="dataset", how="left")
                 .merge(facts, left_on="protocol", right_on="p_protocol", how="left")
                 .merge(per_dataset, on=["protocol", "dataset"], how="left"))
        table = table.reindex(columns=[*table.columns, *(c for c in PROTOCOL_COLUMNS if c not in table)])
        table["p_examples"], table["examples"] = protocol_examples(
            table["examples_pd"].astype(float), table["p_examples"].astype(float),
            table["p_train_fraction"].astype(float), table[EXAMPLES_FULL].astype(float))
        columns = list(PAIR_TABLE_COLUMNS)
        if scores:
            table = table.merge(self.score_table(scores, score_source), on=["model", "dataset"], how="left")
            columns += [score_column(name) for name in scores]
        return table[columns].sort_values(["protocol", "dataset", "model"], ignore_index=True)

    def kept_pairs(self, protocol: str, modality: str | None = None, select: str = "val"
                   ) -> tuple[pd.DataFrame, dict[str, str]]:
        """``pair_table(protocol, modality, select=select)`` and each of its protocols' default metric, kept between
        calls until the store changes (`recommender.kept`): what `recommend` and `next` start from."""
        from recommender.kept import kept

        def compute() -> tuple[pd.DataFrame, dict[str, str]]:
            stored = self.protocols()
            table = self.pair_table(protocol, modality, select=select, stored=stored)
            return table, {name: self.default_metric(name, stored) for name in table["protocol"].dropna().unique()}

        def restore(values: dict[str, object], tables: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, dict[str, str]]:
            metrics, table = values["metrics"], tables["pairs"]
            if not (isinstance(metrics, dict) and all(isinstance(v, str) for v in metrics.values())):
                raise ValueError("metrics must name each protocol's metric")
            if list(table.columns) != list(PAIR_TABLE_COLUMNS) or set(table["protocol"]) - set(metrics):
                raise ValueError("not a pair table of these protocols")
            return table, metrics

        return kept(self, "pairs", {"protocol": protocol, "modality": modality, "select": select}, compute,
                    lambda found: ({"metrics": found[1]}, {"pairs": found[0]}), restore, ("pairs",), "the pair table")

    def scored_history(self, modality: str | None, select: str = "val", scores: Sequence[str] = ()
                       ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Every protocol's pair table of the modality with the stored values of ``scores`` (empty: every stored
        score) that the store holds, and the stored score rows read (`scores`): the history `auto` learns from."""
        rows = self.scores(scores)
        return self.pair_table("all", modality, scores=sorted(rows["score"].unique()), select=select), rows
