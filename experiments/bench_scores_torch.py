"""Benchmark of the scores' torch path (recommender.scores.torch_scores and torch_batch) against the numpy scores.

Two parts, wall-clock medians of --repeats interleaved runs, both libraries held to --threads threads:
1. A zoo: --models models sharing one shape (n = --n, D = --dim, 10 classes, float32 features); numpy scores each
   model (LogME, LFC, H-score, regularised H-score) against score_zoo_torch, which decomposes the models in one
   batched eigh and runs LogME's fixed point for all of them at once on the device.
2. LogME alone, as n and D grow: numpy `logme` against `logme_torch` (Gram, eigh, projections and the fixed point
   on the device), and the fixed point alone on both sides from the same spectrum (numpy `fit_evidence` on a
   decomposed FeatureMatrix, `fit_evidence_torch` on its tensors), with its number of steps.
Each table gives the largest relative difference of the two routes' values.

Run: python experiments/bench_scores_torch.py [--device cpu] > experiments/results/bench_scores_torch.md
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from datetime import datetime, timezone

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from recommender.scores import hscore, lfc, logme
from recommender.scores.inputs import one_hot
from recommender.scores.logme import _projections, fit_evidence
from recommender.scores.spectrum import FeatureMatrix
from recommender.scores.torch_batch import fit_evidence_torch
from recommender.scores.torch_scores import logme_torch, score_zoo_torch

CLASSES = 10


def zoo(models: int, n: int, dim: int, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """float32 Gaussian class clusters, one matrix per model, and their shared labels."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % CLASSES)
    features = []
    for _ in range(models):
        means = rng.normal(0, 0.5, (CLASSES, dim)).astype(np.float32)
        features.append(means[y] + rng.standard_normal((n, dim), dtype=np.float32))
    return features, y


def numpy_table(features: list[np.ndarray], y: np.ndarray) -> np.ndarray:
    """The four scores of every model by the numpy functions (each builds its own decomposition, as called alone)."""
    return np.array([[logme(F, y), lfc(F, y), hscore(F, y), hscore(F, y, regularized=True)] for F in features])


def timed(routes: dict[str, Callable[[], object]], repeats: int, sync: bool) -> tuple[dict[str, float], dict]:
    """Median wall seconds of each route over interleaved repeats, and each route's last result."""
    times: dict[str, list[float]] = {name: [] for name in routes}
    results = {}
    for _ in range(repeats):
        for name, route in routes.items():
            start = time.perf_counter()
            results[name] = route()
            if sync:
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(values)) for name, values in times.items()}, results


def relative(a: np.ndarray, b: np.ndarray) -> float:
    """The largest relative difference of two arrays of values."""
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b)) / np.abs(np.asarray(b))))


def fixed_point_inputs(fm: FeatureMatrix, Y: np.ndarray, device: str) -> tuple:
    """fit_evidence_torch's inputs from numpy's spectrum and projections of fm, on the device."""
    z2, outside = _projections(fm, Y, None)
    tensors = [torch.from_numpy(a[None]).to(device) for a in (fm.spectrum[0], z2, outside)]
    return (*tensors, fm.n, torch.tensor([fm.scale], dtype=torch.float64, device=device))


def logme_rows(shapes: list[tuple[int, int]], device: str, repeats: int, sync: bool) -> list[str]:
    """One markdown row per (n, D): full LogME and its fixed point alone, numpy against torch."""
    rows = []
    for n, dim in shapes:
        (F,), y = zoo(1, n, dim, seed=n + dim)
        full, values = timed({"numpy": lambda F=F, y=y: logme(F, y),
                              "torch": lambda F=F, y=y: logme_torch(F, y, device)},
                             repeats, sync)
        fm = FeatureMatrix(F)
        Y = one_hot(y, CLASSES)
        fm.spectrum  # noqa: B018 (decomposed once, outside the timing)
        inputs = fixed_point_inputs(fm, Y, device)
        fixed, fits = timed({"numpy": lambda fm=fm, Y=Y: fit_evidence(fm, Y),
                             "torch": lambda inputs=inputs: fit_evidence_torch(*inputs)}, repeats, sync)
        steps = fits["numpy"].iterations
        rows.append(f"| {n} | {dim} | {full['numpy']:.3f} | {full['torch']:.3f} | {1e3 * fixed['numpy']:.1f} | "
                    f"{1e3 * fixed['torch']:.1f} | {steps} | {relative(values['torch'], values['numpy']):.0e} |")
    return rows


def main() -> None:
    """Time the routes and print markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", type=int, default=4)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--grow-n", default="1000,2000,4000,8000", help="n values of part 2 (at D = 256)")
    parser.add_argument("--grow-dim", default="128,256,512,1024", help="D values of part 2 (at n = 2000)")
    args = parser.parse_args()
    sync = args.device.startswith("cuda")
    torch.set_num_threads(args.threads)
    features, y = zoo(args.models, args.n, args.dim)
    names = [f"m{i}" for i in range(args.models)]
    shapes = [(int(n), 256) for n in args.grow_n.split(",")]
    shapes += [(2000, int(d)) for d in args.grow_dim.split(",") if (2000, int(d)) not in shapes]
    shapes.append((500, 2048))  # n < D: the n x n side
    with threadpool_limits(args.threads):
        seconds, results = timed({"numpy": lambda: numpy_table(features, y),
                                  f"torch ({args.device})": lambda: score_zoo_torch(features, y, names, args.device)},
                                 args.repeats, sync)
        rows = logme_rows(shapes, args.device, args.repeats, sync)
    got = results[f"torch ({args.device})"][["logme", "lfc", "hscore", "hscore_reg"]].to_numpy()
    print(f"# torch score kernels ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
          f"torch {torch.__version__}, {args.threads} thread(s), device {args.device})\n")
    print(f"## 1. A zoo: {args.models} models x n = {args.n}, D = {args.dim}, {CLASSES} classes, float32\n")
    print(f"LogME + LFC + H-score + regularised H-score per model; median of {args.repeats} interleaved runs, "
          "wall seconds.\n")
    print("| route | seconds |\n|---|---|")
    for route, value in seconds.items():
        print(f"| {route} | {value:.2f} |")
    print(f"\nLargest relative difference between the two tables: {relative(got, results['numpy']):.1e}\n")
    print(f"## 2. LogME alone as n and D grow ({CLASSES} classes, float32)\n")
    print("Full LogME (decomposition + fixed point), seconds; the fixed point alone from the same spectrum, "
          "milliseconds, with numpy's number of steps; relative difference of the two LogME values.\n")
    print("| n | D | numpy s | torch s | numpy fixed point ms | torch fixed point ms | steps | rel. diff |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
