"""Where the store is: the default SQLite file, the URL a command is given, how messages show it, and the file
behind a SQLite URL. Standard library only, so that reading a SQLite store needs no SQLAlchemy; another backend's
URL is parsed by SQLAlchemy, which that backend needs anyway."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote

from recommender.errors import UserError

ENV_VAR = "RECOMMENDER_DB"
BACKENDS = "SQLite (a file path or sqlite:///path) and PostgreSQL (postgresql+psycopg://user:pw@host/db)"
# A SQLite URL: sqlite[+driver]://[host]/database[?options]; the database part is percent-decoded, as SQLAlchemy does.
SQLITE_URL = re.compile(r"sqlite(?:\+\w+)?://(?P<host>[^/?]*)(?:/(?P<database>[^?]*))?(?:\?(?P<query>.*))?",
                        re.DOTALL)


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
    if SQLITE_URL.fullmatch(url):
        return url
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError as exc:
        raise UserError(f"malformed store URL {url!r}: {exc}") from None
    if backend not in ("sqlite", "postgresql"):
        raise UserError(f"unsupported store backend {backend!r} in {url!r}; supported: {BACKENDS}")
    return url


def shown_url(url: str) -> str:
    """The URL as messages show it: a PostgreSQL password is masked (``***``); a SQLite URL holds none."""
    if SQLITE_URL.fullmatch(url):
        return url
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for an in-memory database or another backend)."""
    found = SQLITE_URL.fullmatch(url)
    database = unquote(found["database"]) if found and found["database"] is not None else None
    return Path(database) if database and database != ":memory:" else None


def sqlite_file(url: str) -> Path | None:
    """The file that reads may open with the standard library's sqlite3: that of a SQLite URL without options
    (options go to SQLAlchemy's driver, which honours them)."""
    found = SQLITE_URL.fullmatch(url)
    return sqlite_path(url) if found and found["query"] is None else None


def file_uri(path: Path, mode: str) -> str:
    """The SQLite URI that opens an existing file in ``mode`` (ro, rw), never creating it."""
    return f"{path.resolve().as_uri().replace('file://', 'file:', 1)}?mode={mode}"


def read_only_uri(path: Path) -> str | None:
    """The SQLite URI that opens an existing file read-only, where this process cannot write it (a read-only file
    or file system); None where it can. Where the folder is not writable either, no WAL index can be made beside
    the file, so it is opened as immutable (nothing can change it from here)."""
    if not path.is_file() or os.access(path, os.W_OK) and os.access(path.parent, os.W_OK):
        return None
    return file_uri(path, "ro") + ("&immutable=1" if not os.access(path.parent, os.W_OK) else "")
