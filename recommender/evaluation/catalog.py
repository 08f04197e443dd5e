"""Strategies and splits by name, as the CLI and the experiments write them (imported without pandas or
scikit-learn, so that `recommender evaluate --help` is instant)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from recommender.errors import UserError

if TYPE_CHECKING:  # the strategies (scikit-learn, SciPy) load when one is made: the CLI's HELP costs nothing
    from recommender.evaluation.strategies import Learned, Strategy

AGNOSTIC = {"imagenet": "imagenet_top1", "size": "params_m"}
HELP = ("oracle, random, imagenet, size, mean-perf (task-agnostic), score:NAME (task-aware by column score_NAME), "
        "hybrid:AGNOSTIC:NAME, lr, fm, lr+NAME, fm+NAME (learned on d,m or d,m,S), learned-hybrid:lr|fm[+NAME]:NAME, "
        "adaptive:similarity|lr|ucb (adaptive search, sequential with evaluate --adaptive), "
        "stack+NAME[+NAME] / stack-lr+NAME (learned d,m,S: ridge on the mean-perf or LR prior and z-scored scores), "
        "auto:LEARNED (LEARNED on its protocol's history or on all, chosen on inner folds), "
        "history-accuracy (the training protocols' own results on the dataset; cross-protocol reference)")
ADAPTIVE = ("similarity", "lr", "ucb")
SPLITS = ("unseen-model", "unseen-dataset", "loo", "cross-protocol")  # recommender.evaluation.splits.make_folds


def _agnostic(name: str) -> Strategy:
    """A task-agnostic ranking by name."""
    from recommender.evaluation.strategies import ColumnRanking, MeanNormalisedPerformance

    if name == "mean-perf":
        return MeanNormalisedPerformance()
    if name in AGNOSTIC:
        return ColumnRanking(AGNOSTIC[name])
    raise UserError(f"unknown task-agnostic strategy {name!r}; choose mean-perf, {', '.join(AGNOSTIC)}")


def _learned(spec: str, tune_trials: int) -> Learned:
    """`lr`, `fm`, `lr+logme`: a learned recommender on d,m plus the named scores."""
    from recommender.evaluation.strategies import Learned

    kind, *scores = spec.split("+")
    if kind not in ("lr", "fm"):
        raise UserError(f"unknown learned recommender {kind!r}; choose lr or fm")
    return Learned(kind, ",".join(["d", "m", *scores]), tune_trials=tune_trials)


def make_strategy(spec: str, budgets: tuple[int, ...] = (1, 2, 3, 5, 10), tune_trials: int = 0) -> Strategy:
    """The strategy a name stands for (see HELP); learned ones are tuned with `tune_trials` Optuna trials."""
    from recommender.evaluation.sources import HistoryAccuracy, SourceChoice, Stacked
    from recommender.evaluation.strategies import (
        Adaptive,
        ColumnRanking,
        Hybrid,
        MeanNormalisedPerformance,
        Oracle,
        RandomPick,
    )

    head, _, rest = spec.partition(":")
    if spec == "oracle":
        return Oracle()
    if spec == "random":
        return RandomPick()
    if head == "score" and rest:
        return ColumnRanking(f"score_{rest}")
    if head == "hybrid" and rest.count(":") == 1:
        agnostic, score = rest.split(":")
        return Hybrid(_agnostic(agnostic), ColumnRanking(f"score_{score}"), budgets)
    if head == "learned-hybrid" and rest.count(":") == 1:
        learned, score = rest.split(":")
        # few inner folds: each refits the learned ranking
        return Hybrid(_learned(learned, tune_trials), ColumnRanking(f"score_{score}"), budgets, max_inner_folds=3)
    if head == "adaptive" and rest in ADAPTIVE:
        return Adaptive(rest, budgets)
    if head == "auto" and re.fullmatch(r"(lr|fm|stack|stack-lr)(\+\w+)*", rest):
        return SourceChoice(make_strategy(rest, budgets, tune_trials))
    if spec == "history-accuracy":
        return HistoryAccuracy()
    if re.fullmatch(r"(stack|stack-lr)(\+\w+)+", spec):
        prior, *scores = spec.split("+")
        return Stacked(MeanNormalisedPerformance() if prior == "stack" else _learned("lr", tune_trials), tuple(scores))
    if not rest and re.fullmatch(r"(lr|fm)(\+\w+)*", spec):
        return _learned(spec, tune_trials)
    if not rest and (spec == "mean-perf" or spec in AGNOSTIC):
        return _agnostic(spec)
    raise UserError(f"unknown strategy {spec!r}; strategies: {HELP}")


def scores_needed(specs: Iterable[str]) -> list[str]:
    """The stored score names that the named strategies read (to ask the store for them); `lr+p` adds the
    protocol block, not a score."""
    from recommender.models.features import BLOCKS  # late: sklearn only when a run needs it

    names = []
    for spec in specs:
        spec = spec.removeprefix("auto:")
        found = re.findall(r"(?:^score:|:)(\w+)$", spec) + re.findall(r"\+(\w+)", spec)
        names += [n for n in found if n not in names and n not in BLOCKS]
    return names
