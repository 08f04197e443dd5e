"""SQLAlchemy engines on the store's database: SQLite settings for safe concurrent writers, write locks, retries."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError

from recommender.errors import UserError
from recommender.history.url import BACKENDS, read_only_uri, sqlite_path

T = TypeVar("T")


def make_engine(url: str, read_only: bool = False) -> Engine:
    """An engine for the URL (creates nothing).

    SQLite gets WAL, a busy timeout and write transactions that take the lock up front; with `read_only`, a file
    this process cannot write is opened read-only, so reading commands work on a read-only file system.
    """
    if not url.startswith("sqlite"):
        try:
            return create_engine(url, pool_pre_ping=True)
        except ImportError as exc:  # the URL names a driver that is not installed
            raise UserError(f"cannot open store {url!r}: {exc} (supported: {BACKENDS})") from None
    path = sqlite_path(url)
    uri = read_only_uri(path) if read_only and path is not None else None
    if uri is None:
        engine = create_engine(url, connect_args={"timeout": 60})
    else:
        engine = create_engine("sqlite://", creator=lambda: sqlite3.connect(uri, uri=True, timeout=60,
                                                                            check_same_thread=False))

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        dbapi_connection.isolation_level = None  # let the events below issue BEGIN themselves
        cursor = dbapi_connection.cursor()
        if uri is None:  # a read-only file keeps the journal mode it was written with
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A writer takes the write lock at BEGIN, so two ingests never both read, then both write.
        immediate = conn.get_execution_options().get("write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds the store's write lock until commit (SQLite: BEGIN IMMEDIATE; PostgreSQL: advisory)."""
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(727274)"))  # an arbitrary id for "history writes"
        yield conn


def retry_locked(action: Callable[[], T], attempts: int = 8) -> T:
    """Run `action`, retrying with back-off while the database reports a lock (busy SQLite, serialisation)."""
    for attempt in range(attempts):
        try:
            return action()
        except OperationalError as exc:
            if "locked" not in str(exc).lower() or attempt == attempts - 1:
                raise
            time.sleep(0.1 * 2**attempt)
    raise AssertionError("unreachable")
