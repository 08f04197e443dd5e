"""Benchmark the history store: load the bundled history, load it again, query it, export it.

Usage: python experiments/bench_history.py [--repeats 3] [--url URL]
(default: a fresh SQLite file per repeat in a temporary folder; a PostgreSQL URL is emptied before each repeat).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import create_engine

from recommender.history import open_store
from recommender.history.bundled import load_bundled
from recommender.history.export import export
from recommender.history.schema import metadata


def timed(action: Callable[[], object]) -> float:
    """Seconds one call takes."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def one_repeat(url: str, folder: Path) -> dict[str, float]:
    """Every measured step once, on an empty store."""
    if not url.startswith("sqlite"):
        metadata.drop_all(create_engine(url))
    store = open_store(url, create=True)
    return {
        "load bundled history (init)": timed(lambda: load_bundled(store)),
        "load again (nothing added)": timed(lambda: load_bundled(store)),
        "pair_table vtab1k image + 2 scores":
            timed(lambda: store.pair_table("vtab1k", "image", ("logme", "hscore_reg"))),
        "performance_matrix imagenet-eval": timed(lambda: store.performance_matrix("imagenet-eval")),
        "export to CSV": timed(lambda: export(store, folder / "export", "csv")),
    }


def main() -> None:
    """Run the repeats and print the median of each step as a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--url", help="store URL (default: a fresh SQLite file per repeat)")
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            folder = Path(tmp) / str(i)
            folder.mkdir()
            runs.append(one_repeat(args.url or f"sqlite:///{folder / 'history.db'}", folder))
        counts = open_store(args.url or f"sqlite:///{Path(tmp) / '0' / 'history.db'}").counts()
    print(f"store: {args.url or 'SQLite file'}; rows: {counts}; median of {args.repeats} repeats")
    print("| step | seconds |\n|---|---|")
    for step in runs[0]:
        print(f"| {step} | {statistics.median(r[step] for r in runs):.2f} |")


if __name__ == "__main__":
    main()
