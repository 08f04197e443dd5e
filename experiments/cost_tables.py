"""Configurations and cost on SHiFT vision VTAB-1k, leave-one-dataset-out: the targets of `docs/cost.md`.

For each held-out dataset, trained on the other datasets' jobs only:
- configuration-level relative regret at B = 1, 3: the (model, learning rate) rows of the dataset ranked jointly by a
  recommender on the jobs (features d,m,h; FM and LR), against two steps: the pair-level FM (d,m, the best over
  learning rates) picks the models, each at the learning rate the training pairs measured at both most often found
  best (a model the dataset never ran at that rate keeps the rate it ran at);
- the cost model's predicted seconds of every job of the dataset against the real ones (factor-2 hit rate); its
  ridge penalty is chosen on inner leave-one-dataset-out folds of the training jobs (the smallest held-out spread);
- regret at a cost budget C (seconds, log grid): the joint FM's ranking followed in order and truncated at the first
  row that no longer fits (cost-blind), against the best predicted row whose expected cost fits what is left
  (cost-aware), both spending the rows' real seconds.

Without --db, a temporary SQLite store is created and the bundled history loaded into it. Writes
cost_tables.md, cost_tables.csv (per dataset and budget) and cost_tables.png to --out.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from recommender.contracts import DEFAULT_PROTOCOL, hparam_column
from recommender.evaluation.cost import budget_regret, config_regret, cost_aware_run, truncated_run
from recommender.history.job_table import HPARAM_COLUMNS, job_table
from recommender.models.cost import CostModel
from recommender.models.factory import make_recommender

sys.path.insert(0, str(Path(__file__).parent))
from paper_tables import history_store  # noqa: E402 -- the experiments' one history store

LR = hparam_column("lr")
ROW = ["model", *HPARAM_COLUMNS]
BUDGETS = (1, 3)
GRID = np.geomspace(60, 3e5, 19)  # seconds: a minute to about 3.5 days, 19 points (every 0.25 decade)
ALPHAS = (0.1, 1.0, 10.0, 100.0)  # the cost model's ridge penalties tried on inner folds


def most_common_best_lr(pairs_jobs: pd.DataFrame) -> float:
    """The learning rate that is best most often over the training pairs measured at more than one."""
    per = pairs_jobs.groupby(["model", "dataset", LR])["performance"].max().reset_index()
    several = per[per.groupby(["model", "dataset"])[LR].transform("nunique") > 1]
    best = several.loc[several.groupby(["model", "dataset"])["performance"].idxmax(), LR]
    return float(best.mode().iloc[0]) if len(best) else float(per[LR].mode().iloc[0])


def two_step_rows(rows: pd.DataFrame, model_score: pd.Series, lr: float) -> np.ndarray:
    """A score per row for the two-step choice: each model's pair-level score on its row at ``lr`` (else on its
    one row at the other rate); the model's other rows rank below every model's chosen row."""
    chosen = rows.assign(at=(rows[LR] == lr).astype(int)).sort_values(["model", "at"], ascending=[True, False])
    first = chosen.index[~chosen["model"].duplicated()]
    score = np.full(len(rows), -np.inf)
    positions = rows.index.get_indexer(first)
    score[positions] = model_score.reindex(rows.loc[first, "model"]).to_numpy(dtype=float)
    return score


def cost_alpha(train: pd.DataFrame) -> tuple[float, CostModel]:
    """The ridge penalty with the smallest held-out spread on the training jobs, and its model."""
    fitted = [CostModel(alpha).fit(train) for alpha in ALPHAS]
    best = min(fitted, key=lambda m: m.spread_)
    return float(best.alpha), best


def evaluate_fold(jobs: pd.DataFrame, pairs: pd.DataFrame, dataset: str) -> tuple[dict, list[dict], pd.DataFrame]:
    """The measures on one held-out dataset: config regrets, cost hits, and regret per budget."""
    train, test = jobs[jobs["dataset"] != dataset], jobs[jobs["dataset"] == dataset]
    rows = test.groupby(ROW, as_index=False).agg(performance=("performance", "mean"), seconds=("seconds", "mean"))
    features = test.drop_duplicates(ROW).set_index(ROW)
    design = features.reindex(pd.MultiIndex.from_frame(rows[ROW])).reset_index()
    predictions = {}
    for kind in ("fm", "lr"):
        est = make_recommender(kind, features="d,m,h").fit(train)
        predictions[f"joint {kind}"] = est.predict(design)
    pair_fm = make_recommender("fm", features="d,m").fit(pairs[pairs["dataset"] != dataset])
    models = pairs[pairs["dataset"] == dataset].drop_duplicates("model")
    model_score = pd.Series(pair_fm.predict(models), index=models["model"].to_numpy())
    lr = most_common_best_lr(train)
    predictions["two-step fm"] = two_step_rows(rows, model_score, lr)
    truth = rows["performance"].to_numpy(dtype=float)
    result: dict[str, object] = {"dataset": dataset, "rows": len(rows), "lr_two_step": lr,
                                 "rows_other_lr": int((rows[LR] != lr).sum())}
    for name, pred in predictions.items():
        for b in BUDGETS:
            result[f"{name} @{b}"] = config_regret(pred, truth, b)
    alpha, cost_model = cost_alpha(train)
    ratio = cost_model.predict(test) / test["seconds"].to_numpy(dtype=float)
    result.update(cost_alpha=alpha, cost_jobs=len(test), cost_within_2x=float(np.mean((ratio <= 2) & (ratio >= 0.5))),
                  cost_median_ratio=float(np.median(ratio)))
    expected = cost_model.predict(design)
    cost = rows["seconds"].to_numpy(dtype=float)
    pred = predictions["joint fm"]
    order = [int(i) for i in np.argsort(-pred, kind="stable")]
    median_model = float(rows.groupby("model")["seconds"].median().median())
    budgets = [{"dataset": dataset, "budget_s": c, "below_median_model": c < median_model,
                "cost-blind (truncated)": budget_regret(truncated_run(order, cost, c), truth, cost, c),
                "cost-aware": budget_regret(cost_aware_run(pred, expected, cost, c), truth, cost, c)}
               for c in GRID]
    return result, budgets, rows.assign(expected_cost=expected)


def regret_figure(budgets: pd.DataFrame, path: Path) -> None:
    """Mean relative regret against the budget C, one line per strategy (matplotlib, a file only)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.5, 4.8))
    ax = fig.add_subplot()
    for name, color, marker in (("cost-blind (truncated)", "#D55E00", "o"), ("cost-aware", "#0072B2", "s")):
        mean = budgets.groupby("budget_s")[name].mean()
        ax.plot(mean.index, mean.to_numpy(), linestyle="-", label=name, color=color, marker=marker)
    ax.set_xscale("log")
    ax.set_xlabel("budget C: total fine-tuning seconds (log scale)")
    ax.set_ylabel("relative regret (lower is better)\n(oracle's best within C - best reached) / oracle's")
    ax.set_title("SHiFT vision VTAB-1k, leave-one-dataset-out: regret at a cost budget", loc="left")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    fig.text(0.01, 0.01, "Mean over the held-out datasets where the oracle has a row within C; nothing reached "
             "counts as regret 1. Both follow the joint FM (d,m,h) prediction.", fontsize=8, color="#444444")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=110, format="png")


