"""Write an evaluation as a Markdown report, CSVs of every number, and PNG plots (matplotlib, no display)."""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from recommender.evaluation.runner import Evaluation  # noqa: E402
from recommender.files import write_atomic  # noqa: E402

MAX_ISSUE_LINES = 40


def _cell(row: pd.Series) -> str:
    """`mean ± std` with three decimals."""
    return f"{row['mean']:.3f} ± {row['std']:.3f}"


def summary_table(summary: pd.DataFrame, measures: tuple[str, ...] = ("weighted_tau", "relative_regret", "recall")
                  ) -> pd.DataFrame:
    """Strategies as rows; columns `weighted_tau`, `relative_regret@B`, ... as `mean ± std` ("—" = not defined)."""
    part = summary[summary["measure"].isin(measures)].copy()
    part["column"] = [m if pd.isna(b) else f"{m}@{b}" for m, b in zip(part["measure"], part["budget"])]
    part["cell"] = part.apply(_cell, axis=1)
    table = part.pivot(index="strategy", columns="column", values="cell")
    order = [c for m in measures for c in part["column"].drop_duplicates() if c.split("@")[0] == m]
    strategies = list(dict.fromkeys(summary["strategy"]))
    # units behind the regret means: a strategy with no prediction on some datasets averages over fewer
    units = summary[summary["measure"] == "regret"].groupby("strategy")["n"].max().rename("n")
    return table.reindex(index=strategies, columns=order).fillna("—").join(units)


def per_dataset_table(results: pd.DataFrame, measure: str, budget: int | None = None) -> pd.DataFrame:
    """One measure per dataset (rows) and strategy (columns), averaged over folds/seeds."""
    part = results[results["measure"] == measure]
    part = part[part["budget"].isna()] if budget is None else part[part["budget"] == budget]
    table = part.pivot_table(index="dataset", columns="strategy", values="value", aggfunc="mean").round(3)
    return table[[s for s in results["strategy"].drop_duplicates() if s in table.columns]]


def _markdown(frame: pd.DataFrame) -> str:
    """A DataFrame as a GitHub Markdown table (index included)."""
    frame = frame.reset_index()
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join("—" if pd.isna(v) else str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def plot_regret(summary: pd.DataFrame, path: Path) -> Path:
    """Mean relative regret against budget B, one line per strategy, with its std as a band."""
    part = summary[summary["measure"] == "relative_regret"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, line in part.groupby("strategy", sort=False):
        b = line["budget"].astype(int)
        ax.plot(b, line["mean"], marker="o", label=name)
        ax.fill_between(b, (line["mean"] - line["std"]).clip(lower=0), line["mean"] + line["std"], alpha=0.1)
    ax.set(xlabel="budget B (models fine-tuned)", ylabel="relative regret", title="Regret against budget")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_scatter(ev: Evaluation, dataset: str, path: Path) -> Path:
    """Predicted against true performance on one dataset, one panel per ranking strategy, weighted tau in titles."""
    preds = ev.predictions[ev.predictions["dataset"] == dataset]
    taus = ev.results.query("dataset == @dataset and measure == 'weighted_tau'").groupby("strategy")["value"].mean()
    names = [n for n in dict.fromkeys(preds["strategy"]) if n in taus.index]
    fig, axes = plt.subplots(1, max(len(names), 1), figsize=(3.2 * max(len(names), 1), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        p = preds[preds["strategy"] == name]
        ax.scatter(p["prediction"], p["performance"], s=8, alpha=0.6)
        ax.set(title=f"{name}\nweighted tau {taus[name]:.2f}", xlabel="predicted", ylabel="true performance")
        ax.title.set_fontsize(8)
    fig.suptitle(dataset, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write a table as CSV (gzipped for a .gz name), atomically."""
    return write_atomic(path, lambda part: frame.to_csv(part, index=False))


def write_report(ev: Evaluation, out: str | Path, title: str, context: dict[str, object], scatter: bool = True
                 ) -> Path:
    """Write report.md, CSVs (predictions gzipped) and the PNG plots (scatters optional) to `out`; return report.md."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = ev.summary()
    write_csv(ev.results, out / "results.csv")
    write_csv(summary, out / "summary.csv")
    write_csv(ev.predictions, out / "predictions.csv.gz")
    write_csv(ev.issues, out / "issues.csv")
    write_atomic(out / "regret_vs_budget.png", partial(plot_regret, summary))
    for dataset in sorted(ev.predictions["dataset"].unique()) if scatter and len(ev.predictions) else []:
        (out / "scatter").mkdir(exist_ok=True)
        path = out / "scatter" / (re.sub(r"[^\w.-]+", "_", dataset) + ".png")
        write_atomic(path, partial(plot_scatter, ev, dataset))
    budgets = sorted(summary["budget"].dropna().unique())
    lines = [f"# {title}", "", *[f"- {k}: {v}" for k, v in context.items()], "",
             "## Summary (mean ± std over folds/seeds; n = datasets x repeats; 95% bootstrap CIs in summary.csv)", "",
             _markdown(summary_table(summary)), "",
             "Random is no ranking (no correlation); its regret is the exact expectation over subsets. "
             "Hybrids pick per budget (no single ranking).", "",
             "![regret against budget](regret_vs_budget.png)", "",
             "## Weighted tau per dataset", "", _markdown(per_dataset_table(ev.results, "weighted_tau")), ""]
    if budgets:
        b = int(budgets[0])
        lines += [f"## Relative regret at B={b} per dataset", "",
                  _markdown(per_dataset_table(ev.results, "relative_regret", b)), ""]
    lines += ["## Issues (set aside or flagged, never averaged in)", ""]
    if ev.issues.empty:
        lines.append("None.")
    else:
        counts = ev.issues.groupby("issue").size().rename("count").to_frame()
        lines += [_markdown(counts), "", *[f"- {r.dataset} {'' if pd.isna(r.model) else r.model}: {r.issue}, {r.detail}"
                                           for r in ev.issues.head(MAX_ISSUE_LINES).itertuples()]]
        if len(ev.issues) > MAX_ISSUE_LINES:
            lines.append(f"- ... {len(ev.issues) - MAX_ISSUE_LINES} more in issues.csv")
    return write_atomic(out / "report.md", lambda part: part.write_text("\n".join(lines) + "\n"))
