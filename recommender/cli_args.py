"""Argument types and options shared by the subcommands."""

from __future__ import annotations

import argparse


def comma_list(text: str) -> list[str]:
    """A comma-separated argument as a list of its non-empty, stripped items."""
    return [item.strip() for item in text.split(",") if item.strip()]


def add_db_argument(parser: argparse.ArgumentParser) -> None:
    """The history store option every store-reading command takes."""
    parser.add_argument("--db", metavar="URL", default=None,
                        help="history store: SQLAlchemy URL or SQLite path (default: $RECOMMENDER_DB, "
                             "else the default SQLite file)")
