"""The `recommender` command line: a thin shell over the package's subcommand modules."""

from __future__ import annotations

import argparse
import importlib
import sys

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


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (UserError, ValueError, FileNotFoundError, KeyError) as exc:  # one line, no traceback
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"recommender {args.command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
