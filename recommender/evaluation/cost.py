"""Regret measures for configurations and cost budgets (extending SPEC §5 to (model, configuration) choices).

- **Configuration-level regret at B**: a strategy picks B (model, configuration) rows of a held-out dataset, all are
  fine-tuned, the best is kept; relative regret = (best row - best picked) / best row, over the rows measured there.
- **Regret at a cost budget C**: a strategy fine-tunes rows one after another while the seconds they really took
  add up to at most C; the best reached is compared with the oracle's best within C (the best row that alone costs
  at most C): relative regret = (oracle - reached) / oracle, 1 where nothing was reached. Budgets below the
  cheapest row are not defined (the oracle has nothing) and give NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def config_regret(predicted: np.ndarray, truth: np.ndarray, budget: int) -> float:
    """Relative regret of the ``budget`` rows with the highest ``predicted`` (ties: first rows first)."""
    truth = np.asarray(truth, dtype=float)
    picked = np.argsort(-np.asarray(predicted, dtype=float), kind="stable")[:budget]
    best = truth.max()
    return float((best - truth[picked].max()) / best)


def truncated_run(order: Sequence[int], cost: np.ndarray, budget: float) -> list[int]:
    """The rows of ``order`` run with ``budget`` seconds when the order is followed and stops at the first row whose
    real ``cost`` no longer fits (a cost-blind ranking truncated to the budget)."""
    ran, spent = [], 0.0
    for i in order:
        if spent + cost[i] > budget:
            break
        ran.append(int(i))
        spent += cost[i]
    return ran


def cost_aware_run(predicted: np.ndarray, expected_cost: np.ndarray, cost: np.ndarray, budget: float) -> list[int]:
    """The rows run with ``budget`` seconds when each next row is the best-``predicted`` one whose ``expected_cost``
    fits the seconds left; a row whose real ``cost`` overruns what is left is not finished and ends the run."""
    left = float(budget)
    remaining = np.ones(len(predicted), dtype=bool)
    ran: list[int] = []
    while True:
        affordable = np.flatnonzero(remaining & (expected_cost <= left))
        if not affordable.size:
            return ran
        i = int(affordable[np.argmax(np.asarray(predicted, dtype=float)[affordable])])
        if cost[i] > left:
            return ran
        ran.append(i)
        remaining[i] = False
        left -= cost[i]


def budget_regret(ran: Sequence[int], truth: np.ndarray, cost: np.ndarray, budget: float) -> float:
    """Relative regret of the rows ``ran`` within ``budget`` seconds against the oracle's best row costing at most
    that (NaN where no row does; 1 where nothing ran)."""
    truth, cost = np.asarray(truth, dtype=float), np.asarray(cost, dtype=float)
    fits = cost <= budget
    if not fits.any():
        return float("nan")
    oracle = truth[fits].max()
    reached = truth[list(ran)].max() if len(ran) else None
    return 1.0 if reached is None else float((oracle - reached) / oracle)

