"""Reading the store: its tables as pandas DataFrames (jobs, features, scores, aliases, protocols, counts)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from sqlalchemy import Engine, Select, TextClause, select, text

from recommender.errors import UserError
from recommender.history import schema

TABLES = ("jobs", "models", "datasets", "scores", "dataset_aliases", "protocols", "protocol_datasets")


class Queries:
    """The read queries of a store (a base of `Store`; needs only its `engine`)."""

    engine: Engine

    def _read(self, query: Select | TextClause) -> pd.DataFrame:
        """Run a query and return a DataFrame."""
        with self.engine.connect() as conn:
            return pd.read_sql(query, conn)

    def jobs(self, protocol: str | None = None, model: str | None = None, dataset: str | None = None,
             metric: str | None = None, source: str | None = None, modality: str | None = None,
             columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The jobs of a selection (every given filter must match), hyper-parameters as a JSON text column;
        only ``columns`` where named (reading fewer is faster)."""
        table = schema.jobs
        query = select(table) if columns is None else select(*(table.c[name] for name in ["id", "key", *columns]))
        dataset = None if dataset is None else self.resolve_dataset(dataset)
        for column, value in (("protocol", protocol), ("model", model), ("dataset", dataset),
                              ("metric", metric), ("source", source)):
            if value is not None:
                query = query.where(table.c[column] == value)
        if modality is not None:
            query = query.where(table.c.dataset.in_(select(schema.datasets.c.dataset)
                                                    .where(schema.datasets.c.modality == modality)))
        return self._read(query.order_by(table.c.id)).drop(columns=["id", "key"])

    def aliases(self) -> pd.DataFrame:
        """Every dataset alias: alias, dataset (canonical), source."""
        return self._read(select(schema.dataset_aliases).order_by(schema.dataset_aliases.c.alias))

    def alias_map(self) -> dict[str, str]:
        """alias -> canonical dataset."""
        return dict(self.aliases()[["alias", "dataset"]].itertuples(index=False))

    def resolve_dataset(self, name: str) -> str:
        """The canonical name of a dataset (a name that is no alias is returned as it is)."""
        found = self._read(select(schema.dataset_aliases.c.dataset).where(schema.dataset_aliases.c.alias == name))
        return name if found.empty else str(found["dataset"].iloc[0])

    def protocol_facts(self) -> pd.DataFrame:
        """Every protocol with its facts (history, examples or train fraction, epochs, learning rates, ...)."""
        return self._read(select(schema.protocols).order_by(schema.protocols.c.protocol))

    def protocol_examples(self) -> pd.DataFrame:
        """Training examples per (protocol, dataset), where a protocol's count varies by dataset."""
        table = schema.protocol_datasets
        return self._read(select(table).order_by(table.c.protocol, table.c.dataset))

    def protocols(self) -> pd.DataFrame:
        """Each protocol with its metrics and number of jobs."""
        return self._read(text("SELECT protocol, metric, COUNT(*) AS jobs FROM jobs GROUP BY protocol, metric "
                               "ORDER BY protocol, metric"))

    def default_metric(self, protocol: str, stored: pd.DataFrame | None = None) -> str:
        """The metric a protocol's performance uses by default: its most frequent (ties: alphabetical first).
        ``stored``: `protocols()` where the caller has read it already (it counts every job)."""
        stored = self.protocols() if stored is None else stored
        counts = stored[stored["protocol"] == protocol]
        if counts.empty:
            known = ", ".join(sorted(stored["protocol"].unique())) or "none; run `recommender history init`"
            raise UserError(f"no jobs under protocol {protocol!r} (stored protocols: {known})")
        return str(counts.sort_values(["jobs", "metric"], ascending=[False, True]).iloc[0]["metric"])

    def model_features(self) -> pd.DataFrame:
        """Every stored model with its features (extra features as JSON text in `extra`)."""
        return self._read(select(schema.models).order_by(schema.models.c.model))

    def dataset_features(self) -> pd.DataFrame:
        """Every stored dataset with its features (examples = the full official train split)."""
        return self._read(select(schema.datasets).order_by(schema.datasets.c.dataset))

    def scores(self, names: Sequence[str] = ()) -> pd.DataFrame:
        """Stored transferability scores, long format (one row per model, dataset, score, run)."""
        query = select(schema.scores).order_by(schema.scores.c.id)
        if names:
            query = query.where(schema.scores.c.score.in_(list(names)))
        return self._read(query).drop(columns=["id", "key"])

    def revision(self) -> str:
        """What identifies the store's content: the revision each write of this package records in `meta` (a new
        random one per write), and the rows per table (all a store that no such write has touched has to go by)."""
        with self.engine.connect() as conn:
            found = conn.execute(select(schema.meta.c.value).where(schema.meta.c.key == schema.REVISION)).scalar()
        counts = ",".join(f"{name}={n}" for name, n in self.counts().items())
        return f"{found or 'none'};{counts}"

    def counts(self) -> dict[str, int]:
        """Rows per table."""
        with self.engine.connect() as conn:
            return {name: conn.execute(text(f"SELECT COUNT(*) FROM {name}")).scalar_one() for name in TABLES}
