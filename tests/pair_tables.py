"""The shared synthetic pair table of the evaluation tests (a plain module, so test modules and conftest.py import
it from one place)."""

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
