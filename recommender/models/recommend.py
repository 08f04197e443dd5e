"""Recommendations from a trained recommender: the datasets asked about (one, a list or a file of facts), the pool
of candidate models, the pairs to predict, and the predictions read as expected performance in the metric's units.

A recommender predicts performance z-scored within each dataset (its training target). A z-score is read back in
the metric's units with the dataset's own mean and standard deviation (population, as the target used) over the
training history's pairs; a dataset new to the history has no scale of its own, so the typical training dataset's
(the mean of their means and of their standard deviations) stands in, and a note says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import pandas as pd

from recommender import contracts
from recommender.contracts import DATASET_FACTS, DEFAULT_PROTOCOL, protocol_examples, score_name
from recommender.errors import UserError
from recommender.history import Store
from recommender.models.base import PairRecommender
from recommender.models.evidence import check_evidence
from recommender.models.features import BLOCKS, parse_features
from recommender.models.observed import gather_observed
from recommender.models.pairs import MODEL_COLUMNS, candidate_pairs, same_modality, top_k, tried_last
from recommender.models.request_files import FACTS, UserTable
from recommender.models.warm_start import WARM_START, model_factors, warm_update

SHOWN_MODEL_FACTS = ("family", "params_m", "pretrain_dataset")  # the model facts shown beside each recommendation
COLUMNS = ["dataset", "rank", "model", *SHOWN_MODEL_FACTS, "expected", "predicted_z", "spread", "in_sample", "measured",
           "observed"]


@dataclass
class Recommendation:
    """The top-k models of each dataset asked about, as one table (``COLUMNS``), and what a reader should know."""

    table: pd.DataFrame
    pool_size: int  # candidate models per dataset (the most of any dataset asked about)
    metric: str  # the unit of `expected` and `measured`
    notes: dict[str, list[str]] = field(default_factory=dict)  # by dataset, in the order found

    def all_notes(self) -> list[str]:
        """Every note once, in order."""
        return list(dict.fromkeys(note for notes in self.notes.values() for note in notes))


def lookup_dataset_row(pairs: pd.DataFrame, datasets: pd.DataFrame, name: str,
                **facts: object) -> dict[str, object]:
    """The pair-table features of dataset ``name``: from the training pairs, else the store's dataset facts, each
    overridden by the given ``facts`` (examples, classes, group, modality) that are not None or NaN
    (`recommender.contracts.dataset_row`)."""
    row: dict[str, object] = {}
    known = pairs[pairs["dataset"] == name]
    stored = datasets[datasets["dataset"] == name]
    if not known.empty:
        row.update(cast("dict[str, object]", known.iloc[0][list(DATASET_FACTS)].to_dict()))
    elif not stored.empty:
        row.update(cast("dict[str, object]", stored.iloc[0].reindex(list(DATASET_FACTS)).to_dict()))
    row.update({k: v for k, v in facts.items() if v is not None and not (isinstance(v, float) and math.isnan(v))})
    return contracts.dataset_row(name, **row)


def with_stored_facts(pool: pd.DataFrame, stored: pd.DataFrame) -> pd.DataFrame:
    """A user's pool of candidate models with the model facts it leaves out (a column or a blank cell) taken from
    the store's ``stored`` model features."""
    pool = pool.reindex(columns=list(dict.fromkeys([*pool.columns, *MODEL_COLUMNS])))
    stored = stored.set_index("model").reindex(pool["model"])
    for column in MODEL_COLUMNS[1:]:
        pool[column] = pool[column].where(pool[column].notna(), stored[column].to_numpy())
    return pool


def check_known_values(requests: pd.DataFrame, known: pd.DataFrame, where: str) -> None:
    """Refuse a group or modality the store has never seen (a typo would silently rank as a new kind of dataset):
    one line listing the known values. ``where`` names the source of the requests (flags or a file). A store that
    holds no value of a column (no dataset facts) cannot tell: nothing is refused there."""
    for column in ("group", "modality"):
        values = set(known[column].dropna().astype(str)) if column in known.columns else set()
        for i, value in enumerate(requests[column] if values else (), start=1):
            if pd.notna(value) and str(value) not in values:
                at = f"--{column}" if where == "flags" else f"{where}: row {i}: {column}:"
                raise UserError(f"{at} unknown {column} {value!r}; the store knows {', '.join(sorted(values))}")


