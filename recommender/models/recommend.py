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
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd

from recommender import contracts
from recommender.contracts import DATASET_FACTS, DEFAULT_PROTOCOL, protocol_examples, score_name
from recommender.errors import UserError
from recommender.history import Store
from recommender.history.ingest import read_table
from recommender.models.base import PairRecommender
from recommender.models.evidence import check_evidence
from recommender.models.features import BLOCKS, parse_features
from recommender.models.observed import gather_observed
from recommender.models.pairs import MODEL_COLUMNS, candidate_pairs, same_modality, top_k, tried_last
from recommender.models.warm_start import WARM_START, model_factors, warm_update

FACTS = ("examples", "classes", "group", "modality")  # the facts a user may give of a dataset (flags, file columns)
NUMBER_FACTS = ("examples", "classes")
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


def model_pool(store: Store, path: str | Path) -> pd.DataFrame:
    """Candidate models from a file; the model features it leaves out (a column or a blank cell) come from the
    store."""
    pool = read_table(path)
    if "model" not in pool.columns:
        raise UserError(f"{path}: the model pool needs a 'model' column")
    pool = pool.reindex(columns=list(dict.fromkeys([*pool.columns, *MODEL_COLUMNS])))
    stored = store.model_features().set_index("model").reindex(pool["model"])
    for column in MODEL_COLUMNS[1:]:
        pool[column] = pool[column].where(pool[column].notna(), stored[column].to_numpy())
    return pool


def dataset_requests(names: Sequence[str] = (), path: str | Path | None = None,
                     **facts: object) -> pd.DataFrame:
    """The datasets asked about, one row each with columns ``dataset`` and ``FACTS``: the ``names`` with the same
    ``facts`` (flags), or the rows of a file (CSV/Parquet/JSON Lines: a ``dataset`` column and any of ``FACTS``)."""
    if path is not None:
        if any(v is not None for v in facts.values()):
            raise UserError("with a datasets file, give the datasets' facts as its columns, not as flags")
        return _read_requests(Path(path))
    if not names:
        raise UserError("no dataset given")
    duplicated = sorted({n for n in names if list(names).count(n) > 1})
    if duplicated:
        raise UserError(f"dataset(s) named twice: {', '.join(duplicated)}")
    return pd.DataFrame([{"dataset": name, **{k: facts.get(k) for k in FACTS}} for name in names],
                        columns=["dataset", *FACTS])


def _read_requests(path: Path) -> pd.DataFrame:
    """A datasets file, checked: one line naming the file, row and column of the first problem."""
    table = read_table(path)
    unknown = [c for c in table.columns if c not in ("dataset", *FACTS)]
    if "dataset" not in table.columns or unknown:
        raise UserError(f"{path}: columns must be dataset and any of {', '.join(FACTS)}"
                        + (f"; unknown column(s) {', '.join(map(str, unknown))}" if unknown else
                           "; no dataset column"))
    if table.empty:
        raise UserError(f"{path}: no datasets")
    out = table.reindex(columns=["dataset", *FACTS]).reset_index(drop=True)
    for i, name in enumerate(out["dataset"], start=1):
        if pd.isna(name) or not str(name).strip():
            raise UserError(f"{path}: row {i}: dataset: blank name")
        if (out["dataset"].iloc[: i - 1] == name).any():
            raise UserError(f"{path}: row {i}: dataset: {name} is named again")
    for column in NUMBER_FACTS:
        values = pd.to_numeric(out[column], errors="coerce")
        for i, (text, value) in enumerate(zip(out[column], values, strict=True), start=1):
            if pd.notna(text) and not (np.isfinite(value) and value > 0):
                raise UserError(f"{path}: row {i}: {column}: {text!r} is not a positive number")
        out[column] = values.astype(float)
    return out


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


