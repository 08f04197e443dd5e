"""`auto`: one ranking from every piece of evidence a task has, each trusted as far as it has earned for this task.

The sources are the history priors (each model's mean z-scored result over the training history under the pairs'
own protocol and under the others, `mean-perf`; and LR on model and dataset facts fitted on the own protocol's
history, `history-lr`; the own protocol's history enters as one of them or both, as the inner folds choose,
`PRIOR_CHOICES`) and every transferability score the pairs hold. Within one ranking group (a dataset under a
protocol) each source is z-scored over the candidates, and the true z-scored result ``t`` is modelled as jointly
Gaussian with them:

- the sources' correlations with each other, ``C``, are measured on the candidates themselves (no result needed);
- each source's correlation with the truth, its reliability ``r_s``, is predicted from how well that source agrees
  with the other sources on these candidates (``a_s``), by a line ``r_s = intercept_s + slope * a_s`` fitted on
  inner leave-one-dataset-out folds of the training history, where the truth is known. Where the history prior
  disagrees with the scores on a new task (another protocol, another kind of data), its predicted reliability
  falls and the scores carry the ranking; where they agree, the history's larger weight stands;
- the prediction is the Gaussian posterior mean ``r^T C^-1 z``, with variance ``1 - r^T C^-1 r``; the spread is
  that standard deviation times a factor that makes the inner folds' 68% intervals hold 68% of their results;
- results the user has observed on the task move each reliability towards the correlation seen on them
  (`pooled`): Fisher-z pooling of the predicted reliability (worth ``prior_strength`` results) with the observed
  correlation (worth ``n - 3``), from ``MIN_OBSERVED`` results on. In a session (`evaluate --adaptive`, one pick
  at a time) the own protocol's history priors are also re-weighted towards the training datasets whose results
  agree with the observed ones (`recommender.models.similarity.SimilaritySearch`): the mean becomes their weighted
  mean, and `history-lr` is refitted with each training pair weighted as its dataset.

A guard compares `auto` with each single source on the same inner folds (the line refitted without each fold) and
falls back to the best single source where `auto` is worse by more than the folds' standard error; the output says
whether the combination ranked the folds better than that source, worse, or alike (`Guard`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, cast

import numpy as np
import pandas as pd

from recommender.contracts import is_score_column, score_column, score_name
from recommender.models.estimator import check_fitted
from recommender.models.linear import LinearRecommender, block_sources
from recommender.models.params import FLAG, FOLDS, OPTIONS, TEXT, Rule, instance, number, tuple_of
from recommender.models.rankers import Ranker
from recommender.models.reliability import (
    MAX_RELIABILITY,
    MIN_OBSERVED,
    Posterior,
    agreements,
    correlation,
    pooled,
    posterior,
    source_matrix,
)
from recommender.models.selection import Fold, inner_folds, loo_folds, rankable, spread, weighted_tau
from recommender.models.session import MIN_CORRELATION, Ranking, Session
from recommender.models.similarity import SimilaritySearch, SimilaritySession, moved_datasets
from recommender.normalise import ranking_groups, zscore_within

# the history priors' source names: the mean result under the pairs' own protocol and under the others; LR on the
# own protocol's history, whose model x dataset-facts products let a model's prior move with the dataset
PRIOR, OTHER, LEARNED = "history", "other-history", "history-lr"
LABELS = {PRIOR: "history under your protocol", OTHER: "history under other protocols",
          LEARNED: "LR on the history under your protocol"}  # as the output names them
LEARNED_COLUMNS = block_sources("d_id", "d_side", "m_id", "m_side")  # what `history-lr` reads of the pairs
# the own protocol's history prior: its mean result, unless LR on its facts, or both, rank the inner folds better
# by more than their standard error (the one-standard-error rule: a choice among several on few folds favours
# the lucky one). Both at once let two priors from one history agree with each other whether or not the history
# carries to the task, which is what a source's agreement is to measure
PRIOR_CHOICES: tuple[tuple[str, ...], ...] = ((PRIOR,), (LEARNED,), (PRIOR, LEARNED))
HISTORY = ("model", "dataset", "protocol", "performance")  # what the priors are computed from
COVERAGE = 0.68  # the printed interval's nominal coverage
# shrinkage of the sources' correlation matrix chosen among on inner folds: 1 ignores their correlations (each
# source weighted by its reliability alone), which few candidates per task estimate poorly
SHRINKAGES = (0.1, 0.4, 0.7, 1.0)
MIN_RELIABILITY = 0.05  # the guard's single source keeps ordering the pool where its predicted reliability is nil
# datasets under the target protocol for the inner folds to hold out those alone: with fewer, the guard's and the
# prior choice's standard errors would rest on fewer than five folds
MIN_PROTOCOL_DATASETS = 5



def _protocols(pairs: pd.DataFrame) -> pd.Series:
    """Each pair's protocol as a string ("" without a protocol column or value)."""
    if "protocol" not in pairs.columns:
        return pd.Series("", index=pairs.index)
    return pairs["protocol"].astype("string").fillna("").astype(str)