def performance_scale(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per training dataset, the mean and population standard deviation of its measured performance (the scale of
    the within-dataset z-score the recommenders learn)."""
    measured = pairs[pairs["performance"].notna()]
    # named aggregations give a DataFrame; pandas-stubs types every SeriesGroupBy.agg as a Series
    return cast(pd.DataFrame,
                measured.groupby("dataset")["performance"].agg(mean="mean", std=lambda v: float(np.std(v, ddof=0))))


def dataset_scale(dataset: str, scale: pd.DataFrame) -> tuple[float, float, bool]:
    """The mean and standard deviation that read ``dataset``'s z-scores in the metric's units (expected =
    mean + z * std): its own (``performance_scale``), else the typical training dataset's (the mean of the means
    and of the standard deviations), and whether they are its own."""
    if dataset in scale.index:
        # one cell of a float column (the index is unique); pandas-stubs types a .loc cell as any scalar
        return float(scale.loc[dataset, "mean"]), float(scale.loc[dataset, "std"]), True  # type: ignore[arg-type]
    return float(scale["mean"].mean()), float(scale["std"].mean()), False


def target_protocol(est: PairRecommender, store: Store, named: str | None = None) -> str | None:
    """The protocol whose facts the candidate pairs carry: ``named`` (refused with one line listing the store's
    protocols if unknown), else, for a recommender with the protocol block ``p``, its one training protocol (one
    trained on several must be told which); None for a recommender without ``p`` and no protocol named."""
    if named is None and "p" not in parse_features(est.features)[0]:
        return None
    known = sorted(set(store.protocol_facts()["protocol"]) | set(store.protocols()["protocol"]))
    return named_or_trained_protocol(est, known, named)


def named_or_trained_protocol(est: PairRecommender, known: Sequence[str], named: str | None) -> str:
    """``named`` (refused with one line listing ``known`` if it is not among them), else the recommender's one
    training protocol (one trained on several must be told which)."""
    if named is None:
        names = contracts.protocol_names(str(est.training_.get("protocol") or DEFAULT_PROTOCOL), known)
        if len(names) > 1:
            raise UserError(f"the recommender was trained on several protocols ({', '.join(names)}): name the one "
                            f"you fine-tune under with --protocol")
        named = names[0]
    if named not in known:
        raise UserError(f"unknown protocol {named!r}; the store knows {', '.join(known) or 'none'}")
    return named


def with_protocol(candidates: pd.DataFrame, store: Store, protocol: str,
                  known: pd.DataFrame | None = None) -> pd.DataFrame:
    """The candidate pairs with ``protocol`` and its facts as the ``p_`` columns, as the store's pair table gives
    them: on a dataset of ``known`` (pair-table rows under ``protocol``) its ``p_examples`` and ``examples``; on
    another, the candidates' ``examples`` read as the full training split, ``p_examples`` the protocol's count on
    the dataset (per dataset, else fixed, else its train fraction of the split) and ``examples`` that count where
    the protocol gives one."""
    facts = store.protocol_facts().set_index("protocol")
    row = facts.loc[protocol] if protocol in facts.index else pd.Series(dtype=object)
    columns = [*BLOCKS["p"].categorical, *BLOCKS["p"].scalar]
    out = candidates.assign(protocol=protocol, **{c: row.get(c.removeprefix("p_"), np.nan) for c in columns})
    per_dataset = store.protocol_examples()
    per_dataset = per_dataset[per_dataset["protocol"] == protocol].set_index("dataset")["examples"]
    full = pd.to_numeric(out["examples"], errors="coerce").astype(float)
    number = {k: float(row[k]) if pd.notna(row.get(k)) else np.nan for k in ("examples", "train_fraction")}
    counts, examples = protocol_examples(out["dataset"].map(per_dataset).astype(float), number["examples"],
                                         number["train_fraction"], full)
    out = out.assign(p_examples=counts, examples=examples)
    if known is not None and not known.empty:
        stored = known.drop_duplicates("dataset").set_index("dataset")
        mine = out["dataset"].isin(stored.index)
        for column in ("p_examples", "examples"):
            out.loc[mine, column] = out.loc[mine, "dataset"].map(stored[column]).astype(float)
    return out


@dataclass(frozen=True)
class Request:
    """What `recommend` is asked: the datasets (`request_files.dataset_requests`) and, as read from the user's
    files (`recommender.models.request_files`), a pool of candidate models, score values (model, dataset, score,
    value or ``score_<name>`` columns) and results observed on the one dataset; ``k`` models per dataset; the
    ``protocol`` the user fine-tunes under; ``where`` names the datasets' source for messages ("flags" or a file)."""

    datasets: pd.DataFrame
    pool: pd.DataFrame | None = None
    scores: pd.DataFrame | None = None
    observed: UserTable | None = None
    k: int = 10
    protocol: str | None = None
    allow_modality_mismatch: bool = False
    where: str = "flags"


