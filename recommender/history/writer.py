"""Writing to the store: validated batches in one transaction, all or nothing, with conflicts against stored rows.

Each table's write says what changed, per row of the batch: `added` (new), `unchanged` (stored with these
values), `updated` (stored, missing features or extra fields filled in) or `replaced` (stored values overwritten,
only with `replace`). A conflict (a stored value that differs) rejects every batch of the write.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pandas as pd
from sqlalchemy import Connection, Engine, Table, bindparam, select

from recommender.errors import UserError
from recommender.history import schema
from recommender.history.engine import retry_locked, write_transaction
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
    shown,
)

KEY_CHUNK = 5000  # keys per lookup query: below SQLite's limit on bound parameters
CHANGES = ("added", "unchanged", "updated", "replaced")
Changes = dict[str, dict[str, int]]  # per table: rows added, unchanged, updated, replaced


class IngestError(UserError):
    """An input was rejected whole; `problems` holds one line per problem (file, row, column, reason)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} problem(s), nothing ingested:\n" + "\n".join(problems))
        self.problems = problems


def _changes(added: int = 0, unchanged: int = 0, updated: int = 0, replaced: int = 0) -> dict[str, int]:
    """One table's change counts."""
    return {"added": added, "unchanged": unchanged, "updated": updated, "replaced": replaced}


