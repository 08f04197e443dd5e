"""The training-history store: open it by URL, write validated batches all-or-nothing, query it as pandas."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Table, bindparam, inspect, select, text
from sqlalchemy.exc import SQLAlchemyError

from recommender.errors import UserError
from recommender.history import schema
from recommender.history.aggregate import best_over_hparams
from recommender.history.engine import (
    make_engine,
    resolve_url,
    retry_locked,
    sqlite_path,
    write_transaction,
)
from recommender.history.records import (
    FILE_COLUMN,
    JOB_NUMBERS,
    ROW,
    SCORE_NUMBERS,
    Batch,
    combine_extra,
    combine_features,
    is_missing,
    now_utc,
    same_value,
)

KEY_CHUNK = 5000  # keys per lookup query: below SQLite's limit on bound parameters

PAIR_COLUMNS = ["model", "dataset", "performance", "selected_by", "family", "pretrain_dataset", "params_m",
                "gmacs", "input_size", "imagenet_top1", "examples", "classes", "modality", "group"]
PROTOCOL_COLUMNS = ["p_" + name for name in schema.PROTOCOL_FEATURES]  # the pair table's protocol facts
TABLES = ("jobs", "models", "datasets", "scores", "dataset_aliases", "protocols", "protocol_datasets")


class IngestError(UserError):
    """An input was rejected whole; `problems` holds one line per problem (file, row, column, reason)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} problem(s), nothing ingested:\n" + "\n".join(problems))
        self.problems = problems


