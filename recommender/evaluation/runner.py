"""Run strategies over the folds of a split and collect every per-dataset number, prediction and issue."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import clone

from recommender.contracts import EVALUATION_BUDGETS, MIN_MODELS
from recommender.evaluation.checks import issues_frame, rankable
from recommender.evaluation.measures import budget_measures, rank_correlations, summarize
from recommender.evaluation.sequential import adaptive_preferences
from recommender.evaluation.splits import Fold
from recommender.evaluation.strategies import Strategy, without_truth
from recommender.executors import Executor, SerialExecutor
from recommender.normalise import ranking_groups
from recommender.progress import progress as show_progress

log = logging.getLogger(__name__)  # one progress line per fold and strategy, for logs
RESULT_COLUMNS = ["fold", "repeat", "dataset", "strategy", "measure", "budget", "value"]


@dataclass
class Evaluation:
    """Every number of one evaluation: long-format results, per-model predictions and what was set aside."""

    results: pd.DataFrame
    predictions: pd.DataFrame
    issues: pd.DataFrame

    def summary(self, by_seen: bool = True) -> pd.DataFrame:
        """Mean over (fold, dataset) units per strategy, measure and budget (and seen, cross-protocol, unless not
        `by_seen`: then one mean over every dataset), with std and a bootstrap 95% CI."""
        rows = []
        keys = ["strategy", "measure", "budget", *(["seen"] if by_seen and "seen" in self.results.columns else [])]
        for key, part in self.results.groupby(keys, dropna=False, sort=False):
            rows.append(dict(zip(keys, key, strict=True)) | summarize(part["value"], part["repeat"]))
        return pd.DataFrame(rows, columns=keys + ["mean", "std", "ci_low", "ci_high", "n"])


def _dataset_rows(name: str, pref: np.ndarray, truth: np.ndarray, strategy: Strategy,
                  budget_prefs: Mapping[int, np.ndarray]) -> tuple[list[tuple], list[dict]]:
    """(strategy, measure, budget, value) rows for one dataset, and issues about missing predictions."""
    rows: list[tuple] = []
    issues: list[dict] = []
    known = np.isfinite(pref)
    if strategy.ranks and known.sum() >= MIN_MODELS:
        corr = rank_correlations(pref[known], truth[known])
        if np.isnan(corr["weighted_tau"]):
            issues.append({"issue": "constant prediction", "detail": f"{name}: correlations undefined, not averaged"})
        else:
            rows += [(name, m, pd.NA, v) for m, v in corr.items()]
    if not known.all():
        issues.append({"issue": "missing prediction",
                       "detail": f"{name}: {int((~known).sum())} of {known.size} models unranked (picked last)"})
    for budget, bpref in budget_prefs.items():
        rows += [(name, m, budget, v) for m, v in budget_measures(bpref, truth, budget).items() if not np.isnan(v)]
    return rows, issues


@dataclass(frozen=True)
class _Task:
    """One strategy on one fold: the unit an executor runs (it carries everything it needs, its seed in `proto`)."""

    index: int  # of the fold, from 0
    label: str
    fold: Fold
    test: pd.DataFrame
    name: str
    proto: Strategy
    budgets: tuple[int, ...]
    adaptive: bool


def _run_task(task: _Task) -> tuple[list[tuple], list[pd.DataFrame], list[dict]]:
    """Fit the task's strategy on its fold's training pairs and measure its ranking of each test dataset:
    (result rows, prediction frames, notes)."""
    log.info("%s: %s", task.label, task.name)
    fold, test, name, budgets = task.fold, task.test, task.name, task.budgets
    results, predictions, notes = [], [], []
    hidden = without_truth(test)
    est = clone(task.proto).fit(fold.train)
    shown = test if est.needs_truth else hidden
    if est.budget_dependent:
        by_budget = {b: est.predict(shown, b) for b in budgets}
        pref = by_budget[max(budgets)]  # what the scatter plots show for a budget-dependent pick
    else:
        pref = est.predict(shown)
        by_budget = dict.fromkeys(budgets, pref)
    for dataset, part in test.groupby(ranking_groups(test), sort=True):  # one ranking per (dataset, protocol)
        seen = pd.NA if fold.seen is None else str(part["dataset"].iloc[0]) in fold.seen
        at = test.index.get_indexer(part.index)
        truth = part["performance"].to_numpy(dtype=float)
        if est.ranks and not np.isfinite(pref[at]).any():
            notes.append({"dataset": dataset, "model": None, "issue": "no prediction",
                          "detail": f"{name}: no model ranked on this dataset, not evaluated"})
            continue
        budget_prefs = {b: p[at] for b, p in by_budget.items()}
        if task.adaptive and est.adaptive:
            budget_prefs = adaptive_preferences(est, hidden.loc[part.index], truth, budgets)
        rows, found = _dataset_rows(name, pref[at], truth, est, budget_prefs)
        results += [(fold.name, fold.repeat, dataset, *row, seen) for row in rows]
        notes += [{"dataset": dataset, "model": None} | f for f in found]
        predictions.append(pd.DataFrame({"fold": fold.name, "dataset": dataset, "model": part["model"].to_numpy(),
                                         "strategy": name, "prediction": pref[at], "performance": truth}))
    return results, predictions, notes


def evaluate(folds: Sequence[Fold], strategies: Mapping[str, Strategy], budgets: Sequence[int] = EVALUATION_BUDGETS,
             progress: bool = False, issues: pd.DataFrame | None = None, adaptive: bool = False,
             executor: Executor | None = None) -> Evaluation:
    """Fit each strategy on each fold's training pairs and measure its ranking of each test dataset.

    Strategies see the test pairs without `performance` (only the oracle is shown it). With `adaptive`, adaptive
    strategies pick sequentially, shown the truth of each pick made (SPEC §7); their correlations and predictions
    are of their first ranking. Datasets that cannot be ranked, strategies with no prediction on a dataset, and
    missing predictions go to `issues`. Each (fold, strategy) is one task on ``executor`` (default: this process);
    the tables come out the same, in the same order, whichever runs them."""
    executor = executor or SerialExecutor()
    results, predictions, notes = [], [], [] if issues is None else issues.to_dict("records")
    tasks, fold_notes = [], []  # the unrankable datasets of each fold, noted before its tasks' own notes
    for i, fold in enumerate(folds, 1):
        datasets, unrankable = rankable(fold.test)
        fold_notes.append(unrankable.to_dict("records"))
        test = fold.test.loc[ranking_groups(fold.test).isin(datasets)]
        if not test.empty:
            label = f"fold {i}/{len(folds)} ({fold.name})"
            tasks += [_Task(i - 1, label, fold, test, name, proto, tuple(budgets), adaptive)
                      for name, proto in strategies.items()]
    if not isinstance(executor, SerialExecutor):
        log.info("%d tasks (folds x strategies) on %s", len(tasks), type(executor).__name__)
    done = show_progress(executor.imap(_run_task, tasks), len(tasks), "evaluate (fold x strategy)", not progress,
                         unit="tasks")
    by_fold: dict[int, list] = {}
    for task, out in zip(tasks, done, strict=True):
        by_fold.setdefault(task.index, []).append(out)
    for i in range(len(folds)):
        notes += fold_notes[i]
        for rows, preds, found in by_fold.get(i, []):
            results += rows
            predictions += preds
            notes += found
    table = pd.DataFrame(results, columns=[*RESULT_COLUMNS, "seen"]).astype({"budget": "Int64"})
    return Evaluation(
        # `seen` (cross-protocol: does training hold the dataset under its protocols?) only where a fold says
        results=table.drop(columns="seen") if table["seen"].isna().all() else table,
        predictions=pd.concat(predictions, ignore_index=True) if predictions else pd.DataFrame(),
        issues=issues_frame(notes).drop_duplicates(ignore_index=True),
    )
