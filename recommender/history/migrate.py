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
from recommender.history.engine import shown_url, write_transaction

if TYPE_CHECKING:  # Alembic loads only when a store is created or upgraded
    from alembic.config import Config

# Our own name for Alembic's version table: a PostgreSQL database may host another application's `alembic_version`.
VERSION_TABLE = "recommender_history_version"
SCRIPTS = "recommender.history:migrations"


def revision_of(version: int) -> str:
    """The Alembic revision that brings a store to schema `version`."""
    return f"schema{version}"


def stored_version(conn: Connection) -> int | None:
    """The schema version recorded in the store, None where there is no store (no `meta` table or no version)."""
    if not inspect(conn).has_table("meta"):
        return None
    found = conn.execute(select(schema.meta.c.value).where(schema.meta.c.key == "schema_version")).scalar()
    return None if found is None else int(str(found))


def check_version(found: int | None, url: str) -> None:
    """Refuse a database that holds no store, an older store (point to the upgrade) or a newer one."""
    if found is None:
        raise UserError(f"no store at {shown_url(url)}: run `recommender history init`")
    if found < schema.SCHEMA_VERSION:
        raise UserError(f"store {shown_url(url)} has schema version {found}; "
                        f"this code reads version {schema.SCHEMA_VERSION}: "
                        f"run `recommender history --db {shown_url(url)} upgrade` (keeps every row)")
    if found > schema.SCHEMA_VERSION:
        raise UserError(f"store {shown_url(url)} has schema version {found}, "
                        f"newer than this code's {schema.SCHEMA_VERSION}: "
                        "upgrade the recommender package")


def create_or_check(conn: Connection, url: str) -> None:
    """Inside a write transaction: create the store at the newest revision where the database holds none, else
    check its version (an older store is refused, never upgraded behind the user's back)."""
    found = stored_version(conn)
    if found is None:
        if inspect(conn).has_table(VERSION_TABLE):  # left behind by a store whose tables were dropped
            conn.execute(text(f"DELETE FROM {VERSION_TABLE}"))
        _run(conn, "upgrade", "head")
        found = stored_version(conn)
    check_version(found, url)


def upgrade(engine: Engine, url: str) -> tuple[int, int]:
    """Upgrade the store in place to the newest schema, all or nothing; (version before, version after)."""
    with write_transaction(engine) as conn:
        before = stored_version(conn)
        if before is None:
            raise UserError(f"no store at {shown_url(url)}: run `recommender history init`")
        if before > schema.SCHEMA_VERSION:
            check_version(before, url)
        if not inspect(conn).has_table(VERSION_TABLE):  # a store from before the migrations: say where it stands
            _run(conn, "stamp", revision_of(before))
        _run(conn, "upgrade", "head")
        after = stored_version(conn)
    return before, after or before


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
