"""Benchmark `recommender next` on the whole bundled history (SHiFT vision, 291 models x 19 datasets).

Times, medians of --repeats: the baseline of just loading the pair table from the store; `next` in process
(store read, fit, rank, print) for a new dataset with two observed results; the same as a fresh process (Python
start-up and imports included). Writes experiments/results/bench_next.md.

    python experiments/bench_next.py --out experiments/results
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from recommender.cli import main as cli
from recommender.history import open_store
from recommender.history.bundled import load_bundled


def timed(call, repeats: int) -> float:
    """Median wall seconds of `call()`."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="experiments/results")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/history.db"
        load_bundled(open_store(url, create=True))
        pairs = open_store(url).pair_table("vtab1k", "image", select="val")
        observed = Path(tmp) / "observed.csv"
        top = pairs.groupby("model")["performance"].mean().sort_values().index[-2:]
        observed.write_text("model,performance\n"  # the two best models, or what there is
                            + "".join(f"{m},{p}\n" for m, p in zip(top, (0.61, 0.55), strict=False)))
        argv = ["next", "--db", url, "--dataset", "new-task", "--modality", "image", "--budget", "3",
                "--observed", str(observed)]
        load = timed(lambda: open_store(url).pair_table("vtab1k", "image", select="val"), args.repeats)
        quiet = io.StringIO()
        with contextlib.redirect_stdout(quiet):
            in_process = timed(lambda: cli(argv), args.repeats)
        process = timed(lambda: subprocess.run([sys.executable, "-m", "recommender.cli", *argv], check=True,
                                               capture_output=True), args.repeats)
        answer = subprocess.run([sys.executable, "-m", "recommender.cli", *argv], check=True, capture_output=True,
                                text=True).stdout
    lines = ["# `recommender next` on the bundled SHiFT vision history", "",
             f"Medians of {args.repeats}, this machine (shared, 2 cores), `python experiments/bench_next.py`.", "",
             "| step | seconds |", "|---|---|",
             f"| baseline: load the pair table (291 models x 19 datasets) | {load:.2f} |",
             f"| `next` in process (load, fit the similarity, rank, print) | {in_process:.2f} |",
             f"| `next` as a fresh process (with Python start-up and imports) | {process:.2f} |", "",
             "The answer:", "", "```", answer.rstrip(), "```"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_next.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
