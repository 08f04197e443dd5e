"""Configuration-level recommendations: (model, configuration) rows with expected performance and expected cost.

A recommender trained on the job table with the configuration block ``h`` (`recommender train --features d,m,h`)
predicts each job's performance from its model, dataset and configuration (learning rate, epochs), z-scored within
the dataset over its jobs. The candidates are the pool's models crossed with the configurations the protocol's jobs
ran; each gets the cost model's expected seconds (`recommender.models.cost`). The table can be cut to models under a
parameter count, to configurations under a cost, or to the Pareto front of expected performance against cost.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd

from recommender.contracts import DEFAULT_PROTOCOL, hparam_column
from recommender.errors import UserError
from recommender.history import Store
from recommender.history.job_table import HPARAM_COLUMNS, job_table
from recommender.models.base import PairRecommender
from recommender.models.cost import CostModel, timed
from recommender.models.evidence import check_evidence
from recommender.models.features import parse_features
from recommender.models.pairs import candidate_pairs, same_modality
from recommender.models.recommend import (
    Recommendation,
    check_known_values,
    dataset_scale,
    lookup_dataset_row,
    named_or_trained_protocol,
    performance_scale,
    with_protocol,
    with_stored_facts,
)
from recommender.models.request_files import FACTS

CONFIG_BLOCK = "h"
SHOWN = ("family", "params_m")  # the model facts shown beside each configuration
CONFIG_NAMES = {hparam_column("lr"): "lr", hparam_column("epochs"): "epochs"}  # h_ columns as shown
COLUMNS = ["dataset", "rank", "model", *SHOWN, "lr", "epochs", "expected", "predicted_z", "measured", "cost_s",
           "cost_low", "cost_high"]


def uses_configs(features: str) -> bool:
    """Whether a feature set holds the configuration block ``h`` (its rows are jobs, not pairs)."""
    return CONFIG_BLOCK in parse_features(features)[0]


def configurations(jobs: pd.DataFrame) -> pd.DataFrame:
    """The distinct configurations (``h_`` columns) the jobs ran, with their number of jobs, most run first."""
    counts = jobs.groupby(list(HPARAM_COLUMNS), dropna=False).size().rename("jobs").reset_index()
    return counts.sort_values(["jobs", *HPARAM_COLUMNS], ascending=[False, True, True], ignore_index=True)


def pareto_front(performance: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Which points no other point dominates (performance at least as high and cost at least as low, one of them
    strictly): higher performance and lower cost are better. A point with a NaN is never on the front."""
    performance, cost = np.asarray(performance, dtype=float), np.asarray(cost, dtype=float)
    known = np.isfinite(performance) & np.isfinite(cost)
    front = known.copy()
    order = np.flatnonzero(known)[np.lexsort((-performance[known], cost[known]))]  # cheapest first, best first
    best = -np.inf
    for i in order:  # a point is on the front iff it beats every cheaper-or-equal point's performance
        if performance[i] > best:
            best = performance[i]
        else:
            front[i] = False
    # equal points (same cost and performance) do not dominate each other: keep each copy of a front point
    for i in np.flatnonzero(known & ~front):
        front[i] = bool(np.any(front & (performance == performance[i]) & (cost == cost[i])))
    return front


def config_protocol(est: PairRecommender, store: Store, named: str | None) -> str:
    """The protocol whose configurations are recommended: ``named``, else the recommender's one training protocol."""
    return named_or_trained_protocol(est, sorted(store.protocols()["protocol"].unique()), named)