@dataclass(frozen=True)
class Record:
    """One held-out ranking group of an inner fold: its training dataset, the z-scored sources (NaN columns for
    unavailable ones) and the z-scored truth."""

    dataset: str
    z: np.ndarray
    truth: np.ndarray



@dataclass(frozen=True)
class Priors:
    """The history priors, fitted once: per protocol, the mean z-scored result of each model under that protocol
    (own) and under every other protocol (other); for a protocol the history never saw, no own prior and the whole
    history's as the other."""

    fitted: dict[str, tuple[pd.Series | None, pd.Series | None]]  # by protocol: each model's own, other prior
    unseen: pd.Series

    @classmethod
    def fit(cls, history: pd.DataFrame, protocols: Sequence[str], z: pd.Series | None = None) -> Priors:
        """The priors of ``protocols`` from ``history`` (`MeanNormalisedPerformance` on each pool); ``z``: the
        history's results z-scored within their ranking groups where already computed (a pool of whole groups
        z-scores them the same)."""
        if z is None:
            z = zscore_within(history["performance"], ranking_groups(history))
        models, labels = history["model"], _protocols(history).to_numpy()

        def means(rows: np.ndarray) -> pd.Series | None:
            return z[rows].groupby(models[rows]).mean() if rows.any() else None

        return cls({p: (means(labels == p), means(labels != p)) for p in protocols}, z.groupby(models).mean())

    def values(self, pairs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Each pair's own-protocol and other-protocol prior (NaN where the model or the pool is unknown)."""
        own, other = np.full(len(pairs), np.nan), np.full(len(pairs), np.nan)
        labels = _protocols(pairs)
        for protocol in labels.unique():
            rows = (labels == protocol).to_numpy()
            for column, prior in zip((own, other), self.fitted.get(protocol, (None, self.unseen)), strict=True):
                if prior is not None:
                    column[rows] = pairs.loc[rows, "model"].map(prior).to_numpy(dtype=float)
        return own, other


class Auto(Ranker):
    """The default ranking: the history prior and the scores, weighted per task by their predicted reliability
    (see the module docstring). ``scores`` names the scores to use (empty: every ``score_*`` column of the
    training pairs); ``max_inner_folds`` bounds the inner leave-one-dataset-out folds; ``shrinkage`` pulls the
    sources' correlation matrix towards the identity (None: chosen among ``SHRINKAGES`` on the inner folds);
    ``prior_strength`` is the number of observed results the
    predicted reliability is worth when `pooled`; ``similarity`` fixes parameters of the session's
    `SimilaritySearch` (None: chosen on its inner folds); ``learned`` adds the `history-lr` source (LR fitted on
    each protocol's history of at least two datasets, where the pairs hold model and dataset facts); ``protocol``
    names the protocol of the tasks the fit will rank (`next`'s, `rank`'s): where the history holds at least
    ``MIN_PROTOCOL_DATASETS`` datasets under it, the inner folds hold out those datasets alone and measure the
    sources on their groups under it, so that the reliabilities, the prior's choice and the guard are those of
    tasks like the user's (None, or too few: every dataset, every group)."""

    adaptive = True  # `session`: the sequential protocol of SPEC §7
    PARAMETERS: ClassVar[dict[str, Rule]] = {
        "scores": tuple_of(instance(str, "a score name")), "max_inner_folds": FOLDS,
        "shrinkage": number(0, 1).or_none(), "prior_strength": number(0),
        "similarity": OPTIONS, "learned": FLAG, "protocol": TEXT.or_none()}

    def __init__(self, scores: tuple[str, ...] = (), max_inner_folds: int = 20, shrinkage: float | None = None,
                 prior_strength: float = 10.0, similarity: dict | None = None, learned: bool = True,
                 protocol: str | None = None):
        self.scores = scores
        self.max_inner_folds = max_inner_folds
        self.shrinkage = shrinkage
        self.prior_strength = prior_strength
        self.similarity = similarity
        self.learned = learned
        self.protocol = protocol

    # --- fitting -------------------------------------------------------------------------------------------------

    def _score_names(self, train: pd.DataFrame) -> list[str]:
        """The scores used: those named, or every score column training holds a value of."""
        if self.scores:
            return list(self.scores)
        return [score_name(c) for c in train.columns if is_score_column(c) and train[c].notna().any()]

    def _values(self, priors: Priors, pairs: pd.DataFrame, learned: np.ndarray) -> pd.DataFrame:
        """One column per source on the pairs: the history prior of their own protocol and that of every other
        protocol (`Priors`), `history-lr` (``learned``), then each score (NaN where missing)."""
        own, other = priors.values(pairs)
        columns = {PRIOR: own, OTHER: other, LEARNED: learned}
        for name in self.sources_[3:]:
            score = score_column(name)
            columns[name] = (pd.to_numeric(pairs[score], errors="coerce").to_numpy(dtype=float)
                             if score in pairs.columns else np.full(len(pairs), np.nan))
        return pd.DataFrame(columns, index=pairs.index)

    def _learned_protocols(self, train: pd.DataFrame) -> dict[str, np.ndarray]:
        """The row masks of the protocols `history-lr` is fitted on: those with at least two datasets, where
        ``learned`` is on and the pairs hold every column it reads."""
        if not self.learned or not set(LEARNED_COLUMNS) <= set(train.columns):
            return {}
        labels = _protocols(train)
        return {p: (labels == p).to_numpy() for p in labels.unique()
                if train.loc[(labels == p).to_numpy(), "dataset"].nunique() >= 2}

    def _held_out_learned(self, train: pd.DataFrame, folds: list[Fold]) -> list[np.ndarray]:
        """Per inner fold, `history-lr` on its held-out pairs as fitted without them (`LinearRecommender.held_out`;
        NaN where the fold leaves the protocol's history fewer than two datasets)."""
        out = [np.full(len(fold.test), np.nan) for fold in folds]
        tested = [train.index.get_indexer(fold.test.index) for fold in folds]
        for mask in self._learned_protocols(train).values():
            own, positions = train.loc[mask], np.flatnonzero(mask)
            held, where = [], []
            for i, rows in enumerate(tested):
                inside = np.isin(positions, rows)
                if inside.any() and own.loc[~inside, "dataset"].nunique() >= 2:
                    held.append(np.flatnonzero(inside))
                    where.append(i)
            for i, rows, predicted in zip(where, held, LinearRecommender().held_out(own, held), strict=True):
                out[i][pd.Index(tested[i]).get_indexer(pd.Index(positions[rows]))] = predicted
        return out

    def _learned_values(self, pairs: pd.DataFrame, learned: Mapping[str, LinearRecommender] | None = None
                        ) -> np.ndarray:
        """`history-lr` on the pairs: each protocol's LR (``learned``, by default the fitted ones; NaN for another
        protocol). A fact the pairs lack is unknown, as for a model or dataset the store has no facts of (`rank`'s
        pool: names and scores only)."""
        learned = self.learned_ if learned is None else learned
        out = np.full(len(pairs), np.nan)
        if not learned:
            return out
        pairs = pairs.assign(**{c: np.nan for c in LEARNED_COLUMNS if c not in pairs.columns})
        labels = _protocols(pairs).to_numpy()
        for protocol, est in learned.items():
            rows = labels == protocol
            if rows.any():
                out[rows] = est.predict(pairs.loc[rows])
        return out

    def _protocol_datasets(self, history: pd.DataFrame) -> set[str] | None:
        """The datasets under ``protocol`` that the inner folds hold out alone, or None where they hold out every
        dataset (no protocol named, or fewer than ``MIN_PROTOCOL_DATASETS`` under it)."""
        if self.protocol is None:
            return None
        datasets = set(history.loc[(_protocols(history) == self.protocol).to_numpy(), "dataset"].astype(str))
        return datasets if len(datasets) >= MIN_PROTOCOL_DATASETS else None

    def _folds(self, train: pd.DataFrame) -> list[Fold]:
        """The inner folds: `inner_folds`, or, over ``protocol``'s datasets where `_protocol_datasets` names them,
        leave-one-dataset-out (each left out under every protocol, as `next` leaves the user's dataset out), tested
        on their pairs under it."""
        datasets = self._protocol_datasets(train)
        if datasets is None:
            return inner_folds(train, self.max_inner_folds)
        mine = (_protocols(train) == self.protocol).to_numpy()
        folds = [Fold(f.name, f.repeat, f.train, f.test.loc[mine[train.index.get_indexer(f.test.index)]])
                 for f in loo_folds(train) if str(f.name) in datasets]
        return spread(folds, self.max_inner_folds)

    @property
    def measured_on(self) -> str:
        """On which tasks the inner folds measured the sources, in words."""
        check_fitted(self, "history_")
        datasets = self._protocol_datasets(self.history_)
        if datasets is not None:
            return f"sources measured on the {len(datasets)} datasets under {self.protocol}"
        few = "" if self.protocol is None else f" (fewer than {MIN_PROTOCOL_DATASETS} under {self.protocol})"
        return f"sources measured on the datasets of every protocol{few}"

    def _records(self, train: pd.DataFrame) -> list[Record]:
        """The inner folds' held-out groups, each source computed as it would be on a new dataset."""
        records = []
        folds = self._folds(train)
        learned = self._held_out_learned(train, folds)
        # leaving datasets out keeps every other ranking group whole: the results are z-scored once
        whole = train["dataset"].nunique() >= 2
        zscored = zscore_within(train["performance"], ranking_groups(train)) if whole else None
        for fold, fold_learned in zip(folds, learned, strict=True):
            priors = Priors.fit(fold.train, list(_protocols(fold.test).unique()),
                                None if zscored is None else zscored.loc[fold.train.index])
            values = self._values(priors, fold.test, fold_learned)
            for _, rows in fold.test.groupby(ranking_groups(fold.test), sort=True):
                truth = rows["performance"].to_numpy(dtype=float)
                if not rankable(truth):
                    continue
                z, available = source_matrix(values.loc[rows.index])
                z[:, [j for j in range(z.shape[1]) if j not in available]] = np.nan
                records.append(Record(fold.name, z, (truth - truth.mean()) / truth.std()))
        return records

    @staticmethod
    def _fit_line(records: list[Record], k: int) -> tuple[np.ndarray, float]:
        """Per-source intercepts and one slope of reliability on agreement, least squares over every record's
        available sources (a source never available keeps intercept NaN: unusable)."""
        rows, targets = [], []
        for record in records:
            available = np.flatnonzero(np.isfinite(record.z).all(axis=0))
            a = agreements(record.z[:, available])
            for position, s in enumerate(available):
                row = np.zeros(k + 1)
                row[s], row[k] = 1.0, a[position]
                rows.append(row)
                targets.append(correlation(record.z[:, s], record.truth))
        if not rows:
            return np.full(k, np.nan), 0.0
        x, y = np.array(rows), np.array(targets)
        seen = x[:, :k].any(axis=0)
        keep = np.append(seen, True)
        solution, *_ = np.linalg.lstsq(x[:, keep], y, rcond=None)
        intercepts = np.full(k, np.nan)
        intercepts[seen] = solution[:-1]
        return intercepts, float(solution[-1])

    def fit(self, train: pd.DataFrame) -> Auto:
        """Inner-fold records, the reliability line, the shrinkage (chosen on the inner folds unless given), the
        guard's comparison and the spread's factor; the history the priors are computed from, and each protocol's
        `history-lr`."""
        self._validate_params()
        performance = pd.to_numeric(train["performance"], errors="coerce").astype(float)
        train = train.assign(performance=performance).loc[performance.notna()].reset_index(drop=True)
        self.sources_ = [PRIOR, OTHER, LEARNED, *self._score_names(train)]
        every = self._records(train)
        learned = self.sources_.index(LEARNED)
        grid = SHRINKAGES if self.shrinkage is None else (self.shrinkage,)
        tried = {}
        for kept in PRIOR_CHOICES if any(np.isfinite(r.z[:, learned]).all() for r in every) else PRIOR_CHOICES[:1]:
            records = [_without(r, [self.sources_.index(s) for s in (PRIOR, LEARNED) if s not in kept]) for r in every]
            line = self._fit_line(records, len(self.sources_))
            lines = {dataset: self._fit_line([r for r in records if r.dataset != dataset], len(self.sources_))
                     for dataset in dict.fromkeys(r.dataset for r in records)}  # each inner dataset's, without it
            for value in grid:
                tried[kept, value] = line, self._nested(records, lines, value)
        kept, self.shrinkage_ = _chosen({c: tried[c][1][0]["auto"] for c in tried})
        (self.intercepts_, self.slope_), (self.inner_taus_, residuals) = tried[kept, self.shrinkage_]
        # the interval's half-width in posterior standard deviations that held 68% of the inner folds' results
        self.spread_factor_ = float(np.quantile(np.abs(residuals), COVERAGE)) if len(residuals) else 1.0
        self.fallback_ = self._guard()
        self.learned_: dict[str, LinearRecommender] = {}
        for protocol, mask in self._learned_protocols(train).items() if LEARNED in kept else ():
            self.learned_[protocol] = LinearRecommender().fit_sparse(train.loc[mask])
        # the history, with the facts `history-lr` reads where a session is to refit it
        self.history_ = train[_history_columns(bool(self.learned_), train.columns)].copy()
        self.priors_ = Priors.fit(self.history_, list(_protocols(self.history_).unique()))
        return self

    # --- the fitted state as plain values (`recommender.models.fit_cache` keeps it between calls) ---------------

    def get_state(self) -> tuple[dict[str, object], dict[str, pd.DataFrame]]:
        """The fitted state: JSON values (parameters, sources, the reliability line, shrinkage, spread factor,
        fallback, each `history-lr`'s parameters, encoder and intercept) and tables (the history the priors come
        from, with the facts `history-lr` was fitted on where there is one; the inner folds' taus; the `history-lr`
        weights by protocol)."""
        check_fitted(self, "history_")
        params = self.get_params()
        values: dict[str, object] = {
            "params": {**params, "scores": list(params["scores"])}, "sources": list(self.sources_),
            "intercepts": [float(v) if np.isfinite(v) else None for v in self.intercepts_], "slope": self.slope_,
            "shrinkage": self.shrinkage_, "spread_factor": self.spread_factor_, "fallback": self.fallback_,
            "learned": [{"protocol": p, "params": est.get_params(), "encoder": est.encoder_.get_state(),
                         "intercept": est.intercept_} for p, est in self.learned_.items()]}
        weights = pd.DataFrame({"protocol": [p for p, est in self.learned_.items() for _ in est.weights_],
                                "coef": np.concatenate([est.weights_ for est in self.learned_.values()] or [[]])})
        return values, {"history": self.history_, "inner_taus": self.inner_taus_, "learned": weights}

    @classmethod
    def from_state(cls, values: dict[str, object], tables: dict[str, pd.DataFrame]) -> Auto:
        """The `Auto` whose `get_state` gave ``values`` and ``tables``, every field checked (a ValueError names the
        first wrong one); the priors are computed again from the history."""
        params = values["params"]
        if not isinstance(params, dict):
            raise ValueError("params must be an object")
        est = cls(**{**params, "scores": tuple(params.get("scores", ()))})
        est._validate_params()
        sources, intercepts = values["sources"], values["intercepts"]
        if not (isinstance(sources, list) and all(isinstance(s, str) for s in sources) and len(sources) >= 2):
            raise ValueError("sources must be a list of names")
        if not (isinstance(intercepts, list) and len(intercepts) == len(sources)
                and all(v is None or isinstance(v, float) for v in intercepts)):
            raise ValueError("intercepts must hold one number or null per source")
        numbers = {name: values[name] for name in ("slope", "shrinkage", "spread_factor")}
        if not all(isinstance(v, float) and np.isfinite(v) for v in numbers.values()):
            raise ValueError("slope, shrinkage and spread_factor must be finite numbers")
        fallback = values["fallback"]
        if fallback is not None and not (isinstance(fallback, str) and fallback in sources):
            raise ValueError("fallback must be null or a source")
        history, taus = tables["history"], tables["inner_taus"]
        learned = _learned_from_state(values["learned"], tables["learned"])
        if list(history.columns) != _history_columns(bool(learned), history.columns) or "performance" not in history:
            raise ValueError(f"the history must hold the columns {', '.join(HISTORY)}"
                             + (f" and the facts {', '.join(LEARNED_COLUMNS)}" if learned else ""))
        if list(taus.columns) != ["auto", *sources]:
            raise ValueError("the inner taus must hold auto and each source")
        est.sources_ = sources
        est.intercepts_ = np.array([np.nan if v is None else v for v in intercepts], dtype=float)
        est.slope_, est.shrinkage_, est.spread_factor_ = (float(numbers[n]) for n in numbers)  # type: ignore[arg-type]
        est.fallback_ = fallback
        est.inner_taus_ = taus
        est.history_ = history
        est.priors_ = Priors.fit(history, list(_protocols(history).unique()))
        est.learned_ = learned
        return est

    def _nested(self, records: list[Record], lines: dict[str, tuple[np.ndarray, float]], shrinkage: float
                ) -> tuple[pd.DataFrame, np.ndarray]:
        """Each inner group's weighted tau for `auto` (its line fitted without the group's dataset) and for each
        single source (0 where unavailable: no opinion), and auto's standardized residuals there."""
        taus, residuals = [], []
        for record in records:
            combined = self._combine(record.z, *lines[record.dataset], shrinkage=shrinkage)
            row = {"auto": weighted_tau(combined.mean, record.truth) if combined else 0.0}
            for s, name in enumerate(self.sources_):
                known = np.isfinite(record.z[:, s]).all() and np.ptp(record.z[:, s]) > 0
                row[name] = weighted_tau(record.z[:, s], record.truth) if known else 0.0
            taus.append(row)
            if combined:
                residuals.extend((record.truth - combined.mean) / combined.std)
        return pd.DataFrame(taus, columns=["auto", *self.sources_], dtype=float), np.asarray(residuals)

    def _measured(self) -> list[str]:
        """The sources the inner folds measured (a finite intercept), in the order of ``sources_``."""
        return [s for s, b in zip(self.sources_, self.intercepts_, strict=True) if np.isfinite(b)]

    def guard(self) -> Guard | None:
        """The inner folds' comparison of the combination with the best single source they measured (None with
        fewer than two folds or no measured source)."""
        check_fitted(self, "inner_taus_")
        taus = self.inner_taus_
        measured = self._measured()
        if len(taus) < 2 or not measured:
            return None
        best = str(taus[measured].mean().idxmax())  # among the sources the folds measured
        difference = taus["auto"] - taus[best]
        return Guard(best, float(taus["auto"].mean()), float(taus[best].mean()),
                     float(difference.std() / np.sqrt(len(difference))))

    def _guard(self) -> str | None:
        """The best single source where the combination ranked the inner folds clearly worse than it, else None."""
        guard = self.guard()
        return guard.best if guard is not None and guard.verdict == "worse" else None

    def _combine(self, z: np.ndarray, intercepts: np.ndarray, slope: float,
                 observed: tuple[np.ndarray, np.ndarray] | None = None, shrinkage: float | None = None
                 ) -> Posterior | None:
        """The posterior of one group from its z-scored sources (NaN columns: unavailable), or None without any
        usable source. ``observed`` (row positions, results) moves the reliabilities (see `pooled`)."""
        available = np.isfinite(z).all(axis=0)
        usable = np.flatnonzero(available & np.isfinite(intercepts))
        if usable.size == 0:  # nothing measured: a history prior whose reliability no fold measured, if any
            unmeasured = [s for s in (0, 1) if available[s]]
            if not unmeasured:
                return None
            name = self.sources_[unmeasured[0]]
            return Posterior(z[:, unmeasured[0]], 1.0, pd.Series({name: np.nan}), pd.Series({name: 1.0}))
        part = z[:, usable]
        reliability = intercepts[usable] + slope * agreements(part)
        if observed is not None:
            reliability = pooled(reliability, part[observed[0]], observed[1], self.prior_strength)
        if (reliability <= 0).all():  # no source is predicted to help: the one the history trusts most, unweighted
            best = int(np.argmax(intercepts[usable]))
            names = [self.sources_[s] for s in usable]
            return Posterior(part[:, best], 1.0, pd.Series(0.0, index=names),
                             pd.Series(np.arange(len(names)) == best, index=names, dtype=float))
        return posterior(part, [self.sources_[s] for s in usable], reliability,
                         self.shrinkage_ if shrinkage is None else shrinkage)

    # --- prediction ----------------------------------------------------------------------------------------------

    def posteriors(self, test: pd.DataFrame, observed: pd.DataFrame | None = None,
                   moved: Mapping[str, np.ndarray] | None = None) -> dict[str, tuple[pd.DataFrame, Posterior | None]]:
        """Per ranking group of the test pairs, its sources' values and posterior (None: no usable source).
        ``observed`` holds results the user measured on the test datasets (model, dataset, performance);
        ``moved`` (by source name, one value per test pair) replaces sources' values (`AutoSession`: the own
        protocol's history priors re-weighted by the results)."""
        out = {}
        for group, rows in test.groupby(ranking_groups(test), sort=True):
            values = self._values(self.priors_, rows, self._learned_values(rows))
            for source, replaced in (moved or {}).items():
                values[source] = replaced[test.index.get_indexer(rows.index)]
            z, available = source_matrix(values)
            z[:, [j for j in range(z.shape[1]) if j not in available]] = np.nan
            seen = None
            if observed is not None and len(observed):
                mine = observed.loc[observed["dataset"].astype(str) == str(rows["dataset"].iloc[0])]
                by_model = mine.groupby(mine["model"].astype(str))["performance"].mean()
                positions = np.flatnonzero(rows["model"].astype(str).isin(by_model.index).to_numpy())
                seen = (positions, by_model.reindex(rows["model"].astype(str).iloc[positions]).to_numpy(dtype=float))
            out[str(group)] = (values, self._combine(z, self.intercepts_, self.slope_, seen))
        return out

    def assess(self, test: pd.DataFrame, observed: pd.DataFrame | None = None,
               moved: Mapping[str, np.ndarray] | None = None) -> Assessment:
        """The ranking, the spread and the explanation of the test pairs in one pass (see `predict`, `spread` and
        `explain`)."""
        score, spread = np.full(len(test), np.nan), np.full(len(test), np.nan)
        rows: list[dict] = []
        for group, (values, combined) in self.posteriors(test, observed, moved).items():
            if combined is None:
                continue
            positions = test.index.get_indexer(values.index)
            fallback = self._fallback(combined, observed)
            if fallback is not None:
                combined = alone(combined, source_matrix(values[[fallback]])[0][:, 0], fallback)
            score[positions] = combined.mean
            spread[positions] = combined.std * self.spread_factor_
            rows.extend({"group": group, "source": source, "reliability": reliability, "weight": weight}
                        for source, reliability, weight in zip(combined.weight.index, combined.reliability,
                                                               combined.weight.astype(float), strict=True))
        return Assessment(score, spread, pd.DataFrame(rows, columns=["group", "source", "reliability", "weight"]))

    def predict(self, test: pd.DataFrame, budget: int | None = None, observed: pd.DataFrame | None = None,
                moved: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """The posterior mean of each pair's z-scored result (of the guard's single source where it fell back)."""
        return self.assess(test, observed, moved).score

    def _fallback(self, combined: Posterior, observed: pd.DataFrame | None = None) -> str | None:
        """The guard's single source where it fell back and the group has that source, else None; never once
        ``MIN_OBSERVED`` results are observed (they weigh the sources then)."""
        if observed is not None and len(observed) >= MIN_OBSERVED:
            return None
        return self.fallback_ if self.fallback_ in combined.weight.index else None

    def spread(self, test: pd.DataFrame, observed: pd.DataFrame | None = None,
               moved: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """The half-width of each pair's 68% interval, in z units of its group (NaN without a usable source)."""
        return self.assess(test, observed, moved).spread

    def explain(self, test: pd.DataFrame, observed: pd.DataFrame | None = None,
                moved: Mapping[str, np.ndarray] | None = None) -> pd.DataFrame:
        """Per ranking group and source: the predicted reliability and the weight in the ranking."""
        return self.assess(test, observed, moved).explanation

    def session(self, candidates: pd.DataFrame) -> AutoSession:
        """A session over one dataset's candidate pairs (without performance): `evaluate --adaptive` and `next` show
        it each result, which moves the reliabilities (`pooled`) and re-weights the history under the candidates'
        protocol towards the training datasets the results agree with (a `SimilaritySearch` fitted on that history
        for the session): its mean prior becomes the weighted mean, its `history-lr` is refitted on the weighted
        pairs."""
        protocol = _protocols(candidates).iloc[0] if len(candidates) else ""
        own = self.history_.loc[(_protocols(self.history_) == protocol).to_numpy()]
        measured = self._measured()
        reweighted = {s for s in (PRIOR, LEARNED) if s in measured and (s == PRIOR or protocol in self.learned_)}
        similar = None
        if own["dataset"].nunique() >= 2 and reweighted:
            search = SimilaritySearch(**({"max_inner_folds": 4} | (self.similarity or {}))).fit(own)
            similar = cast(SimilaritySession, search.session(candidates))
        return AutoSession(self, candidates, similar, own if LEARNED in reweighted else None, PRIOR in reweighted)


def _history_columns(learned: bool, columns: pd.Index) -> list[str]:
    """The kept history's columns: those of ``HISTORY`` among ``columns`` and, where a `history-lr` is kept (a
    session refits it), every fact it reads."""
    return [c for c in HISTORY if c in columns] + ([c for c in LEARNED_COLUMNS if c not in HISTORY] if learned else [])


def _chosen(taus: dict[tuple[tuple[str, ...], float], pd.Series]) -> tuple[tuple[str, ...], float]:
    """The (prior, shrinkage) to keep, from each one's inner-fold taus of the combination: per prior the shrinkage
    of the best mean (ties: the larger, the simpler model); the first prior of `PRIOR_CHOICES` unless another's
    mean beats it by more than the standard error of their difference over the folds (then the best of those)."""

    def mean(c: tuple[tuple[str, ...], float]) -> float:
        return float(taus[c].mean()) if len(taus[c]) else 0.0

    best: dict[tuple[str, ...], tuple[tuple[str, ...], float]] = {}
    for prior, shrinkage in taus:
        if prior not in best or (mean((prior, shrinkage)), shrinkage) > (mean(best[prior]), best[prior][1]):
            best[prior] = (prior, shrinkage)
    simple = best[PRIOR_CHOICES[0]]
    difference = {p: taus[c] - taus[simple] for p, c in best.items()}
    better = [c for p, c in best.items()
              if len(taus[c]) >= 2 and difference[p].mean() > difference[p].std() / np.sqrt(len(taus[c]))]
    return max(better, key=mean) if better else simple


def _without(record: Record, sources: list[int]) -> Record:
    """The record with the given sources unavailable (NaN columns)."""
    z = record.z.copy()
    z[:, sources] = np.nan
    return Record(record.dataset, z, record.truth)


def _learned_from_state(entries: object, weights: pd.DataFrame) -> dict[str, LinearRecommender]:
    """Each protocol's `history-lr` from `Auto.get_state`'s entries and weights, every field checked (a ValueError,
    or `PairRecommender.with_encoder`'s UserError, names the first wrong one)."""
    if not isinstance(entries, list) or list(weights.columns) != ["protocol", "coef"]:
        raise ValueError("learned must be a list, its weights a table of protocol and coef")
    learned = {}
    for entry in entries:
        if not (isinstance(entry, dict) and set(entry) == {"protocol", "params", "encoder", "intercept"}
                and isinstance(entry["protocol"], str) and isinstance(entry["params"], dict)
                and isinstance(entry["intercept"], float) and np.isfinite(entry["intercept"])):
            raise ValueError("each learned entry must hold a protocol, params, an encoder and a finite intercept")
        est = cast(LinearRecommender, LinearRecommender.with_encoder(entry["params"], entry["encoder"]))
        coef = weights.loc[weights["protocol"] == entry["protocol"], "coef"].to_numpy(dtype=float)
        if coef.shape != est._weight_spec()["coef"][0] or not np.isfinite(coef).all():
            raise ValueError(f"the learned weights of {entry['protocol']} do not fit its encoder")
        est._set_weights({"coef": coef, "intercept": np.asarray(entry["intercept"])})
        learned[entry["protocol"]] = est
    return learned


def alone(combined: Posterior, z: np.ndarray, name: str) -> Posterior:
    """The posterior given one source of a group: its z-scores (``z``) times its predicted reliability, at least
    ``MIN_RELIABILITY`` so that it still orders the pool, and the variance that reliability leaves."""
    r = float(np.clip(combined.reliability[name], MIN_RELIABILITY, MAX_RELIABILITY))
    weight = pd.Series(np.where(combined.weight.index == name, r, 0.0), index=combined.weight.index)
    return Posterior(z * r, float(np.sqrt(1 - r * r)), combined.reliability, weight)


@dataclass(frozen=True)
class Guard:
    """`Auto.guard`: the inner folds' mean weighted tau of the combination and of its best single source, and the
    standard error of their difference over the folds."""

    best: str
    combined: float
    single: float
    error: float

    @property
    def verdict(self) -> str:
        """"better" or "worse" where the combination's mean differs from the source's by more than the standard
        error, else "cannot tell"."""
        difference = self.combined - self.single
        return "better" if difference > self.error else "worse" if difference < -self.error else "cannot tell"

    def says(self, label: str) -> str:
        """What the guard decided, in words (``label``: how the source is named to the user)."""
        numbers = f"weighted tau {self.combined:.2f} against {self.single:.2f}, standard error {self.error:.2f}"
        if self.verdict == "worse":
            return (f"on inner folds the combination ranked worse than {label} alone ({numbers}), which therefore "
                    "orders the pool")
        if self.verdict == "better":
            return f"on inner folds the combination ranked better than {label} alone ({numbers})"
        return (f"on inner folds the combination and {label} alone ranked alike ({numbers}): the folds cannot tell "
                "them apart")


@dataclass(frozen=True)
class Assessment:
    """`Auto.assess`: each pair's ranking value and 68% half-width, and per group each source's reliability and
    weight."""

    score: np.ndarray
    spread: np.ndarray
    explanation: pd.DataFrame


class AutoSession(Session):
    """`auto` on one dataset's candidates, its reliabilities moved by each result observed and the history under
    their protocol re-weighted by them (`Auto.session`)."""

    def __init__(self, auto: Auto, candidates: pd.DataFrame, similar: SimilaritySession | None,
                 learned_history: pd.DataFrame | None, mean: bool):
        self.auto = auto
        self.candidates = candidates.reset_index(drop=True)
        self.similar = similar  # the training datasets' weights, None where nothing is re-weighted
        self.learned_history = learned_history  # the pairs `history-lr` is refitted on, None where it is not
        self.mean = mean  # whether the mean prior is re-weighted

    def _moved(self, picked: list[int], values: np.ndarray) -> tuple[dict[str, np.ndarray], str | None]:
        """The re-weighted history priors' values on the candidates (none before the weights leave equal ones; LR
        from ``MIN_OBSERVED`` results on), and which training datasets the results moved the weights towards."""
        if self.similar is None:
            return {}, None
        weights, agreement = self.similar.weights(picked, values)
        # LR is refitted from MIN_OBSERVED results on, as the reliabilities move: agreements of two or three results
        # are mostly noise, and each refit costs `next` a sparse solve (and scipy's import)
        refit = self.learned_history if len(picked) >= MIN_OBSERVED else None
        prior = " and ".join(what for what, on in (("mean z-score", self.mean), ("LR", refit is not None)) if on)
        reason = (moved_datasets(self.similar.names, weights, agreement, len(picked), prior) if prior else
                  f"LR is refitted with its {len(weights)} training datasets weighted by your results once "
                  f"{MIN_OBSERVED} are observed")
        if np.ptp(weights) == 0:  # equal weights: the priors as fitted
            return {}, reason
        moved = {PRIOR: self.similar.rank(picked, values).score} if self.mean else {}
        if refit is not None:
            protocol = str(_protocols(self.candidates).iloc[0])
            fitted = self.auto.learned_[protocol]
            by_dataset = pd.Series(weights * len(weights), index=self.similar.names.astype(str))  # mean 1
            sample_weight = by_dataset.reindex(refit["dataset"].astype(str)).to_numpy(dtype=float)
            refitted = fitted.reweighted(refit, sample_weight)
            moved[LEARNED] = self.auto._learned_values(self.candidates, {protocol: refitted})
        return moved, reason

    def rank(self, picked: Sequence[int], values: Sequence[float] | np.ndarray, explain: bool = False) -> Ranking:
        """The posterior mean and spread of every candidate given the observed results of the picked ones."""
        picked, values = list(picked), np.asarray(values, dtype=float)
        observed = self.candidates.loc[picked, ["model", "dataset"]].assign(performance=values)
        moved, moved_reason = self._moved(picked, values)
        assessed = self.auto.assess(self.candidates, observed=observed, moved=moved)
        reasons = None
        if explain:
            reason = self.reason(observed, moved, assessed.explanation)
            if moved_reason is not None:
                said = f"{len(picked)} result(s) observed, fewer than the {MIN_CORRELATION} a correlation needs: "
                reason += f"; the history under your protocol: {moved_reason.removeprefix(said)}"
            reasons = [reason] * len(assessed.score)
        return Ranking(assessed.score, assessed.spread, reasons)

    def reason(self, observed: pd.DataFrame, moved: Mapping[str, np.ndarray], explanation: pd.DataFrame) -> str:
        """Each source's weight (``explanation``: `Auto.explain` given the observed results), and how far the
        observed results moved its reliability."""
        after = explanation.set_index("source")
        shifted = len(observed) >= MIN_OBSERVED
        before = (self.auto.explain(self.candidates, moved=moved).set_index("source")["reliability"].astype(float)
                  if shifted else pd.Series(dtype=float))
        parts = [f"{source} {weight:.2f}" + (f" (reliability {before[source]:.2f} -> "
                                             f"{reliability:.2f})" if shifted and source in before.index
                                             else f" (reliability {reliability:.2f})")
                 for source, weight, reliability in zip(after.index.astype(str), after["weight"], after["reliability"],
                                                        strict=True)]
        head = (f"weights after your {len(observed)} result(s)" if shifted else
                f"{len(observed)} result(s) observed, fewer than the {MIN_OBSERVED} a correlation needs: weights as "
                f"the history predicts")
        guard = None if shifted else self.auto.guard()  # from MIN_OBSERVED results on, they weigh the sources
        said = f" ({guard.says(guard.best)})" if guard is not None and guard.best in after.index else ""
        return f"{head}: {', '.join(parts) or 'none'}{said}"
