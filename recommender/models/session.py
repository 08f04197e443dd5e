"""The adaptive protocol (SPEC §7): a recommender fitted on training pairs opens a `Session` over one target's
candidate pairs (without their performance); `Session.rank(picked, values)` scores the candidates given the true
performance of the models already fine-tuned there, and nothing else. `AdaptiveRecommender` is the base of the
adaptive recommenders (`recommender.models.adaptive` names them): hyper-parameters left as None are chosen on inner
leave-one-dataset-out folds of the training pairs alone, minimising the mean adaptive relative regret over
`budgets`."""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from recommender.contracts import TARGET_COLUMNS
from recommender.errors import UserError
from recommender.models.estimator import Estimator
from recommender.models.params import Validated
from recommender.models.selection import Fold, choose, inner_folds, rankable
from recommender.normalise import zscore_within
from recommender.regret import relative_regret_of_picks

TOP_REASONS = 3  # training datasets (or observed models) named in a pick's reason
MIN_CORRELATION = 4  # observed results before a correlation with them is shown or trusted (any 2 points correlate)
MIN_INNER_DATASETS = 3  # training datasets needed to choose on inner folds (one held out, two or more to learn)



def zscore_matrix(train: pd.DataFrame) -> pd.DataFrame:
    """Models x training datasets of performance z-scored within each dataset (NaN where a pair is missing)."""
    z = zscore_within(train["performance"].astype(float), train["dataset"])
    frame = pd.DataFrame({"model": train["model"].to_numpy(), "dataset": train["dataset"].to_numpy(),
                          "z": z.to_numpy()})
    return frame.pivot_table(index="model", columns="dataset", values="z", aggfunc="mean")


def standardise(v: np.ndarray) -> np.ndarray:
    """v centred and scaled to unit (population) std; all zeros when v has no spread."""
    sd = v.std()
    return (v - v.mean()) / sd if sd > 0 else np.zeros_like(v)


@dataclass
class Ranking:
    """Scores of the candidates given what was observed: higher = fine-tune next; NaN = no opinion."""

    score: np.ndarray
    spread: np.ndarray
    reasons: list[str] | None = None


class Session(ABC):
    """One target dataset's candidates; ranks them given the truth of the picks made so far."""

    @abstractmethod
    def rank(self, picked: Sequence[int], values: Sequence[float] | np.ndarray, explain: bool = False) -> Ranking:
        """Scores of every candidate given the observed performance `values` of candidates `picked` (positions)."""


def simulate(session: Session, truth: np.ndarray, budget: int) -> list[int]:
    """The sequential protocol of SPEC §7: pick the best-scored unpicked candidate, reveal its truth, repeat.

    Only truth[picks made so far] is shown to the session. Ties go to the earlier candidate; a candidate without
    a score (NaN) is picked only after every scored one."""
    picks: list[int] = []
    for _ in range(min(budget, truth.size)):
        score = session.rank(picks, truth[picks]).score
        open_ = np.ones(truth.size, dtype=bool)
        open_[picks] = False
        scored = open_ & np.isfinite(score)  # no opinion (NaN): only after every scored candidate
        pool = np.flatnonzero(scored if scored.any() else open_)
        picks.append(int(pool[np.argmax(score[pool])] if scored.any() else pool[0]))
    return picks


def pick_preference(picks: Sequence[int], n: int) -> np.ndarray:
    """A preference vector whose top-B is the first B picks (NaN for the unpicked), for the budget measures."""
    pref = np.full(n, np.nan)
    pref[list(picks)] = np.arange(len(picks), 0, -1, dtype=float)
    return pref


class AdaptiveRecommender(Validated, Estimator, ABC):
    """Base: `fit(train)` chooses unset hyper-parameters on inner folds, `session(candidates)` opens a target."""

    GRID: dict[str, tuple] = {}
    budgets: tuple[int, ...]
    max_inner_folds: int

    @abstractmethod
    def _prepare(self, train: pd.DataFrame) -> object:
        """The hyper-parameter-free part of fitting (matrices, a static model) on training pairs."""

    @abstractmethod
    def _view(self, prepared: Any, candidates: pd.DataFrame) -> Any:
        """The hyper-parameter-free part of opening a session over the candidates (once per fold, not per grid
        point)."""

    @abstractmethod
    def _open(self, view: Any, params: dict) -> Session:
        """A session over a `_view` of the candidates with the given hyper-parameters."""

    def _free(self) -> dict[str, tuple]:
        """The grid of the hyper-parameters left unset (None)."""
        return {k: v for k, v in self.GRID.items() if getattr(self, k) is None}

    def fit(self, train: pd.DataFrame) -> AdaptiveRecommender:
        """Choose the unset hyper-parameters on inner folds of `train`, then prepare on all of it."""
        return self._fit(train, {})

    def _fit(self, train: pd.DataFrame, inner: dict[str, Any], prepared: Any = None) -> AdaptiveRecommender:
        """`fit`, where `inner` holds each inner fold's `_prepare` by fold name (what is missing is prepared and
        added) and `prepared` is that of all of `train` where the caller has it: a recommender made of others
        (`recommender.models.blend`) prepares each training set once."""
        self._validate_params()
        missing = {"model", "dataset", "performance"} - set(train.columns)
        if missing:
            raise UserError(f"training pairs lack column(s) {sorted(missing)}")
        fixed = {k: getattr(self, k) for k in self.GRID if getattr(self, k) is not None}
        self.inner_loss_: np.ndarray | None = None  # per grid point, when one was chosen
        self.params_ = fixed | self._choose(train, fixed, inner)
        self.prepared_ = self._prepare(train) if prepared is None else prepared
        return self

    def _choose(self, train: pd.DataFrame, fixed: dict, inner: dict[str, Any]) -> dict:
        """The grid point with the lowest mean adaptive relative regret on inner leave-one-dataset-out folds (each
        fold prepared once, kept in `inner`)."""
        free = self._free()
        if not free:
            return {}
        configs = [dict(zip(free, values, strict=True)) for values in itertools.product(*free.values())]
        if train["dataset"].nunique() < MIN_INNER_DATASETS:  # too few to hold one out and still learn: the first
            return configs[0]

        def regrets(fold: Fold) -> list[list[float]]:
            truth = fold.test["performance"].to_numpy(dtype=float)
            if not rankable(truth) or truth.max() <= 0:  # a relative regret needs a positive best
                return []
            if fold.name not in inner:
                inner[fold.name] = self._prepare(fold.train)
            view = self._view(inner[fold.name], fold.test.drop(columns=list(TARGET_COLUMNS), errors="ignore"))
            picks = [simulate(self._open(view, fixed | config), truth, max(self.budgets)) for config in configs]
            return [[float(np.mean([relative_regret_of_picks(truth, p, b) for b in self.budgets])) for p in picks]]

        choice = choose(configs, regrets, inner_folds(train, self.max_inner_folds), lower_is_better=True)
        self.inner_loss_ = choice.totals
        return choice.best

    def session(self, candidates: pd.DataFrame) -> Session:
        """A session over the candidate pairs of one target dataset (pair-table rows without performance)."""
        return self._open(self._view(self.prepared_, candidates), self.params_)
