"""One table of splits x strategies x histories across protocols (issue 11), on the bundled history.

Runs (`TG` = TransferGraph's re-run, `SHiFT` = VTAB-1k; test values choose each pair's best hyper-parameters):
- TG image and TG text (full fine-tuning) leave-one-dataset-out, ranked on the datasets with stored scores;
- TG image + SHiFT vision leave-one-dataset-out (SHiFT as extra history; TG's scored datasets ranked);
- cross-protocol SHiFT -> TG and TG -> SHiFT, image and text (seen and unseen datasets apart, with the training
  protocol's own results as the `history-accuracy` reference);
- SHiFT vision leave-one-dataset-out (the static LR figure of the README).

Writes protocol_tables.md (means) and protocol_tables.csv (every per-dataset number) to --out, with the time taken.
Each run's means and seconds are kept in protocol_tables_parts/ (and its rows in the CSV), so that `--runs`
recomputes only the runs named and the table is assembled from every run's latest numbers (one run at a time):
    python experiments/protocol_tables.py --out experiments/results
    python experiments/protocol_tables.py --runs "TG image LOO,TG text (full) LOO" --out experiments/results
Without --db, a temporary SQLite store is created and the bundled history loaded into it.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from recommender.contracts import score_column
from recommender.evaluation.pipeline import run_evaluation

sys.path.insert(0, str(Path(__file__).parent))
from paper_tables import markdown  # noqa: E402 -- the experiments' one Markdown writer

TG_IMAGE, TG_TEXT, SHIFT = "transfergraph:70pct-30ep", "transfergraph:full-5ep", "vtab1k"
SCORES = ("logme", "hscore_reg")
BUDGETS = (1, 3, 5, 10)
S = "+".join(SCORES)
BASE = ["mean-perf", *(f"score:{s}" for s in SCORES)]
LEARNED_S = ["lr", f"lr+{S}", f"stack+{S}", f"stackcv+{S}"]
# the LR d,m prediction as a second prior: refits LR once per scored training dataset, affordable on one history
WITH_LR_PRIOR = [f"stack+lr+{S}", f"stackcv+lr+{S}"]


@dataclass(frozen=True)
class Run:
    """One evaluation: the protocols loaded, those ranked, those cross-protocol trains on, and the strategies."""

    name: str
    modality: str
    split: str
    tested: tuple[str, ...]
    extra: tuple[str, ...]
    strategies: tuple[str, ...]
    scored_only: bool = False  # rank only the datasets with stored scores


RUNS = (
    Run("TG image LOO", "image", "loo", (TG_IMAGE,), (), (*BASE, *LEARNED_S, *WITH_LR_PRIOR, "fm", f"fm+{S}"), True),
    Run("TG text (full) LOO", "text", "loo", (TG_TEXT,), (),
        (*BASE, *LEARNED_S, *WITH_LR_PRIOR, "fm", f"fm+{S}"), True),
    Run("TG image + SHiFT LOO", "image", "loo", (TG_IMAGE,), (SHIFT,),
        (*BASE, *LEARNED_S, "auto:lr", f"auto:lr+{S}", f"auto:stack+{S}", f"auto:stackcv+{S}"), True),
    Run("SHiFT -> TG image", "image", "cross-protocol", (TG_IMAGE,), (SHIFT,),
        (*BASE, "history-accuracy", *LEARNED_S)),
    Run("TG -> SHiFT image", "image", "cross-protocol", (SHIFT,), (TG_IMAGE,),
        (*BASE, "history-accuracy", *LEARNED_S)),
    Run("SHiFT -> TG text", "text", "cross-protocol", (TG_TEXT,), (SHIFT,), (*BASE, "history-accuracy", *LEARNED_S)),
    Run("TG -> SHiFT text", "text", "cross-protocol", (SHIFT,), (TG_TEXT,), (*BASE, "history-accuracy", *LEARNED_S)),
    Run("SHiFT vision LOO", "image", "loo", (SHIFT,), (), ("mean-perf", "lr")),
)


def run_one(store, run: Run) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """Per-dataset results and the summary of one run, and its seconds."""
    start = time.perf_counter()
    raw = store.pair_table([*run.tested, *run.extra], run.modality, SCORES, select="test")
    train = run.extra if run.split == "cross-protocol" else ()
    scored = [score_column(s) for s in SCORES]
    ev = run_evaluation(raw, run.split, run.strategies, BUDGETS, protocols=list(run.tested),
                        train_protocols=list(train), fit_once=run.split == "cross-protocol",
                        keep=(lambda f: f.test[scored].notna().any(axis=None)) if run.scored_only else None).evaluation
    seconds = time.perf_counter() - start
    return ev.results.assign(run=run.name), ev.summary().assign(run=run.name), seconds


def table(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per run, strategy (and seen): weighted tau and relative regret at each budget, n datasets."""
    if "seen" in summary.columns:  # cross-protocol runs only; a label, so that pivots keep the other runs' rows
        summary = summary.assign(seen=summary["seen"].map({True: "seen", False: "unseen"}).fillna("-"))
    keys = ["run", "strategy", *(["seen"] if "seen" in summary.columns else [])]
    tau = summary[summary["measure"] == "weighted_tau"].set_index(keys)
    regret = summary[summary["measure"] == "relative_regret"].pivot_table(index=keys, columns="budget", values="mean")
    out = pd.DataFrame({"weighted tau": tau["mean"], "std": tau["std"]}).join(
        regret.rename(columns=lambda b: f"rel. regret B={int(b)}"), how="outer").join(tau["n"])
    # runs, then strategies, in the order they were run (RUNS); seen before unseen
    order = {key: i for i, key in enumerate(summary[keys[:2]].drop_duplicates().itertuples(index=False, name=None))}
    out = out.reset_index()
    return out.assign(at=[order[k] for k in out[keys[:2]].itertuples(index=False, name=None)]).sort_values(
        ["at", *keys[2:]], kind="stable").drop(columns="at")