def recommend(est: PairRecommender, store: Store, request: Request) -> Recommendation:
    """The top ``k`` models of the pool for each requested dataset, by the recommender's prediction, with expected
    performance, the model facts and whether the pair was in the training history.

    The pool is the training protocol's models in the store, or the request's (its missing facts from the store).
    Score features come from the request, else from the store. A group or modality the store does not know is
    refused (``check_known_values``). The pairs carry the facts of the request's protocol, by default of the
    training protocol when the recommender uses them (``target_protocol``).

    Each dataset's results observed so far -- its jobs in the store under the protocol, and for one dataset the
    request's observed results -- update the prediction (``adaptive_update``): the ranking is by the updated
    prediction over the untried models; the tried ones follow it unranked with their result in ``observed``
    (``ranked_then_tried``); ``spread`` is the 68% half-width of the prediction (in predicted_z units); a note
    says what was used. Only models of each dataset's modality are candidates (``same_modality``)."""
    training = est.training_
    target = target_protocol(est, store, request.protocol)
    select = str(training.get("select", "val"))
    pairs, metrics = store.kept_pairs(str(training.get("protocol", DEFAULT_PROTOCOL)), training.get("modality"), select)
    if target is not None and (pairs["protocol"] == target).any():  # the dataset facts and scale under it
        pairs = pairs[pairs["protocol"] == target]
    datasets = store.dataset_features()
    check_known_values(request.datasets, datasets, request.where)
    if request.observed is not None and len(request.datasets) > 1:
        raise UserError("--observed holds results on one dataset: use it with --dataset")
    rows = [lookup_dataset_row(pairs, datasets, r["dataset"], **{k: r[k] for k in FACTS})
            for r in request.datasets.to_dict("records")]
    candidates, notes = _candidates(est, store, request, pairs, rows)
    if target is not None:
        candidates = with_protocol(candidates, store, target, pairs[pairs["protocol"] == target])
    check_evidence(est, candidates, request.allow_modality_mismatch)
    predicted = np.asarray(est.predict(candidates), dtype=float)
    protocol = target or str(training.get("protocol", DEFAULT_PROTOCOL))
    history = Measured.of(pairs)
    tables = []
    for row in rows:
        name = cast(str, row["dataset"])  # lookup_dataset_row's own name
        mine = (candidates["dataset"] == name).to_numpy()
        # a dataset the pair table left out (no facts in the store: the user's own) has its logged jobs read apart
        absent = protocol in metrics and not (pairs["dataset"] == name).any()
        logged = store.logged_results(protocol, name, select, metrics[protocol]) if absent else None
        table, found = _dataset_table(est, candidates.loc[mine].reset_index(drop=True), predicted[mine], pairs,
                                      name, request, protocol, history, logged, metrics.get(protocol, ""))
        tables.append(table)
        notes[name] += found
    table = pd.concat(tables, ignore_index=True)[COLUMNS]
    table["rank"] = table["rank"].astype("Int64")  # blank for the models tried already
    table["params_m"] = pd.to_numeric(table["params_m"], errors="coerce")
    metric = ", ".join(sorted({metrics[p] for p in pairs["protocol"].dropna().unique()}))
    return Recommendation(table, int(candidates.groupby("dataset")["model"].nunique().max()), metric, notes)


