"""The shared synthetic pair tables of the tests (a plain module, so test modules in every folder and conftest.py
import them from one place)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def quality_pairs(n_datasets: int = 5, n_models: int = 10, seed: int = 0) -> pd.DataFrame:
    """Pairs whose performance = model quality + dataset offset + noise (sd 0.02); score_good tracks it (sd 0.01),
    score_bad is noise; imagenet_top1 follows the quality loosely."""
    rng = np.random.default_rng(seed)
    quality = np.linspace(0.0, 0.3, n_models)
    rows = []
    for d in range(n_datasets):
        for m in range(n_models):
            perf = 0.5 + 0.1 * d / n_datasets + quality[m] + rng.normal(0, 0.02)
            rows.append({
                "model": f"m{m}", "dataset": f"d{d}", "performance": perf, "selected_by": "val",
                "family": ["a", "b"][m % 2], "pretrain_dataset": "in1k", "params_m": 10.0 + m,
                "gmacs": 1.0 + m, "input_size": 224.0, "imagenet_top1": 70 + 10 * quality[m] + rng.normal(0, 0.5),
                "examples": 800.0, "classes": 10.0 + d, "modality": "image", "group": ["x", "y"][d % 2],
                "score_good": perf + rng.normal(0, 0.01), "score_bad": rng.normal(),
            })
    return pd.DataFrame(rows)


def image_pairs(n_models: int = 12, n_datasets: int = 5, seed: int = 0) -> pd.DataFrame:
    """Every (model, dataset) pair of random image datasets, with facts, a LogME score and a performance."""
    rng = np.random.default_rng(seed)
    models = pd.DataFrame({
        "model": [f"m{i}" for i in range(n_models)], "family": rng.choice(["vit", "resnet"], n_models),
        "pretrain_dataset": rng.choice(["in1k", "in21k"], n_models), "params_m": rng.lognormal(3, 1, n_models),
        "gmacs": rng.lognormal(1, 1, n_models), "input_size": 224.0, "imagenet_top1": rng.uniform(70, 88, n_models),
    })
    datasets = pd.DataFrame({
        "dataset": [f"d{i}" for i in range(n_datasets)], "group": rng.choice(["natural", "structured"], n_datasets),
        "modality": "image", "examples": rng.choice([800.0, 5000.0], n_datasets),
        "classes": rng.integers(2, 50, n_datasets).astype(float),
    })
    pairs = models.merge(datasets, how="cross")
    pairs["score_logme"] = rng.normal(size=len(pairs))
    pairs["performance"] = rng.normal(size=len(pairs))
    return pairs