def slug(name: str) -> str:
    """A file name for a run's part."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def main(argv: list[str] | None = None) -> int:
    """Run the evaluations asked for (default: all), keep each as a part, write the table of every part."""
    from recommender.history import open_store

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", help="store URL (default: a temporary store loaded with the bundled history)")
    parser.add_argument("--out", default="experiments/results")
    parser.add_argument("--runs", help="comma-separated run names (default: all)")
    parser.add_argument("--table-only", action="store_true", help="run nothing; rewrite the table from kept numbers")
    args = parser.parse_args(argv)
    out = Path(args.out)
    csv, parts = out / "protocol_tables.csv", out / "protocol_tables_parts"  # per-dataset rows; each run's means
    parts.mkdir(parents=True, exist_ok=True)
    wanted = [] if args.table_only else args.runs.split(",") if args.runs else [r.name for r in RUNS]
    unknown = sorted(set(wanted) - {r.name for r in RUNS})
    if unknown:
        parser.error(f"unknown run(s) {', '.join(unknown)}; runs: {', '.join(r.name for r in RUNS)}")
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(args.db or f"sqlite:///{tmp}/history.db", create=not args.db) if wanted else None
        if wanted and not args.db:
            from recommender.history.bundled import load_bundled

            load_bundled(store)
        for run in (r for r in RUNS if r.name in wanted):
            found, summary, seconds = run_one(store, run)
            kept = pd.read_csv(csv) if csv.exists() else found.iloc[:0]
            # the per-dataset rows of the other runs stay as they were; this run's are replaced
            pd.concat([kept[kept["run"] != run.name], found], ignore_index=True).to_csv(csv, index=False)
            summary.assign(seconds=seconds).to_csv(parts / f"{slug(run.name)}.csv", index=False)
            print(f"{run.name}: {seconds:.0f} s", file=sys.stderr)
    done = [r.name for r in RUNS if (parts / f"{slug(r.name)}.csv").exists()]
    summaries = pd.concat([pd.read_csv(parts / f"{slug(name)}.csv") for name in done], ignore_index=True)
    times = summaries.groupby("run", sort=False)["seconds"].first()
    frame = table(summaries.drop(columns="seconds"))
    lines = ["# Protocols and cross-protocol (issue 11)", "",
             "Command: `python experiments/protocol_tables.py --out experiments/results` (or its runs one at a time "
             "with `--runs NAME`); test values choose each pair's best hyper-parameters.", "",
             f"Took {times.sum():.0f} s in all on the shared 2-core machine ("
             + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()) + ").", "",
             "Means over the ranked datasets; `seen`: cross-protocol datasets that training holds under its own "
             "protocol. Per-dataset numbers: protocol_tables.csv.", "",
             markdown(frame.set_index("run").round(3)), ""]
    (out / "protocol_tables.md").write_text("\n".join(lines), encoding="utf-8")
    missing = [r.name for r in RUNS if r.name not in done]
    print(f"wrote {out / 'protocol_tables.md'}" + (f"; runs not yet made: {', '.join(missing)}" if missing else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
