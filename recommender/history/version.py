"""The store's schema version: the number this code reads, the `meta` rows that record it and the store's revision,
and the check of what a store records (stdlib only: opening a store to read it needs no SQLAlchemy)."""

from __future__ import annotations

from recommender.errors import UserError
from recommender.history.url import shown_url

# Bump when a table changes shape, with a migration `schema<N>` in migrations/versions that brings a store of the
# previous version to this one (`recommender history upgrade`); stored in `meta`, so an old store is recognised,
# never misread. 2: jobs and scores are identified by `key`, a hash of their content (see records.key_of), not by
# file. 3: dataset aliases and protocol facts (tables added).
SCHEMA_VERSION = 3
VERSION_KEY = "schema_version"  # the meta row that records the store's schema version
REVISION = "revision"  # the meta row that each write sets to a new random value (`Queries.revision`)


def parse_version(has_meta: bool, value: object, url: str) -> int | None:
    """The schema version a store records, from whether it has a `meta` table and that table's version value (None
    where the row is missing); None where there is no store. A `meta` table without a version, or with one that is
    no number, is a damaged store (one line)."""
    if not has_meta:
        return None
    if value is None:
        raise UserError(f"{shown_url(url)} has a table meta without a {VERSION_KEY} row: not a store of this "
                        "program, or a damaged one (use another --db)")
    try:
        return int(str(value))
    except ValueError:
        raise UserError(f"store {shown_url(url)}: meta.{VERSION_KEY} is {value!r}, not a version number (a damaged "
                        "store)") from None


def no_store(url: str) -> UserError:
    """The error for a database that holds no store."""
    return UserError(f"no store at {shown_url(url)}: run `recommender history init`")


def check_version(found: int | None, url: str) -> None:
    """Refuse a database that holds no store, an older store (point to the upgrade) or a newer one."""
    if found is None:
        raise no_store(url)
    if found < SCHEMA_VERSION:
        raise UserError(f"store {shown_url(url)} has schema version {found}; "
                        f"this code reads version {SCHEMA_VERSION}: "
                        f"run `recommender history --db {shown_url(url)} upgrade` (keeps every row)")
    if found > SCHEMA_VERSION:
        raise UserError(f"store {shown_url(url)} has schema version {found}, "
                        f"newer than this code's {SCHEMA_VERSION}: "
                        "upgrade the recommender package")
