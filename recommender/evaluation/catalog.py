"""Strategy and split names, as the CLI and the experiments write them, and the one parser of the strategy
mini-language: a leaf module (no pandas, scikit-learn or strategy), so that `recommender evaluate --help` is instant.
The strategies themselves are made in `recommender.evaluation.factory`."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from recommender.errors import UserError
from recommender.models.factory import RECOMMENDERS

AGNOSTIC = {"imagenet": "imagenet_top1", "size": "params_m"}
# evaluate's default table: the bounds, every simple task-agnostic baseline, and the default ranking `auto`
DEFAULT_STRATEGIES = ("oracle", "random", "size", "imagenet", "mean-perf", "auto")
HELP = ("auto (the default: the history prior and every score, weighted per task by their predicted reliability; "
        "auto+NAME[+NAME] uses the named scores only), oracle, random, imagenet, size, mean-perf (task-agnostic), "
        "score:NAME (task-aware by column score_NAME), "
        "hybrid:AGNOSTIC:NAME, lr, fm, lr+NAME, fm+NAME (learned on d,m or d,m,S), learned-hybrid:lr|fm[+NAME]:NAME, "
        "adaptive:similarity|lr|ucb|blend (adaptive search, sequential with evaluate --adaptive), "
        "stack+NAME[+NAME] / stack-lr+NAME (learned d,m,S: ridge on the mean-perf or LR prior and z-scored scores; "
        "stack+lr+NAME adds LR d,m's prediction as a second prior, stackcv+... chooses the ridge strength and "
        "z-score or rank transform on inner folds), "
        "auto:LEARNED (LEARNED on its protocol's history or on all, chosen on inner folds), "
        "history-accuracy (the training protocols' own results on the dataset; cross-protocol reference)")
ADAPTIVE = ("similarity", "lr", "ucb", "blend")
LEARNED = tuple(RECOMMENDERS)  # lr, fm: the learned recommenders' kinds
PRIORS = LEARNED  # in a stack's name, extra priors (their d,m prediction), not scores
STACKS = ("stack", "stackcv", "stack-lr")
SPLITS = ("unseen-model", "unseen-dataset", "loo", "cross-protocol")  # recommender.evaluation.splits.make_folds


@dataclass(frozen=True)
class StrategySpec:
    """A strategy name parsed (see HELP): its form, its parts, and the stored scores it reads.

    `form` is one of combined (`auto`, `tokens` = its scores), oracle, random, history-accuracy, agnostic (`name` =
    imagenet, size or mean-perf), score,
    hybrid (`name` = the agnostic part), learned-hybrid (`inner` = the learned part), adaptive (`name` = its kind),
    auto (`inner` = the strategy chosen for), stack (`name` = stack, stackcv or stack-lr) and learned (`name` = lr
    or fm).
    `tokens` are the `+` parts after a learned or stack head (scores, or feature blocks like `p`)."""

    form: str
    name: str = ""
    score: str = ""  # the ranking score of score:, hybrid: and learned-hybrid:
    tokens: tuple[str, ...] = ()
    inner: StrategySpec | None = None

    def reads(self) -> list[str]:
        """The names of `score` and `tokens` (feature blocks included) of this strategy and its inner one."""
        names = [*([self.score] if self.score else []), *self.tokens, *(self.inner.reads() if self.inner else [])]
        return list(dict.fromkeys(names))


def _plus(spec: str, heads: Iterable[str], need_tokens: bool = False) -> StrategySpec | None:
    """`head+token+token` with a head of `heads` and word tokens, or None."""
    head, *tokens = spec.split("+")
    if head not in heads or (need_tokens and not tokens) or not all(re.fullmatch(r"\w+", t) for t in tokens):
        return None
    return StrategySpec("stack" if head.startswith("stack") else "learned", head, tokens=tuple(tokens))


def parse_strategy(spec: str) -> StrategySpec:
    """The one parser of the strategy mini-language (HELP); an unknown name is a one-line error."""
    head, _, rest = spec.partition(":")
    parsed: StrategySpec | None = None
    if spec in ("oracle", "random", "history-accuracy"):
        parsed = StrategySpec(spec)
    elif spec.split("+")[0] == "auto":  # the default: every score, or those named after `+`
        named = tuple(spec.split("+")[1:])
        parsed = StrategySpec("combined", "auto", tokens=named) if all(re.fullmatch(r"\w+", t) for t in named) \
            else None
    elif spec == "mean-perf" or spec in AGNOSTIC:
        parsed = StrategySpec("agnostic", spec)
    elif head == "score" and rest:
        parsed = StrategySpec("score", score=rest)
    elif head in ("hybrid", "learned-hybrid") and rest.count(":") == 1:
        first, score = rest.split(":")
        if head == "hybrid":
            parsed = StrategySpec("hybrid", first, score=score)
        else:  # the learned part is checked when the strategy is made, naming the unknown recommender
            kind, *tokens = first.split("+")
            learned = StrategySpec("learned", kind, tokens=tuple(tokens))
            parsed = StrategySpec("learned-hybrid", score=score, inner=learned)
    elif head == "adaptive" and rest in ADAPTIVE:
        parsed = StrategySpec("adaptive", rest)
    elif head == "auto" and rest:
        inner = _plus(rest, (*LEARNED, *STACKS))
        parsed = StrategySpec("auto", inner=parse_strategy(rest)) if inner else None
    elif not rest:
        parsed = _plus(spec, LEARNED) or _plus(spec, STACKS, need_tokens=True)
    if parsed is None:
        raise UserError(f"unknown strategy {spec!r}; strategies: {HELP}")
    return parsed


def every_score(specs: Iterable[str]) -> bool:
    """Whether a named strategy reads every score there is (a bare `auto`)."""
    return any(parse_strategy(spec) == StrategySpec("combined", "auto") for spec in specs)


def scores_needed(specs: Iterable[str]) -> list[str]:
    """The stored score names that the named strategies read (to ask the store for them); `lr+p` adds the
    protocol block, not a score; a bare `auto` reads every stored score besides (`every_score`)."""
    from recommender.models.features import ALIASES, BLOCKS  # late: sklearn only when a run needs it

    names = [name for spec in specs for name in parse_strategy(spec).reads()]
    return [name for name in dict.fromkeys(names) if name not in BLOCKS and name not in ALIASES and name not in PRIORS]
