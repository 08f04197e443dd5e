"""`auto` against the best simple evidence and today's learned strategies, on every bundled history and split.

Runs (test values choose each pair's best hyper-parameters; `TG` = TransferGraph's re-run, `SHiFT` = VTAB-1k):
leave-one-dataset-out on SHiFT vision and text, TG image and text, PARC, the small zoos and the offline benchmark
(experiments/results/offline_benchmark_pairs.csv); cross-protocol SHiFT -> TG and TG -> SHiFT, image and text
(the target datasets that training holds under its own protocol, `seen`, and the others apart).

Every strategy ranks the same candidates: on a dataset with stored scores, the models that have every score (a
score ranks nothing else); elsewhere every model. Rows: mean-perf, each score alone, LR (d,m), the stack of
mean-perf and the scores (`stack+S`, where scores exist) and `auto`. For `auto` the script also reports the share
of true z-scored results inside its printed 68% interval over the held-out datasets (leave-one-dataset-out runs),
and, with SHiFT vision, the adaptive search one pick at a time (auto's session against adaptive:similarity) and
SHiFT vision leave-one-dataset-out as `next` and `rank` fit auto (on every image protocol's history, named the
protocol or not).

    python experiments/auto_tables.py --out experiments/results
    python experiments/auto_tables.py --runs "SHiFT vision LOO" --out /tmp/auto

Without --db, a temporary SQLite store is created and the bundled history loaded into it. Writes auto_tables.md
and auto_tables.csv (every strategy's mean per run) to --out.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recommender.evaluation import check_pairs, make_folds
from recommender.evaluation.factory import make_strategy
from recommender.evaluation.pipeline import run_evaluation
from recommender.models.auto import Auto
from recommender.normalise import ranking_groups, zscore_within

sys.path.insert(0, str(Path(__file__).parent))
from paper_tables import history_store, markdown  # noqa: E402 -- the experiments' one Markdown writer

TG_IMAGE, TG_TEXT, SHIFT = "transfergraph:70pct-30ep", "transfergraph:full-5ep", "vtab1k"
BUDGETS = (1, 3)
OFFLINE = Path(__file__).parent / "results" / "offline_benchmark_pairs.csv"
MARGIN = 0.01  # the tolerance against the best simple evidence
CLEAR = 0.05  # "clearly better"


@dataclass(frozen=True)
class Run:
    """One evaluation: where its pairs come from (store protocols and modality, or the offline CSV) and its split;
    `train`: the protocols a cross-protocol run trains on."""

    name: str
    protocols: tuple[str, ...]
    modality: str | None
    train: tuple[str, ...] = ()


RUNS = (
    Run("SHiFT vision LOO", (SHIFT,), "image"),
    Run("SHiFT text LOO", (SHIFT,), "text"),
    Run("TG image LOO", (TG_IMAGE,), "image"),
    Run("TG text LOO", (TG_TEXT,), "text"),
    Run("PARC LOO", ("parc",), None),
    Run("small zoos LOO", ("full-finetune",), None),
    Run("offline benchmark LOO", (), None),
    Run("SHiFT -> TG image", (TG_IMAGE,), "image", (SHIFT,)),
    Run("SHiFT -> TG text", (TG_TEXT,), "text", (SHIFT,)),
    Run("TG -> SHiFT image", (SHIFT,), "image", (TG_IMAGE,)),
    Run("TG -> SHiFT text", (SHIFT,), "text", (TG_TEXT,)),
)


def load(store, run: Run) -> pd.DataFrame:
    """The run's pair table with every stored score; on datasets with scores, only the models that have all."""
    if not run.protocols:
        raw = pd.read_csv(OFFLINE)
    else:
        stored = sorted(store.scores()["score"].unique())
        raw = store.pair_table([*run.protocols, *run.train], run.modality, stored, select="test")
    pairs, _ = check_pairs(raw)
    scores = [c for c in pairs.columns if c.startswith("score_")]
    scored_dataset = pairs.groupby("dataset")[scores].transform(lambda c: c.notna().any()).all(axis=1)
    has_all = pairs[scores].notna().all(axis=1)
    return pairs.loc[~scored_dataset | has_all].reset_index(drop=True)


def strategies(pairs: pd.DataFrame) -> list[str]:
    """mean-perf, each score with values, LR, the stack of every score, auto."""
    scores = [c.removeprefix("score_") for c in pairs.columns if c.startswith("score_") and pairs[c].notna().any()]
    stack = [f"stack+{'+'.join(scores)}"] if scores else []
    return ["mean-perf", *(f"score:{s}" for s in scores), "lr", *stack, "auto"]


