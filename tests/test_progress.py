"""recommender.progress: a bar on a terminal, timed lines in a log, nothing when quiet."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator

from recommender.progress import _elapsed, progress


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def slow(n: int, pause: float) -> Iterator[int]:
    for i in range(n):
        time.sleep(pause)
        yield i


def test_log_gets_a_line_per_interval_and_a_last_line() -> None:
    stream = io.StringIO()
    assert list(progress(list(range(3)), desc="evaluate", unit="tasks", every=0, stream=stream)) == [0, 1, 2]
    assert stream.getvalue().splitlines() == ["evaluate: 1/3 tasks (33%), 0 s", "evaluate: 2/3 tasks (66%), 0 s",
                                              "evaluate: 3/3 tasks (100%), 0 s"]


def test_log_lines_only_after_the_interval_and_the_end_is_shown() -> None:
    stream = io.StringIO()
    assert list(progress(slow(4, 0.06), desc="rank", every=0.1, stream=stream)) == [0, 1, 2, 3]
    lines = stream.getvalue().splitlines()
    assert lines[0] == "rank: 2 it, 0 s"  # no total known: a count only; first line once 0.1 s passed
    assert lines[-1] == "rank: 4 it, 0 s"


def test_short_loop_in_a_log_prints_nothing() -> None:
    stream = io.StringIO()
    assert list(progress(range(5), desc="x", stream=stream)) == list(range(5))
    assert stream.getvalue() == ""


def test_quiet_prints_nothing_even_on_a_terminal() -> None:
    stream = Terminal()
    assert list(progress(range(5), desc="x", quiet=True, every=0, stream=stream)) == list(range(5))
    assert stream.getvalue() == ""


def test_terminal_gets_a_bar() -> None:
    stream = Terminal()
    assert list(progress(range(5), desc="campaign", unit="jobs", stream=stream)) == list(range(5))
    assert "campaign: 100%" in stream.getvalue() and "5/5" in stream.getvalue()


def test_elapsed_reads_like_a_clock() -> None:
    assert [_elapsed(s) for s in (5, 65, 3725)] == ["5 s", "1 min 5 s", "1 h 2 min"]
