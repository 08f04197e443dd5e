"""Round 3 of hostile and careless use of the command line: broken pipes, progress, modality, --observed files,
datasets left out of evaluate, observed models in recommend and rank, notes in CSV/JSON output."""

from __future__ import annotations

import subprocess
import sys

import pytest

from recommender.cli import SIGPIPE_EXIT


def closed_pipe_run(*argv: str) -> tuple[int, str]:
    """Run `recommender ARGV` in a real process whose stdout reader has closed the pipe before it writes (as
    `recommender ... | head -0` does): (exit code, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "recommender.cli", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone: every write of the command to stdout is a broken pipe
    err = proc.stderr.read()
    return proc.wait(timeout=120), err


@pytest.mark.parametrize("argv", [["--version"], ["history", "stats"]], ids=["version", "history-stats"])
def test_broken_pipe_ends_quietly_with_sigpipe_code(argv: list[str], small_store_url: str) -> None:
    """`recommender history stats | head`: no error line, no traceback, exit 141 (128 + SIGPIPE) as Unix tools."""
    code, err = closed_pipe_run(*argv, *(["--db", small_store_url] if argv[0] == "history" else []))
    assert (code, err) == (SIGPIPE_EXIT, "")
    assert SIGPIPE_EXIT == 141


def test_open_pipe_still_exits_zero(small_store_url: str) -> None:
    """The same command read to its end: exit 0 and its output (the quiet ending is only for a closed pipe)."""
    done = subprocess.run([sys.executable, "-m", "recommender.cli", "history", "stats", "--db", small_store_url],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout and done.stderr == ""