def split_of(run: Run) -> dict:
    """`run_evaluation`'s split arguments: leave-one-dataset-out over the run's protocols, or the cross-protocol
    split fitted once."""
    if run.train:
        return {"split": "cross-protocol", "fit_once": True, "protocols": list(run.protocols),
                "train_protocols": list(run.train)}
    return {"split": "loo"}


def coverage(folds: list) -> float:
    """The share of true z-scored results inside auto's 68% interval, over the held-out rankable groups."""
    inside = []
    for fold in folds:
        auto = Auto().fit(fold.train)
        mean, half = auto.predict(fold.test), auto.spread(fold.test)
        truth = zscore_within(fold.test["performance"].astype(float), ranking_groups(fold.test)).to_numpy()
        known = np.isfinite(mean) & np.isfinite(half)
        inside.extend(np.abs(truth[known] - mean[known]) <= half[known])
    return float(np.mean(inside)) if inside else float("nan")


def run_one(store, run: Run) -> tuple[pd.DataFrame, pd.DataFrame, float, float]:
    """Each strategy's mean weighted tau and relative regret (by seen where cross-protocol), the per-dataset
    results, auto's coverage, and the seconds it took."""
    start = time.perf_counter()
    pairs = load(store, run)
    ev = run_evaluation(pairs, budgets=BUDGETS, strategies=strategies(pairs), **split_of(run)).evaluation
    results = ev.results.assign(run=run.name)
    results = results.loc[(results["measure"] == "weighted_tau")
                          | ((results["measure"] == "relative_regret") & results["budget"].isin(BUDGETS))]
    results = results.assign(column=results["measure"].map({"weighted_tau": "tau_w", "relative_regret": "regret"})
                             + results["budget"].map(lambda b: "" if pd.isna(b) else f" B={int(b)}"))
    if "seen" in results.columns:
        results["seen"] = results["seen"].map({True: "seen", False: "unseen"})
    index = ["run", "strategy", *(["seen"] if "seen" in results.columns else [])]
    table = results.pivot_table(index=index, columns="column", values="value", sort=False).reset_index()
    covered = coverage(make_folds(pairs, "loo")) if not run.train else float("nan")
    return table, results, covered, time.perf_counter() - start


def verdicts(results: pd.DataFrame) -> pd.DataFrame:
    """Per run (and seen): auto against the best simple evidence (mean-perf or one score) and the best learned
    strategy, each pair compared on the datasets both rank."""
    rows = []
    keys = ["run", *(["seen"] if "seen" in results.columns else [])]
    for key, part in results.groupby(keys, sort=False, dropna=False):
        wide = part.pivot_table(index="dataset", columns=["column", "strategy"], values="value")

        def paired(other: str, column: str = "tau_w", wide: pd.DataFrame = wide) -> tuple[float, float]:
            both = wide[column][["auto", other]].dropna()
            return float(both["auto"].mean()), float(both[other].mean())

        names = set(part["strategy"])
        simple = [s for s in names if s == "mean-perf" or s.startswith("score:")]
        best = max(simple, key=lambda s: paired(s)[1] - paired(s)[0])  # the hardest to beat where both rank
        learned = [s for s in names if s == "lr" or s.startswith("stack")]
        rival = max(learned, key=lambda s: paired(s)[1] - paired(s)[0]) if learned else None
        auto, simple_tau = paired(best)
        regret_ok = all(paired(s, f"regret B={b}")[0] <= paired(s, f"regret B={b}")[1] + MARGIN
                        for b in BUDGETS for s in ("mean-perf", best))
        rows.append({**dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True)),
                     "best simple": best, "its tau_w": simple_tau, "auto tau_w (same datasets)": auto,
                     "best learned": rival or "-", "learned tau_w": paired(rival)[1] if rival else np.nan,
                     "auto tau_w (same)": paired(rival)[0] if rival else np.nan,
                     "tau_w within 0.01": auto >= simple_tau - MARGIN, "regret B=1,3 within 0.01": regret_ok,
                     "0.05 above": auto >= simple_tau + CLEAR})
    return pd.DataFrame(rows)


ADAPTIVE_BUDGETS = (1, 3, 5, 10)
ADAPTIVE_TARGETS = {5: 0.03, 10: 0.02}  # SHiFT vision LOO, relative regret


