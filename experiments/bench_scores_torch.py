"""Benchmark of the torch path of the scores (recommender.scores.torch_kernels) against the numpy scores.

One case: a zoo of 4 models sharing one shape, n = 5,000 examples, D = 512, 10 classes (float32 features);
numpy scores each model (LogME, LFC, H-score, regularised H-score) against score_zoo_torch, which decomposes
the 4 models in one batched eigh. Times are medians of --repeats interleaved wall-clock runs, with both
libraries held to --threads threads. It also prints the largest relative difference of the two tables.

Run: python experiments/bench_scores_torch.py [--device cpu] > experiments/results/bench_scores_torch.md
"""

from __future__ import annotations

import argparse
import platform
import time
from datetime import datetime, timezone

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from recommender.scores import hscore, lfc, logme
from recommender.scores.torch_kernels import score_zoo_torch


def zoo(models: int, n: int, dim: int, classes: int) -> tuple[list[np.ndarray], np.ndarray]:
    """float32 Gaussian class clusters, one matrix per model, and their shared labels."""
    rng = np.random.default_rng(0)
    y = rng.permutation(np.arange(n) % classes)
    features = []
    for _ in range(models):
        means = rng.normal(0, 0.5, (classes, dim)).astype(np.float32)
        features.append(means[y] + rng.standard_normal((n, dim), dtype=np.float32))
    return features, y


def numpy_table(features: list[np.ndarray], y: np.ndarray) -> np.ndarray:
    """The four scores of every model by the numpy functions (each builds its own decomposition, as called alone)."""
    return np.array([[logme(F, y), lfc(F, y), hscore(F, y), hscore(F, y, regularized=True)] for F in features])


def main() -> None:
    """Time both routes on one case and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", type=int, default=4)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--dim", type=int, default=512)
    args = parser.parse_args()
    features, y = zoo(args.models, args.n, args.dim, 10)
    names = [f"m{i}" for i in range(args.models)]
    torch.set_num_threads(args.threads)
    times: dict[str, list[float]] = {"numpy": [], f"torch ({args.device})": []}
    with threadpool_limits(args.threads):
        for _ in range(args.repeats):
            start = time.perf_counter()
            expected = numpy_table(features, y)
            times["numpy"].append(time.perf_counter() - start)
            start = time.perf_counter()
            got = score_zoo_torch(features, y, names, device=args.device)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            times[f"torch ({args.device})"].append(time.perf_counter() - start)
    got_values = got[["logme", "lfc", "hscore", "hscore_regularized"]].to_numpy()
    rel = float(np.max(np.abs(got_values - expected) / np.abs(expected)))
    print(f"# torch score kernels ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
          f"torch {torch.__version__}, {args.threads} thread(s))\n")
    print(f"{args.models} models x n = {args.n}, D = {args.dim}, 10 classes, float32; LogME + LFC + H-score + "
          f"regularised H-score per model; median of {args.repeats} interleaved runs, wall seconds.\n")
    print("| route | seconds |\n|---|---|")
    for route, values in times.items():
        print(f"| {route} | {np.median(values):.2f} |")
    print(f"\nLargest relative difference between the two tables: {rel:.1e}")


if __name__ == "__main__":
    main()
