"""Writing to the store: validated batches in one transaction, all or nothing, with conflicts against stored rows.

Each table's write says what changed, per row of the batch: `added` (new), `unchanged` (stored with these
values), `updated` (stored, missing features or extra fields filled in) or `replaced` (stored values overwritten,
only with `replace`). A conflict (a stored value that differs) rejects every batch of the write.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sqlalchemy import ARRAY, Connection, Engine, String, Table, any_, bindparam, select, text

from recommender.contracts import SAME_VALUE_RTOL
from recommender.errors import IngestError
from recommender.history import schema
from recommender.history.engine import retry_locked, write_transaction
from recommender.history.records import (
    FEATURES,
    FILE_COLUMN,
    ID_COLUMN,
    JOB_IDENTITY,
    JOB_VALUES,
    ROW,
    SCORE_IDENTITY,
    SCORE_VALUES,
    Batch,
    combine_extra,
    combine_features,
    is_missing,
    key_of,
    now_utc,
    same_value,
    shown,
)
from recommender.history.version import REVISION

KEY_CHUNK = 5000  # keys per lookup query: below SQLite's limit on bound parameters
CHANGES = ("added", "unchanged", "updated", "replaced")
Changes = dict[str, dict[str, int]]  # per table: rows added, unchanged, updated, replaced


def _changes(added: int = 0, unchanged: int = 0, updated: int = 0, replaced: int = 0) -> dict[str, int]:
    """One table's change counts."""
    return {"added": added, "unchanged": unchanged, "updated": updated, "replaced": replaced}


