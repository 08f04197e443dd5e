"""Schema versions: a new store is created at the newest revision, an older one is upgraded in place (Alembic).

The migration scripts live in `recommender/history/migrations` (revision `schema<N>` brings a store to schema
version N) and run on the store's own write transaction: an upgrade is all or nothing. Each revision also sets
`meta.schema_version`, which is what opening a store checks (one small query; Alembic is imported only to create
or upgrade). Stores written before the migrations existed have no version table: their `meta.schema_version`
says which revision they are at.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, select, text

from recommender.errors import UserError
from recommender.history import schema
from recommender.history.engine import write_transaction
from recommender.history.url import shown_url
from recommender.history.version import SCHEMA_VERSION, VERSION_KEY, check_version, no_store, parse_version

if TYPE_CHECKING:  # Alembic loads only when a store is created or upgraded
    from alembic.config import Config

# Our own name for Alembic's version table: a PostgreSQL database may host another application's `alembic_version`.
VERSION_TABLE = "recommender_history_version"
SCRIPTS = "recommender.history:migrations"


def revision_of(version: int) -> str:
    """The Alembic revision that brings a store to schema `version`."""
    return f"schema{version}"


def stored_version(conn: Connection, url: str) -> int | None:
    """The schema version recorded in the store, None where there is no store (`version.parse_version`)."""
    has_meta = inspect(conn).has_table("meta")
    value = conn.execute(select(schema.meta.c.value).where(schema.meta.c.key == VERSION_KEY)).scalar() \
        if has_meta else None
    return parse_version(has_meta, value, url)


def create_or_check(conn: Connection, url: str) -> None:
    """Inside a write transaction: create the store at the newest revision where the database holds none, else
    check its version (an older store is refused, never upgraded behind the user's back)."""
    found = stored_version(conn, url)
    if found is None:
        if inspect(conn).has_table(VERSION_TABLE):  # left behind by a store whose tables were dropped
            conn.execute(text(f"DELETE FROM {VERSION_TABLE}"))
        _run(conn, "upgrade", "head")
        found = stored_version(conn, url)
    check_version(found, url)


def upgrade(engine: Engine, url: str) -> tuple[int, int]:
    """Upgrade the store in place to the newest schema, all or nothing; (version before, version after).

    A `meta.schema_version` behind tables that are already at the newest schema (edited by hand, or left by a tool
    that stopped half-way) is set to the tables' version, so the store every other command refuses is usable again.
    """
    with write_transaction(engine) as conn:
        before = stored_version(conn, url)
        if before is None:
            raise no_store(url)
        if before > SCHEMA_VERSION:
            check_version(before, url)
        if _stamped_revision(conn, url) is None:  # a store from before the migrations: say where it stands
            _run(conn, "stamp", revision_of(SCHEMA_VERSION if _has_newest_tables(conn) else before))
        _run(conn, "upgrade", "head")
        after = stored_version(conn, url)
        if after != SCHEMA_VERSION:
            if not _has_newest_tables(conn):
                raise UserError(f"store {shown_url(url)}: meta.schema_version says {after}, but its tables are at "
                                f"neither that version nor {SCHEMA_VERSION} (a damaged store)")
            conn.execute(schema.meta.update().where(schema.meta.c.key == VERSION_KEY)
                         .values(value=str(SCHEMA_VERSION)))
            after = SCHEMA_VERSION
    return before, after


def _has_newest_tables(conn: Connection) -> bool:
    """Whether the database holds every table of the newest schema."""
    return set(schema.metadata.tables) <= set(inspect(conn).get_table_names())


def _stamped_revision(conn: Connection, url: str) -> str | None:
    """The revision the version table records (None where it holds none); anything but one revision of this code
    is a damaged table, named in one line with the way out."""
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    rows = list(conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars())
    known = [revision_of(version) for version in range(2, SCHEMA_VERSION + 1)]
    if len(rows) > 1 or (rows and rows[0] not in known):
        raise UserError(f"store {shown_url(url)}: its version table {VERSION_TABLE} holds {', '.join(map(repr, rows))}"
                        f", not one of this code's revisions ({', '.join(known)}): empty it (DELETE FROM "
                        f"{VERSION_TABLE}) and run `recommender history --db {shown_url(url)} upgrade`, which "
                        "records the version from meta.schema_version")
    return rows[0] if rows else None


def downgrade(engine: Engine, version: int) -> None:
    """Take the store back to schema `version` (the tables added since are dropped with their rows)."""
    with write_transaction(engine) as conn:
        _run(conn, "downgrade", revision_of(version))


def head_revision() -> str:
    """The newest revision among the migration scripts."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config(None)).get_current_head()
    assert head is not None, "no migration scripts"
    return head


def _config(conn: Connection | None) -> Config:
    """An Alembic configuration in code (no alembic.ini): our scripts, run on `conn`."""
    from alembic.config import Config  # noqa: F811 -- the run-time import of the name typed above

    config = Config()
    config.set_main_option("script_location", SCRIPTS)
    config.attributes["connection"] = conn
    return config


def _run(conn: Connection, action: str, revision: str) -> None:
    """Run Alembic's `upgrade`, `downgrade` or `stamp` to `revision` on `conn`."""
    from alembic import command

    getattr(command, action)(_config(conn), revision)