def recommend_configs(est: PairRecommender, store: Store, requests: pd.DataFrame, pool: pd.DataFrame | None = None,
                      k: int = 10, allow_modality_mismatch: bool = False, where: str = "flags",
                      protocol: str | None = None, max_params: float | None = None, max_cost: float | None = None,
                      pareto: bool = False) -> Recommendation:
    """The top ``k`` (model, configuration) rows of each requested dataset by expected performance, each with its
    expected cost in seconds (``cost_s``) and the cost's spread (``cost_low``, ``cost_high``: a factor exp(spread)
    either side, the spread measured on held-out datasets); ``measured`` is the history's mean over the jobs of
    that configuration on the dataset. ``max_params`` keeps models of at most that many parameters (a model of
    unknown size is left out), ``max_cost`` configurations expected to cost at most that many seconds; ``pareto``
    keeps the non-dominated rows of expected performance against expected cost (all of them, cheapest first)
    instead of the top ``k``."""
    if not uses_configs(est.features):
        raise UserError(f"--configs needs a recommender trained on jobs with the configuration block h (this one "
                        f"has features {est.features}): `recommender train --features d,m,h ...`")
    if parse_features(est.features)[1]:
        raise UserError("--configs takes a recommender without score features (train one with --features d,m,h)")
    if k < 1:
        raise UserError(f"--top-k must be >= 1, got {k}")
    training = est.training_
    target = config_protocol(est, store, protocol)
    modality = training.get("modality")
    modality = None if modality is None else str(modality)
    jobs = job_table(store, str(training.get("protocol", DEFAULT_PROTOCOL)), modality)
    mine = jobs[jobs["protocol"] == target]
    if mine.empty:
        mine = job_table(store, target, modality)
    if mine.empty:
        raise UserError(f"the store holds no jobs under protocol {target!r}")
    datasets = store.dataset_features()
    check_known_values(requests, datasets, where)
    pool = mine if pool is None else with_stored_facts(pool, store.model_features())
    settings = configurations(mine)
    rows = [lookup_dataset_row(mine, datasets, r["dataset"], **{f: r[f] for f in FACTS})
            for r in requests.to_dict("records")]
    notes: dict[str, list[str]] = {cast(str, row["dataset"]): [] for row in rows}
    shown = ", ".join(f"{CONFIG_NAMES[c]} {settings.iloc[0][c]:g}" for c in HPARAM_COLUMNS)
    if len(settings) == 1:
        one = f"the history holds one setting under {target} ({shown}): the ranking is a model ranking"
        notes = {name: [one] for name in notes}
    parts = []
    for row in rows:
        name = cast(str, row["dataset"])
        kept, note = same_modality(pool, row.get("modality"), name, None if pool is mine else mine)
        notes[name] += [note] if note else []
        parts.append(candidate_pairs(kept, row))
    candidates = with_protocol(pd.concat(parts, ignore_index=True), store, target, mine)
    candidates = candidates.merge(settings[list(HPARAM_COLUMNS)], how="cross")
    check_evidence(est, candidates, allow_modality_mismatch)
    candidates = candidates.assign(predicted=np.asarray(est.predict(candidates), dtype=float))
    candidates = _with_cost(candidates, jobs, notes)
    candidates = _limited(candidates, max_params, max_cost, notes)
    measured = mine.groupby(["model", "dataset", *HPARAM_COLUMNS])["performance"].mean()
    scale = performance_scale(mine)
    tables = []
    for row in rows:
        name = cast(str, row["dataset"])
        these = candidates[candidates["dataset"] == name]
        mean, std, own = dataset_scale(name, scale)
        these = these.assign(expected=mean + these["predicted"] * std)
        if not own:
            notes[name].append(f"{name}: not in the training history, so `expected` uses the typical scale of its "
                               f"{len(scale)} datasets")
        if pareto:
            these = these[pareto_front(these["expected"].to_numpy(), these["cost_s"].to_numpy())]
            these = these.sort_values(["cost_s", "expected"], ascending=[True, False], kind="stable")
        else:
            these = these.sort_values("expected", ascending=False, kind="stable").head(k)
        keys = pd.MultiIndex.from_frame(these[["model", "dataset", *HPARAM_COLUMNS]])
        tables.append(these.assign(rank=range(1, len(these) + 1), predicted_z=these["predicted"],
                                   measured=measured.reindex(keys).to_numpy()))
    table = pd.concat(tables, ignore_index=True).rename(columns=CONFIG_NAMES)[COLUMNS]
    table["params_m"] = pd.to_numeric(table["params_m"], errors="coerce")
    metric = store.default_metric(target)
    return Recommendation(table, int(candidates.groupby("dataset").size().max()), metric, notes)


def _with_cost(candidates: pd.DataFrame, jobs: pd.DataFrame, notes: dict[str, list[str]]) -> pd.DataFrame:
    """The candidates with ``cost_s``, ``cost_low`` and ``cost_high`` from a cost model fitted on the jobs' seconds
    (NaN, and a note, where the history logs none)."""
    if timed(jobs).empty:
        for name in notes:
            notes[name].append("the history logs no fine-tuning seconds under this protocol: no expected cost")
        return candidates.assign(cost_s=np.nan, cost_low=np.nan, cost_high=np.nan)
    model = CostModel().fit(jobs)
    seconds = model.predict(candidates)
    factor = float(np.exp(model.spread_))
    return candidates.assign(cost_s=seconds, cost_low=seconds / factor, cost_high=seconds * factor)


def _limited(candidates: pd.DataFrame, max_params: float | None, max_cost: float | None,
             notes: dict[str, list[str]]) -> pd.DataFrame:
    """The candidates within the limits (none left: a one-line error saying which limit left nothing)."""
    for limit, column, scale, what in ((max_params, "params_m", 1e6, "parameters"),
                                       (max_cost, "cost_s", 1.0, "seconds of expected cost")):
        if limit is None:
            continue
        values = pd.to_numeric(candidates[column], errors="coerce") * scale
        unknown = int(candidates.loc[values.isna(), "model"].nunique())
        candidates = candidates[values <= limit]
        for name in notes:
            notes[name].append(f"only configurations with at most {limit:,.0f} {what}"
                               + (f" ({unknown} models of unknown {column} left out)" if unknown else ""))
        if candidates.empty:
            raise UserError(f"no (model, configuration) has at most {limit:,.0f} {what}")
    return candidates



