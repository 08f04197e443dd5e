"""Progress of a long loop, the one way every command shows it: a bar on a terminal, a line every so often in a log,
nothing when quiet. Output goes to stderr, so stdout stays the command's result."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO, TypeVar

T = TypeVar("T")

LINE_SECONDS = 30.0  # a log (stderr not a terminal) gets one line per this many seconds of a long loop


def _elapsed(seconds: float) -> str:
    """`1 h 2 min`, `3 min 4 s` or `5 s`."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def _lines(items: Iterable[T], total: int | None, desc: str, unit: str, every: float, stream: TextIO) -> Iterator[T]:
    """The items, with a line `desc: done/total unit (pct%), elapsed` on stream each time `every` seconds have
    passed since the last one, and a last line when any was written (so a log shows the loop ended)."""
    start = last = time.monotonic()
    done = shown = 0

    def line() -> None:
        nonlocal shown
        shown = done
        of = f"/{total}" if total is not None else ""
        pct = f" ({100 * done // total}%)" if total else ""
        print(f"{desc}: {done}{of} {unit}{pct}, {_elapsed(time.monotonic() - start)}", file=stream, flush=True)

    for item in items:
        yield item
        done += 1
        now = time.monotonic()
        if now - last >= every:
            line()
            last = now
    if 0 < shown < done:
        line()


def progress(items: Iterable[T], total: int | None = None, desc: str = "", quiet: bool = False, *, unit: str = "it",
             every: float | None = None, stream: TextIO | None = None) -> Iterator[T]:
    """Iterate over ``items`` showing progress on ``stream`` (default stderr): a tqdm bar when it is a terminal, a
    line every ``every`` seconds (default `LINE_SECONDS`) otherwise, nothing when ``quiet``. ``total`` defaults to
    ``len(items)`` where items has one."""
    if quiet:
        return iter(items)
    stream = stream or sys.stderr
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    if stream.isatty():
        from tqdm.auto import tqdm  # late: only a terminal needs it

        return iter(tqdm(items, total=total, desc=desc, unit=unit, file=stream, dynamic_ncols=True))
    return _lines(items, total, desc, unit, LINE_SECONDS if every is None else every, stream)
