"""Rank a scored pool of candidate models: by `auto` fitted on the store's history, by a saved recommender (with the
store's model and protocol facts, stacked with the scores), or by one score."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from recommender.contracts import DEFAULT_PROTOCOL, score_column, score_name
from recommender.errors import UserError
from recommender.zoo.datasets import Dataset
from recommender.zoo.provider import Provider

if TYPE_CHECKING:
    from recommender.history import Store
    from recommender.models.auto import Auto
    from recommender.models.base import PairRecommender

from recommender.zoo.scoring import dataset_row_of


def models_of_modality(providers: Sequence[Provider], ds: Dataset) -> tuple[list[Provider], str]:
    """The providers whose models take ds's modality (`recommender.models.pairs.same_modality`, the rule
    `recommend` and `next` apply too), and a note naming what was left out ("" if nothing)."""
    from recommender.models.pairs import same_modality

    pool = pd.DataFrame({"model": [p.name for p in providers], "modality": [p.modality for p in providers]})
    kept, note = same_modality(pool, ds.modality, ds.name)
    return [p for p, keep in zip(providers, pool.index.isin(kept.index), strict=True) if keep], note


def observed_in_store(store: Store, recommender: PairRecommender, dataset: str, models: Sequence[str],
                      protocol: str | None = None) -> tuple[pd.Series, str]:
    """The results the store holds for ``dataset`` on the pool's ``models`` under the protocol the user fine-tunes
    under (``protocol``, else the recommender's training protocol): performance by model, and a note ("" if none)."""
    from recommender.contracts import protocol_names
    from recommender.models.observed import gather_observed

    name = protocol or str(recommender.training_.get("protocol") or DEFAULT_PROTOCOL)
    stored = list(store.protocols()["protocol"].unique())
    named = [n for n in protocol_names(name, stored) if n in stored] if stored else []
    if not named:  # no job under it: nothing tried
        return pd.Series(dtype=float), ""
    logged = store.pair_table(named, select=str(recommender.training_.get("select") or "val"))
    observed, sources = gather_observed(logged, dataset, set(models), None, name)
    note = (f"{dataset}: {sources[0]}: tried models are not ranked: they follow the ranking with their `observed` "
            "result") if len(observed) else ""
    return observed, note


def with_store_facts(pairs: pd.DataFrame, store_models: pd.DataFrame) -> pd.DataFrame:
    """Fill missing model facts from the store's model features (indexed by model id)."""
    out = pairs.set_index("model")
    known = store_models.reindex(out.index)
    for col in known.columns.intersection(out.columns):
        out[col] = out[col].where(out[col].notna(), known[col])
    return out.reset_index()


def load_checked_recommender(path: str, ds: Dataset, scores: Sequence[str],
                             allow_modality_mismatch: bool = False) -> PairRecommender:
    """The saved recommender at ``path``, checked before any feature is extracted: it must be trained on ds's
    modality (unless ``allow_modality_mismatch``, then a warning) and its features may use only the given scores."""
    from recommender.models.evidence import check_modality
    from recommender.models.factory import load_recommender
    from recommender.models.features import parse_features

    est = load_recommender(path)
    needed = [name for name in (score_name(c) for c in parse_features(est.features)[1])
              if name not in scores]
    if needed:
        raise UserError(f"the recommender's features {est.features} need score(s) {', '.join(needed)}: "
                        f"add them to --scores")
    check_modality(est, pd.DataFrame([dataset_row_of(ds)]), allow_modality_mismatch)
    return est


def with_protocol_facts(pairs: pd.DataFrame, store: Store, recommender: PairRecommender,
                        protocol: str | None = None) -> pd.DataFrame:
    """The scored pool with the facts (``p_`` columns) of the protocol the user fine-tunes under, for a recommender
    that reads them (the ``p`` block): ``protocol``, else its training protocol; unchanged otherwise
    (`recommender.models.recommend.target_protocol`, `with_protocol`)."""
    from recommender.models.recommend import target_protocol, with_protocol

    target = target_protocol(recommender, store, protocol)
    return pairs if target is None else with_protocol(pairs, store, target)


@dataclass(frozen=True)
class Stacking:
    """How a d,m-only recommender's prediction is combined with the scores just computed: weights of the prior
    (the prediction) and of each score, all z-scored over the pool, and where the weights come from."""

    weights: dict[str, float]
    origin: str


def stacking_for(store: Store, recommender: PairRecommender, scores: Sequence[str]) -> Stacking | None:
    """The stacking rule for a recommender that uses no score (None for one that does): ridge weights of the
    history prior (mean-perf of the recommender's training protocol) and the scores the store holds with it,
    fitted on the spot (`recommender.models.rankers.Stacked`); equal weights where the store holds none."""
    from recommender.models.features import parse_features
    from recommender.models.rankers import MeanNormalisedPerformance, Stacked

    if parse_features(recommender.features)[1]:
        return None
    training = recommender.training_
    protocol = training.get("protocol") or DEFAULT_PROTOCOL
    stored = sorted(set(store.scores(list(scores))["score"]))
    if stored:
        pairs = store.pair_table(protocol, training.get("modality"), scores=stored,
                                 select=training.get("select") or "val")
        scored = pairs.reindex(columns=[score_column(s) for s in stored]).notna().any(axis=1)
        if pairs.loc[scored, "dataset"].nunique() >= 2:
            fitted = Stacked(MeanNormalisedPerformance(), tuple(stored)).fit(pairs)
            return Stacking({str(k): float(v) for k, v in fitted.weights_.items()},
                            f"weights fitted on {int(scored.sum())} stored pairs with scores under {protocol}")
    return Stacking(dict.fromkeys(["prior", *scores], 1.0),
                    f"equal weights (the store holds no {', '.join(scores)} under {protocol} to fit them on)")


def fit_auto(store: Store, scores: Sequence[str], modality: str | None, protocol: str | None = None
             ) -> tuple[Auto | None, str]:
    """`auto` (`recommender.models.auto.Auto`) fitted on the store's history of the modality, every protocol, with
    the stored values of the scores computed (test values choose each pair's hyper-parameters where validation
    ones are missing: the store's `val` selection), its inner folds on ``protocol``'s datasets where it has enough
    (the protocol the user fine-tunes under); None and why where the store holds too little to learn from."""
    from recommender.models.auto import Auto
    from recommender.models.fit_cache import fitted_auto

    def training() -> pd.DataFrame:
        try:
            history, _ = store.scored_history(modality, "val", scores)
        except UserError as exc:  # an empty store, or none of this modality
            raise TooLittleHistory(str(exc)) from None
        if history["dataset"].nunique() < 2:
            raise TooLittleHistory(f"the store holds fewer than 2 {modality or ''} datasets to learn from")
        return history

    try:
        est = fitted_auto(store, {"command": "rank", "modality": modality, "scores": list(scores),
                                  "protocol": protocol}, training,
                          lambda history: Auto(tuple(scores), protocol=protocol).fit(history))
    except TooLittleHistory as exc:
        return None, str(exc)
    return est, (f"fitted on the store's {len(est.history_)} {modality or ''} pairs of "
                 f"{est.history_['protocol'].nunique()} protocol(s), {est.measured_on}")


class TooLittleHistory(Exception):
    """The store holds too little of the modality for `auto` to learn from (`fit_auto` says why)."""


def auto_from_store(url: str | None, scores: Sequence[str], modality: str | None, protocol: str | None = None
                    ) -> tuple[tuple[Auto, str] | None, str]:
    """``fit_auto`` on the store at ``url`` (for ``protocol``), or None and a note saying why the scores alone
    order the pool (no store, or too little history in it)."""
    from recommender.history import open_store

    try:
        store = open_store(url)
    except UserError as exc:
        return None, f"{exc}; the scores alone order the pool (`recommender history init` loads the bundled history)"
    fitted, origin = fit_auto(store, scores, modality, protocol)
    if fitted is None:
        return None, f"{origin}; the scores alone order the pool"
    return (fitted, origin), ""


def auto_evidence(auto: Auto, explained: pd.DataFrame, origin: str) -> str:
    """What `auto` trusted on the pool, and how sure it is: each source's weight and predicted reliability
    (``explained``: `Auto.explain` on the pool)."""
    from recommender.models.auto import LABELS as label
    used = ", ".join(f"{label.get(source, source)} {weight:.2f} (reliability {reliability:.2f})" for source, weight,
                     reliability in zip(explained["source"].astype(str), explained["weight"], explained["reliability"],
                                        strict=True))
    unused = [label.get(s, s) for s in auto.sources_ if s not in set(explained["source"])]
    text = f"auto ({origin}): weights {used or 'none'}"
    guard = auto.guard()
    if guard is not None and guard.best in set(explained["source"]):  # said where that source could order the pool
        text += f"; {guard.says(label.get(guard.best, guard.best))}"
    text += f"; not used (absent here, or never measured on the history): {', '.join(unused)}" if unused else ""
    return text + "; spread: half-width of the 68% interval of each result, in standard deviations of the pool"


def _pool_z(values: pd.Series) -> np.ndarray:
    """values z-scored over the pool; a missing value counts as the pool mean (0)."""
    from recommender.normalise import zscore_within

    return zscore_within(values.astype(float), np.zeros(len(values))).fillna(0.0).to_numpy()


def rank_pool(pairs: pd.DataFrame, scores: Sequence[str], recommender: PairRecommender | None = None,
              stacking: Stacking | None = None, auto: tuple[Auto, str] | None = None) -> tuple[pd.DataFrame, str]:
    """Order the pool, and say by which evidence: by the recommender's prediction when given (with a warning for
    each kind of missing evidence, e.g. a model it knows nothing about), which uses the scores if it was trained
    with them, or is stacked with them by ``stacking`` (``stacking_for``); else by ``auto`` (a fitted `Auto` and
    where it was fitted: ``fit_auto``) with each model's spread; else by the first score."""
    out = pairs.copy()
    if auto is not None and recommender is None:
        fitted, origin = auto
        assessed = fitted.assess(out)
        out["auto"], out["spread"] = assessed.score, assessed.spread
        key, evidence = "auto", auto_evidence(fitted, assessed.explanation, origin)
    elif recommender is not None:
        from recommender.models.evidence import warn_missing_evidence
        from recommender.models.features import parse_features

        warn_missing_evidence(recommender, out)
        start = time.perf_counter()
        out["predicted"] = np.asarray(recommender.predict(out), dtype=float)
        out["seconds_predict"] = time.perf_counter() - start
        key = "predicted"
        history = recommender.training_.get("protocol") or DEFAULT_PROTOCOL
        used = [score_name(c) for c in parse_features(recommender.features)[1]]
        evidence = f"{recommender.kind} ({recommender.features}) trained on history {history}"
        evidence += f", with the computed score(s) {', '.join(used)} as features" if used else ""
        evidence += f", for protocol {out['protocol'].iloc[0]}" if "protocol" in out.columns else ""
        if stacking is not None:
            weights = {k: w for k, w in stacking.weights.items() if k == "prior" or score_column(k) in out.columns}
            out["combined"] = sum(w * _pool_z(out["predicted"] if k == "prior" else out[score_column(k)])
                                  for k, w in weights.items())
            key = "combined"
            evidence += (", stacked with the computed score(s) "
                         + ", ".join(f"{k} ({w:.2f})" for k, w in weights.items() if k != "prior")
                         + f" against the prediction ({weights['prior']:.2f}); {stacking.origin}")
            unused = [s for s in scores if s not in weights]
            evidence += f"; not used (no stored history to weigh them): {', '.join(unused)}" if unused else ""
    else:
        key = score_column(scores[0])
        evidence = f"the computed score {scores[0]} alone (no --recommender)"
    if out[key].isna().all():
        raise UserError(f"cannot rank: {key} is missing for every model")
    out = out.sort_values(key, ascending=False, na_position="last").reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out, "ordered by " + evidence