def _candidates(est: PairRecommender, store: Store, request: Request, pairs: pd.DataFrame,
                rows: list[dict[str, object]]) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """The candidate pairs of every requested dataset (``rows``: their pair-table features): the pool's models of
    the dataset's modality, with their score features; and the notes so far, by dataset."""
    pool = pairs if request.pool is None else with_stored_facts(request.pool, store.model_features())
    scores = _scores(est, store, [cast(str, row["dataset"]) for row in rows], request.scores)
    notes: dict[str, list[str]] = {cast(str, row["dataset"]): [] for row in rows}
    parts = []
    for row in rows:
        name = cast(str, row["dataset"])
        kept, note = same_modality(pool, row.get("modality"), name, None if pool is pairs else pairs)
        notes[name] += [note] if note else []
        parts.append(candidate_pairs(kept, row, None if scores is None else
                                     scores[scores["dataset"] == name].drop(columns="dataset")))
    return pd.concat(parts, ignore_index=True), notes


@dataclass(frozen=True)
class Measured:
    """What the training history measured: each (model, dataset)'s result, and each dataset's scale
    (``performance_scale``)."""

    results: pd.Series
    scale: pd.DataFrame

    @classmethod
    def of(cls, pairs: pd.DataFrame) -> Measured:
        """From the training pairs."""
        results = pairs.dropna(subset=["performance"]).drop_duplicates(["model", "dataset"]).set_index(
            ["model", "dataset"])["performance"]
        return cls(results, performance_scale(pairs))


def _dataset_table(est: PairRecommender, candidates: pd.DataFrame, predicted: np.ndarray, pairs: pd.DataFrame,
                   name: str, request: Request, protocol: str, history: Measured,
                   logged: tuple[pd.DataFrame, dict[str, int]] | None = None, metric: str = ""
                   ) -> tuple[pd.DataFrame, list[str]]:
    """One dataset's rows of the recommendation (``COLUMNS``) from its candidate pairs and their static
    prediction, updated with the results observed there (``logged``: the store's, `PairTables.logged_results`,
    else its rows of ``pairs``); and its notes."""
    models = candidates["model"].astype(str).to_numpy()
    # a dataset the recommender was fitted on: its logged jobs are its training data, not new evidence
    fitted_on = name in est.encoder_.categories_.get("dataset", ())
    others = pairs[pairs["dataset"] != name]
    mine, unused = (pairs[pairs["dataset"] == name], {}) if logged is None else logged
    updated, spread, observed, note = adaptive_update(
        predicted, models, others if fitted_on else pd.concat([others, mine], ignore_index=True), name,
        request.observed, protocol, {} if fitted_on else unused, metric)
    notes = [note] if note else []
    best = ranked_then_tried(candidates, updated, observed, request.k)
    facts = candidates.drop_duplicates("model").set_index("model").reindex(best["model"])
    raw = best["predicted"].to_numpy()
    scale, measured = history.scale, history.results
    mean, std, own = dataset_scale(name, scale)
    # the posterior std of each shown model, in the prediction's units
    sd = pd.Series(spread, index=models).groupby(level=0).first().reindex(best["model"]).to_numpy()
    if est.target == "raw":  # the prediction is in the metric's units already; a dataset without spread: z 0
        expected, z = raw, (raw - mean) / std if std > 0 else np.zeros_like(raw)
        sd = sd / std if std > 0 else np.zeros_like(sd)
    else:
        expected, z = mean + raw * std, raw
    # the 68% half-width where training calibrated it (`recommender.models.calibration`)
    sd = sd * float(cast(float, est.training_.get("spread_factor", 1.0)))
    if not own:
        notes.append(f"{name}: not in the training history, so `expected` uses the typical scale of its "
                     f"{len(scale)} datasets (mean {scale['mean'].mean():.4g}, std {scale['std'].mean():.4g}); the "
                     f"ranking and predicted_z do not depend on it")
    keys = pd.MultiIndex.from_arrays([best["model"], [name] * len(best)])
    return pd.DataFrame({
        "dataset": name, "rank": best["rank"].to_numpy(), "model": best["model"].to_numpy(),
        **{c: facts[c].to_numpy() for c in SHOWN_MODEL_FACTS}, "expected": expected, "predicted_z": z, "spread": sd,
        "in_sample": keys.isin(measured.index), "measured": measured.reindex(keys).to_numpy(),
        "observed": observed.reindex(best["model"]).to_numpy(dtype=float)}), notes


