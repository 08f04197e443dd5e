"""Argument types, options and help formatting shared by the subcommands (argparse only: parsers build instantly)."""

from __future__ import annotations

import argparse
import textwrap


def comma_list(text: str) -> list[str]:
    """A comma-separated argument as a list of its non-empty, stripped items."""
    return [item.strip() for item in text.split(",") if item.strip()]


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help that shows each option's default (unless it is unset or the help names it already), wraps prose
    paragraphs and keeps indented lines (examples) as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or action.default == []:
            return text
        return super()._get_help_string(action)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        blocks = []
        for block in textwrap.dedent(text).strip("\n").split("\n\n"):
            lines = block.splitlines()
            if any(line.startswith(" ") for line in lines[1:]) or block.startswith(" "):
                blocks.append("\n".join(indent + line for line in lines))  # an example or a list: as written
            else:
                blocks.append(textwrap.fill(" ".join(lines), width, initial_indent=indent, subsequent_indent=indent))
        return "\n\n".join(blocks)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser with `HelpFormatter`; its subcommands' parsers are Parsers too (argparse makes them of the
    parent's class), so every command shows its defaults."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]


DB_HELP = ("history store: SQLAlchemy URL or SQLite path (default: $RECOMMENDER_DB, else the default SQLite file); "
           "before or after the command name")


def add_db_argument(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """The history store option: on the top-level parser (``top``, default unset) and on each store-reading command,
    where it is left out of the namespace unless given, so that `recommender --db X history stats` and
    `recommender history stats --db X` both reach the command (the later one wins)."""
    parser.add_argument("--db", metavar="URL", default=None if top else argparse.SUPPRESS, help=DB_HELP)


def add_quiet_argument(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """`--quiet`: no progress (`recommender.progress`). On the top-level parser (``top``) and on each long command,
    where it is left out of the namespace unless given, so that `recommender --quiet evaluate ...` and
    `recommender evaluate ... --quiet` both turn it off; read it as `getattr(args, "quiet", False)`."""
    parser.add_argument("--quiet", action="store_true", default=False if top else argparse.SUPPRESS,
                        help="no progress bar or progress lines on stderr")
