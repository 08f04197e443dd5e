"""The strategy a name stands for (`recommender.evaluation.catalog` parses the names): the heavy half of the
catalog, which loads the strategies (pandas, scikit-learn, SciPy)."""

from __future__ import annotations

from collections.abc import Sequence

from recommender.contracts import EVALUATION_BUDGETS, score_column
from recommender.errors import UserError
from recommender.evaluation.catalog import AGNOSTIC, LEARNED, PRIORS, StrategySpec, parse_strategy
from recommender.evaluation.strategies import Adaptive, ColumnRanking, Hybrid, Learned, Oracle, RandomPick, Strategy
from recommender.models.rankers import HistoryAccuracy, MeanNormalisedPerformance, SourceChoice, Stacked


def _agnostic(name: str) -> Strategy:
    """A task-agnostic ranking by name."""
    if name == "mean-perf":
        return MeanNormalisedPerformance()
    if name in AGNOSTIC:
        return ColumnRanking(AGNOSTIC[name])
    raise UserError(f"unknown task-agnostic strategy {name!r}; choose mean-perf, {', '.join(AGNOSTIC)}")


def _learned(kind: str, tokens: Sequence[str], tune_trials: int) -> Learned:
    """`lr`, `fm`, `lr+logme`: a learned recommender on d,m plus the named scores (or feature blocks)."""
    if kind not in LEARNED:
        raise UserError(f"unknown learned recommender {kind!r}; choose {' or '.join(LEARNED)}")
    return Learned(kind, ",".join(["d", "m", *tokens]), tune_trials=tune_trials)


def make_strategy(spec: str, budgets: tuple[int, ...] = EVALUATION_BUDGETS, tune_trials: int = 0,
                  protocol: str | None = None) -> Strategy:
    """The strategy a name stands for (see `catalog.HELP`); learned ones are tuned with `tune_trials` Optuna trials;
    ``protocol``: the one protocol whose pairs are ranked, where there is one (`auto` measures its sources on that
    protocol's datasets, as `next` does, where the training history holds others too)."""
    return _build(parse_strategy(spec), budgets, tune_trials, protocol)


def _build(parsed: StrategySpec, budgets: tuple[int, ...], tune_trials: int, protocol: str | None = None
           ) -> Strategy:
    """The strategy of a parsed name."""
    form = parsed.form
    if form == "oracle":
        return Oracle()
    if form == "random":
        return RandomPick()
    if form == "combined":
        from recommender.models.auto import Auto

        return Auto(parsed.tokens, protocol=protocol)
    if form == "history-accuracy":
        return HistoryAccuracy()
    if form == "agnostic":
        return _agnostic(parsed.name)
    if form == "score":
        return ColumnRanking(score_column(parsed.score))
    if form == "hybrid":
        return Hybrid(_agnostic(parsed.name), ColumnRanking(score_column(parsed.score)), budgets)
    if form == "learned-hybrid" and parsed.inner is not None:
        learned = _learned(parsed.inner.name, parsed.inner.tokens, tune_trials)
        # few inner folds: each refits the learned ranking
        return Hybrid(learned, ColumnRanking(score_column(parsed.score)), budgets, max_inner_folds=3)
    if form == "adaptive":
        return Adaptive(parsed.name, budgets)
    if form == "auto" and parsed.inner is not None:
        return SourceChoice(_build(parsed.inner, budgets, tune_trials))
    if form == "stack":
        prior = _learned("lr", (), tune_trials) if parsed.name == "stack-lr" else MeanNormalisedPerformance()
        extra = tuple(_learned(name, (), tune_trials) for name in parsed.tokens if name in PRIORS)
        return Stacked(prior, tuple(t for t in parsed.tokens if t not in PRIORS),
                       None if parsed.name == "stackcv" else 1.0, extra)
    return _learned(parsed.name, parsed.tokens, tune_trials)
