"""The training-history store: open it by URL, write validated batches all-or-nothing, query it as pandas."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sqlalchemy import Connection, bindparam, select, text

from recommender.errors import UserError
from recommender.history import schema
from recommender.history.aggregate import best_over_hparams, train_size
from recommender.history.engine import make_engine, resolve_url, retry_locked, write_transaction
from recommender.history.records import ROW, Batch, combine_features

PAIR_COLUMNS = ["model", "dataset", "performance", "selected_by", "family", "pretrain_dataset", "params_m",
                "gmacs", "input_size", "imagenet_top1", "examples", "classes", "modality", "group"]


class IngestError(UserError):
    """An input was rejected whole; `problems` holds one line per problem (file, row, column, reason)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} problem(s), nothing ingested:\n" + "\n".join(problems))
        self.problems = problems


class Store:
    """A training-history store behind a SQLAlchemy URL (SQLite file by default, or PostgreSQL)."""

    def __init__(self, url: str | None = None) -> None:
        self.url = resolve_url(url)
        self.engine = make_engine(self.url)
        retry_locked(self._create_schema)

    def _create_schema(self) -> None:
        """Create missing tables and record the schema version; refuse a store of another version."""
        with write_transaction(self.engine) as conn:
            schema.metadata.create_all(conn)
            found = conn.execute(select(schema.meta.c.value).where(schema.meta.c.key == "schema_version")).scalar()
            if found is None:
                conn.execute(schema.meta.insert(), {"key": "schema_version", "value": str(schema.SCHEMA_VERSION)})
            elif int(found) != schema.SCHEMA_VERSION:
                raise UserError(f"store {self.url} has schema version {found}; this code reads "
                                f"version {schema.SCHEMA_VERSION}")

    def schema_version(self) -> int:
        """The schema version recorded in the store."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(schema.meta.c.value).where(schema.meta.c.key == "schema_version"))
                       .scalar_one())

    # ---- writing -------------------------------------------------------------------------------------
    def write(self, batch: Batch) -> dict[str, int]:
        """Add a validated batch in one transaction: new rows in, equal rows skipped, any conflict rejects all."""
        return self.write_all([batch])[0]

    def write_all(self, batches: Sequence[Batch]) -> list[dict[str, int]]:
        """Add several validated batches, in order, in one transaction: all of them or none; rows added per batch."""
        problems = [line for batch in batches for line in batch.problems]
        if problems:
            raise IngestError(problems)
        return retry_locked(lambda: self._write_locked(batches))

    def _write_locked(self, batches: Sequence[Batch]) -> list[dict[str, int]]:
        """The body of `write_all`, under the store's write lock."""
        counts, problems = [], []
        with write_transaction(self.engine) as conn:
            for batch in batches:
                found = Batch(batch.label)
                counts.append(self._write_batch(conn, batch, found))
                problems += found.problems
            if problems:
                raise IngestError(problems)  # leaving the block rolls the transaction back
        return counts

    def _write_batch(self, conn: Connection, batch: Batch, problems: Batch) -> dict[str, int]:
        """Write one batch's tables inside an open transaction, features first; rows added per table."""
        added: dict[str, int] = {}
        for kind in ("models", "datasets"):
            if kind in batch.tables:
                added[kind] = self._write_features(conn, kind, batch.tables[kind], problems)
        for kind, key, values in (("jobs", schema.JOB_KEY, ["test_value", "val_value", "seconds"]),
                                  ("scores", schema.SCORE_KEY, ["value", "seconds"])):
            if kind in batch.tables:
                added[kind] = self._write_keyed(conn, kind, key, values, batch.tables[kind], problems)
        return added

    def _write_keyed(self, conn: Connection, kind: str, key: Sequence[str], values: list[str],
                     rows: pd.DataFrame, problems: Batch) -> int:
        """Insert rows whose natural key is new; report rows whose key is stored with another value."""
        table = schema.metadata.tables[kind]
        sources = sorted(rows["source"].unique())
        stored = pd.read_sql(select(*[table.c[c] for c in (*key, *values)])
                             .where(table.c.source.in_(bindparam("s", expanding=True))), conn,
                             params={"s": sources})
        joined = rows.merge(stored, on=list(key), how="left", suffixes=("", "_stored"), indicator=True)
        known = joined[joined["_merge"] == "both"]
        same = np.isclose(known[values].to_numpy(float), known[[f"{v}_stored" for v in values]].to_numpy(float),
                          rtol=1e-9, atol=0.0, equal_nan=True).all(axis=1)
        for _, row in known[~same].iterrows():
            stored_text = ", ".join(f"{v}={row[f'{v}_stored']}" for v in values)
            problems.problem(row[ROW], "key", f"{kind[:-1]} already stored with a different value ({stored_text})")
        new = joined.loc[joined["_merge"] == "left_only", [c.name for c in table.columns if c.name != "id"]]
        if len(new):
            conn.execute(table.insert(), _records(new))
        return len(new)

    def _write_features(self, conn: Connection, kind: str, rows: pd.DataFrame, problems: Batch) -> int:
        """Insert new ids; fill missing features of stored ids; a different stored value is a conflict."""
        table, id_col = schema.metadata.tables[kind], schema.ID_COLUMN[kind]
        stored = pd.read_sql(select(table).where(table.c[id_col].in_(bindparam("ids", expanding=True))), conn,
                             params={"ids": list(rows[id_col])}).set_index(id_col)
        inserts, updates = [], []
        for _, row in rows.iterrows():
            if row[id_col] not in stored.index:
                inserts.append(row)
                continue
            old = stored.loc[row[id_col]]
            merged = combine_features(old, row, kind, lambda name: problems.problem(
                row[ROW], name, f"{kind[:-1]} {row[id_col]!r} is stored with {old[name]!r}, not {row[name]!r}"))
            if not merged.equals(old):
                updates.append({"_id": row[id_col], **merged.drop("source").to_dict()})
        columns = [c.name for c in table.columns]
        if inserts:
            conn.execute(table.insert(), _records(pd.DataFrame(inserts)[columns]))
        if updates:
            # Bind names must differ from column names in an UPDATE's SET clause, hence the prefix.
            names = [n for n in columns if n not in (id_col, "source")]
            values = pd.DataFrame(updates)[["_id", *names]].rename(columns={n: f"v_{n}" for n in names})
            conn.execute(table.update().where(table.c[id_col] == bindparam("_id"))
                         .values({n: bindparam(f"v_{n}") for n in names}), _records(values))
        return len(inserts)

    # ---- reading -------------------------------------------------------------------------------------
    def _read(self, query: object, **params: object) -> pd.DataFrame:
        """Run a query and return a DataFrame."""
        with self.engine.connect() as conn:
            return pd.read_sql(query, conn, params=params or None)

    def jobs(self, protocol: str | None = None, model: str | None = None, dataset: str | None = None,
             metric: str | None = None, source: str | None = None, modality: str | None = None) -> pd.DataFrame:
        """The jobs of a selection (every given filter must match), hyper-parameters as a JSON text column."""
        table = schema.jobs
        query = select(table)
        for column, value in (("protocol", protocol), ("model", model), ("dataset", dataset),
                              ("metric", metric), ("source", source)):
            if value is not None:
                query = query.where(table.c[column] == value)
        if modality is not None:
            query = query.where(table.c.dataset.in_(select(schema.datasets.c.dataset)
                                                    .where(schema.datasets.c.modality == modality)))
        return self._read(query.order_by(table.c.id)).drop(columns="id")

    def protocols(self) -> pd.DataFrame:
        """Each protocol with its metrics and number of jobs."""
        return self._read(text("SELECT protocol, metric, COUNT(*) AS jobs FROM jobs GROUP BY protocol, metric "
                               "ORDER BY protocol, metric"))

    def default_metric(self, protocol: str) -> str:
        """The metric a protocol's performance uses by default: its most frequent (ties: alphabetical first)."""
        counts = self.protocols()
        counts = counts[counts["protocol"] == protocol]
        if counts.empty:
            known = ", ".join(sorted(self.protocols()["protocol"].unique())) or "none; run `recommender history init`"
            raise UserError(f"no jobs under protocol {protocol!r} (stored protocols: {known})")
        return counts.sort_values(["jobs", "metric"], ascending=[False, True]).iloc[0]["metric"]

    def pairs(self, protocol: str, select: str = "val", metric: str | None = None,
              modality: str | None = None) -> pd.DataFrame:
        """One row per (model, dataset) of a protocol: performance aggregated over hyper-parameters, selected_by."""
        metric = metric or self.default_metric(protocol)
        return best_over_hparams(self.jobs(protocol=protocol, metric=metric, modality=modality), select)

    def performance_matrix(self, protocol: str, select: str = "val", metric: str | None = None) -> pd.DataFrame:
        """Models x datasets performance under one protocol (NaN where a pair was not run)."""
        pairs = self.pairs(protocol, select, metric)
        return pairs.pivot(index="model", columns="dataset", values="performance")

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
        return self._read(query).drop(columns="id")

    def score_table(self, names: Sequence[str], source: str | None = None) -> pd.DataFrame:
        """Scores per (model, dataset) as `score_<name>`: the most recently ingested value (of `source` if given)."""
        # One stored computation, never a mean: sources and runs differ in data (a subsample, the full split).
        long = self.scores(names)
        if source is not None:
            long = long[long["source"] == source]
        missing = sorted(set(names) - set(long["score"]))
        if missing:
            have = ", ".join(sorted(self.scores()["score"].unique())) or "none"
            where = f" from source {source!r}" if source is not None else ""
            raise UserError(f"no stored score named {', '.join(missing)}{where} (stored scores: {have})")
        # scores() is in insertion order, so a stable sort leaves the last-written row last among equal times.
        latest = long.sort_values("ingested_at", kind="stable").drop_duplicates(["model", "dataset", "score"],
                                                                               keep="last")
        wide = latest.pivot(index=["model", "dataset"], columns="score", values="value")
        return wide[list(names)].add_prefix("score_").reset_index().rename_axis(columns=None)

    def pair_table(self, protocol: str, modality: str | None = None, scores: Sequence[str] = (),
                   select: str = "val", metric: str | None = None, score_source: str | None = None) -> pd.DataFrame:
        """The pair table of docs/contracts.md for one protocol, plus `examples_full`; scores as `score_table` picks."""
        pairs = self.pairs(protocol, select, metric, modality)
        models = self.model_features().drop(columns=["source", "extra"])
        datasets = self.dataset_features().drop(columns=["source", "extra"]).rename(
            columns={"examples": "examples_full"})
        table = pairs.merge(models, on="model", how="left").merge(datasets, on="dataset", how="left")
        table["examples"] = train_size(protocol, table["examples_full"])
        columns = [*PAIR_COLUMNS, "examples_full"]
        if scores:
            table = table.merge(self.score_table(scores, score_source), on=["model", "dataset"], how="left")
            columns += [f"score_{name}" for name in scores]
        return table[columns].sort_values(["dataset", "model"], ignore_index=True)

    def counts(self) -> dict[str, int]:
        """Rows per table."""
        with self.engine.connect() as conn:
            return {name: conn.execute(text(f"SELECT COUNT(*) FROM {name}")).scalar_one()
                    for name in ("jobs", "models", "datasets", "scores")}


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as dicts for executemany, with NaN turned into NULL."""
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def open_store(url: str | None = None) -> Store:
    """Open (creating if needed) the store at `url`, $RECOMMENDER_DB, or the default SQLite file."""
    return Store(url)