class Writer:
    """The writes of a store (a base of `Store`; needs only its `engine`)."""

    engine: Engine

    def write(self, batch: Batch, replace: bool = False) -> dict[str, int]:
        """Add a validated batch in one transaction: new rows in, equal rows skipped, any conflict rejects all
        (with `replace`, a conflicting stored value is overwritten instead); rows added per table."""
        return self.write_all([batch], replace)[0]

    def write_all(self, batches: Sequence[Batch], replace: bool = False) -> list[dict[str, int]]:
        """Add several validated batches, in order, in one transaction: all of them or none; rows added per batch."""
        return [{table: counts["added"] for table, counts in changes.items()}
                for changes in self.write_changes(batches, replace)]

    def write_changes(self, batches: Sequence[Batch], replace: bool = False) -> list[Changes]:
        """As `write_all`, saying per batch and table how many rows were added, unchanged, updated and replaced."""
        problems = [line for batch in batches for line in batch.problems]
        if problems:
            raise IngestError(problems)
        return retry_locked(lambda: self._write_locked(batches, replace))

    def _write_locked(self, batches: Sequence[Batch], replace: bool) -> list[Changes]:
        """The body of `write_changes`, under the store's write lock."""
        changes, problems = [], []
        with write_transaction(self.engine) as conn:
            for batch in batches:
                found = Batch(batch.label)
                changes.append(self._write_batch(conn, batch, found, replace))
                problems += found.problems
            if problems:
                raise IngestError(problems)  # leaving the block rolls the transaction back
        return changes

    def _write_batch(self, conn: Connection, batch: Batch, problems: Batch, replace: bool) -> Changes:
        """Write one batch's tables inside an open transaction, aliases and features first."""
        changes: Changes = {}
        if "dataset_aliases" in batch.tables:
            changes["dataset_aliases"] = self._write_aliases(conn, batch.tables["dataset_aliases"], problems)
        _check_canonical(conn, batch, problems)
        for kind in ("models", "datasets", "protocols"):
            if kind in batch.tables:
                changes[kind] = self._write_features(conn, kind, batch.tables[kind], problems, replace)
        if "protocol_datasets" in batch.tables:
            changes["protocol_datasets"] = self._write_protocol_datasets(conn, batch.tables["protocol_datasets"],
                                                                         problems, replace)
        for kind in ("jobs", "scores"):
            if kind in batch.tables:
                changes[kind] = self._write_keyed(conn, kind, batch.tables[kind], problems, replace)
        return changes

    def _write_aliases(self, conn: Connection, rows: pd.DataFrame, problems: Batch) -> dict[str, int]:
        """Add new aliases; the same definition again adds nothing; an alias stored for another dataset, an alias
        that is a stored dataset's name, or a dataset that is a stored alias is a problem."""
        stored = pd.read_sql(select(schema.dataset_aliases), conn).set_index("alias")["dataset"]
        names = _stored_dataset_names(conn)
        inserts, unchanged = [], 0
        for row in rows.to_dict("records"):
            alias, dataset = row["alias"], row["dataset"]
            if alias in stored.index:
                if stored[alias] != dataset:
                    problems.problem(row[ROW], "dataset", f"alias {alias!r} is stored for dataset "
                                                          f"{stored[alias]!r}, not {dataset!r}")
                unchanged += 1
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
        return _changes(added=len(inserts), unchanged=unchanged)

    def _write_protocol_datasets(self, conn: Connection, rows: pd.DataFrame, problems: Batch,
                                 replace: bool) -> dict[str, int]:
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
                                     f"with {shown(stored[ident])} examples, not {shown(row['examples'])}")
        columns = ["protocol", "dataset", "examples", "source"]
        if inserts:
            conn.execute(table.insert(), _records(pd.DataFrame(inserts)[columns]))
        for row in updates:
            conn.execute(table.update().where((table.c.protocol == row["protocol"])
                                              & (table.c.dataset == row["dataset"]))
                         .values(examples=row["examples"], source=row["source"]))
        return _changes(added=len(inserts), replaced=len(updates),
                        unchanged=len(rows) - len(inserts) - len(updates))

    def _write_keyed(self, conn: Connection, kind: str, rows: pd.DataFrame, problems: Batch,
                     replace: bool) -> dict[str, int]:
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
                                 f"{_describe(kind, row)} is stored with {shown(was)}, not {shown(new)}")
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
        kind_of_update = "replaced" if replace else "updated"
        return {**_changes(added=len(inserts), unchanged=int(known.sum()) - len(updates)),
                kind_of_update: len(updates)}

    def _write_features(self, conn: Connection, kind: str, rows: pd.DataFrame, problems: Batch,
                        replace: bool) -> dict[str, int]:
        """Insert new ids; fill missing features of stored ids; a different stored value is a conflict (or, with
        `replace`, is overwritten)."""
        table, id_col = schema.metadata.tables[kind], schema.ID_COLUMN[kind]
        stored = pd.read_sql(select(table).where(table.c[id_col].in_(bindparam("ids", expanding=True))), conn,
                             params={"ids": list(rows[id_col])}).set_index(id_col)
        inserts, updates, replaced = [], [], 0
        for _, row in rows.iterrows():
            if row[id_col] not in stored.index:
                inserts.append(row)
                continue
            old = stored.loc[row[id_col]]

            def conflict(name: str, was: object, new: object, row: pd.Series = row) -> None:
                problems.problem(row[ROW], name, f"{kind[:-1]} {row[id_col]!r} is stored with {shown(was)}, "
                                                 f"not {shown(new)}")
            merged = combine_features(old, row, kind, conflict, replace)
            if not merged.equals(old):
                updates.append({id_col: row[id_col], **merged.drop("source").to_dict()})
                replaced += _overwrites(old, merged, kind)
        columns = [c.name for c in table.columns]
        if inserts:
            conn.execute(table.insert(), _records(pd.DataFrame(inserts)[columns]))
        if updates:
            _update(conn, table, id_col, pd.DataFrame(updates)[[c for c in columns if c != "source"]])
        return _changes(added=len(inserts), updated=len(updates) - replaced, replaced=replaced,
                        unchanged=len(rows) - len(inserts) - len(updates))


def _overwrites(old: pd.Series, merged: pd.Series, kind: str) -> bool:
    """Whether `merged` changes a value `old` holds (rather than only filling what it lacks)."""
    if any(not is_missing(old[name]) and not same_value(old[name], merged[name]) for name in schema.FEATURES[kind]):
        return True
    old_extra, new_extra = json.loads(old["extra"]), json.loads(merged["extra"])
    return any(not same_value(value, new_extra.get(name)) for name, value in old_extra.items())


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
        for row, name in zip(rows[ROW], rows["dataset"], strict=True):
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
