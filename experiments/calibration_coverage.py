"""Is the spread `recommend` prints a 68% interval? Leave-one-dataset-out on the bundled histories.

For each held-out dataset: train the recommender on the others, calibrate its spread as `recommender train` does
(`recommender.models.calibration.spread_factor`, on up to 20 inner held-out training datasets),
predict the held-out dataset's models with the warm start's posterior std (no result observed), and count the true
z-scored results inside prediction +- the printed spread. Test values choose each pair's best hyper-parameters.

    python experiments/calibration_coverage.py --out experiments/results
    python experiments/calibration_coverage.py --kinds fm --out experiments/results
    python experiments/calibration_coverage.py --db sqlite:///my.db --kinds lr --out /tmp/cal

Writes calibration_coverage.md for LR alone (the default), else calibration_coverage_<kinds>.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from recommender.evaluation import check_pairs, make_folds
from recommender.models.calibration import held_out_ratios, spread_factor
from recommender.models.factory import make_recommender
from recommender.models.rankers import without_truth

sys.path.insert(0, str(Path(__file__).parent))
from paper_tables import history_store, markdown  # noqa: E402 -- the experiments' one Markdown writer

HISTORIES = {"SHiFT vision": ("vtab1k", "image"), "TG image": ("transfergraph:70pct-30ep", "image")}


def coverage(pairs: pd.DataFrame, kind: str) -> tuple[float, float, int]:
    """The share of held-out z-scored results inside the calibrated interval, the mean factor, and the results."""
    inside, factors = [], []
    for fold in make_folds(pairs, "loo"):
        est = make_recommender(kind, features="d,m").fit(fold.train)
        factor, _ = spread_factor(est, fold.train)
        inside.extend(held_out_ratios(fold.train, fold.test, est.predict(without_truth(fold.test))) <= factor)
        factors.append(factor)
    return float(np.mean(inside)), float(np.mean(factors)), len(inside)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="a store holding the bundled history (default: a temporary one)")
    parser.add_argument("--kinds", default="lr", help="recommenders, comma-separated (default: lr)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rows = []
    start = time.perf_counter()
    with history_store(args.db) as store:
        for name, (protocol, modality) in HISTORIES.items():
            pairs, _ = check_pairs(store.pair_table(protocol, modality, select="test"))
            for kind in args.kinds.split(","):
                covered, factor, n = coverage(pairs, kind)
                rows.append({"history": name, "recommender": kind, "coverage": round(covered, 3),
                             "mean factor": round(factor, 3), "results": n})
                print(rows[-1], file=sys.stderr)
    table = pd.DataFrame(rows).set_index("history")
    kinds = "" if args.kinds == "lr" else f" --kinds {args.kinds}"
    lines = ["# The spread `recommend` prints: coverage of its 68% interval, leave-one-dataset-out", "",
             f"Command: `python experiments/calibration_coverage.py{kinds} --out experiments/results` "
             f"({time.perf_counter() - start:.0f} s on a 2-core machine). Target: 0.60-0.76.", "", markdown(table)]
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"calibration_coverage{'' if args.kinds == 'lr' else '_' + args.kinds.replace(',', '_')}.md"
    (args.out / name).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
