"""Benchmark scaling out: serial against local processes against a local Ray (1 and 2 workers), for ranking N
models of the offline text zoo (features extracted, no cache) and for a leave-one-dataset-out evaluation.

Each configuration runs in a fresh process, so its wall time includes what a user pays: the process pool's start
(spawned workers import torch) or Ray's start, and moving the data to the workers. Speed-up is serial / config;
overhead is config's wall time minus the serial time divided by its workers (what perfect scaling would take).
Every configuration's numbers are checked equal to the serial ones. Writes experiments/results/bench_scale.md.

    python experiments/bench_scale.py --out experiments/results
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

CONFIGS = [("serial", 1), ("local", 1), ("local", 2), ("ray", 1), ("ray", 2)]
RANK_MODELS = ["glove-6B-50d", "paraphrase-MiniLM-L3-v2", "all-MiniLM-L6-v2", "spacy-en_core_web_sm"]
RANK_SCORES = ["logme", "hscore_reg", "lfc", "parc", "knn", "linear"]


def loo_pairs(n_models: int = 30, n_datasets: int = 10, seed: int = 0) -> pd.DataFrame:
    """A synthetic history (performance = model quality + dataset offset + noise) with model and dataset facts."""
    rng = np.random.default_rng(seed)
    quality = rng.normal(size=n_models)
    rows = [{"model": f"m{m}", "dataset": f"d{d}", "performance": 0.6 + 0.05 * quality[m] + 0.1 * d / n_datasets
             + rng.normal(0, 0.02), "family": ["a", "b", "c"][m % 3], "pretrain_dataset": "in1k",
             "params_m": 5.0 + m, "gmacs": 1.0 + m, "input_size": 224.0, "imagenet_top1": 75 + 2 * quality[m],
             "examples": 800.0, "classes": 10.0 + d, "modality": "image", "group": ["x", "y"][d % 2]}
            for d in range(n_datasets) for m in range(n_models)]
    return pd.DataFrame(rows)


def run_one(task: str, kind: str, workers: int, n: int) -> dict:
    """One configuration in this process: wall seconds and the result table (as JSON records)."""
    from recommender.executors import make_executor

    start = time.perf_counter()
    executor = make_executor(kind, workers=workers)
    if task == "rank":
        from recommender.zoo.datasets import load_dataset, subsample
        from recommender.zoo.scoring import score_pool
        from recommender.zoo.zoos import get_provider

        ds = subsample(load_dataset("tweets"), n, 0)
        table = score_pool([get_provider(m) for m in RANK_MODELS], ds, RANK_SCORES, cache=None, progress=False,
                           executor=executor)
        per_model = (table["seconds_extract"] + table[[f"seconds_{s}" for s in RANK_SCORES]].sum(axis=1)).tolist()
        table = table.drop(columns=[c for c in table.columns if c.startswith("seconds_") or c == "cached"])
    else:
        from recommender.evaluation.factory import make_strategy
        from recommender.evaluation.pipeline import run_evaluation
        from recommender.evaluation.strategies import Learned

        strategies = {s: make_strategy(s) for s in ("oracle", "random", "mean-perf", "lr")}
        strategies["fm"] = Learned("fm", "d,m", params={"epochs": 60})
        table = run_evaluation(loo_pairs(), "loo", strategies, (1, 3), executor=executor).evaluation.results
        per_model = []
    return {"seconds": time.perf_counter() - start, "per_model": per_model,
            "table": table.to_json(orient="records", double_precision=15)}


def measure(task: str, kind: str, workers: int, n: int) -> dict:
    """run_one in a fresh process (its start-up counted from the executor's creation)."""
    out = subprocess.run([sys.executable, __file__, "--one", task, kind, str(workers), "--n", str(n)],
                         check=True, capture_output=True, text=True, env={"RAY_AUTH_MODE": "disabled", **os.environ})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="experiments/results")
    parser.add_argument("--n", type=int, default=200, help="examples of the ranked dataset (tweets)")
    parser.add_argument("--one", nargs=3, metavar=("TASK", "KIND", "WORKERS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        task, kind, workers = args.one
        print(json.dumps(run_one(task, kind, int(workers), args.n)))
        return
    lines = [f"# bench_scale: serial vs local processes vs local Ray ({platform.node()}, "
             f"{len(os.sched_getaffinity(0))} cores, shared with other work)", "",
             f"rank: {len(RANK_MODELS)} text models ({', '.join(RANK_MODELS)}) on {args.n} tweets, "
             f"scores {', '.join(RANK_SCORES)}, no feature cache. evaluate: leave-one-dataset-out on a synthetic "
             "history of 30 models x 10 datasets, strategies oracle, random, mean-perf, lr, fm (60 epochs): "
             "50 tasks.", "",
             "| task | executor | workers | wall s | speed-up | overhead s | same numbers as serial |",
             "|---|---|---|---|---|---|---|"]
    for task in ("rank", "evaluate"):
        serial = None
        for kind, workers in CONFIGS:
            got = measure(task, kind, workers, args.n)
            serial = serial or got
            same = got["table"] == serial["table"]
            overhead = got["seconds"] - serial["seconds"] / workers
            lines.append(f"| {task} | {kind} | {workers} | {got['seconds']:.1f} | "
                         f"{serial['seconds'] / got['seconds']:.2f}x | {overhead:+.1f} | {'yes' if same else 'NO'} |")
            print(lines[-1], flush=True)
        if task == "rank":
            per_model = serial["per_model"]
            lines.append(f"| rank | serial, per model (extract + scores) | 1 | "
                         f"{' / '.join(f'{s:.2f}' for s in per_model)} | | | |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_scale.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'bench_scale.md'}")


if __name__ == "__main__":
    main()