def plot_pareto(table: pd.DataFrame, path: str | Path, metric: str) -> Path:
    """Expected performance against expected cost of the rows of ``table`` (the Pareto rows of
    `recommend_configs`), one line per dataset, each point labelled with its model and learning rate; written
    atomically as a PNG (matplotlib loads only here)."""
    from matplotlib.figure import Figure  # no pyplot: no display backend, no global state

    from recommender.files import write_atomic

    fig = Figure(figsize=(9.5, 5.5))
    ax = fig.add_subplot()
    for name, rows in table.groupby("dataset", sort=False):
        rows = rows.sort_values("cost_s")
        err = np.vstack([rows["cost_s"] - rows["cost_low"], rows["cost_high"] - rows["cost_s"]])
        ax.errorbar(rows["cost_s"], rows["expected"], xerr=err, drawstyle="steps-post", marker="o", capsize=3,
                    elinewidth=0.8, label=str(name))
        for i, (_, r) in enumerate(rows.iterrows()):  # labels alternate below and above: neighbours overlap less
            ax.annotate(f"{str(r['model']).rsplit('/', 1)[-1]} (lr {r['lr']:g})", (r["cost_s"], r["expected"]),
                        textcoords="offset points", xytext=(5, -11 if i % 2 else 5), fontsize=7.5, color="#333333")
    ax.set_xscale("log")
    ax.set_xlabel("expected fine-tuning cost (seconds, log scale; bars: the cost's spread on held-out datasets)")
    ax.set_ylabel(f"expected {metric}")
    ax.set_title("Pareto front: no other (model, configuration) is both cheaper and better", loc="left")
    ax.grid(alpha=0.3)
    ax.legend(title="dataset", fontsize=8, title_fontsize=8, loc="lower right")
    fig.tight_layout()
    return write_atomic(Path(path), lambda part: fig.savefig(part, dpi=110, format="png"))


# --- `next --configs`: the next (model, configuration) rows given the results observed on the dataset --------------

NEXT_COLUMNS = ["rank", "model", *SHOWN, "lr", "epochs", "expected", "prior", "cost_s", "cost_low", "cost_high",
                "cumulative_s", "reason"]


def observed_configs(frame: pd.DataFrame, label: str, pool: set[str], table: pd.DataFrame) -> pd.DataFrame:
    """The ``model,performance`` rows of an --observed file (optionally ``lr`` and ``epochs``: blank or absent, the
    result is the model's, at a setting not given) as ``model, lr, epochs, performance``. A given ``lr``/``epochs``
    must be one the candidate rows of ``table`` hold. A problem is one line naming the file, row and column."""
    missing = [c for c in ("model", "performance") if c not in frame.columns]
    if missing:
        raise UserError(f"{label}: missing column(s) {', '.join(missing)} (need model,performance; lr,epochs "
                        f"optional)")
    out = pd.DataFrame({"model": frame["model"].map(lambda m: "" if pd.isna(m) else str(m).strip()).to_numpy()})
    # the file's own row numbers (a file of several datasets reaches here filtered to one)
    numbers = frame.index + 1 if pd.api.types.is_integer_dtype(frame.index) else np.arange(len(frame)) + 1
    for column in ("lr", "epochs", "performance"):
        cells = frame[column] if column in frame.columns else pd.Series(np.nan, index=frame.index)
        values = pd.to_numeric(cells, errors="coerce").to_numpy(dtype=float)
        blank = cells.isna().to_numpy() | cells.astype(str).str.strip().eq("").to_numpy()
        bad = ~blank & ~(np.isfinite(values) & ((values > 0) | (column == "performance")))
        bad |= blank & (column == "performance")
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            what = "a finite number" if column == "performance" else "a positive number or blank"
            raise UserError(f"{label}: row {numbers[i]}: {column}: expected {what}, got {cells.iloc[i]!r}")
        if column != "performance":
            ran = set(table[column].astype(float))
            off = ~blank & ~np.isin(values, list(ran))
            if off.any():
                i = int(np.flatnonzero(off)[0])
                raise UserError(f"{label}: row {numbers[i]}: {column}: {values[i]:g} is not a setting the history ran "
                                f"({', '.join(f'{v:g}' for v in sorted(ran))})")
        out[column] = np.where(blank, np.nan, values)
    for i, model in enumerate(out["model"]):
        if model not in pool:
            raise UserError(f"{label}: row {numbers[i]}: model: " + ("empty" if not model else
                            f"unknown model {model!r} (not in the protocol's history)"))
    repeated = out.duplicated(["model", "lr", "epochs"]).to_numpy()
    if repeated.any():
        i = int(np.flatnonzero(repeated)[0])
        raise UserError(f"{label}: row {numbers[i]}: model: {out['model'].iloc[i]!r} repeated at the same setting")
    return out


