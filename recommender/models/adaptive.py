"""Adaptive search (SPEC §7): rankings that sharpen with each fine-tuning result observed on the target dataset.

An adaptive recommender is fitted on the training pairs. For one target it opens a `Session` over the candidate
pairs (without their performance); `Session.rank(picked, values)` scores the candidates given the true performance
of the models already fine-tuned there, and nothing else. The recommenders:

- `SimilaritySearch`: weight each training dataset by the agreement (Pearson) of its within-dataset z-scores with
  the observed results, softmax(beta * n / (n + shrink) * r), and rank by the weighted mean z-score; with few
  results the weights shrink to equal ones, i.e. to mean-perf. The spread is the weighted std across datasets.
- `WarmStartLR`: the static LR prediction updated in closed form with the target's observed pairs: a Bayesian
  ridge of the observed (standardised) results on [LR prediction, the model's latent factors of the training
  z-matrix], with the prior "the LR is right" (weight 1 on the LR column, 0 elsewhere). Before two results are
  seen it ranks exactly as the LR. The spread is the posterior std.
- `BlendSearch`: (1 - weight) x the similarity score + weight x the warm start's, each standardised over the
  candidates; the spread is the same blend of the two spreads in those units.
- Either of the first two with `explore` > 0 ranks by an upper confidence bound: score + explore * spread.

Hyper-parameters left as None are chosen on inner leave-one-dataset-out folds of the training pairs alone,
minimising the mean adaptive relative regret over `budgets`."""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import numpy as np
import pandas as pd

from recommender.contracts import ADAPTIVE_BUDGETS, TARGET_COLUMNS
from recommender.errors import UserError
from recommender.history.records import row_span
from recommender.models.estimator import Estimator
from recommender.models.params import BUDGETS, FOLDS, TEXT, Rule, Validated
from recommender.models.params import number as in_range  # `number` is a loop variable below
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
    def _open(self, prepared: Any, candidates: pd.DataFrame, params: dict) -> Session:
        """A session over the candidates with the given hyper-parameters."""

    def _free(self) -> dict[str, tuple]:
        """The grid of the hyper-parameters left unset (None)."""
        return {k: v for k, v in self.GRID.items() if getattr(self, k) is None}

    def fit(self, train: pd.DataFrame) -> AdaptiveRecommender:
        """Choose the unset hyper-parameters on inner folds of `train`, then prepare on all of it."""
        self._validate_params()
        missing = {"model", "dataset", "performance"} - set(train.columns)
        if missing:
            raise UserError(f"training pairs lack column(s) {sorted(missing)}")
        fixed = {k: getattr(self, k) for k in self.GRID if getattr(self, k) is not None}
        self.inner_loss_: np.ndarray | None = None  # per grid point, when one was chosen
        self.params_ = fixed | self._choose(train, fixed)
        self.prepared_ = self._prepare(train)
        return self

    def _choose(self, train: pd.DataFrame, fixed: dict) -> dict:
        """The grid point with the lowest mean adaptive relative regret on inner leave-one-dataset-out folds."""
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
            prepared = self._prepare(fold.train)
            hidden = fold.test.drop(columns=list(TARGET_COLUMNS), errors="ignore")
            picks = [simulate(self._open(prepared, hidden, fixed | config), truth, max(self.budgets))
                     for config in configs]
            return [[float(np.mean([relative_regret_of_picks(truth, p, b) for b in self.budgets])) for p in picks]]

        choice = choose(configs, regrets, inner_folds(train, self.max_inner_folds), lower_is_better=True)
        self.inner_loss_ = choice.totals
        return choice.best

    def session(self, candidates: pd.DataFrame) -> Session:
        """A session over the candidate pairs of one target dataset (pair-table rows without performance)."""
        return self._open(self.prepared_, candidates, self.params_)


# --- dataset similarity ------------------------------------------------------------------------------------------

