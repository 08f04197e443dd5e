"""Search strategies (SPEC §6), each a scikit-learn-style estimator on pair tables.

`fit(train)` sees only the training pairs (with `performance`); `predict(test, budget=None)` sees the test pairs
without `performance` and returns one number per row, higher = fine-tune first (NaN = no opinion, ranked last).
Strategies whose pick depends on the budget set `budget_dependent`; those that are no ranking set `ranks = False`.
Adaptive strategies (`adaptive = True`, SPEC §7) also open a `session` on a held-out dataset that re-ranks it after
each pick's true performance is shown (`recommender.evaluation.sequential`); their `predict` is the first ranking."""

from __future__ import annotations

from functools import partial
from typing import ClassVar

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.base import clone

from recommender.contracts import EVALUATION_BUDGETS
from recommender.errors import UserError
from recommender.evaluation.catalog import ADAPTIVE, LEARNED
from recommender.evaluation.measures import budget_measures
from recommender.models.params import BUDGETS, FOLDS, OPTIONS, TEXT, Rule, number, one_of
from recommender.models.rankers import RANKER, Ranker, without_truth
from recommender.models.selection import Fold, choose, inner_folds
from recommender.normalise import ranking_groups

__all__ = ["Adaptive", "ColumnRanking", "Hybrid", "Learned", "Oracle", "RandomPick", "Strategy", "hybrid_preference",
           "without_truth"]

Strategy = Ranker  # the evaluation's name for a model ranking (`recommender.models.rankers.Ranker`)


class Oracle(Strategy):
    """Ranks by the true performance: regret 0, the table's upper bound (the only strategy shown the truth)."""

    needs_truth = True

    def predict(self, test: pd.DataFrame, budget: int | None = None) -> np.ndarray:
        """The true performance itself."""
        return test["performance"].to_numpy(dtype=float)


class RandomPick(Strategy):
    """Picks B models uniformly at random: all tied, so the measures are the exact expectation over subsets."""

    ranks = False

    def predict(self, test: pd.DataFrame, budget: int | None = None) -> np.ndarray:
        """A constant: every subset of B models is equally likely."""
        return np.zeros(len(test))


class ColumnRanking(Strategy):
    """Ranks by one column of the pair table: `imagenet_top1`, `params_m` (task-agnostic) or `score_<name>`
    (task-aware)."""

    PARAMETERS: ClassVar[dict[str, Rule]] = {"column": TEXT}

    def __init__(self, column: str = "imagenet_top1"):
        self.column = column

    def predict(self, test: pd.DataFrame, budget: int | None = None) -> np.ndarray:
        """The column's values (NaN where unknown)."""
        if self.column not in test.columns:
            raise UserError(f"column {self.column!r} is not in the pair table")
        return pd.to_numeric(test[self.column], errors="coerce").to_numpy(dtype=float)


class Learned(Strategy):
    """A learned recommender (LR or FM from `recommender.models`) on a feature set such as "d,m" or "d,m,logme".

    With `tune_trials` > 0, Optuna tunes its hyper-parameters on inner splits of the training pairs alone."""

    PARAMETERS: ClassVar[dict[str, Rule]] = {"kind": one_of(LEARNED), "features": TEXT, "params": OPTIONS,
                                             "tune_trials": number(0, integer=True)}

    def __init__(self, kind: str = "lr", features: str = "d,m", params: dict | None = None, tune_trials: int = 0):
        self.kind = kind
        self.features = features
        self.params = params
        self.tune_trials = tune_trials

    def fit(self, train: pd.DataFrame) -> Learned:
        """Fit (and optionally tune) the recommender on the training pairs only."""
        from recommender.models import make_recommender, tune  # late: the non-learned strategies do without them

        self._validate_params()
        X, y = without_truth(train), train["performance"].to_numpy(dtype=float)
        params = {"features": self.features, **(self.params or {})}
        if self.tune_trials > 0:
            params = tune(self.kind, X, y, n_trials=self.tune_trials, **params)
        self.params_ = params
        self.estimator_ = make_recommender(self.kind, **params).fit(X, y)
        return self

    def predict(self, test: pd.DataFrame, budget: int | None = None) -> np.ndarray:
        """The recommender's predicted (normalised) performance."""
        return np.asarray(self.estimator_.predict(without_truth(test)), dtype=float)


