"""How far the FM's evaluation numbers move with its seed: SHiFT vision leave-one-dataset-out (test-selected pairs,
the committed table's setting), the FM on d,m fitted with seeds 0-4. A change to the FM's training that moves its
numbers by less than the seed-to-seed spread changes nothing a table can tell.

    python experiments/fm_seeds.py --out experiments/results
    python experiments/fm_seeds.py --db sqlite:///my.db --seeds 0,1,2 --out /tmp/fm
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

from recommender.evaluation.pipeline import run_evaluation
from recommender.evaluation.strategies import Learned
from recommender.executors import make_executor

sys.path.insert(0, str(Path(__file__).parent))
from paper_tables import history_store, markdown  # noqa: E402 -- the experiments' one Markdown writer

MEASURES = [("weighted_tau", None), ("relative_regret", 1), ("relative_regret", 3)]
COMMITTED = Path(__file__).parent / "results" / "shift-vision_loo" / "summary.csv"


def per_seed(summary: pd.DataFrame) -> pd.DataFrame:
    """Strategy x measure means from an evaluation summary (budget in the measure's name)."""
    rows = {}
    for measure, budget in MEASURES:
        chosen = summary[(summary["measure"] == measure)
                         & (summary["budget"].isna() if budget is None else summary["budget"] == budget)]
        rows[measure if budget is None else f"{measure}@{budget}"] = chosen.set_index("strategy")["mean"]
    return pd.DataFrame(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="a store holding the bundled history (default: a temporary one)")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    start = time.perf_counter()
    with history_store(args.db) as store:
        pairs = store.pair_table("vtab1k", "image", select="test")
    seeds = [int(s) for s in args.seeds.split(",")]
    strategies = {f"fm seed {s}": Learned("fm", "d,m", params={"seed": s}) for s in seeds}
    run = run_evaluation(pairs, "loo", strategies, executor=make_executor())  # folds on every core
    table = per_seed(run.evaluation.summary())
    spread = table.agg(["mean", "std"]).rename(index={"mean": "mean over seeds", "std": "std over seeds"})
    lines = ["# The FM's numbers by seed: SHiFT vision leave-one-dataset-out", "",
             f"Command: `python experiments/fm_seeds.py --out experiments/results` ({time.perf_counter() - start:.0f} "
             "s on a 2-core machine); test values choose each pair's hyper-parameters; mean over the "
             f"{run.folds} held-out datasets.", "", markdown(pd.concat([table, spread]).round(4))]
    if COMMITTED.is_file():  # the committed table's FM (seed 0), from the code that made it
        committed = per_seed(pd.read_csv(COMMITTED)).loc[["fm"]].rename(index={"fm": "fm in shift-vision_loo"})
        lines += ["", "The FM of the committed leave-one-dataset-out table (experiments/results/shift-vision_loo, "
                  "seed 0, made by the code of its commit):", "", markdown(committed.round(4))]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fm_seeds.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
