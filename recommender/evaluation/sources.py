"""Strategies for histories under several protocols (SPEC §4 cross-protocol, issue 11):

- `HistoryAccuracy`, the cross-protocol reference: a model's measured performance on the same dataset under the
  training protocols;
- `Stacked`, a learned d,m,S ranking: ridge on history priors (mean-perf, and/or an LR/FM prediction) and scores,
  each z-scored within its (dataset, protocol), the priors of a training dataset computed without that dataset;
  optionally with the ridge strength and a rank transform chosen on inner folds of the training datasets;
- `SourceChoice`, which chooses per target protocol, on inner folds of the training pairs alone, between training
  on that protocol's history only and on every history, so that adding a history cannot drag a ranking down.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.base import clone

from recommender.errors import UserError
from recommender.evaluation.measures import weighted_tau
from recommender.evaluation.strategies import Strategy, without_truth
from recommender.normalise import ranking_groups, zscore_within

if TYPE_CHECKING:
    from sklearn.linear_model import Ridge

MIN_INNER = 2  # inner folds needed before "own protocol only" can be judged


class HistoryAccuracy(Strategy):
    """Ranks each model by its z-scored performance on the same dataset in the training pairs (averaged over the
    training protocols that hold it); NaN on a dataset training never saw. The cross-protocol reference row."""

    def fit(self, train: pd.DataFrame) -> HistoryAccuracy:
        """Z-score the training performance within each (dataset, protocol); average per (model, dataset)."""
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


class Stacked(Strategy):
    """Learned d,m,S: ridge regression of the z-scored performance on [the prior's ranking, each extra prior's,
    the scores], each z-scored within its (dataset, protocol). On a training dataset the priors are fitted without
    that dataset (as they will be on a new one), so the weights learn how far the history carries against the
    scores. With ``alpha=None`` the ridge strength (``ALPHAS``) and the columns' transform (z-score or rank,
    ``TRANSFORMS``) are chosen by leave-one-dataset-out over the training datasets with scores alone."""

    def __init__(self, prior: Strategy | None = None, scores: tuple[str, ...] = (), alpha: float | None = 1.0,
                 extra_priors: tuple[Strategy, ...] = (), transform: str = "z"):
        self.prior = prior
        self.scores = scores
        self.alpha = alpha
        self.extra_priors = extra_priors
        self.transform = transform

    def _design(self, priors: list[np.ndarray], pairs: pd.DataFrame, transform: str) -> np.ndarray:
        """Columns: the priors, then each score, all transformed within the ranking groups of `pairs`."""
        from recommender.models.features import numeric

        columns = [f"score_{name}" for name in self.scores]
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
        if self.prior is None or not self.scores:
            raise UserError("stacking needs a prior strategy and at least one score")
        columns = [f"score_{name}" for name in self.scores]
        scored = train.loc[train.reindex(columns=columns).notna().any(axis=1)]
        if scored.empty:
            raise UserError(f"stacking: no training pair has {' or '.join(columns)}")
        priors = [self.prior, *self.extra_priors]
        out_of_dataset = [np.full(len(scored), np.nan) for _ in priors]
        for dataset in scored["dataset"].unique():
            rows = (scored["dataset"] == dataset).to_numpy()
            rest = train.loc[train["dataset"] != dataset]
            if not rest.empty:
                for column, prior in zip(out_of_dataset, priors, strict=True):
                    column[rows] = clone(prior).fit(rest).predict(without_truth(scored.loc[rows]))
        target = zscore_within(scored["performance"].astype(float), ranking_groups(scored)).to_numpy()
        choices = ([(a, t) for t in TRANSFORMS for a in ALPHAS] if self.alpha is None
                   else [(self.alpha, self.transform)])
        designs = {t: self._design(out_of_dataset, scored, t) for t in {t for _, t in choices}}
        self.alpha_, self.transform_ = (choices[0] if len(choices) == 1
                                        else self._choose(choices, designs, scored, target))
        self.ridge_ = _ridge(self.alpha_).fit(designs[self.transform_], target)
        self.priors_ = [clone(prior).fit(train) for prior in priors]
        return self

    @staticmethod
    def _choose(choices: list[tuple[float, str]], designs: dict[str, np.ndarray], scored: pd.DataFrame,
                target: np.ndarray) -> tuple[float, str]:
        """The (alpha, transform) of best mean weighted tau over the training datasets, each ranked by the ridge
        fitted on the others (ties: the earlier choice)."""
        groups = np.asarray(ranking_groups(scored))
        datasets = scored["dataset"].astype(str).to_numpy()
        best, best_tau = choices[0], -np.inf
        for alpha, transform in choices:
            taus = []
            for dataset in np.unique(datasets):
                held = datasets == dataset
                if held.all():
                    continue
                pred = _ridge(alpha).fit(designs[transform][~held], target[~held]).predict(designs[transform][held])
                taus += _group_taus(pred, target[held], groups[held])
            tau = float(np.mean(taus)) if taus else -np.inf
            if tau > best_tau:
                best, best_tau = (alpha, transform), tau
        return best

    @property
    def weights_(self) -> pd.Series:
        """The fitted weight of the prior, of each extra prior and of each score."""
        extra = [f"prior{i + 2}" for i in range(len(self.extra_priors))]
        return pd.Series(self.ridge_.coef_, index=["prior", *extra, *self.scores])

    def predict(self, test: pd.DataFrame, budget: int | None = None) -> np.ndarray:
        """The ridge's prediction on the test pairs' priors and scores."""
        priors = [np.asarray(prior.predict(test), dtype=float) for prior in self.priors_]
        return self.ridge_.predict(self._design(priors, test, self.transform_))


def _group_taus(pred: np.ndarray, truth: np.ndarray, groups: np.ndarray) -> list[float]:
    """Weighted tau of pred against truth within each group where truth has a spread (no ranking: 0)."""
    return [weighted_tau(pred[groups == g], truth[groups == g]) if np.ptp(pred[groups == g]) > 0 else 0.0
            for g in np.unique(groups) if np.ptp(truth[groups == g]) > 0]


def _ridge(alpha: float) -> Ridge:
    """A ridge regression of the given strength (scikit-learn's, imported when a stack is fitted)."""
    from sklearn.linear_model import Ridge

    return Ridge(alpha=alpha)


def _spread(items: list, n: int) -> list:
    """At most n items, evenly spread (deterministic)."""
    keep = np.unique(np.linspace(0, len(items) - 1, min(n, len(items))).astype(int))
    return [items[i] for i in keep]


class SourceChoice(Strategy):
    """Wraps a strategy; per target protocol, trains it on that protocol's history only ("own") or on every
    history ("all"), whichever ranks better on inner leave-one-dataset-out folds of the own protocol's training
    pairs (ties: own). Without a protocol column, or with too little own history, it trains on everything."""

    def __init__(self, base: Strategy | None = None, max_inner_folds: int = 3):
        self.base = base
        self.max_inner_folds = max_inner_folds

    def fit(self, train: pd.DataFrame) -> SourceChoice:
        """Keep the training pairs; the choice is made per protocol when its pairs are ranked."""
        if self.base is None:
            raise UserError("source choice needs a strategy to wrap")
        self.ranks, self.budget_dependent = self.base.ranks, self.base.budget_dependent
        self.train_ = train
        self.choices_: dict[str, str] = {}
        self.fitted_: dict[str, Strategy] = {}
        return self

    def _inner_tau(self, pool: pd.DataFrame, own: pd.DataFrame, held: list[str]) -> float:
        """Mean weighted tau of the base fitted on `pool` without each held dataset, on the own pairs of it."""
        taus = []
        for dataset in held:
            test = own.loc[own["dataset"] == dataset]
            truth = test["performance"].to_numpy(dtype=float)
            if len(test) < 3 or np.ptp(truth) == 0:
                continue
            pred = clone(self.base).fit(pool.loc[pool["dataset"] != dataset]).predict(without_truth(test))
            pred = np.asarray(pred, dtype=float)
            pred = np.where(np.isfinite(pred), pred, np.nanmin(pred) - 1 if np.isfinite(pred).any() else 0.0)
            taus.append(weighted_tau(pred, truth) if np.ptp(pred) > 0 else 0.0)  # unknown models last; no ranking: 0
        return float(np.mean(taus)) if taus else float("nan")

    def choose(self, protocol: str) -> str:
        """"own" or "all" for the target protocol, from the training pairs only."""
        train = self.train_
        if "protocol" not in train.columns or train["protocol"].nunique() < 2:
            return "all"
        own = train.loc[train["protocol"] == protocol]
        held = _spread(sorted(own["dataset"].astype(str).unique()), self.max_inner_folds)
        if len(held) < MIN_INNER:
            return "all"
        tau_own = self._inner_tau(own, own, held)
        tau_all = self._inner_tau(train, own, held)
        if not np.isfinite(tau_all):
            return "own" if np.isfinite(tau_own) else "all"
        return "own" if np.isfinite(tau_own) and tau_own >= tau_all else "all"

    def predict(self, test: pd.DataFrame, budget: int | None = None) -> np.ndarray:
        """Per protocol of the test pairs, the chosen history's ranking."""
        out = np.full(len(test), np.nan)
        protocols = test["protocol"].astype(str) if "protocol" in test.columns else pd.Series("", index=test.index)
        for protocol, part in test.groupby(protocols, sort=False):
            if protocol not in self.fitted_:
                choice = self.choose(protocol)
                pool = self.train_ if choice == "all" else self.train_.loc[self.train_["protocol"] == protocol]
                self.choices_[protocol], self.fitted_[protocol] = choice, clone(self.base).fit(pool)
            out[test.index.get_indexer(part.index)] = self.fitted_[protocol].predict(part, budget)
        return out
