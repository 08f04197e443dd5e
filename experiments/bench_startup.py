"""Benchmark start-up: wall time of `recommender --help` and of each `recommender COMMAND --help`, each in a fresh
process (median of --repeats), against the baseline of a bare interpreter (`python -c pass`) measured in the same
run, so that a loaded machine shows as a slower baseline. Writes experiments/results/bench_startup.md.

    python experiments/bench_startup.py --out experiments/results
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from recommender.cli import build_parser

TARGET_S = 0.5  # issue 13: every help within half a second


def wall(argv: list[str], repeats: int) -> float:
    """Median wall seconds of running argv in a fresh process (its output discarded; it must exit 0)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def help_commands() -> list[list[str]]:
    """Every command's words, the top level first: [], ["history"], ["history", "init"], ..."""
    found: list[list[str]] = []

    def walk(parser: argparse.ArgumentParser, words: list[str]) -> None:
        found.append(words)
        for action in parser._actions:  # argparse exposes subcommands only through its actions
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, [*words, name])

    walk(build_parser(), [])
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="experiments/results")
    args = parser.parse_args()
    script = Path(sys.executable).parent / "recommender"  # the console script a user runs, beside this Python
    entry = [str(script)] if script.exists() else [sys.executable, "-m", "recommender.cli"]
    baseline = wall([sys.executable, "-c", "pass"], args.repeats)
    rows = []
    for words in help_commands():
        seconds = wall([*entry, *words, "--help"], args.repeats)
        rows.append((" ".join(["recommender", *words, "--help"]), seconds))
        print(f"{rows[-1][0]:45s} {seconds:.3f} s", file=sys.stderr)
    worst = max(s for _, s in rows)
    lines = [
        "# Start-up: `recommender ... --help` wall time",
        "",
        f"`python experiments/bench_startup.py --repeats {args.repeats}`: each command in a fresh process, "
        f"median of {args.repeats}, run as `{' '.join(Path(a).name for a in entry)}`; "
        f"Python {platform.python_version()}, {os.cpu_count()} CPU(s), load average "
        f"{', '.join(f'{v:.2f}' for v in os.getloadavg())} at the end.",
        "",
        f"Baseline, a bare interpreter (`python -c pass`), same run: **{baseline:.3f} s**. "
        f"Slowest help: **{worst:.3f} s** (target {TARGET_S} s: {'met' if worst < TARGET_S else 'NOT met'}).",
        "",
        "| command | seconds | over the baseline |",
        "| --- | ---: | ---: |",
        *(f"| `{name}` | {s:.3f} | {s - baseline:+.3f} |" for name, s in rows),
        "",
    ]
    out = Path(args.out) / "bench_startup.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