def adaptive_run(store) -> pd.DataFrame:
    """SHiFT vision leave-one-dataset-out, one pick at a time: auto's session against adaptive:similarity and the
    static mean-perf, relative regret at each budget."""
    pairs = store.pair_table(SHIFT, "image", sorted(store.scores()["score"].unique()), select="test")
    names = ("mean-perf", "adaptive:similarity", "auto")
    ev = run_evaluation(pairs, "loo", names, ADAPTIVE_BUDGETS, adaptive=True).evaluation
    summary = ev.summary()
    regret = summary.loc[summary["measure"] == "relative_regret"]
    table = regret.pivot_table(index="strategy", columns="budget", values="mean", sort=False)
    table.columns = [f"regret B={b}" for b in table.columns]
    return table.rename_axis("strategy")


def whole_history_run(store) -> pd.DataFrame:
    """SHiFT vision leave-one-dataset-out as `next` and `rank` fit `auto`: on every image protocol's history without
    the held-out dataset, named the protocol the user fine-tunes under (vtab1k) or not; mean-perf beside them."""
    history = store.pair_table("all", "image", sorted(store.scores()["score"].unique()), select="test")
    strategies = {"auto": Auto(protocol=SHIFT), "auto, no protocol named": Auto(),
                  "mean-perf": make_strategy("mean-perf", BUDGETS)}
    ev = run_evaluation(history, "loo", strategies, BUDGETS, protocols=[SHIFT]).evaluation
    summary = ev.summary()
    keep = (summary["measure"] == "weighted_tau") | ((summary["measure"] == "relative_regret")
                                                     & summary["budget"].isin(BUDGETS))
    summary = summary.loc[keep].assign(column=lambda f: f["measure"].map({"weighted_tau": "tau_w",
                                                                           "relative_regret": "regret"})
                                       + f["budget"].map(lambda b: "" if pd.isna(b) else f" B={int(b)}"))
    return summary.pivot_table(index="strategy", columns="column", values="mean", sort=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="a store holding the bundled history (default: a temporary one)")
    parser.add_argument("--runs", help="comma-separated run names (default: all)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    wanted = args.runs.split(",") if args.runs else [r.name for r in RUNS]
    with history_store(args.db) as store:
        start = time.perf_counter()
        tables, results, coverages, seconds = [], [], {}, {}
        for run in (r for r in RUNS if r.name in wanted):
            table, result, coverages[run.name], seconds[run.name] = run_one(store, run)
            tables.append(table)
            results.append(result)
            print(f"{run.name}: {seconds[run.name]:.0f} s", file=sys.stderr)
        adaptive = adaptive_run(store) if "SHiFT vision LOO" in wanted else None
        whole = whole_history_run(store) if "SHiFT vision LOO" in wanted else None
        total = time.perf_counter() - start
    table = pd.concat(tables, ignore_index=True)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "auto_tables.csv", index=False)
    verdict = verdicts(pd.concat(results, ignore_index=True)).round(3)
    lines = ["# auto against the best simple evidence", "",
             "Command: `python experiments/auto_tables.py --out experiments/results`; test values choose each pair's "
             "best hyper-parameters; every strategy ranks the same candidates (on a dataset with scores, the models "
             f"that have every score). Each verdict compares auto with the other strategy on the datasets both rank; "
             "`best simple` is the mean-perf or single score hardest for auto to beat there. "
             f"Took {total:.0f} s on a 2-core machine.", "",
             "## Verdicts", "", markdown(verdict.set_index("run")), "",
             "## auto's 68% interval: share of true z-scored results inside it (leave-one-dataset-out)", "",
             markdown(pd.DataFrame({"coverage": coverages}).dropna().round(3).rename_axis("run")), "",
             *(["## Adaptive: SHiFT vision leave-one-dataset-out, one pick at a time", "",
                "auto's session moves the sources' reliabilities with the results and re-weights the history towards "
                "the training datasets that agree with them; targets: relative regret "
                + ", ".join(f"<= {v} at B={b}" for b, v in ADAPTIVE_TARGETS.items()) + ".", "",
                markdown(adaptive.round(3)), ""] if adaptive is not None else []),
             *(["## SHiFT vision as `next` and `rank` fit auto: every image protocol's history", "",
                "Leave-one-dataset-out over SHiFT vision's datasets, each fit on the store's whole image history "
                "(8 protocols) without the held-out dataset. `next` and `rank` name the protocol the user fine-tunes "
                "under, and auto's inner folds then hold out that protocol's datasets alone.", "",
                markdown(whole.round(3)), ""] if whole is not None else []),
             "## Every strategy (means over the held-out datasets)", "",
             markdown(table.round(3).set_index("run"))]
    (args.out / "auto_tables.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
