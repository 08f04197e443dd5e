"""Start-up and help of the `recommender` command: the parser builds without the heavy libraries, every command
has a description with an example and shows its defaults, and --db works before or after the command."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from recommender.cli import build_parser, main

HEAVY = ("torch", "lightning", "optuna", "matplotlib", "sklearn", "scipy", "pandas", "sqlalchemy")


def commands(parser: argparse.ArgumentParser,
             path: tuple[str, ...] = ()) -> dict[tuple[str, ...], argparse.ArgumentParser]:
    """Every command's parser, by its words (`("history", "init")`), the top level included."""
    found = {path: parser}
    for action in parser._actions:  # argparse exposes subcommands only through its actions
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found |= commands(sub, (*path, name))
    return found


@pytest.mark.parametrize("argv", [[], ["recommend", "--help"], ["history", "init", "--help"], ["evaluate", "--help"]])
def test_building_the_parser_imports_no_heavy_library(argv):
    """In a fresh interpreter, building the parser (and printing a help) loads none of HEAVY."""
    code = ("import json, sys\nimport recommender.cli as c\np = c.build_parser()\n"
            f"try:\n    p.parse_args({argv!r})\nexcept SystemExit:\n    pass\n"
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_every_command_has_a_description_with_an_example():
    for words, parser in commands(build_parser()).items():
        text = parser.format_help()
        assert parser.description, words
        assert "example:" in text and f"recommender {' '.join(words)}".strip() in text.split("example:")[1], words


def test_every_default_is_shown():
    """Each option with a default (not unset, not a flag off) names it in its help line."""
    for words, parser in commands(build_parser()).items():
        for action in parser._actions:
            if action.option_strings and action.default not in (None, False, [], argparse.SUPPRESS) \
                    and action.help != argparse.SUPPRESS:
                assert "default" in parser._get_formatter()._expand_help(action) or "default" in (action.help or ""), \
                    (words, action.dest)
    text = build_parser()._subparsers._group_actions[0].choices["recommend"].format_help()
    assert "(default: 10)" in text  # --top-k, through the formatter


@pytest.mark.parametrize("argv", [
    ["--db", "X", "history", "stats"], ["history", "stats", "--db", "X"], ["history", "--db", "X", "stats"],
    ["history", "init", "--db", "X"], ["--db", "X", "history", "init"], ["history", "ingest", "f.csv", "--db", "X"],
    ["--db", "X", "recommend", "--model", "m", "--dataset", "d"], ["recommend", "--model", "m", "--dataset", "d",
                                                                   "--db", "X"],
    ["--db", "Y", "train", "--recommender", "lr", "--out", "o", "--db", "X"],  # the later one wins
])
def test_db_before_or_after_the_command(argv):
    assert build_parser().parse_args(argv).db == "X"


def test_db_unset_is_none_for_every_command():
    assert build_parser().parse_args(["history", "stats"]).db is None
    assert build_parser().parse_args(["score", "--features", "f", "--labels", "y"]).db is None


def test_help_lists_match_the_package():
    """Lists written into help texts (so that building them imports nothing) name exactly what the package has."""
    from recommender.history.records import KINDS
    from recommender.scores import SCORES

    parsers = commands(build_parser())
    listed = parsers[("score",)].description.split("scores:")[1].split("(")[0]
    assert [name.strip() for name in listed.split(",")] == list(SCORES)
    kind = next(a for a in parsers[("history", "ingest")]._actions if a.dest == "kind")
    assert kind.help.removeprefix("what the file holds: ").replace(" or ", ", ").split(", ") == list(KINDS)


def test_version(capsys):
    from recommender.cli import package_version

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out == f"recommender {package_version()}\n"