class _SimilaritySession(Session):
    def __init__(self, Z: np.ndarray, names: np.ndarray, beta: float, shrink: float, explore: float):
        self.Z, self.names, self.beta, self.shrink, self.explore = Z, names, beta, shrink, explore
        self.known = np.isfinite(Z)
        self.Z0 = np.where(self.known, Z, 0.0)

    def agreement(self, picked: Sequence[int], values: np.ndarray) -> np.ndarray:
        """Pearson r of the observed results with each training dataset's z-scores on the observed models (0 where
        fewer than 2 of them are known there or either side is constant)."""
        r = np.zeros(self.Z.shape[1])
        if len(picked) < 2:
            return r
        zo, ko = self.Z0[picked], self.known[picked]
        for d in np.flatnonzero(ko.sum(0) >= 2):
            x, y = zo[ko[:, d], d], values[ko[:, d]]
            if np.ptp(x) > 0 and np.ptp(y) > 0:
                r[d] = np.corrcoef(x, y)[0, 1]
        return r

    def weights(self, picked: Sequence[int], values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Dataset weights softmax(beta * n/(n+shrink) * r), summing to 1, and the agreements r."""
        r = self.agreement(picked, np.asarray(values, dtype=float))
        n = len(picked)
        logit = self.beta * n / (n + self.shrink) * r if n else np.zeros_like(r)
        w = np.exp(logit - logit.max())
        return w / w.sum(), r

    def rank(self, picked: Sequence[int], values: Sequence[float] | np.ndarray, explain: bool = False) -> Ranking:
        w, r = self.weights(list(picked), np.asarray(values, dtype=float))
        mass = self.known @ w
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (self.Z0 @ w) / mass
            var = ((self.known * (self.Z0 - mean[:, None]) ** 2) @ w) / mass
        spread = np.sqrt(np.maximum(var, 0.0))
        reasons = None
        if explain:
            reasons = [moved_datasets(self.names, w, r, len(picked))] * len(mean)
        return Ranking(mean + self.explore * spread, spread, reasons)


def moved_datasets(names: np.ndarray, w: np.ndarray, r: np.ndarray, n: int) -> str:
    """Which training datasets the n observed results moved the weights towards (weight against the equal share,
    and the agreement r); below ``MIN_CORRELATION`` results, that there are too few for a correlation."""
    top = [d for d in np.argsort(-w)[:TOP_REASONS] if w[d] > 1 / len(w) + 1e-9]
    if n < MIN_CORRELATION:
        moved = f"; weight moved towards {', '.join(f'{names[d]} (x{w[d] * len(w):.1f})' for d in top)}" if top else ""
        return (f"{n} result(s) observed, fewer than the {MIN_CORRELATION} a correlation needs: mean z-score over "
                f"the {len(w)} training datasets{moved}")
    if not top:
        return f"no training dataset agrees with the {n} results more than the others: the mean z-score"
    return "agrees with " + ", ".join(f"{names[d]} (weight x{w[d] * len(w):.1f}, r {r[d]:+.2f})" for d in top)


class SimilaritySearch(AdaptiveRecommender):
    """Dataset similarity made sound: z-score agreement, shrunk to equal weights (mean-perf) when little is seen."""

    GRID = {"beta": (2.0, 5.0, 10.0, 20.0), "shrink": (1.0, 4.0, 16.0), "explore": (0.25, 0.5, 1.0)}
    PARAMETERS: ClassVar[dict[str, Rule]] = {"beta": in_range(0).or_none(), "shrink": in_range(0).or_none(),
                                             "explore": in_range(0).or_none(), "budgets": BUDGETS,
                                             "max_inner_folds": FOLDS}

    def __init__(self, beta: float | None = None, shrink: float | None = None, explore: float | None = 0.0,
                 budgets: tuple[int, ...] = ADAPTIVE_BUDGETS, max_inner_folds: int = 8):
        self.beta = beta
        self.shrink = shrink
        self.explore = explore
        self.budgets = budgets
        self.max_inner_folds = max_inner_folds

    def _prepare(self, train: pd.DataFrame) -> pd.DataFrame:
        return zscore_matrix(train)

    def _open(self, prepared: pd.DataFrame, candidates: pd.DataFrame, params: dict) -> Session:
        Z = prepared.reindex(candidates["model"].to_numpy()).to_numpy(dtype=float)
        return _SimilaritySession(Z, prepared.columns.to_numpy(), params["beta"], params["shrink"], params["explore"])


# --- learned warm start ------------------------------------------------------------------------------------------

class _WarmSession(Session):
    def __init__(self, Phi: np.ndarray, models: np.ndarray, lam: float, explore: float):
        self.Phi, self.models, self.lam, self.explore = Phi, models, lam, explore
        self.prior = np.eye(Phi.shape[1])[0]  # weight 1 on the LR column: the static LR ranking

    def rank(self, picked: Sequence[int], values: Sequence[float] | np.ndarray, explain: bool = False) -> Ranking:
        picked, t = list(picked), np.asarray(values, dtype=float)
        P = self.Phi
        if len(picked) >= 2 and np.ptp(t) > 0:
            Po = P[picked] - P[picked].mean(0)  # centred: the target's unknown offset is no evidence
            to = standardise(t)  # the target's scale is unknown: its results in their own std units
        else:
            Po, to = np.zeros((0, P.shape[1])), np.zeros(0)
        A = np.linalg.inv(Po.T @ Po + self.lam * np.eye(P.shape[1]))
        theta = A @ (Po.T @ to + self.lam * self.prior)
        mean = P @ theta
        spread = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", P, A, P), 0.0))
        reasons = None
        if explain:
            # the posterior mean is linear in the observed results: each one's share of a candidate's score
            share = (P @ A @ Po.T) * to if len(to) else np.zeros((len(P), 0))
            reasons = []
            for row in share:
                top = np.argsort(-np.abs(row))[:TOP_REASONS]
                reasons.append("LR prediction" + (" moved by " + ", ".join(
                    f"{self.models[picked[j]]} ({row[j]:+.2f})" for j in top) if len(to) else
                    " (fewer than 2 results observed)"))
        return Ranking(mean + self.explore * spread, spread, reasons)


class WarmStartLR(AdaptiveRecommender):
    """The LR recommender warm-started on the target: a closed-form Bayesian update with its observed pairs."""

    GRID = {"lam": (1.0, 4.0, 16.0), "factors": (2, 4, 8), "explore": (0.25, 0.5, 1.0)}
    PARAMETERS: ClassVar[dict[str, Rule]] = {"lam": in_range(0, low_open=True).or_none(),
                                             "factors": in_range(0, integer=True).or_none(),
                                             "explore": in_range(0).or_none(), "features": TEXT, "budgets": BUDGETS,
                                             "max_inner_folds": FOLDS}

    def __init__(self, lam: float | None = None, factors: int | None = None, explore: float | None = 0.0,
                 features: str = "d,m", budgets: tuple[int, ...] = ADAPTIVE_BUDGETS, max_inner_folds: int = 8):
        self.lam = lam
        self.factors = factors
        self.explore = explore
        self.features = features
        self.budgets = budgets
        self.max_inner_folds = max_inner_folds

    def _prepare(self, train: pd.DataFrame) -> tuple:
        from recommender.models.factory import make_recommender

        return make_recommender("lr", features=self.features).fit(train), model_factors(train)

    def _open(self, prepared: tuple, candidates: pd.DataFrame, params: dict) -> Session:
        lr, factors = prepared
        return warm_session(lr.predict(candidates), candidates["model"].to_numpy(), factors, params)


# the LR warm start of `recommend`: chosen on inner leave-one-dataset-out folds of SHiFT vision (WarmStartLR.fit)
WARM_START = {"lam": 1.0, "factors": 8, "explore": 0.0}


def model_factors(train: pd.DataFrame) -> pd.DataFrame:
    """Latent model factors (models x components, largest first) of the training z-matrix, missing pairs at 0
    (the dataset mean)."""
    Z = zscore_matrix(train)
    if Z.empty:  # no other dataset: no factors, the warm start moves the prediction's scale only
        return pd.DataFrame(index=Z.index)
    U, s, _ = np.linalg.svd(Z.fillna(0.0).to_numpy(), full_matrices=False)
    return pd.DataFrame(U * s, index=Z.index)


def warm_session(prediction: np.ndarray, models: np.ndarray, factors: pd.DataFrame, params: dict) -> _WarmSession:
    """A warm-start session over candidates `models` with the static `prediction`: features [prediction, the
    first params["factors"] model factors], each standardised; params also give "lam" and "explore"."""
    k = min(int(params["factors"]), factors.shape[1])
    F = factors.reindex(models).iloc[:, :k].fillna(0.0).to_numpy()
    Phi = np.column_stack([standardise(np.asarray(prediction, dtype=float))] + [standardise(f) for f in F.T])
    return _WarmSession(Phi, np.asarray(models), params["lam"], params.get("explore", 0.0))


def warm_update(prediction: np.ndarray, models: np.ndarray, observed: pd.Series, factors: pd.DataFrame,
                params: dict) -> tuple[np.ndarray, np.ndarray]:
    """A static prediction of the candidates `models` updated with the observed results (performance by model) as
    `WarmStartLR` does, and its posterior std, both in the prediction's own units (the warm start's standardised
    score read back with the prediction's mean and std). With fewer than two observed results, or none with
    spread, the prediction comes back unchanged (the warm start's prior is "the static model is right")."""
    prediction = np.asarray(prediction, dtype=float)
    observed = observed[observed.index.isin(models)]  # a result of a model outside the candidates moves nothing
    at = pd.Index(models).get_indexer(observed.index)
    ranking = warm_session(prediction, models, factors, params).rank(list(at), observed.to_numpy(dtype=float))
    centre, scale = prediction.mean(), prediction.std() or 1.0
    informed = len(observed) >= 2 and np.ptp(observed.to_numpy(dtype=float)) > 0
    return (centre + scale * ranking.score if informed else prediction), scale * ranking.spread


# --- blend of the two ---------------------------------------------------------------------------------------------

def _unit(v: np.ndarray) -> np.ndarray:
    """v centred and scaled over its finite entries (NaN stays NaN); all zeros where it has no spread."""
    known = np.isfinite(v)
    out = np.full(v.shape, np.nan)
    if known.any():
        out[known] = standardise(v[known])
    return out


class _BlendSession(Session):
    def __init__(self, similarity: Session, warm: Session, weight: float):
        self.similarity, self.warm, self.weight = similarity, warm, weight

    def rank(self, picked: Sequence[int], values: Sequence[float] | np.ndarray, explain: bool = False) -> Ranking:
        a = self.similarity.rank(picked, values, explain)
        b = self.warm.rank(picked, values, explain)
        w = self.weight
        # each score in its own std units; a candidate one side has no opinion on takes the other side's alone
        sa, sb = _unit(a.score), _unit(b.score)
        score = np.where(np.isnan(sa), sb, np.where(np.isnan(sb), sa, (1 - w) * sa + w * sb))
        spread = np.nan_to_num((1 - w) * a.spread / (np.nanstd(a.score) or 1.0)) + np.nan_to_num(
            w * b.spread / (np.nanstd(b.score) or 1.0))
        reasons = None
        if explain and a.reasons is not None and b.reasons is not None:
            reasons = [f"{1 - w:.2f} x similarity ({ra}); {w:.2f} x LR warm start ({rb})"
                       for ra, rb in zip(a.reasons, b.reasons, strict=True)]
        return Ranking(score, spread, reasons)


class BlendSearch(AdaptiveRecommender):
    """(1 - weight) x the similarity score + weight x the LR warm start's, each standardised over the candidates.

    Each part chooses its own hyper-parameters on inner folds of the training pairs; the weight is then chosen on
    the same inner folds with the parts' choices fixed (weight 0 is adaptive:similarity, 1 adaptive:lr)."""

    GRID = {"weight": (0.0, 0.25, 0.5, 0.75, 1.0)}
    PARAMETERS: ClassVar[dict[str, Rule]] = {"weight": in_range(0, 1).or_none(), "budgets": BUDGETS,
                                             "max_inner_folds": FOLDS}

    def __init__(self, weight: float | None = None, budgets: tuple[int, ...] = ADAPTIVE_BUDGETS,
                 max_inner_folds: int = 8):
        self.weight = weight
        self.budgets = budgets
        self.max_inner_folds = max_inner_folds

    def fit(self, train: pd.DataFrame) -> BlendSearch:
        """Fit the two parts (each choosing its hyper-parameters on inner folds), then choose the weight."""
        self._validate_params()
        self.similarity_ = SimilaritySearch(budgets=self.budgets, max_inner_folds=self.max_inner_folds).fit(train)
        self.warm_ = WarmStartLR(budgets=self.budgets, max_inner_folds=self.max_inner_folds).fit(train)
        super().fit(train)
        return self

    def _prepare(self, train: pd.DataFrame) -> tuple:
        return self.similarity_._prepare(train), self.warm_._prepare(train)

    def _open(self, prepared: tuple, candidates: pd.DataFrame, params: dict) -> Session:
        return _BlendSession(self.similarity_._open(prepared[0], candidates, self.similarity_.params_),
                             self.warm_._open(prepared[1], candidates, self.warm_.params_), params["weight"])


ADAPTIVE = {"similarity": SimilaritySearch, "lr": WarmStartLR, "blend": BlendSearch}


def make_adaptive(kind: str, **params: object) -> AdaptiveRecommender:
    """An unfitted adaptive recommender by name: similarity, lr, blend (of the two), ucb (similarity with a chosen
    exploration bonus)."""
    if kind == "ucb":
        return SimilaritySearch(**cast("dict[str, Any]", {"explore": None} | params))
    if kind not in ADAPTIVE:
        raise UserError(f"unknown adaptive recommender {kind!r}: use similarity, lr, blend or ucb")
    return ADAPTIVE[kind](**params)


# --- the product: the next models to fine-tune on one dataset -----------------------------------------------------

SHOWN_VALUES = 3  # values named in a grouped problem line before "..."


def observed_results(frame: pd.DataFrame, label: str, pool: set[str]) -> pd.Series:
    """`model,performance` rows (cells as read) as performance by model. Every kind of problem is one line
    `label: row N: column: reason`, or, where several rows share it, `label: rows 2, 5-9 (6 rows): column: reason`
    with the first values (ingest's grouping, `row_span`); the lines are raised together."""
    missing = [c for c in ("model", "performance") if c not in frame.columns]
    if missing:
        raise UserError(f"{label}: missing column(s) {', '.join(missing)} (need model,performance)")
    found: dict[tuple[str, str], list[tuple[int, str]]] = {}  # (column, kind) -> (row, the detail of that row)
    seen: dict[str, int] = {}
    models = frame["model"].map(lambda m: "" if pd.isna(m) else str(m).strip())
    numbers = pd.to_numeric(frame["performance"], errors="coerce").to_numpy(dtype=float)
    rows = np.arange(len(frame)) + 1 if not pd.api.types.is_integer_dtype(frame.index) else frame.index + 1
    for row, model, value, number in zip(rows, models, frame["performance"], numbers, strict=True):
        if not model:
            found.setdefault(("model", "empty"), []).append((row, ""))
        elif model not in pool:
            found.setdefault(("model", "unknown model"), []).append((row, repr(model)))
        elif model in seen:
            found.setdefault(("model", "repeated"), []).append((row, f"{model!r} repeated (also row {seen[model]})"))
        if not np.isfinite(number):
            found.setdefault(("performance", "not a finite number"), []).append((row, repr(value)))
        seen.setdefault(model, int(row))
    if found:
        raise UserError("\n".join(_problem_line(label, column, kind, hits) for (column, kind), hits in found.items()))
    return pd.Series(numbers, index=models.to_numpy(), name="performance")


def _problem_line(label: str, column: str, kind: str, hits: list[tuple[int, str]]) -> str:
    """One line for every row with one kind of problem: the row (or rows) and what it holds."""
    rows, details = [row for row, _ in hits], [detail for _, detail in hits]
    if kind == "empty":
        return f"{label}: {row_span(rows)}: {column}: empty"
    if kind == "repeated":
        what = _first(details)
    elif kind == "unknown model":
        what = f"unknown model {_first(details)} (not in the protocol's history)"
    else:
        what = f"{kind} ({_first(details)})"
    return f"{label}: {row_span(rows)}: {column}: {what}"


def _first(values: list[str]) -> str:
    """The first few values, comma-separated, `...` for the rest."""
    return ", ".join(values[:SHOWN_VALUES]) + (", ..." if len(values) > SHOWN_VALUES else "")


def rows_for_dataset(frame: pd.DataFrame, label: str, dataset: str) -> tuple[pd.DataFrame, str]:
    """The rows of an --observed file that are results on ``dataset`` (their index kept: errors name the file's
    rows): all of them without a ``dataset`` column; with one, only the rows that name ``dataset`` (a results file
    of several datasets serves each), and a phrase saying how many rows of which other datasets were left out ("" if
    none). A blank dataset cell, or a file without a row on ``dataset``, is a one-line error naming the file, row
    and column."""
    if "dataset" not in frame.columns:
        return frame, ""
    names = frame["dataset"].map(lambda d: "" if pd.isna(d) else str(d).strip())
    if (blank := names.eq("").to_numpy()).any():
        rows = [int(i) + 1 for i in np.flatnonzero(blank)]
        raise UserError(f"{label}: {row_span(rows)}: dataset: empty (name the dataset of each result, {dataset})")
    mine = names.eq(dataset).to_numpy()
    others = sorted(set(names[~mine]))
    if not mine.any():
        raise UserError(f"{label}: dataset: no row is on {dataset} (the file holds {_first(others)}); results on "
                        "another dataset are not results on this one")
    left = f"{int((~mine).sum())} row(s) on {_first(others)} left out" if others else ""
    return frame[mine], left


def gather_observed(pairs: pd.DataFrame, dataset: str, pool: set[str], path: str | None = None,
                    protocol: str = "") -> tuple[pd.Series, list[str]]:
    """The results observed on `dataset`: its measured pairs in `pairs` (the store's jobs of the protocol) for
    models of `pool`, then the `model,performance` rows on `dataset` of the file at `path` (``rows_for_dataset``,
    checked by `observed_results`), which override stored ones. Also one phrase per source saying what was used."""
    from recommender.history.ingest import read_table

    logged = pairs[(pairs["dataset"] == dataset) & pairs["model"].isin(pool) & pairs["performance"].notna()]
    observed = logged.drop_duplicates("model").set_index("model")["performance"].astype(float)
    sources = [f"{len(observed)} result(s) logged in the store for {dataset}" + (f" under {protocol}" if protocol
                                                                                 else "")]
    if path:
        rows, left = rows_for_dataset(read_table(path), path, dataset)
        given = observed_results(rows, path, pool)
        both = observed.index.intersection(given.index)
        sources.append(f"{len(given)} from {path}" + (f" (overriding {both.size} stored)" if both.size else "")
                       + (f" ({left})" if left else ""))
        observed = pd.concat([observed.drop(given.index, errors="ignore"), given])
    return observed, sources


def next_models(est: AdaptiveRecommender, candidates: pd.DataFrame, observed: pd.Series, budget: int
                ) -> pd.DataFrame:
    """The `budget` best unobserved candidates given the observed results: rank, model, score, spread, reason."""
    if budget < 1:
        raise UserError(f"--budget must be >= 1, got {budget}")
    models = candidates["model"].to_numpy()
    at = pd.Index(models).get_indexer(observed.index)
    ranking = est.session(candidates).rank(list(at), observed.to_numpy(dtype=float), explain=True)
    table = pd.DataFrame({"model": models, "score": ranking.score, "spread": ranking.spread,
                          "reason": ranking.reasons}).drop(index=at)
    best = table.sort_values("score", ascending=False, kind="stable", na_position="last").head(budget)
    return best.reset_index(drop=True).rename_axis("rank").reset_index().assign(rank=lambda t: t["rank"] + 1)