def report(folds: pd.DataFrame, budgets: pd.DataFrame) -> str:
    """The markdown page: the three targets, then the per-dataset tables."""
    regret_cols = [c for c in folds.columns if "@" in c]
    mean = folds[regret_cols].mean()
    lines = ["# Configurations and cost: SHiFT vision VTAB-1k, leave-one-dataset-out", "",
             f"Generated by `python experiments/cost_tables.py`; {len(folds)} held-out datasets, trained on the "
             "others' jobs only.", "", "## Configuration-level relative regret (mean over datasets)", "",
             "| strategy | " + " | ".join(f"B={b}" for b in BUDGETS) + " |", "|---|" + "---|" * len(BUDGETS)]
    for name in dict.fromkeys(c.split(" @")[0] for c in regret_cols):
        lines.append(f"| {name} | " + " | ".join(f"{mean[f'{name} @{b}']:.4f}" for b in BUDGETS) + " |")
    for b in BUDGETS:
        better = mean[f"joint fm @{b}"] < mean[f"two-step fm @{b}"]
        lines.append(f"\nTarget (B={b}): joint FM below two-step: {'met' if better else 'missed'} "
                     f"({mean[f'joint fm @{b}']:.4f} vs {mean[f'two-step fm @{b}']:.4f}).")
    hits = (folds["cost_within_2x"] * folds["cost_jobs"]).sum() / folds["cost_jobs"].sum()
    lines += ["", "## Cost predicted for held-out datasets", "",
              f"Jobs within a factor of 2 of their real seconds: {hits:.1%} of {int(folds['cost_jobs'].sum())} "
              f"(target 80%: {'met' if hits >= 0.8 else 'missed'}). Ridge penalty chosen on inner folds: "
              f"{', '.join(f'{a:g} ({n}x)' for a, n in folds['cost_alpha'].value_counts().items())}.", "",
              "| dataset | jobs | within 2x | median predicted/real |", "|---|---|---|---|"]
    for r in folds.itertuples():
        lines.append(f"| {r.dataset} | {r.cost_jobs} | {r.cost_within_2x:.1%} | {r.cost_median_ratio:.2f} |")
    per_budget = budgets.groupby("budget_s")[["cost-blind (truncated)", "cost-aware"]].mean()
    worse = budgets["cost-aware"] > budgets["cost-blind (truncated)"] + 1e-12
    below = budgets[budgets["below_median_model"]]
    below_better = below["cost-aware"].mean() < below["cost-blind (truncated)"].mean()
    lines += ["", "## Regret at a cost budget C (mean over datasets)", "", "![regret against C](cost_tables.png)", "",
              "| C (seconds) | cost-blind (truncated) | cost-aware |", "|---|---|---|"]
    lines += [f"| {c:,.0f} | {r['cost-blind (truncated)']:.4f} | {r['cost-aware']:.4f} |"
              for c, r in per_budget.iterrows()]
    defined = int(budgets["cost-aware"].notna().sum())
    grid_ok = bool((per_budget["cost-aware"] <= per_budget["cost-blind (truncated)"] + 1e-12).all())
    lines += ["", f"Target (cost-aware no worse at every budget of the grid): mean over datasets "
              f"{'met' if grid_ok else 'missed'}; per (dataset, C) cell worse in {int(worse.sum())} of {defined}.",
              f"Below each dataset's median model cost ({len(below)} (dataset, C) cells with a defined regret: "
              f"{int(below['cost-aware'].notna().sum())}): cost-aware {below['cost-aware'].mean():.4f} vs cost-blind "
              f"{below['cost-blind (truncated)'].mean():.4f} "
              f"({'better: met' if below_better else 'missed'}).",
              "", "## Per dataset (relative regrets; cost: ridge penalty, jobs, share within 2x)", "",
              "| " + " | ".join(folds.columns) + " |", "|---" * len(folds.columns) + "|"]
    lines += ["| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in r) + " |"
              for r in folds.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the leave-one-dataset-out evaluation and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="store URL (default: a temporary store loaded with the bundled history)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"), help="output folder")
    parser.add_argument("--datasets", type=int, default=0, help="only the first N held-out datasets (a quick look)")
    args = parser.parse_args(argv)
    with history_store(args.db) as store:
        jobs = job_table(store, DEFAULT_PROTOCOL, "image")
        pairs = store.pair_table(DEFAULT_PROTOCOL, "image")
    names = sorted(jobs["dataset"].unique())[: args.datasets or None]
    folds, budgets = [], []
    for name in names:
        result, per_budget, _ = evaluate_fold(jobs, pairs, name)
        folds.append(result)
        budgets += per_budget
        print(f"{name}: " + ", ".join(f"{k} {v:.3f}" for k, v in result.items() if isinstance(v, float)), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    folds_frame, budget_frame = pd.DataFrame(folds), pd.DataFrame(budgets)
    budget_frame.to_csv(out / "cost_tables.csv", index=False)
    regret_figure(budget_frame, out / "cost_tables.png")
    (out / "cost_tables.md").write_text(report(folds_frame, budget_frame))
    print(f"wrote {out / 'cost_tables.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