def next_configs(table: pd.DataFrame, observed: pd.DataFrame, budget: int | None = None,
                 max_cost: float | None = None) -> pd.DataFrame:
    """The next (model, configuration) rows to fine-tune, from the rows of `recommend_configs` (one dataset, every
    candidate: ``model, lr, epochs, expected, cost_s, ...``) and the results observed on the dataset (``model, lr,
    epochs, performance``; a NaN ``lr``/``epochs`` matches any).

    Each result's residual is its performance minus the expected value of its row (a result without a setting: of
    the model's best-expected matching row, which counts as tried). The update shifts every row by the mean
    residual and each model's rows by its own mean residual beyond that, each shrunk by n / (n + 1) over its n
    results: one result moves a model halfway. Tried rows are never proposed. The rest are taken best updated
    ``expected`` first (the cheaper on a tie); with ``max_cost``, a row is taken only if it fits what is left of
    the budget (``cumulative_s``), and ``budget`` (default: as many as fit; 1 without ``max_cost``) caps the
    count."""
    if budget is not None and budget < 1:
        raise UserError(f"--budget must be >= 1, got {budget}")
    rows = table.reset_index(drop=True)
    tried = np.zeros(len(rows), dtype=bool)
    residual_at: list[tuple[str, float]] = []
    for model, lr, epochs, performance in observed[["model", "lr", "epochs", "performance"]].itertuples(index=False):
        match = (rows["model"] == model).to_numpy().copy()
        for column, value in (("lr", lr), ("epochs", epochs)):
            if np.isfinite(value):
                match &= np.isclose(rows[column].to_numpy(dtype=float), value)
        if not match.any():
            continue
        at = np.flatnonzero(match)
        row = at[np.argmax(rows["expected"].to_numpy(dtype=float)[at])]
        tried[at if np.isfinite(lr) and np.isfinite(epochs) else row] = True
        residual_at.append((model, float(performance) - float(rows["expected"].iloc[row])))
    residuals = pd.DataFrame(residual_at, columns=["model", "residual"])
    n = len(residuals)
    overall = float(residuals["residual"].sum()) / (n + 1) if n else 0.0
    by_model = (residuals.assign(residual=residuals["residual"] - overall).groupby("model")["residual"]
                .agg(["sum", "size"]))
    own = (by_model["sum"] / (by_model["size"] + 1)).reindex(rows["model"]).fillna(0.0).to_numpy(dtype=float)
    counts = by_model["size"].reindex(rows["model"]).fillna(0).to_numpy(dtype=int)
    rows = rows.assign(prior=rows["expected"], expected=rows["expected"] + overall + own, shift=own,
                       results=counts)[~tried]
    if rows.empty:
        raise UserError(f"every one of the {len(tried)} (model, configuration) rows has a result on the dataset: "
                        f"nothing is left to propose")
    rows = rows.sort_values(["expected", "cost_s"], ascending=[False, True], kind="stable")
    if max_cost is None:
        picked = rows.head(budget or 1).assign(cumulative_s=lambda t: t["cost_s"].cumsum())
    else:
        picked = _within(rows, max_cost, budget)
    reasons = [f"{k} result(s) of the model here: {s:+.3g}" if k else "no result of the model here"
               for k, s in zip(picked["results"], picked["shift"], strict=True)]
    table = picked.assign(rank=range(1, len(picked) + 1), reason=reasons)[NEXT_COLUMNS].reset_index(drop=True)
    table.attrs["shift"] = overall  # the dataset's shift, for the header
    return table


def _within(rows: pd.DataFrame, max_cost: float, budget: int | None) -> pd.DataFrame:
    """Rows in order, each kept if its expected cost fits what is left of ``max_cost`` seconds (a row without an
    expected cost never fits), at most ``budget`` of them; none fits: a one-line error naming the cheapest."""
    cost = rows["cost_s"].to_numpy(dtype=float)
    if not np.isfinite(cost).any():
        raise UserError("--max-cost needs expected costs: the history logs no fine-tuning seconds under this "
                        "protocol")
    keep, spent = [], 0.0
    for i, seconds in enumerate(cost):
        if np.isfinite(seconds) and spent + seconds <= max_cost:
            keep.append(i)
            spent += seconds
            if budget is not None and len(keep) >= budget:
                break
    if not keep:
        raise UserError(f"no untried (model, configuration) is expected to cost at most {max_cost:,.0f} seconds "
                        f"(the cheapest: {np.nanmin(cost):,.0f})")
    picked = rows.iloc[keep]
    return picked.assign(cumulative_s=picked["cost_s"].cumsum())