def ranked_then_tried(candidates: pd.DataFrame, predicted: np.ndarray, observed: pd.Series, k: int) -> pd.DataFrame:
    """The k best-predicted untried candidates, ranked (``top_k``), then every candidate tried already (in
    ``observed``), best observed first, unranked (``tried_last``). Columns rank, model, predicted, observed."""
    tried = candidates["model"].astype(str).isin(observed.index.astype(str)).to_numpy()
    best = top_k(candidates[~tried].reset_index(drop=True), predicted[~tried], k)
    done = candidates.loc[tried, ["model"]].assign(predicted=predicted[tried])
    return tried_last(pd.concat([best, done], ignore_index=True), observed)


def adaptive_update(prediction: np.ndarray, models: np.ndarray, pairs: pd.DataFrame, name: str,
                    given: UserTable | None, protocol: str, unused: dict[str, int] | None = None, metric: str = ""
                    ) -> tuple[np.ndarray, np.ndarray, pd.Series, str]:
    """One dataset's static prediction of the candidate ``models`` updated with the results observed there (its
    measured pairs in ``pairs``, then the user's file ``given``; ``gather_observed``) by the LR warm start of
    ``recommender.models.warm_start`` (``warm_update``, hyper-parameters ``WARM_START``; the model factors come from
    the other datasets' pairs; ``unused``: the dataset's jobs under other metrics than ``metric``, named in the
    note). Returns the updated prediction (the static one with fewer than two distinct results), its posterior std,
    the observed results by model and a note saying what was used and what was not ("" if nothing was logged)."""
    observed, sources = gather_observed(pairs, name, set(models), given, protocol, unused, metric)
    others = pairs[(pairs["dataset"] != name) & pairs["performance"].notna()]
    updated, spread = warm_update(prediction, models, observed, model_factors(others), WARM_START)
    if observed.empty:  # a note only where something logged was left out
        logged = bool(unused) or bool((pairs["dataset"] == name).any())
        return updated, spread, observed, f"{name}: {sources[0]}" if logged else ""
    tried = "tried models are not ranked: they follow the ranking with their `observed` result"
    how = (f"the ranking is the prediction updated with them (LR warm start); {tried}"
           if not np.array_equal(updated, prediction) else
           f"fewer than 2 distinct results, so the ranking is the static one; {tried}")
    return updated, spread, observed, f"{name}: used {'; '.join(sources)}; {how}"


def _scores(est: PairRecommender, store: Store, names: list[str], given: pd.DataFrame | None) -> pd.DataFrame | None:
    """The scores the recommender's features need, with a ``dataset`` column: the user's (``given``), else the
    store's."""
    if given is not None:
        return given
    needed = [score_name(column) for column in parse_features(est.features)[1]]
    if not needed:
        return None
    scores = store.scores(needed)
    scores = scores[scores["dataset"].isin(names)]
    missing = [n for n in names if n not in set(scores["dataset"])]
    if missing:
        raise UserError(f"features {est.features} need scores ({', '.join(needed)}): the store has none for "
                        f"{', '.join(missing)}; pass --scores FILE")
    return scores[["model", "dataset", "score", "value"]]
