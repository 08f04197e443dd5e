"""recommender: which pre-trained model should you fine-tune for your task? It answers without fine-tuning them all.

It keeps a history of fine-tuning runs (yours and the bundled published ones), learns from it which models transfer
well to which datasets, and recommends the models most worth fine-tuning on a new dataset. It can also score models
on your own data (transferability scores) and evaluate recommendation strategies honestly.

main commands:
  history init     create the history store and load the bundled histories (run this first)
  train            train a recommender (lr or fm) on the history
  recommend        the models to fine-tune on one or many datasets, with their expected performance
  rank             rank a zoo of models on your data: features, scores and a recommender's prediction
  evaluate         how well search strategies would have chosen, on splits of the history

example:
  recommender history init
  recommender train --recommender fm --modality image --out models/fm
  recommender recommend --model models/fm --dataset dtd --top-k 5

`recommender COMMAND --help` describes each command; --db URL picks the history store (before or after COMMAND)."""

from __future__ import annotations

import argparse
import importlib
import os
import sqlite3
import sys
import traceback
import warnings
from zipfile import BadZipFile

from recommender.cli_args import Parser, add_db_argument, add_quiet_argument
from recommender.errors import UserError

# Each module defines register(subparsers); a subcommand's parser sets `func(args) -> int`. The modules import only
# argparse-level names at their top, so that building the parser (and `--help`) is instant.
COMMAND_MODULES: tuple[str, ...] = (
    "recommender.history.cli",
    "recommender.scores.cli",
    "recommender.evaluation.cli",
    "recommender.zoo.cli",
    "recommender.zoo.campaign_cli",
    "recommender.zoo.fetch_cli",
    "recommender.models.cli",
    "recommender.models.next_cli",
)


def user_facing(exc: BaseException) -> bool:
    """Whether exc is an error of the user's input or environment (bad input, files, folders, URLs, servers),
    printed as one line without a traceback; anything else is a bug and shows its traceback.

    A corrupt zip (.npz) raises BadZipFile, which is not an OSError; a store file that is no database, sqlite3's
    error (the store reads SQLite files with sqlite3). SQLAlchemy's errors count only where a command loaded
    SQLAlchemy (it cannot raise them otherwise), so that start-up need not import it."""
    sqlalchemy = sys.modules.get("sqlalchemy.exc")
    kinds = (UserError, OSError, BadZipFile, sqlite3.Error, *((sqlalchemy.SQLAlchemyError,) if sqlalchemy else ()))
    return isinstance(exc, kinds)


def package_version() -> str:
    """The installed version of the package ("unknown" when run from a source tree that is not installed)."""
    from importlib.metadata import PackageNotFoundError, version  # late: only `--version` needs it

    try:
        return version("recommender")
    except PackageNotFoundError:
        return "unknown"


class VersionAction(argparse.Action):
    """`--version`: print the package version and exit (looked up only when asked for)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        print(f"{parser.prog} {package_version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every subcommand registered."""
    parser = Parser(prog="recommender", description=__doc__)
    parser.add_argument("--version", action=VersionAction)
    parser.add_argument("--verbose", action="store_true", help="show library logs")
    add_quiet_argument(parser, top=True)
    parser.add_argument("--debug", action="store_true", help="show the traceback of a user error too")
    add_db_argument(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def error_lines(exc: BaseException) -> list[str]:
    """The message lines to print for a user error (several for a list of problems)."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    sqlalchemy = sys.modules.get("sqlalchemy.exc")
    if isinstance(exc, sqlite3.Error) or sqlalchemy and isinstance(exc, sqlalchemy.SQLAlchemyError):
        # later lines: SQL, parameters, a link
        return [f"{type(exc).__name__}: {lines[0] if lines else ''}"]
    return lines or [type(exc).__name__]


SIGPIPE_EXIT = 128 + 13  # what a shell reports for a tool killed by SIGPIPE (`... | head`): 141


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script: exit 0 on success, 2 on a user error, 1 on an internal error, and quietly
    141 (128 + SIGPIPE, as Unix tools) when the reader of stdout closes it early (`history stats | head`)."""
    try:
        code = run_command(argv)
        sys.stdout.flush()  # here, not at exit: a reader gone before the last buffered lines is a broken pipe too
        return code
    except BrokenPipeError:
        # the Python docs' recipe: the interpreter's own flush at exit writes to devnull, so it cannot fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return SIGPIPE_EXIT


def run_command(argv: list[str] | None) -> int:
    """Parse argv and run its command: the exit code, with errors printed as `main` describes."""
    args = build_parser().parse_args(argv)
    prefix = f"recommender {args.command}: "
    try:
        # a library warning (missing evidence, a skipped model, ...) is one prefixed line, without the source line;
        # catch_warnings gives the process its own warning hooks back when the command returns
        with warnings.catch_warnings():
            warnings.showwarning = lambda message, *_, **__: print(f"{prefix}warning: {message}", file=sys.stderr)
            return int(args.func(args) or 0)
    except BrokenPipeError:  # an OSError, but the reader's doing, not an error: `main` ends quietly
        raise
    except Exception as exc:
        if not user_facing(exc):  # a bug, not the user's input: the traceback is what a report needs
            traceback.print_exc()
            print(f"{prefix}internal error: {type(exc).__name__}: {exc} (a bug; please report it with the "
                  "traceback above)", file=sys.stderr)
            return 1
        if args.debug:
            traceback.print_exc()
        for line in error_lines(exc):
            print(f"{prefix}error: {line}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