class Writer:
    """The writes of a store, on its engine (`Store.write_changes` makes one per write)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def write_changes(self, batches: Sequence[Batch], replace: bool = False) -> list[Changes]:
        """As `Store.write_all`, saying per batch and table how many rows were added, unchanged, updated and
        replaced."""
        problems = [line for batch in batches for line in batch.problems]
        if problems:
            raise IngestError(problems)
        return retry_locked(lambda: self._write_locked(batches, replace))

    def _write_locked(self, batches: Sequence[Batch], replace: bool) -> list[Changes]:
        """The body of `write_changes`, under the store's write lock."""
        changes, problems, conflicts = [], [], {}
        with write_transaction(self.engine) as conn:
            for batch in batches:
                found = Batch(batch.label)
                changes.append(self._write_batch(conn, batch, found, replace))
                problems += found.problems
                conflicts[batch.label] = found.found
            if problems:
                raise IngestError(problems, conflicts)  # leaving the block rolls the transaction back
            if any(counts[kind] for change in changes for counts in change.values()
                   for kind in ("added", "updated", "replaced")):
                # a new revision with the rows: fits on the store's history (`Queries.revision`) go stale
                conn.execute(schema.meta.delete().where(schema.meta.c.key == REVISION))
                conn.execute(schema.meta.insert().values(key=REVISION, value=uuid.uuid4().hex))
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
            insert(conn, schema.dataset_aliases, pd.DataFrame(inserts)[["alias", "dataset", "source"]])
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
            insert(conn, table, pd.DataFrame(inserts)[columns])
        for row in updates:
            conn.execute(table.update().where((table.c.protocol == row["protocol"])
                                              & (table.c.dataset == row["dataset"]))
                         .values(examples=row["examples"], source=row["source"]))
        return _changes(added=len(inserts), replaced=len(updates),
                        unchanged=len(rows) - len(inserts) - len(updates))

    def _write_keyed(self, conn: Connection, kind: str, rows: pd.DataFrame, problems: Batch,
                     replace: bool) -> dict[str, int]:
        """Insert rows whose key is new; a stored key with other values is a conflict (or, with `replace`, is
        overwritten); new extra features of a stored job are added. Timing never conflicts: the stored one stands."""
        table = schema.metadata.tables[kind]
        compared = [*JOB_IDENTITY, *JOB_VALUES] if kind == "jobs" else SCORE_VALUES
        columns = [c.name for c in table.columns if c.name != "id"]
        rows = rows.sort_values(ROW)  # file order, so the last of a file's repeats is the last written
        stored = _stored_rows(conn, table, list(rows["key"]))
        rows, stored = _match_repeats(conn, kind, rows, stored)
        now = now_utc()
        known = rows["key"].isin(stored.index).to_numpy()
        inserts, updates = rows[~known].assign(ingested_at=now), []
        new, old = rows[known], stored.loc[rows.loc[known, "key"]]
        differ = {c: ~_same(new[c], old[c]) for c in compared}
        touched = np.logical_or.reduce([np.zeros(len(new), bool), *differ.values()])
        if kind == "jobs":
            touched |= new["extra"].to_numpy() != old["extra"].to_numpy()
        for i in np.flatnonzero(touched):
            row, was = new.iloc[i].to_dict(), old.iloc[i]

            def conflict(column: str, stored_value: object, value: object, row: dict = row) -> None:
                problems.problem(row[ROW], FILE_COLUMN.get(column, column),
                                 f"{_describe(kind, row)} is stored with {shown(stored_value)}, not {shown(value)}")
            if replace:
                timing = row["seconds"] if is_missing(was["seconds"]) else was["seconds"]  # timing is no value
                updates.append({**row, "seconds": timing, "ingested_at": now})
                continue
            for column in (c for c in compared if differ[c][i]):
                conflict(column, was[column], row[column])
            if kind == "jobs":
                extra = combine_extra(was["extra"], row["extra"], conflict)
                if extra != was["extra"]:
                    updates.append({**was.to_dict(), "key": row["key"], "extra": extra})
        if len(inserts):
            insert(conn, table, inserts[columns])
        if updates:
            _update(conn, table, "key", pd.DataFrame(updates)[columns])
        kind_of_update = "replaced" if replace else "updated"
        return {**_changes(added=len(inserts), unchanged=int(known.sum()) - len(updates)),
                kind_of_update: len(updates)}

    def _write_features(self, conn: Connection, kind: str, rows: pd.DataFrame, problems: Batch,
                        replace: bool) -> dict[str, int]:
        """Insert new ids; fill missing features of stored ids; a different stored value is a conflict (or, with
        `replace`, is overwritten)."""
        table, id_col = schema.metadata.tables[kind], ID_COLUMN[kind]
        stored = pd.read_sql(select(table).where(table.c[id_col].in_(bindparam("ids", expanding=True))), conn,
                             params={"ids": list(rows[id_col])}).set_index(id_col)
        known = rows[id_col].isin(stored.index)
        inserts, updates, replaced = rows[~known], [], 0
        for _, row in rows[known].iterrows():
            old = stored.loc[row[id_col]]

            def conflict(name: str, was: object, new: object, row: pd.Series = row) -> None:
                problems.problem(row[ROW], name, f"{kind[:-1]} {row[id_col]!r} is stored with {shown(was)}, "
                                                 f"not {shown(new)}")
            merged = combine_features(old, row, kind, conflict, replace)
            if not merged.equals(old):
                updates.append({id_col: row[id_col], **merged.drop("source").to_dict()})
                replaced += _overwrites(old, merged, kind)
        columns = [c.name for c in table.columns]
        if len(inserts):
            insert(conn, table, inserts[columns])
        if updates:
            _update(conn, table, id_col, pd.DataFrame(updates)[[c for c in columns if c != "source"]])
        return _changes(added=len(inserts), updated=len(updates) - replaced, replaced=replaced,
                        unchanged=len(rows) - len(inserts) - len(updates))


