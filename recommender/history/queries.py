"""Reading the store: its tables as pandas DataFrames (jobs, features, scores, aliases, protocols, counts).

The queries are SQL text that SQLite and PostgreSQL read alike. A SQLite file is read with the standard library's
sqlite3 (no SQLAlchemy to import: `recommend` and `next` answer sooner); another store through its engine.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

import pandas as pd

from recommender.errors import UserError
from recommender.history.url import file_uri, read_only_uri, sqlite_file
from recommender.history.version import REVISION, VERSION_KEY, parse_version

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

TABLES = ("jobs", "models", "datasets", "scores", "dataset_aliases", "protocols", "protocol_datasets")


def _columns(names: Sequence[str]) -> str:
    """A select list of quoted column names (`group` is a keyword)."""
    return ", ".join(f'"{name}"' for name in names)


class Queries:
    """The read queries of a store (a base of `Store`; needs its `url`, and `read_only`: whether the engine, where
    one is needed, may write)."""

    url: str
    read_only: bool

    @cached_property
    def engine(self) -> Engine:
        """The SQLAlchemy engine on the store, made on first use (reads of a SQLite file need none)."""
        from recommender.history.engine import make_engine

        return make_engine(self.url, read_only=self.read_only)

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection | Connection]:
        """A connection to read from: sqlite3's on a SQLite file (read-only where this process cannot write it;
        never creating the file), else the engine's."""
        path = sqlite_file(self.url)
        if path is None:
            with self.engine.connect() as conn:
                yield conn
            return
        uri = read_only_uri(path) or file_uri(path, "rw")
        with closing(sqlite3.connect(uri, uri=True, timeout=60)) as conn:
            yield conn

    def _read(self, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Run a query (SQL text with :name parameters) and return a DataFrame."""
        with self._connection() as conn:
            if isinstance(conn, sqlite3.Connection):
                return pd.read_sql(sql, conn, params=params)
            from sqlalchemy import text

            return pd.read_sql(text(sql), conn, params=params)

    def stored_version(self) -> int | None:
        """The schema version recorded in the store, None where there is no store (`version.parse_version`)."""
        with self._connection() as conn:
            if not isinstance(conn, sqlite3.Connection):
                from recommender.history import migrate

                return migrate.stored_version(conn, self.url)
            has_meta = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone()
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (VERSION_KEY,)).fetchone() if has_meta else None
            return parse_version(has_meta is not None, None if row is None else row[0], self.url)

    def jobs(self, protocol: str | Sequence[str] | None = None, model: str | None = None, dataset: str | None = None,
             metric: str | None = None, source: str | None = None, modality: str | None = None,
             columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The jobs of a selection (every given filter must match; ``protocol``: one, or any of several),
        hyper-parameters as a JSON text column; only ``columns`` where named (reading fewer is faster)."""
        chosen = "*" if columns is None else _columns(["id", "key", *columns])
        dataset = None if dataset is None else self.resolve_dataset(dataset)
        one = protocol if isinstance(protocol, str) else None
        given = {name: value for name, value in (("protocol", one), ("model", model), ("dataset", dataset),
                                                  ("metric", metric), ("source", source)) if value is not None}
        where = [f'"{name}" = :{name}' for name in given]
        if protocol is not None and one is None:  # any of several (none: no job)
            several = {f"protocol{i}": name for i, name in enumerate(protocol)}
            where.append(f"protocol IN ({', '.join(f':{name}' for name in several) or 'NULL'})")
            given.update(several)
        if modality is not None:
            where.append("dataset IN (SELECT dataset FROM datasets WHERE modality = :modality)")
            given["modality"] = modality
        condition = f" WHERE {' AND '.join(where)}" if where else ""
        return self._read(f"SELECT {chosen} FROM jobs{condition} ORDER BY id", given).drop(columns=["id", "key"])

    def aliases(self) -> pd.DataFrame:
        """Every dataset alias: alias, dataset (canonical), source."""
        return self._read("SELECT * FROM dataset_aliases ORDER BY alias")

    def alias_map(self) -> dict[str, str]:
        """alias -> canonical dataset."""
        return dict(self.aliases()[["alias", "dataset"]].itertuples(index=False))

    def resolve_dataset(self, name: str) -> str:
        """The canonical name of a dataset (a name that is no alias is returned as it is)."""
        found = self._read("SELECT dataset FROM dataset_aliases WHERE alias = :name", {"name": name})
        return name if found.empty else str(found["dataset"].iloc[0])

    def protocol_facts(self) -> pd.DataFrame:
        """Every protocol with its facts (history, examples or train fraction, epochs, learning rates, ...)."""
        return self._read("SELECT * FROM protocols ORDER BY protocol")

    def protocol_examples(self) -> pd.DataFrame:
        """Training examples per (protocol, dataset), where a protocol's count varies by dataset."""
        return self._read("SELECT * FROM protocol_datasets ORDER BY protocol, dataset")

    def protocols(self) -> pd.DataFrame:
        """Each protocol with its metrics and number of jobs."""
        return self._read("SELECT protocol, metric, COUNT(*) AS jobs FROM jobs GROUP BY protocol, metric "
                          "ORDER BY protocol, metric")

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
        return self._read("SELECT * FROM models ORDER BY model")

    def dataset_features(self) -> pd.DataFrame:
        """Every stored dataset with its features (examples = the full official train split)."""
        return self._read("SELECT * FROM datasets ORDER BY dataset")

    def scores(self, names: Sequence[str] = ()) -> pd.DataFrame:
        """Stored transferability scores, long format (one row per model, dataset, score, run)."""
        given = {f"s{i}": name for i, name in enumerate(names)}
        condition = f" WHERE score IN ({', '.join(f':{key}' for key in given)})" if given else ""
        return self._read(f"SELECT * FROM scores{condition} ORDER BY id", given).drop(columns=["id", "key"])

    def revision(self) -> str:
        """What identifies the store's content: the revision each write of this package records in `meta` (a new
        random one per write), and the rows per table (all a store that no such write has touched has to go by)."""
        found = self._read("SELECT value FROM meta WHERE key = :key", {"key": REVISION})["value"]
        counts = ",".join(f"{name}={n}" for name, n in self.counts().items())
        return f"{found.iloc[0] if len(found) else 'none'};{counts}"

    def counts(self) -> dict[str, int]:
        """Rows per table."""
        counts = self._read(f"SELECT {', '.join(f'(SELECT COUNT(*) FROM {name}) AS {name}' for name in TABLES)}")
        return {name: int(counts[name].iloc[0]) for name in TABLES}