def recommend(est: PairRecommender, store: Store, requests: pd.DataFrame, pool_path: str | Path | None = None,
              scores_path: str | Path | None = None, k: int = 10, allow_modality_mismatch: bool = False,
              where: str = "flags", protocol: str | None = None, observed_path: str | Path | None = None
              ) -> Recommendation:
    """The top ``k`` models of the pool for each requested dataset (``dataset_requests``), by the recommender's
    prediction, with expected performance, the model facts and whether the pair was in the training history.

    The pool is the training protocol's models in the store, or ``pool_path``'s. Score features come from
    ``scores_path`` (model,score,value or model,score_<name>; with a ``dataset`` column for several datasets) or
    else from the store. A group or modality the store does not know is refused (``check_known_values``; ``where``
    names the requests' source: "flags" or a file). The pairs carry the facts of ``protocol`` (the protocol the
    user fine-tunes under), by default of the training protocol when the recommender uses them
    (``target_protocol``).

    Each dataset's results observed so far -- its jobs in the store under the protocol, and for one dataset the
    ``observed_path`` file of model,performance rows -- update the prediction (``adaptive_update``): the ranking
    is by the updated prediction over the untried models; the tried ones follow it unranked with their result in
    ``observed`` (``ranked_then_tried``); ``spread`` is the prediction's posterior std (in predicted_z units); a
    note says what was used. Only models of each dataset's modality are candidates (``same_modality``)."""
    training = est.training_
    target = target_protocol(est, store, protocol)
    pairs = store.pair_table(str(training.get("protocol", DEFAULT_PROTOCOL)), training.get("modality"),
                             select=str(training.get("select", "val")))
    if target is not None and (pairs["protocol"] == target).any():  # the dataset facts and scale under it
        pairs = pairs[pairs["protocol"] == target]
    datasets = store.dataset_features()
    check_known_values(requests, datasets, where)
    if observed_path is not None and len(requests) > 1:
        raise UserError("--observed holds results on one dataset: use it with --dataset")
    pool = model_pool(store, pool_path) if pool_path else pairs
    scores = _scores(est, store, requests["dataset"].tolist(), scores_path)
    rows = [lookup_dataset_row(pairs, datasets, r["dataset"], **{k: r[k] for k in FACTS})
            for r in requests.to_dict("records")]
    notes: dict[str, list[str]] = {cast(str, row["dataset"]): [] for row in rows}
    parts = []
    for row in rows:
        name = cast(str, row["dataset"])
        kept, note = same_modality(pool, row.get("modality"), name, None if pool is pairs else pairs)
        notes[name] += [note] if note else []
        parts.append(candidate_pairs(kept, row, None if scores is None else
                                     scores[scores["dataset"] == name].drop(columns="dataset")))
    candidates = pd.concat(parts, ignore_index=True)
    if target is not None:
        candidates = with_protocol(candidates, store, target, pairs[pairs["protocol"] == target])
    check_evidence(est, candidates, allow_modality_mismatch)
    predicted = np.asarray(est.predict(candidates), dtype=float)
    scale = performance_scale(pairs)
    measured = pairs.dropna(subset=["performance"]).drop_duplicates(["model", "dataset"]).set_index(
        ["model", "dataset"])["performance"]
    tables = []
    for row in rows:
        name = cast(str, row["dataset"])  # lookup_dataset_row's own name
        mine = (candidates["dataset"] == name).to_numpy()
        models = candidates.loc[mine, "model"].astype(str).to_numpy()
        # a dataset the recommender was fitted on: its logged jobs are its training data, not new evidence
        fitted_on = name in est.encoder_.categories_.get("dataset", ())
        logged = pairs[pairs["dataset"] != name] if fitted_on else pairs
        updated, spread, observed, note = adaptive_update(predicted[mine], models, logged, name, observed_path,
                                                          target or str(training.get("protocol", DEFAULT_PROTOCOL)))
        notes[name] += [note] if note else []
        best = ranked_then_tried(candidates.loc[mine].reset_index(drop=True), updated, observed, k)
        facts = candidates.loc[mine].drop_duplicates("model").set_index("model").reindex(best["model"])
        raw = best["predicted"].to_numpy()
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
            notes[name].append(f"{name}: not in the training history, so `expected` uses the typical scale of its "
                               f"{len(scale)} datasets (mean {scale['mean'].mean():.4g}, std "
                               f"{scale['std'].mean():.4g}); the ranking and predicted_z do not depend on it")
        keys = pd.MultiIndex.from_arrays([best["model"], [name] * len(best)])
        tables.append(pd.DataFrame({
            "dataset": name, "rank": best["rank"].to_numpy(), "model": best["model"].to_numpy(),
            **{c: facts[c].to_numpy() for c in SHOWN_MODEL_FACTS}, "expected": expected, "predicted_z": z, "spread": sd,
            "in_sample": keys.isin(measured.index), "measured": measured.reindex(keys).to_numpy(),
            "observed": observed.reindex(best["model"]).to_numpy(dtype=float)}))
    table = pd.concat(tables, ignore_index=True)[COLUMNS]
    table["rank"] = table["rank"].astype("Int64")  # blank for the models tried already
    table["params_m"] = pd.to_numeric(table["params_m"], errors="coerce")
    metric = ", ".join(sorted({store.default_metric(p) for p in pairs["protocol"].dropna().unique()}))
    return Recommendation(table, int(candidates.groupby("dataset")["model"].nunique().max()), metric, notes)