def _overwrites(old: pd.Series, merged: pd.Series, kind: str) -> bool:
    """Whether `merged` changes a value `old` holds (rather than only filling what it lacks)."""
    if any(not is_missing(old[name]) and not same_value(old[name], merged[name]) for name in FEATURES[kind]):
        return True
    old_extra, new_extra = json.loads(old["extra"]), json.loads(merged["extra"])
    return any(not same_value(value, new_extra.get(name)) for name, value in old_extra.items())


def _stored_rows(conn: Connection, table: Table, keys: list[str]) -> pd.DataFrame:
    """The stored rows of a keyed table (jobs, scores) among `keys`, indexed by key."""
    empty = pd.DataFrame(columns=[c.name for c in table.columns])
    if conn.execute(select(table.c.id).limit(1)).first() is None:  # an empty table (a first load) holds none
        return empty.drop(columns="id").set_index("key")
    if conn.dialect.name == "sqlite":  # all keys as one JSON parameter: no statement with thousands of them
        query = select(table).where(table.c.key.in_(select(text("value")).select_from(text("json_each(:keys)"))))
        parts = [pd.read_sql(query, conn, params={"keys": json.dumps(keys)})]
    elif conn.dialect.name == "postgresql":  # all keys as one array parameter
        query = select(table).where(table.c.key == any_(bindparam("keys", type_=ARRAY(String))))
        parts = [pd.read_sql(query, conn, params={"keys": keys})]
    else:
        query = select(table).where(table.c.key.in_(bindparam("k", expanding=True)))
        parts = [pd.read_sql(query, conn, params={"k": keys[i:i + KEY_CHUNK]})
                 for i in range(0, len(keys), KEY_CHUNK)]
    return pd.concat([p for p in parts if len(p)] or [empty]).drop(columns="id").set_index("key")


def _same(new: pd.Series, old: pd.Series) -> np.ndarray:
    """`same_value` of two aligned columns, element by element: missing equals missing, numbers within
    SAME_VALUE_RTOL, text exactly."""
    a, b = new.to_numpy(object), old.to_numpy(object)
    missing = pd.isna(a) & pd.isna(b)
    if pd.api.types.is_numeric_dtype(new):  # a stored column of NULLs only reads as objects
        x, y = a.astype(float), pd.to_numeric(old, errors="coerce").to_numpy(float)
        with np.errstate(invalid="ignore"):
            close = np.abs(x - y) <= SAME_VALUE_RTOL * np.maximum(np.abs(x), np.abs(y))
        return missing | close
    return missing | (a == b)


