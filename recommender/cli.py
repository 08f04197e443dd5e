"""Recommend which pre-trained model to fine-tune: score models on your data, keep a history of fine-tuning runs,
train recommenders on it and evaluate them honestly.

Example: recommender history init && recommender evaluate --split loo --protocol vtab1k --out eval/"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
import warnings
from importlib.metadata import PackageNotFoundError, version
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
    "recommender.models.next_cli",
)

# Errors of the user's input or environment (bad input, files, folders, URLs, servers): one line, no traceback.
# A corrupt zip (.npz) raises BadZipFile, which is not an OSError. Anything else is a bug and shows its traceback.
USER_FACING = (UserError, OSError, BadZipFile, SQLAlchemyError)


def package_version() -> str:
    """The installed version of the package ("unknown" when run from a source tree that is not installed)."""
    try:
        return version("recommender")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(prog="recommender", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    parser.add_argument("--verbose", action="store_true", help="show progress bars and library logs")
    parser.add_argument("--debug", action="store_true", help="show the traceback of a user error too")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def error_lines(exc: BaseException) -> list[str]:
    """The message lines to print for a user error (several for a list of problems)."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    if isinstance(exc, SQLAlchemyError):  # later lines are SQL, parameters and a documentation link
        return [f"{type(exc).__name__}: {lines[0] if lines else ''}"]
    return lines or [type(exc).__name__]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script: exit 0 on success, 2 on a user error, 1 on an internal error."""
    args = build_parser().parse_args(argv)
    prefix = f"recommender {args.command}: "
    # a library warning (missing evidence, a skipped model, ...) is one prefixed line, without the source line
    warnings.showwarning = lambda message, *_, **__: print(f"{prefix}warning: {message}", file=sys.stderr)
    try:
        return int(args.func(args) or 0)
    except USER_FACING as exc:
        if args.debug:
            traceback.print_exc()
        for line in error_lines(exc):
            print(f"{prefix}error: {line}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug, not the user's input: the traceback is what a report needs
        traceback.print_exc()
        print(f"{prefix}internal error: {type(exc).__name__}: {exc} (a bug; please report it with the traceback "
              "above)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
