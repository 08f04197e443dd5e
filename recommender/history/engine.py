"""Connecting to the store's database: the default URL, SQLite settings for safe concurrent writers, retries."""

from __future__ import annotations

import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from recommender.errors import UserError

ENV_VAR = "RECOMMENDER_DB"
BACKENDS = "SQLite (a file path or sqlite:///path) and PostgreSQL (postgresql+psycopg://user:pw@host/db)"
T = TypeVar("T")


def default_path() -> Path:
    """The default SQLite file: $XDG_DATA_HOME/recommender/history.db (~/.local/share/... when unset)."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "recommender" / "history.db"


def resolve_url(url: str | None = None) -> str:
    """The store URL: the argument, else $RECOMMENDER_DB, else the default SQLite file; a bare path means SQLite."""
    url = url or os.environ.get(ENV_VAR) or str(default_path())
    if "://" not in url:
        # `sqlite:/x.db` or `postgresql:host` is a mistyped URL, not a folder to create (one letter: a drive, C:)
        if re.match(r"[A-Za-z][A-Za-z0-9+.-]+:", url):
            raise UserError(f"malformed store URL {url!r}: a URL is scheme://..., a bare path means a SQLite file "
                            f"(supported: {BACKENDS})")
        return f"sqlite:///{Path(url).expanduser().resolve()}"
    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError as exc:
        raise UserError(f"malformed store URL {url!r}: {exc}") from None
    if backend not in ("sqlite", "postgresql"):
        raise UserError(f"unsupported store backend {backend!r} in {url!r}; supported: {BACKENDS}")
    return url


def shown_url(url: str) -> str:
    """The URL as messages show it: a PostgreSQL password is masked (``***``)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for an in-memory database or another backend)."""
    if not url.startswith("sqlite"):
        return None
    database = make_url(url).database
    return Path(database) if database and database != ":memory:" else None


def read_only_uri(path: Path) -> str | None:
    """The SQLite URI that opens an existing file read-only, where this process cannot write it (a read-only file
    or file system); None where it can. Where the folder is not writable either, no WAL index can be made beside
    the file, so it is opened as immutable (nothing can change it from here)."""
    if not path.is_file() or os.access(path, os.W_OK) and os.access(path.parent, os.W_OK):
        return None
    immutable = "&immutable=1" if not os.access(path.parent, os.W_OK) else ""
    return f"{path.resolve().as_uri().replace('file://', 'file:', 1)}?mode=ro{immutable}"


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