class Store:
    """A training-history store behind a SQLAlchemy URL (SQLite file by default, or PostgreSQL).

    Opened for reading (`create=False`), a store that does not exist is an error and nothing is created;
    `create=True` creates the folders, file and tables as needed and lists what it made in `created`.
    """

    def __init__(self, url: str | None = None, create: bool = False) -> None:
        self.url = resolve_url(url)
        self.created: list[Path] = []
        path = sqlite_path(self.url)
        if path is not None and not path.is_file():
            if not create:
                raise UserError(f"no store at {path}: run `recommender history init`")
            self.created = [*_make_folders(path.parent), path]
        self.engine = make_engine(self.url)
        try:
            if create:
                retry_locked(self._create_schema)
            else:
                self._check_schema()
        except BaseException:
            self.discard_if_created()
            raise

    def _check_schema(self) -> None:
        """Refuse a database without our tables, or with another schema version (reads nothing else)."""
        with self.engine.connect() as conn:
            if not inspect(conn).has_table("meta"):
                raise UserError(f"no store at {self.url}: run `recommender history init`")
            found = conn.execute(select(schema.meta.c.value).where(schema.meta.c.key == "schema_version")).scalar()
            if found is not None and int(str(found)) in schema.UPGRADABLE:
                raise UserError(f"store {self.url} has schema version {found}, without dataset aliases and "
                                "protocol facts: run `recommender history init` to upgrade it in place")
            self._check_version(found)

    def _create_schema(self) -> None:
        """Create missing tables and record the schema version; refuse a store of another version."""
        with write_transaction(self.engine) as conn:
            schema.metadata.create_all(conn)
            found = conn.execute(select(schema.meta.c.value).where(schema.meta.c.key == "schema_version")).scalar()
            if found is None:
                conn.execute(schema.meta.insert(), {"key": "schema_version", "value": str(schema.SCHEMA_VERSION)})
            elif int(str(found)) in schema.UPGRADABLE:  # create_all has just added the tables it lacked
                conn.execute(schema.meta.update().where(schema.meta.c.key == "schema_version"),
                             {"value": str(schema.SCHEMA_VERSION)})
                found = schema.SCHEMA_VERSION
            self._check_version(found or schema.SCHEMA_VERSION)

    def _check_version(self, found: object) -> None:
        """A store of another schema version is refused, never misread."""
        if found is None or int(str(found)) != schema.SCHEMA_VERSION:
            raise UserError(f"store {self.url} has schema version {found}; this code reads version "
                            f"{schema.SCHEMA_VERSION} (jobs keyed by content): create a new store with "
                            "`recommender history init` and ingest your own files again")

    def discard_if_created(self) -> None:
        """Remove the SQLite file and folders this object created, if the store holds no row (a failed first
        write leaves nothing behind); a store another process has written to meanwhile is kept."""
        if not self.created:
            return
        try:
            if any(self.counts().values()):
                return
        except SQLAlchemyError:
            pass  # no tables yet: nothing of value in it
        self.engine.dispose()
        database = self.created[-1]
        for suffix in ("", "-wal", "-shm", "-journal"):
            database.with_name(database.name + suffix).unlink(missing_ok=True)
        for folder in reversed(self.created[:-1]):
            with suppress(OSError):
                folder.rmdir()
        self.created = []

    def schema_version(self) -> int:
        """The schema version recorded in the store."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(schema.meta.c.value).where(schema.meta.c.key == "schema_version"))
                       .scalar_one())

    # ---- writing -------------------------------------------------------------------------------------
    def write(self, batch: Batch, replace: bool = False) -> dict[str, int]:
        """Add a validated batch in one transaction: new rows in, equal rows skipped, any conflict rejects all
        (with `replace`, a conflicting stored value is overwritten instead)."""
        return self.write_all([batch], replace)[0]

    def write_all(self, batches: Sequence[Batch], replace: bool = False) -> list[dict[str, int]]:
        """Add several validated batches, in order, in one transaction: all of them or none; rows added per batch."""
        problems = [line for batch in batches for line in batch.problems]
        if problems:
            raise IngestError(problems)
        return retry_locked(lambda: self._write_locked(batches, replace))

    def _write_locked(self, batches: Sequence[Batch], replace: bool) -> list[dict[str, int]]:
        """The body of `write_all`, under the store's write lock."""
        counts, problems = [], []
        with write_transaction(self.engine) as conn:
            for batch in batches:
                found = Batch(batch.label)
                counts.append(self._write_batch(conn, batch, found, replace))
                problems += found.problems
            if problems:
                raise IngestError(problems)  # leaving the block rolls the transaction back
        return counts

    def _write_batch(self, conn: Connection, batch: Batch, problems: Batch, replace: bool) -> dict[str, int]:
        """Write one batch's tables inside an open transaction, aliases and features first; rows added per table."""
        added: dict[str, int] = {}
        if "dataset_aliases" in batch.tables:
            added["dataset_aliases"] = self._write_aliases(conn, batch.tables["dataset_aliases"], problems)
        _check_canonical(conn, batch, problems)
        for kind in ("models", "datasets", "protocols"):
            if kind in batch.tables:
                added[kind] = self._write_features(conn, kind, batch.tables[kind], problems, replace)
        if "protocol_datasets" in batch.tables:
            added["protocol_datasets"] = self._write_protocol_datasets(conn, batch.tables["protocol_datasets"],
                                                                       problems, replace)
        for kind in ("jobs", "scores"):
            if kind in batch.tables:
                added[kind] = self._write_keyed(conn, kind, batch.tables[kind], problems, replace)
        return added

    def _write_aliases(self, conn: Connection, rows: pd.DataFrame, problems: Batch) -> int:
        """Add new aliases; the same definition again adds nothing; an alias stored for another dataset, an alias
        that is a stored dataset's name, or a dataset that is a stored alias is a problem."""
        stored = pd.read_sql(select(schema.dataset_aliases), conn).set_index("alias")["dataset"]
        names = _stored_dataset_names(conn)
        inserts = []
        for row in rows.to_dict("records"):
            alias, dataset = row["alias"], row["dataset"]
            if alias in stored.index:
                if stored[alias] != dataset:
                    problems.problem(row[ROW], "dataset", f"alias {alias!r} is stored for dataset "
                                                          f"{stored[alias]!r}, not {dataset!r}")
            elif dataset in stored.index:
                problems.problem(row[ROW], "dataset", f"{dataset!r} is itself an alias of {stored[dataset]!r}")
            elif alias in names or alias in set(stored):
                problems.problem(row[ROW], "alias", f"{alias!r} is a dataset the store holds rows for, not a "
                                                    "free name")
            else:
                inserts.append(row)
        if inserts:
            conn.execute(schema.dataset_aliases.insert(),
                         _records(pd.DataFrame(inserts)[["alias", "dataset", "source"]]))
        return len(inserts)

    def _write_protocol_datasets(self, conn: Connection, rows: pd.DataFrame, problems: Batch, replace: bool) -> int:
        """Insert new (protocol, dataset) example counts; another stored count is a conflict (or replaced)."""
        table = schema.protocol_datasets
        stored = pd.read_sql(select(table), conn).set_index(["protocol", "dataset"])["examples"]
        inserts, updates = [], []
        for row in rows.to_dict("records"):
            ident = (row["protocol"], row["dataset"])
            if ident not in stored.index:
                inserts.append(row)
            elif not same_value(stored[ident], row["examples"]):
                if replace:
                    updates.append(row)
                else:
                    problems.problem(row[ROW], "examples", f"protocol {ident[0]!r} on {ident[1]!r} is stored "
                                     f"with {_shown(stored[ident])} examples, not {_shown(row['examples'])}")
        columns = ["protocol", "dataset", "examples", "source"]
        if inserts:
            conn.execute(table.insert(), _records(pd.DataFrame(inserts)[columns]))
        for row in updates:
            conn.execute(table.update().where((table.c.protocol == row["protocol"])
                                              & (table.c.dataset == row["dataset"]))
                         .values(examples=row["examples"], source=row["source"]))
        return len(inserts)

    def _write_keyed(self, conn: Connection, kind: str, rows: pd.DataFrame, problems: Batch, replace: bool) -> int:
        """Insert rows whose key is new; a stored key with other values is a conflict (or, with `replace`, is
        overwritten); new extra features of a stored job are added."""
        table = schema.metadata.tables[kind]
        compared = [*schema.JOB_IDENTITY, *JOB_NUMBERS] if kind == "jobs" else SCORE_NUMBERS
        columns = [c.name for c in table.columns if c.name != "id"]
        keys = list(rows["key"])
        stored = pd.concat([pd.read_sql(select(table).where(table.c.key.in_(bindparam("k", expanding=True))), conn,
                                        params={"k": keys[i:i + KEY_CHUNK]}) for i in range(0, len(keys), KEY_CHUNK)]
                           or [pd.DataFrame(columns=columns)]).drop(columns="id", errors="ignore").set_index("key")
        now = now_utc()
        rows = rows.sort_values(ROW)  # file order, so the last of a file's repeats is the last written
        known = rows["key"].isin(stored.index)
        inserts, updates = rows[~known].assign(ingested_at=now), []
        for row in rows[known].to_dict("records"):
            old = stored.loc[row["key"]]

            def conflict(column: str, was: object, new: object, row: dict = row) -> None:
                problems.problem(row[ROW], FILE_COLUMN.get(column, column),
                                 f"{_describe(kind, row)} is stored with {_shown(was)}, not {_shown(new)}")
            differ = [c for c in compared if not same_value(old[c], row[c])]
            if replace:
                if differ or (kind == "jobs" and row["extra"] != old["extra"]):
                    updates.append({**row, "ingested_at": now})
                continue
            for column in differ:
                conflict(column, old[column], row[column])
            if kind == "jobs":
                extra = combine_extra(old["extra"], row["extra"], conflict)
                if extra != old["extra"]:
                    updates.append({**old.to_dict(), "key": row["key"], "extra": extra})
        if len(inserts):
            conn.execute(table.insert(), _records(inserts[columns]))
        if updates:
            _update(conn, table, "key", pd.DataFrame(updates)[columns])
        return len(inserts)

    def _write_features(self, conn: Connection, kind: str, rows: pd.DataFrame, problems: Batch,
                        replace: bool) -> int:
        """Insert new ids; fill missing features of stored ids; a different stored value is a conflict (or, with
        `replace`, is overwritten)."""
        table, id_col = schema.metadata.tables[kind], schema.ID_COLUMN[kind]
        stored = pd.read_sql(select(table).where(table.c[id_col].in_(bindparam("ids", expanding=True))), conn,
                             params={"ids": list(rows[id_col])}).set_index(id_col)
        inserts, updates = [], []
        for _, row in rows.iterrows():
            if row[id_col] not in stored.index:
                inserts.append(row)
                continue
            old = stored.loc[row[id_col]]
            merged = combine_features(old, row, kind, lambda name, was, new: problems.problem(
                row[ROW], name, f"{kind[:-1]} {row[id_col]!r} is stored with {was!r}, not {new!r}"), replace)
            if not merged.equals(old):
                updates.append({id_col: row[id_col], **merged.drop("source").to_dict()})
        columns = [c.name for c in table.columns]
        if inserts:
            conn.execute(table.insert(), _records(pd.DataFrame(inserts)[columns]))
        if updates:
            _update(conn, table, id_col, pd.DataFrame(updates)[[c for c in columns if c != "source"]])
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
        return self._read(query).drop(columns=["id", "key"])

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

    def pair_table(self, protocol: str | Sequence[str], modality: str | None = None, scores: Sequence[str] = (),
                   select: str = "val", metric: str | None = None, score_source: str | None = None) -> pd.DataFrame:
        """The pair table of docs/contracts.md for one protocol, a list of them, or "all" (every stored protocol).

        Pairs are identified within one (dataset, protocol); each row carries its `protocol` and the protocol's
        facts as `p_<fact>`, with `p_examples` the training examples on that dataset (`examples` too, falling back
        to `examples_full` where the protocol does not say). Scores as `score_table` picks them (per model and
        dataset, whatever the protocol). Each protocol's performance uses `metric`, or its own default metric.
        """
        names = self._protocol_names(protocol)
        pairs = pd.concat([self.pairs(name, select, metric, modality).assign(protocol=name) for name in names],
                          ignore_index=True)
        models = self.model_features().drop(columns=["source", "extra"])
        datasets = self.dataset_features().drop(columns=["source", "extra"]).rename(
            columns={"examples": "examples_full"})
        facts = self.protocol_facts().drop(columns=["source", "extra"]).add_prefix("p_")
        per_dataset = self.protocol_examples().drop(columns="source").rename(columns={"examples": "examples_pd"})
        table = (pairs.merge(models, on="model", how="left").merge(datasets, on="dataset", how="left")
                 .merge(facts, left_on="protocol", right_on="p_protocol", how="left")
                 .merge(per_dataset, on=["protocol", "dataset"], how="left"))
        table = table.reindex(columns=[*table.columns, *(c for c in PROTOCOL_COLUMNS if c not in table)])
        full = table["examples_full"].astype(float)
        table["p_examples"] = (table["examples_pd"].astype(float).fillna(table["p_examples"].astype(float))
                               .fillna(np.floor(full * table["p_train_fraction"].astype(float))))
        table["examples"] = table["p_examples"].fillna(full)
        columns = [*PAIR_COLUMNS, "examples_full", "protocol", *PROTOCOL_COLUMNS]
        if scores:
            table = table.merge(self.score_table(scores, score_source), on=["model", "dataset"], how="left")
            columns += [f"score_{name}" for name in scores]
        return table[columns].sort_values(["protocol", "dataset", "model"], ignore_index=True)

    def _protocol_names(self, protocol: str | Sequence[str]) -> list[str]:
        """The protocols a pair-table call names: one, several (a list or "a,b"), or "all" stored ones."""
        stored = sorted(self.protocols()["protocol"].unique())
        if isinstance(protocol, str):
            if protocol == "all":
                if not stored:
                    raise UserError("no jobs stored; run `recommender history init`")
                return stored
            protocol = protocol.split(",")
        names = list(dict.fromkeys(name.strip() for name in protocol))
        if not names or "" in names:
            raise UserError(f"protocol names must not be blank: {protocol!r}")
        return names

    def counts(self) -> dict[str, int]:
        """Rows per table."""
        with self.engine.connect() as conn:
            return {name: conn.execute(text(f"SELECT COUNT(*) FROM {name}")).scalar_one() for name in TABLES}


