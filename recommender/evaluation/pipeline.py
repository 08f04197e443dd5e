"""One evaluation from a pair table to its numbers: check the pairs, cut the folds, build the strategies, run them.

`recommender evaluate` and every experiment script go through `run_evaluation`, so that a table in
experiments/results is what the command gives on the same pairs."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from recommender.contracts import EVALUATION_BUDGETS
from recommender.errors import UserError
from recommender.evaluation.checks import check_pairs, issues_frame
from recommender.evaluation.factory import make_strategy
from recommender.evaluation.runner import Evaluation, evaluate
from recommender.evaluation.splits import Fold, make_folds
from recommender.evaluation.strategies import Strategy
from recommender.executors import Executor


@dataclass(frozen=True)
class EvaluationRun:
    """An evaluation's numbers, the checked pairs it ran on, what the checks set aside, and its number of folds."""

    evaluation: Evaluation
    pairs: pd.DataFrame
    set_aside: pd.DataFrame
    folds: int


def fitted_once(folds: Sequence[Fold]) -> list[Fold]:
    """Folds that all train on the same pairs (cross-protocol) as one fold testing every dataset: one fit per
    strategy instead of one per target dataset, the same rankings (each dataset is still ranked apart)."""
    if not folds:
        return []
    return [Fold("targets", 0, folds[0].train, pd.concat([f.test for f in folds]), folds[0].seen)]


def run_evaluation(pairs: pd.DataFrame, split: str, strategies: Sequence[str] | Mapping[str, Strategy],
                   budgets: tuple[int, ...] = EVALUATION_BUDGETS, *, issues: Sequence[dict] = (),
                   drop_broken: bool = True, tune_trials: int = 0, adaptive: bool = False,
                   executor: Executor | None = None, progress: bool = False, fit_once: bool = False,
                   keep: Callable[[Fold], bool] | None = None, sources: Sequence[str] = (),
                   seeds: Sequence[int] = (0, 1, 2, 3, 4), test_fraction: float = 0.2,
                   protocols: Sequence[str] | None = None, train_protocols: Sequence[str] = ()) -> EvaluationRun:
    """Evaluate the strategies (names, or built ones by name) on a split of the pair table. Names are built by
    `make_strategy`, told the ranked protocol where ``protocols`` names one.

    The pairs are checked (`check_pairs`; broken runs dropped unless not ``drop_broken``), and what is set aside
    joins ``issues`` (records noted before). The folds are `make_folds`' (``sources``, ``seeds``,
    ``test_fraction``, ``protocols``, ``train_protocols``), only those ``keep`` accepts, merged into one where
    ``fit_once`` (`fitted_once`). A split that gives no fold is a user error."""
    ranked = protocols[0] if protocols is not None and len(protocols) == 1 else None  # `auto` is measured on it
    built = dict(strategies) if isinstance(strategies, Mapping) else {
        name: make_strategy(name, budgets, tune_trials, ranked) for name in strategies}
    checked, set_aside = check_pairs(pairs, drop_broken=drop_broken)
    folds = make_folds(checked, split, sources=sources, seeds=seeds, test_fraction=test_fraction,
                       protocols=protocols, train_protocols=train_protocols)
    folds = [fold for fold in folds if keep is None or keep(fold)]
    if fit_once:
        folds = fitted_once(folds)
    if not folds:
        raise UserError(f"split {split} gives no fold on this pair table")
    noted = issues_frame([*issues, *set_aside.to_dict("records")])
    evaluation = evaluate(folds, built, budgets, progress=progress, issues=noted, adaptive=adaptive,
                          executor=executor)
    return EvaluationRun(evaluation, checked, set_aside, len(folds))
