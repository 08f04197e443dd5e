"""Benchmark of the learned recommenders: training time of FM and LR on the full SHiFT vision history.

Run: python experiments/bench_models.py [--repeats 3] [--url URL] > experiments/results/bench_models.md
(default: a fresh SQLite store in a temporary folder, loaded with the bundled history).
Times are medians of --repeats runs, as wall seconds and process CPU seconds (robust on a shared machine).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import torch

from recommender.history import open_store
from recommender.history.bundled import load_bundled
from recommender.models import PairEncoder, make_recommender

CASES: list[tuple[str, str, dict[str, object]]] = [
    ("LR (ridge), d,m", "lr", {"features": "d,m"}),
    ("LR (ridge), d,m,logme", "lr", {"features": "d,m,logme"}),
    ("FM k=8, 200 epochs, mse, d,m, 1 thread", "fm", {"features": "d,m"}),
    ("FM k=8, 200 epochs, mse, d,m, 2 threads", "fm", {"features": "d,m", "n_threads": 2}),
    ("FM k=8, 200 epochs, mse, d,m,logme", "fm", {"features": "d,m,logme"}),
    ("FM k=8, 200 epochs, pairwise, d,m", "fm", {"features": "d,m", "loss": "pairwise"}),
    ("FM k=32, 300 epochs, mse, d,m", "fm", {"features": "d,m", "k": 32, "epochs": 300}),
    ("FM k=8, 200 epochs, mse, batches of 4 datasets", "fm", {"features": "d,m", "batch_datasets": 4}),
]


def timed(action: Callable[[], object]) -> tuple[float, float]:
    """Wall and CPU seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    action()
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(action: Callable[[], object], repeats: int) -> dict[str, float]:
    """Median wall and CPU seconds over repeats."""
    runs = [timed(action) for _ in range(repeats)]
    return {"wall_s": statistics.median(r[0] for r in runs), "cpu_s": statistics.median(r[1] for r in runs)}


def main() -> None:
    """Print a Markdown report of the timings."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--url", help="an existing store holding the bundled history")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'history.db'}"
        store = open_store(url, create=not args.url)
        if not args.url:
            load_bundled(store)
        pairs = store.pair_table("vtab1k", modality="image", scores=["logme"])
    X, y = pairs.drop(columns="performance"), pairs["performance"].to_numpy()
    encoder = PairEncoder("d,m,logme")
    rows = [{"case": "encoder fit + transform, d,m,logme", **measure(lambda: encoder.fit(X).transform(X),
                                                                     args.repeats)}]
    for label, kind, params in CASES:
        est = make_recommender(kind, **params)
        rows.append({"case": f"fit: {label}", **measure(lambda est=est: est.fit(X, y), args.repeats)})
        if kind == "fm" and "n_threads" not in params and "loss" not in params and "k" not in params:
            rows.append({"case": f"predict {len(X)} pairs: {label}",
                         **measure(lambda est=est: est.predict(X), args.repeats)})
    n_features = encoder.fit(X).transform(X).shape[1]
    print("# Learned recommenders: training time on the SHiFT vision history\n")
    print(f"- data: SHiFT vision VTAB-1k pair table, {len(X)} pairs, {X['model'].nunique()} models x "
          f"{X['dataset'].nunique()} datasets, {n_features} encoded features (d,m,logme)")
    print(f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared), "
          f"load average {os.getloadavg()[0]:.1f}; torch {torch.__version__}, CPU; {args.repeats} repeats, median")
    print(f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC\n")
    print("| case | wall s | CPU s |\n|---|---:|---:|")
    for row in rows:
        print(f"| {row['case']} | {row['wall_s']:.2f} | {row['cpu_s']:.2f} |")


if __name__ == "__main__":
    main()