def _stored_dataset_names(conn: Connection) -> set[str]:
    """Every dataset name the store holds rows under (jobs, scores, dataset features, protocol examples)."""
    tables = (schema.jobs, schema.scores, schema.datasets, schema.protocol_datasets)
    return {name for table in tables for name in conn.execute(select(table.c.dataset).distinct()).scalars()}


def _check_canonical(conn: Connection, batch: Batch, problems: Batch) -> None:
    """A row under a name that is a stored alias was read before the alias was defined: a problem, never a
    second name for one dataset in the store."""
    aliases = dict(conn.execute(select(schema.dataset_aliases.c.alias, schema.dataset_aliases.c.dataset)).all())
    for kind, rows in batch.tables.items():
        if kind == "dataset_aliases" or "dataset" not in rows:
            continue
        for row, name in zip(rows[ROW], rows["dataset"]):
            if name in aliases:
                problems.problem(row, "dataset", f"{name!r} is an alias of {aliases[name]!r} (defined after the "
                                                 "file was read): ingest it again")


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as dicts for executemany, with NaN turned into NULL."""
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def _update(conn: Connection, table: Table, id_col: str, rows: pd.DataFrame) -> None:
    """Set every column of the stored rows named by `id_col` to the values in `rows`."""
    # Bind names must differ from column names in an UPDATE's SET clause, hence the prefixes.
    names = [n for n in rows.columns if n != id_col]
    values = rows.rename(columns={id_col: "_id", **{n: f"v_{n}" for n in names}})
    conn.execute(table.update().where(table.c[id_col] == bindparam("_id"))
                 .values({n: bindparam(f"v_{n}") for n in names}), _records(values))


def _describe(kind: str, row: dict) -> str:
    """A stored record in words, for a conflict line."""
    if kind == "scores":
        return f"score {row['score']} of {row['model']!r} on {row['dataset']!r} from {row['source']!r}"
    run = f", run {row['run']!r}" if isinstance(row["run"], str) else ""
    return f"job {row['model']!r} on {row['dataset']!r} ({row['protocol']}, {row['metric']}{run})"


def _shown(value: object) -> str:
    """A stored or new value in a conflict line ("nothing" when missing)."""
    if is_missing(value):
        return "nothing"
    return repr(value.item() if isinstance(value, np.generic) else value)


def _make_folders(folder: Path) -> list[Path]:
    """Create `folder` and its missing parents; the folders made, outermost first."""
    missing = [f for f in (folder, *folder.parents) if not f.exists()][::-1]
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def open_store(url: str | None = None, create: bool = False) -> Store:
    """Open the store at `url`, $RECOMMENDER_DB, or the default SQLite file.

    For reading (the default) a missing store is a UserError and nothing is created; `create=True` (for the
    commands that write: `history init`, `history ingest`, logging scores or jobs) creates it as needed.
    """
    return Store(url, create)


@contextmanager
def store_for_writing(url: str | None = None) -> Iterator[Store]:
    """The store at `url`, created if needed; when the block fails, a store it created is removed again."""
    store = open_store(url, create=True)
    try:
        yield store
    except BaseException:
        store.discard_if_created()
        raise
