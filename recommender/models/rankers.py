"""Model rankings learned from a history of pair tables, as scikit-learn-style estimators (SPEC §4, §6).

`fit(train)` sees only the training pairs (with `performance`); `predict(test, budget=None)` sees pairs without
it and returns one number per row, higher = fine-tune first (NaN = no opinion, ranked last). The evaluation's
strategies (`recommender.evaluation.strategies`) are `Ranker`s too; `rank` stacks with `Stacked`.

- `MeanNormalisedPerformance`: task-agnostic, each model's mean z-scored performance over the training history;
- `HistoryAccuracy`, the cross-protocol reference: a model's measured performance on the same dataset under the
  training protocols;
- `Stacked`, a learned d,m,S ranking: ridge on history priors (mean-perf, and/or an LR/FM prediction) and scores,
  each z-scored within its (dataset, protocol), the priors of a training dataset computed without that dataset;
  optionally with the ridge strength and a rank transform chosen on inner folds of the training datasets;
- `SourceChoice`, which chooses per target protocol, on inner folds of the training pairs alone, between training
  on that protocol's history only and on every history, so that adding a history cannot drag a ranking down.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd

from recommender.contracts import TARGET_COLUMNS, score_column
from recommender.errors import UserError
from recommender.models.estimator import Estimator
from recommender.models.params import FOLDS, Rule, Validated, instance, number, one_of, tuple_of
from recommender.models.selection import Fold, choose, inner_folds, rankable, ranking_taus
from recommender.normalise import ranking_groups, zscore_within

if TYPE_CHECKING:
    from sklearn.linear_model import Ridge

MIN_INNER = 2  # inner folds needed before "own protocol only" can be judged


def without_truth(pairs: pd.DataFrame) -> pd.DataFrame:
    """The pair table without the columns that hold the answer."""
    return pairs.drop(columns=[c for c in TARGET_COLUMNS if c in pairs.columns])


def _clone(est: Ranker) -> Ranker:
    """An unfitted copy (scikit-learn's clone, imported when a ranking is fitted)."""
    from sklearn.base import clone

    return clone(est)


class Ranker(Validated, Estimator):
    """Base of the model rankings: fitted on training pairs, one preference per test row.

    Rankings whose pick depends on the budget set `budget_dependent`; those that are no ranking set `ranks = False`;
    `needs_truth`: shown the test performance (the oracle only); `adaptive`: also opens a `session` on a held-out
    dataset (SPEC §7). Every constructor parameter has a rule in ``PARAMETERS``, checked first in ``fit``."""

    ranks = True
    budget_dependent = False
    needs_truth = False
    adaptive = False

    def fit(self, train: pd.DataFrame) -> Ranker:
        """Learn from the training pairs (default: nothing to learn but checking the parameters)."""
        self._validate_params()
        return self

    def predict(self, test: pd.DataFrame, budget: int | None = None) -> np.ndarray:
        """One preference per test row, higher = fine-tune first."""
        raise NotImplementedError


RANKER = instance(Ranker, "a ranking strategy")


class MeanNormalisedPerformance(Ranker):
    """Task-agnostic: each model's mean z-scored performance over the training datasets (and protocols) it was
    fine-tuned on."""

    def fit(self, train: pd.DataFrame) -> MeanNormalisedPerformance:
        """Z-score performance within each training dataset and average per model."""
        self._validate_params()
        z = zscore_within(train["performance"], ranking_groups(train))
        self.model_means_ = z.groupby(train["model"]).mean()
        return self

    def predict(self, test: pd.DataFrame, budget: int | None = None) -> np.ndarray:
        """The model's mean over the training history (NaN for a model never seen)."""
        return test["model"].map(self.model_means_).to_numpy(dtype=float)


class HistoryAccuracy(Ranker):
    """Ranks each model by its z-scored performance on the same dataset in the training pairs (averaged over the
    training protocols that hold it); NaN on a dataset training never saw. The cross-protocol reference row."""

    def fit(self, train: pd.DataFrame) -> HistoryAccuracy:
        """Z-score the training performance within each (dataset, protocol); average per (model, dataset)."""
        self._validate_params()
        z = zscore_within(train["performance"].astype(float), ranking_groups(train))
        self.known_ = z.groupby([train["model"].astype(str), train["dataset"].astype(str)]).mean()
        return self

    def predict(self, test: pd.DataFrame, budget: int | None = None) -> np.ndarray:
        """The training value of each (model, dataset), NaN where training has none."""
        keys = pd.MultiIndex.from_arrays([test["model"].astype(str), test["dataset"].astype(str)])
        return self.known_.reindex(keys).to_numpy(dtype=float)


ALPHAS = (0.1, 1.0, 10.0, 100.0)  # ridge strengths `stackcv` chooses among on inner folds
TRANSFORMS = ("z", "rank")  # each column z-scored, or its centred rank fraction, within a ranking group


def _transformed(values: pd.Series, frame: pd.DataFrame, transform: str) -> np.ndarray:
    """values z-scored (or ranked, as fractions in (-0.5, 0.5]) within the ranking groups of frame; unknown values
    become the group's centre, 0."""
    if transform == "rank":
        ranked = values.astype(float).groupby(np.asarray(ranking_groups(frame))).rank(pct=True) - 0.5
        return ranked.fillna(0.0).to_numpy()
    return zscore_within(values.astype(float), ranking_groups(frame)).fillna(0.0).to_numpy()


class Stacked(Ranker):
    """Learned d,m,S: ridge regression of the z-scored performance on [the prior's ranking, each extra prior's,
    the scores], each z-scored within its (dataset, protocol). On a training dataset the priors are fitted without
    that dataset (as they will be on a new one), so the weights learn how far the history carries against the
    scores. With ``alpha=None`` the ridge strength (``ALPHAS``) and the columns' transform (z-score or rank,
    ``TRANSFORMS``) are chosen by leave-one-dataset-out over the training datasets with scores alone."""

    PARAMETERS: ClassVar[dict[str, Rule]] = {
        "prior": RANKER, "scores": tuple_of(instance(str, "a score name"), non_empty=True),
        "alpha": number(0).or_none(), "extra_priors": tuple_of(RANKER), "transform": one_of(TRANSFORMS)}

    def __init__(self, prior: Ranker | None = None, scores: tuple[str, ...] = (), alpha: float | None = 1.0,
                 extra_priors: tuple[Ranker, ...] = (), transform: str = "z"):
        self.prior = prior
        self.scores = scores
        self.alpha = alpha
        self.extra_priors = extra_priors
        self.transform = transform

    def _design(self, priors: list[np.ndarray], pairs: pd.DataFrame, transform: str) -> np.ndarray:
        """Columns: the priors, then each score, all transformed within the ranking groups of `pairs`."""
        from recommender.models.features import numeric

        columns = [score_column(name) for name in self.scores]
        missing = [c for c in columns if c not in pairs.columns]
        if missing:
            raise UserError(f"stacking needs score column(s) {', '.join(missing)}")
        values = [pd.Series(p, index=pairs.index, dtype=float) for p in priors]
        values += [numeric(pairs, [c])[c] for c in columns]
        infinite = [c for c, v in zip(columns, values[len(priors):], strict=True) if np.isinf(v).any()]
        if infinite:
            raise UserError(f"column {infinite[0]} holds an infinite value")
        return np.column_stack([_transformed(v, pairs, transform) for v in values])

    def fit(self, train: pd.DataFrame) -> Stacked:
        """Out-of-dataset priors on the training pairs with a score, then the ridge weights; the priors on all."""
        self._validate_params()
        columns = [score_column(name) for name in self.scores]
        scored = train.loc[train.reindex(columns=columns).notna().any(axis=1)]
        if scored.empty:
            raise UserError(f"stacking: no training pair has {' or '.join(columns)}")
        assert self.prior is not None  # the parameter table refuses None
        priors = [self.prior, *self.extra_priors]
        out_of_dataset = [np.full(len(scored), np.nan) for _ in priors]
        for dataset in scored["dataset"].unique():
            rows = (scored["dataset"] == dataset).to_numpy()
            rest = train.loc[train["dataset"] != dataset]
            if not rest.empty:
                for column, prior in zip(out_of_dataset, priors, strict=True):
                    column[rows] = _clone(prior).fit(rest).predict(without_truth(scored.loc[rows]))
        target = zscore_within(scored["performance"].astype(float), ranking_groups(scored)).to_numpy()
        choices = ([(a, t) for t in TRANSFORMS for a in ALPHAS] if self.alpha is None
                   else [(self.alpha, self.transform)])
        designs = {t: self._design(out_of_dataset, scored, t) for t in {t for _, t in choices}}
        self.alpha_, self.transform_ = (choices[0] if len(choices) == 1
                                        else self._choose(choices, designs, scored, target))
        self.ridge_ = _ridge(self.alpha_).fit(designs[self.transform_], target)
        self.priors_ = [_clone(prior).fit(train) for prior in priors]
        return self

    @staticmethod
    def _choose(choices: list[tuple[float, str]], designs: dict[str, np.ndarray], scored: pd.DataFrame,
                target: np.ndarray) -> tuple[float, str]:
        """The (alpha, transform) of best mean weighted tau over the training datasets' rankable groups, each
        ranked by the ridge fitted on the other datasets (ties: the earlier choice)."""
        groups = np.asarray(ranking_groups(scored))
        datasets = scored["dataset"].astype(str).to_numpy()

        def fit_score(dataset: str) -> list[list[float]]:
            held = datasets == dataset
            if held.all():
                return []
            taus = [ranking_taus(_ridge(alpha).fit(designs[transform][~held], target[~held])
                                 .predict(designs[transform][held]), target[held], groups[held])
                    for alpha, transform in choices]
            return [list(unit) for unit in zip(*taus, strict=True)]

        return choose(choices, fit_score, np.unique(datasets)).best

    @property
    def weights_(self) -> pd.Series:
        """The fitted weight of the prior, of each extra prior and of each score."""
        extra = [f"prior{i + 2}" for i in range(len(self.extra_priors))]
        return pd.Series(self.ridge_.coef_, index=["prior", *extra, *self.scores])

    def predict(self, test: pd.DataFrame, budget: int | None = None) -> np.ndarray:
        """The ridge's prediction on the test pairs' priors and scores."""
        priors = [np.asarray(prior.predict(test), dtype=float) for prior in self.priors_]
        return self.ridge_.predict(self._design(priors, test, self.transform_))


def _ridge(alpha: float) -> Ridge:
    """A ridge regression of the given strength (scikit-learn's, imported when a stack is fitted)."""
    from sklearn.linear_model import Ridge

    return Ridge(alpha=alpha)


SOURCES = ("own", "all")  # train on the target protocol's history only, or on every history (ties: own)


class SourceChoice(Ranker):
    """Wraps a ranking; per target protocol, trains it on that protocol's history only ("own") or on every
    history ("all"), whichever ranks better on inner leave-one-dataset-out folds of the own protocol's training
    pairs (ties: own). Without a protocol column, with too little own history, or for a protocol training does not
    hold, it trains on everything. Every choice is made in ``fit``, for each protocol of the training pairs."""

    PARAMETERS: ClassVar[dict[str, Rule]] = {"base": RANKER, "max_inner_folds": FOLDS}

    def __init__(self, base: Ranker | None = None, max_inner_folds: int = 3):
        self.base = base
        self.max_inner_folds = max_inner_folds

    @property
    def ranks(self) -> bool:  # type: ignore[override]  # the wrapped ranking's
        return self.base is None or self.base.ranks

    @property
    def budget_dependent(self) -> bool:  # type: ignore[override]  # the wrapped ranking's
        return self.base is not None and self.base.budget_dependent

    def fit(self, train: pd.DataFrame) -> SourceChoice:
        """Choose "own" or "all" for each protocol of the training pairs and fit the base on each chosen pool."""
        self._validate_params()
        assert self.base is not None  # the parameter table refuses None
        self.all_ = _clone(self.base).fit(train)
        self.choices_: dict[str, str] = {}
        self.fitted_: dict[str, Ranker] = {}
        protocols = sorted(train["protocol"].astype(str).unique()) if "protocol" in train.columns else []
        for protocol in protocols:
            choice = self._choose(train, protocol)
            own = train.loc[train["protocol"].astype(str) == protocol]
            self.choices_[protocol] = choice
            self.fitted_[protocol] = self.all_ if choice == "all" else _clone(self.base).fit(own)
        return self

    def _choose(self, train: pd.DataFrame, protocol: str) -> str:
        """"own" or "all" for the target protocol: the mean weighted tau of the base fitted on either pool without
        each held-out dataset, on the own pairs of it."""
        if train["protocol"].nunique() < 2:
            return "all"
        own = train.loc[train["protocol"] == protocol]
        if own["dataset"].nunique() < MIN_INNER or self.max_inner_folds < MIN_INNER:
            return "all"
        base = self.base
        assert base is not None

        def fit_score(fold: Fold) -> list[list[float]]:
            test = fold.test
            truth = test["performance"].to_numpy(dtype=float)
            if not rankable(truth):
                return []
            pools = (fold.train, train.loc[train["dataset"] != fold.name])
            taus = [ranking_taus(np.asarray(_clone(base).fit(pool).predict(without_truth(test)), dtype=float),
                                 truth, np.zeros(len(test))) for pool in pools]
            return [list(unit) for unit in zip(*taus, strict=True)]

        return choose(SOURCES, fit_score, inner_folds(own, self.max_inner_folds), default=SOURCES.index("all")).best

    def predict(self, test: pd.DataFrame, budget: int | None = None) -> np.ndarray:
        """Per protocol of the test pairs, the chosen history's ranking (every history's for one training lacks)."""
        out = np.full(len(test), np.nan)
        protocols = test["protocol"].astype(str) if "protocol" in test.columns else pd.Series("", index=test.index)
        for protocol, part in test.groupby(protocols, sort=False):
            est = self.fitted_.get(str(protocol), self.all_)
            out[test.index.get_indexer(part.index)] = est.predict(part, budget)
        return out