def hybrid_preference(agnostic: np.ndarray, aware: np.ndarray, a: int) -> np.ndarray:
    """Preference that picks the top-a models by `agnostic` first, then the rest by `aware` (NaN last in both)."""
    order = np.argsort(-np.nan_to_num(agnostic, nan=-np.inf), kind="stable")
    first = np.zeros(agnostic.size, dtype=bool)
    first[order[:a]] = True
    first &= np.isfinite(agnostic)  # a model the agnostic ranking knows nothing about is no agnostic pick
    # ranks in (0, 1] keep ties of the task-aware score tied; the +2 puts the agnostic picks ahead of all.
    fill = rankdata(np.nan_to_num(aware, nan=-np.inf)) / aware.size
    return 2.0 * first + fill


class Hybrid(Strategy):
    """"Which Model to Transfer?": top-a of a task-agnostic ranking, then the best task-aware models up to B.

    a is chosen per budget on folds inside the training pairs (leave-one-dataset-out, or unseen-model on a
    single training dataset), minimising the mean relative regret there."""

    ranks = False
    budget_dependent = True
    PARAMETERS: ClassVar[dict[str, Rule]] = {"agnostic": RANKER, "aware": RANKER, "budgets": BUDGETS,
                                             "max_inner_folds": FOLDS}

    def __init__(self, agnostic: Strategy | None = None, aware: Strategy | None = None,
                 budgets: tuple[int, ...] = EVALUATION_BUDGETS, max_inner_folds: int = 8):
        self.agnostic = agnostic
        self.aware = aware
        self.budgets = budgets
        self.max_inner_folds = max_inner_folds

    def _choose_splits(self, train: pd.DataFrame) -> dict[int, int]:
        """The a of each budget with the lowest mean relative regret over inner folds (ranking groups with at least
        two models and a positive best)."""
        folds = inner_folds(train, self.max_inner_folds)
        fitted = [(f, clone(self.agnostic).fit(f.train), clone(self.aware).fit(f.train)) for f in folds]

        def regrets(budget: int, fold: tuple[Fold, Strategy, Strategy]) -> list[list[float]]:
            inner, agn, awa = fold
            features = without_truth(inner.test)
            rows = []
            for _, part in features.groupby(ranking_groups(features)):
                truth = inner.test.loc[part.index, "performance"].to_numpy(dtype=float)
                if truth.size < 2 or truth.max() <= 0:
                    continue
                pa, pw = agn.predict(part), awa.predict(part)
                rows.append([budget_measures(hybrid_preference(pa, pw, a), truth, budget)["relative_regret"]
                             for a in range(budget + 1)])
            return rows

        return {b: choose(range(b + 1), partial(regrets, b), fitted, lower_is_better=True).best
                for b in self.budgets}

    def fit(self, train: pd.DataFrame) -> Hybrid:
        """Choose a per budget on inner folds, then fit both rankings on all training pairs."""
        self._validate_params()
        self.split_ = self._choose_splits(train)
        self.agnostic_ = clone(self.agnostic).fit(train)
        self.aware_ = clone(self.aware).fit(train)
        return self

    def predict(self, test: pd.DataFrame, budget: int | None = None) -> np.ndarray:
        """The hybrid preference for this budget (its a chosen at fit time)."""
        if budget not in self.split_:
            raise UserError(f"hybrid was fitted for budgets {sorted(self.split_)}, not {budget}")
        return hybrid_preference(self.agnostic_.predict(test), self.aware_.predict(test), self.split_[budget])


class Adaptive(Strategy):
    """An adaptive recommender of `recommender.models.adaptive` (similarity, lr, ucb), hyper-parameters chosen on
    inner leave-one-dataset-out folds of the training pairs for the evaluated budgets."""

    adaptive = True
    PARAMETERS: ClassVar[dict[str, Rule]] = {"kind": one_of(ADAPTIVE), "budgets": BUDGETS, "params": OPTIONS}

    def __init__(self, kind: str = "similarity", budgets: tuple[int, ...] = EVALUATION_BUDGETS,
                 params: dict | None = None):
        self.kind = kind
        self.budgets = budgets
        self.params = params

    def fit(self, train: pd.DataFrame) -> Adaptive:
        """Choose the hyper-parameters on inner folds of the training pairs and fit on all of them."""
        from recommender.models.adaptive import make_adaptive

        self._validate_params()
        self.recommender_ = make_adaptive(self.kind, budgets=tuple(self.budgets), **(self.params or {})).fit(train)
        return self

    def session(self, test: pd.DataFrame):
        """A session over one held-out dataset's pairs (without their performance)."""
        return self.recommender_.session(without_truth(test))

    def predict(self, test: pd.DataFrame, budget: int | None = None) -> np.ndarray:
        """The ranking before any result is observed, per dataset of `test`."""
        out = np.full(len(test), np.nan)
        for _, part in test.groupby("dataset", sort=False):
            out[test.index.get_indexer(part.index)] = self.session(part).rank([], []).score
        return out
