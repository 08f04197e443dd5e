"""The `recommender` command line: a thin shell over the package's subcommand modules."""

from __future__ import annotations

import argparse
import importlib
import sys
from zipfile import BadZipFile

from sqlalchemy.exc import SQLAlchemyError

from recommender.errors import UserError

# Each module defines register(subparsers); a subcommand's parser sets `func(args) -> int`.
COMMAND_MODULES: tuple[str, ...] = (
    "recommender.history.cli",
    "recommender.scores.cli",
    "recommender.evaluation.cli",
    "recommender.zoo.cli",
    "recommender.models.cli",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(prog="recommender", description=__doc__)
    parser.add_argument("--verbose", action="store_true", help="show progress bars and library logs")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


# Errors of the user's input or environment (bad files, folders, URLs, servers): reported without a traceback.
# A corrupt zip (.npz) raises BadZipFile, which is not an OSError.
USER_FACING = (UserError, ValueError, KeyError, OSError, BadZipFile, SQLAlchemyError)


def error_lines(exc: BaseException) -> list[str]:
    """The message lines to print for an expected error (several for a list of problems)."""
    if isinstance(exc, KeyError):  # str() of a KeyError is only the quoted key
        return [f"missing column or key {exc.args[0]!r}" if exc.args else "missing column or key"]
    lines = [line for line in str(exc).splitlines() if line.strip()]
    if isinstance(exc, SQLAlchemyError):  # later lines are SQL, parameters and a documentation link
        return [f"{type(exc).__name__}: {lines[0] if lines else ''}"]
    return lines or [type(exc).__name__]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except USER_FACING as exc:
        for line in error_lines(exc):
            print(f"recommender {args.command}: error: {line}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
