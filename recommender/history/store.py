"""The training-history store: open it by URL; a thin facade over the modules that do the work.

`migrate` creates and upgrades the schema, `writer` writes batches (ingest, conflicts), `queries` reads tables,
`pair_table` assembles pair tables. `Store` combines them. SQLAlchemy loads only where a command writes, migrates or
reads a store that is no SQLite file: reading a SQLite file takes the standard library alone.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING

from recommender.errors import IngestError, UserError
from recommender.history.pair_table import PairTables
from recommender.history.url import read_only_uri, resolve_url, sqlite_path
from recommender.history.version import check_version, no_store

if TYPE_CHECKING:
    from recommender.history.records import Batch
    from recommender.history.writer import Changes

__all__ = ["IngestError", "Store", "open_store", "store_for_writing"]


class Store(PairTables):
    """A training-history store behind a SQLAlchemy URL (SQLite file by default, or PostgreSQL).

    Opened for reading (`create=False`), a store that does not exist is an error and nothing is created;
    `create=True` creates the folders, file and tables (at the newest schema) as needed and lists what it made
    in `created`. A store at an older schema version is refused either way: `upgrade()` brings it up to date.
    """

    def __init__(self, url: str | None = None, create: bool = False, check: bool = True) -> None:
        self.url = resolve_url(url)
        self.created: list[Path] = []
        path = sqlite_path(self.url)
        if path is not None and not path.is_file():
            if not create:
                raise UserError(f"no store at {path}: run `recommender history init`")
            self.created = [*_make_folders(path.parent), path]
        elif path is not None and create and read_only_uri(path) is not None:
            raise UserError(f"store {path} is read-only here (the file or its folder cannot be written): commands "
                            "that read it work, writing needs a writable copy")
        self.read_only = not create
        try:
            if create:
                from recommender.history.engine import retry_locked

                retry_locked(self._create_schema)
            elif check:
                check_version(self.stored_version(), self.url)
        except BaseException:
            self.discard_if_created()
            raise

    def _create_schema(self) -> None:
        """Create the store at the newest schema where the database holds none; refuse another version."""
        from recommender.history import migrate
        from recommender.history.engine import write_transaction

        with write_transaction(self.engine) as conn:
            migrate.create_or_check(conn, self.url)

    def upgrade(self) -> tuple[int, int]:
        """Upgrade the store in place to this code's schema, keeping every row; (version before, after)."""
        from recommender.history import migrate
        from recommender.history.engine import retry_locked

        return retry_locked(lambda: migrate.upgrade(self.engine, self.url))

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
        from recommender.history.writer import Writer

        return Writer(self.engine).write_changes(batches, replace)

    def discard_if_created(self) -> None:
        """Remove the SQLite file and folders this object created, if the store holds no row (a failed first
        write leaves nothing behind); a store another process has written to meanwhile is kept."""
        if not self.created:
            return
        try:
            if any(self.counts().values()):
                return
        except sqlite3.Error:
            pass  # no tables yet: nothing of value in it
        if "engine" in vars(self):
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
        found = self.stored_version()
        if found is None:
            raise no_store(self.url)
        return found


def _make_folders(folder: Path) -> list[Path]:
    """Create `folder` and its missing parents; the folders made, outermost first."""
    missing = [f for f in (folder, *folder.parents) if not f.exists()][::-1]
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def open_store(url: str | None = None, create: bool = False) -> Store:
    """Open the store at `url`, $RECOMMENDER_DB, or the default SQLite file.

    For reading (the default) a missing store is a UserError and nothing is created; `create=True` (for the
    commands that write: `history init`, `history ingest`, logging scores or jobs) creates it as needed. A store
    at an older schema version is refused with a pointer to `recommender history upgrade`.
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