def _match_repeats(conn: Connection, kind: str, rows: pd.DataFrame,
                   stored: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows without a run id, renumbered against the store where a file's repeats of one setting differ from the
    stored ones: a run whose values a stored repeat holds is that repeat, the others take the stored repeats no run
    matched (whose values then differ: a conflict) and then new numbers after the stored ones. So a grown export
    adds only its new runs, whatever their values. The rows, and the stored rows their keys now name."""
    table = schema.metadata.tables[kind]
    identity = list(JOB_IDENTITY if kind == "jobs" else SCORE_IDENTITY)
    values, tag = (JOB_VALUES, "job") if kind == "jobs" else (SCORE_VALUES, "score")
    runless = rows[rows["run"].isna()]
    known = runless["key"].isin(stored.index).to_numpy()
    if runless.empty or not known.any():
        return rows, stored
    same = known.copy()
    old = stored.loc[runless.loc[known, "key"]]
    same[known] = np.logical_and.reduce([_same(runless.loc[known, c], old[c]) for c in values])
    group = runless.groupby(identity, dropna=False, sort=False).ngroup()
    unsettled = set(group[known]) & set(group[~same])  # stored settings whose runs the file gives otherwise
    if not unsettled:
        return rows, stored
    firsts = runless[(runless["repeat"] == 0) & group.isin(unsettled)]
    settings = dict(zip(group[firsts.index], firsts[identity].itertuples(index=False, name=None), strict=True))
    found, repeat, alive = [stored.loc[firsts["key"]]], 1, set(settings)
    while alive:  # every stored repeat of those settings: 1, 2, ... until none is stored
        keys = {key_of(tag, *settings[g], repeat): g for g in alive}
        more = _stored_rows(conn, table, list(keys))
        found.append(more)
        alive, repeat = {keys[k] for k in more.index}, repeat + 1
    repeats = pd.concat(found)
    owner = {k: g for g in settings for k in (key_of(tag, *settings[g], r) for r in range(repeat))}
    by_group: dict[int, list[tuple[str, pd.Series]]] = {}
    for key, row in repeats.sort_values("repeat").iterrows():
        by_group.setdefault(owner[str(key)], []).append((str(key), row))
    renumbered: dict[object, tuple[int, str]] = {}  # row index -> (repeat, key)
    for g, part in runless[group.isin(unsettled)].groupby(group[group.isin(unsettled)], sort=False):
        free = dict(by_group[int(g)])  # stored repeats no run of the file has taken yet, in repeat order
        last = max(int(r["repeat"]) for r in free.values())
        unmatched = []
        for index, row in part.sort_values("repeat").iterrows():
            match = next((k for k, s in free.items() if all(same_value(s[c], row[c]) for c in values)), None)
            if match is None:
                unmatched.append(index)
            else:
                renumbered[index] = (int(free.pop(match)["repeat"]), match)
        for index in unmatched:
            if free:
                key = next(iter(free))
                renumbered[index] = (int(free.pop(key)["repeat"]), key)
            else:
                last += 1
                renumbered[index] = (last, key_of(tag, *settings[int(g)], last))
    changed = pd.DataFrame(renumbered.values(), index=list(renumbered), columns=["repeat", "key"])
    numbered = rows.assign(repeat=changed["repeat"].combine_first(rows["repeat"]).astype(int),
                           key=changed["key"].combine_first(rows["key"]))
    stored = pd.concat([stored, repeats])
    return numbered, stored[~stored.index.duplicated()]


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


def _cells(frame: pd.DataFrame) -> list[list]:
    """Each column's cells as Python values, NaN (and NaT, pd.NA) turned into NULL."""
    columns = []
    for name in frame.columns:
        values = frame[name].to_numpy(dtype=object)  # Python floats and ints, text as it is
        missing = pd.isna(values)
        if missing.any():
            values = values.copy()  # the column's own array may be read-only
            values[missing] = None
        columns.append(values.tolist())
    return columns


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as dicts for executemany, with NaN turned into NULL."""
    names = list(frame.columns)
    return [dict(zip(names, row, strict=True)) for row in zip(*_cells(frame), strict=True)]


def insert(conn: Connection, table: Table, rows: pd.DataFrame) -> None:
    """Insert the rows in one bulk `executemany` of the driver, with the statement SQLAlchemy Core compiles for
    the table once (no per-row work in SQLAlchemy, the cost of which is most of an ingest's writing); on
    PostgreSQL (psycopg) with COPY."""
    names, cells = list(rows.columns), _cells(rows)
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":  # COPY: PostgreSQL's bulk load
        quote = conn.dialect.identifier_preparer.quote
        with conn.connection.driver_connection.cursor() as cursor, cursor.copy(  # type: ignore[union-attr]
                f"COPY {quote(table.name)} ({', '.join(map(quote, names))}) FROM STDIN") as copy:
            for row in zip(*cells, strict=True):
                copy.write_row(row)
        return
    compiled = table.insert().compile(dialect=conn.dialect, column_keys=names)
    if compiled.positiontup is not None:  # SQLite's `?` parameters: tuples in the statement's order
        params: list = list(zip(*(cells[names.index(name)] for name in compiled.positiontup), strict=True))
    else:  # named parameters (PostgreSQL's drivers)
        params = [dict(zip(names, row, strict=True)) for row in zip(*cells, strict=True)]
    conn.exec_driver_sql(compiled.string, params)


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