def ranked_then_tried(candidates: pd.DataFrame, predicted: np.ndarray, observed: pd.Series, k: int) -> pd.DataFrame:
    """The k best-predicted untried candidates, ranked (``top_k``), then every candidate tried already (in
    ``observed``), best observed first, unranked (``tried_last``). Columns rank, model, predicted, observed."""
    tried = candidates["model"].astype(str).isin(observed.index.astype(str)).to_numpy()
    best = top_k(candidates[~tried].reset_index(drop=True), predicted[~tried], k)
    done = candidates.loc[tried, ["model"]].assign(predicted=predicted[tried])
    return tried_last(pd.concat([best, done], ignore_index=True), observed)


def adaptive_update(prediction: np.ndarray, models: np.ndarray, pairs: pd.DataFrame, name: str,
                    path: str | Path | None, protocol: str) -> tuple[np.ndarray, np.ndarray, pd.Series, str]:
    """One dataset's static prediction of the candidate ``models`` updated with the results observed there (its
    measured pairs in ``pairs``, then the file at ``path``; ``gather_observed``) by the LR warm start of
    ``recommender.models.warm_start`` (``warm_update``, hyper-parameters ``WARM_START``; the model factors come from
    the other datasets' pairs). Returns the updated prediction (the static one with fewer than two distinct
    results), its posterior std, the observed results by model and a note saying what was used ("" if nothing)."""
    observed, sources = gather_observed(pairs, name, set(models), None if path is None else str(path), protocol)
    others = pairs[(pairs["dataset"] != name) & pairs["performance"].notna()]
    updated, spread = warm_update(prediction, models, observed, model_factors(others), WARM_START)
    if observed.empty:
        return updated, spread, observed, ""
    tried = "tried models are not ranked: they follow the ranking with their `observed` result"
    how = (f"the ranking is the prediction updated with them (LR warm start); {tried}"
           if not np.array_equal(updated, prediction) else
           f"fewer than 2 distinct results, so the ranking is the static one; {tried}")
    return updated, spread, observed, f"{name}: used {'; '.join(sources)}; {how}"


def _scores(est: PairRecommender, store: Store, names: list[str], path: str | Path | None) -> pd.DataFrame | None:
    """The scores the recommender's features need, with a ``dataset`` column: from the file, else the store."""
    needed = [score_name(column) for column in parse_features(est.features)[1]]
    if path is not None:
        scores = read_table(path)
        if "dataset" not in scores.columns:
            if len(names) > 1:
                raise UserError(f"{path}: a scores file for several datasets needs a dataset column")
            scores = scores.assign(dataset=names[0])
        return scores
    if not needed:
        return None
    scores = store.scores(needed)
    scores = scores[scores["dataset"].isin(names)]
    missing = [n for n in names if n not in set(scores["dataset"])]
    if missing:
        raise UserError(f"features {est.features} need scores ({', '.join(needed)}): the store has none for "
                        f"{', '.join(missing)}; pass --scores FILE")
    return scores[["model", "dataset", "score", "value"]]
