"""Strategies for histories under several protocols (SPEC §4 cross-protocol, issue 11):

- `HistoryAccuracy`, the cross-protocol reference: a model's measured performance on the same dataset under the
  training protocols;
- `Stacked`, a learned d,m,S ranking: ridge on a history prior (mean-perf, or an LR/FM prediction) and scores, each
  z-scored within its (dataset, protocol), the prior of a training dataset computed without that dataset;
- `SourceChoice`, which chooses per target protocol, on inner folds of the training pairs alone, between training
  on that protocol's history only and on every history, so that adding a history cannot drag a ranking down.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import clone

from recommender.errors import UserError
from recommender.evaluation.measures import weighted_tau
from recommender.evaluation.strategies import Strategy, without_truth
from recommender.normalise import ranking_groups, zscore_within

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


def _within(values: np.ndarray, frame: pd.DataFrame) -> np.ndarray:
    """values z-scored within the ranking groups of frame; unknown (NaN) values become the group mean, 0."""
    z = zscore_within(pd.Series(values, index=frame.index, dtype=float), ranking_groups(frame))
    return z.fillna(0.0).to_numpy()


class Stacked(Strategy):
    """Learned d,m,S: ridge regression of the z-scored performance on [the prior's z-scored ranking, the z-scored
    scores], within each (dataset, protocol). On a training dataset the prior is fitted without that dataset (as it
    will be on a new one), so the weights learn how far the history carries against the scores."""

    def __init__(self, prior: Strategy | None = None, scores: tuple[str, ...] = (), alpha: float = 1.0):
        self.prior = prior
        self.scores = scores
        self.alpha = alpha

    def _design(self, prior: np.ndarray, pairs: pd.DataFrame) -> np.ndarray:
        """Columns: the prior, then each score, all z-scored within the ranking groups of `pairs`."""
        from recommender.models.features import normalise_scores

        columns = [f"score_{name}" for name in self.scores]
        missing = [c for c in columns if c not in pairs.columns]
        if missing:
            raise UserError(f"stacking needs score column(s) {', '.join(missing)}")
        scores = normalise_scores(pairs, tuple(columns)).fillna(0.0).to_numpy()
        return np.column_stack([_within(prior, pairs), scores])

    def fit(self, train: pd.DataFrame) -> Stacked:
        """Out-of-dataset priors on the training pairs with a score, then the ridge weights; the prior on all."""
        from sklearn.linear_model import Ridge

        if self.prior is None or not self.scores:
            raise UserError("stacking needs a prior strategy and at least one score")
        columns = [f"score_{name}" for name in self.scores]
        scored = train.loc[train.reindex(columns=columns).notna().any(axis=1)]
        if scored.empty:
            raise UserError(f"stacking: no training pair has {' or '.join(columns)}")
        prior = np.full(len(scored), np.nan)
        for dataset in scored["dataset"].unique():
            rows = (scored["dataset"] == dataset).to_numpy()
            rest = train.loc[train["dataset"] != dataset]
            if not rest.empty:
                prior[rows] = clone(self.prior).fit(rest).predict(without_truth(scored.loc[rows]))
        target = zscore_within(scored["performance"].astype(float), ranking_groups(scored)).to_numpy()
        self.ridge_ = Ridge(alpha=self.alpha).fit(self._design(prior, scored), target)
        self.prior_ = clone(self.prior).fit(train)
        return self

    @property
    def weights_(self) -> pd.Series:
        """The fitted weight of the prior and of each score."""
        return pd.Series(self.ridge_.coef_, index=["prior", *self.scores])

    def predict(self, test: pd.DataFrame, budget: int | None = None) -> np.ndarray:
        """The ridge's prediction on the test pairs' prior and scores."""
        return self.ridge_.predict(self._design(self.prior_.predict(test), test))


def _spread(items: list, n: int) -> list:
    """At most n items, evenly spread (deterministic)."""
    keep = np.unique(np.linspace(0, len(items) - 1, min(n, len(items))).astype(int))
    return [items[i] for i in keep]


class SourceChoice(Strategy):
    """Wraps a strategy; per target protocol, trains it on that protocol's history only ("own") or on every
    history ("all"), whichever ranks better on inner leave-one-dataset-out folds of the own protocol's training
    pairs (ties: own). Without a protocol column, or with too little own history, it trains on everything."""

    def __init__(self, base: Strategy | None = None, max_inner_folds: int = 4):
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
