"""Write an evaluation as one folder: report.md, a self-contained report.html, CSVs of every number and PNG plots.

The files are built in a hidden folder and moved into place one by one (recommender.files.write_output_folder): a
failed run changes nothing, and a re-run replaces only the files an earlier report wrote there."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from recommender.evaluation.runner import Evaluation
from recommender.executors import Executor, SerialExecutor
from recommender.files import write_output_folder

MAX_ISSUE_LINES = 40
# The files every report writes (scatter/<dataset>.png come with them); `evaluate` checks them before it runs.
REPORT_FILES = ("results.csv", "summary.csv", "predictions.csv.gz", "issues.csv", "strategies.csv",
                "regret_vs_budget.png", "report.md", "report.html")
# A report is a list of blocks, rendered once as Markdown and once as HTML:
# ("h", level, text), ("p", text), ("ul", [items]), ("table", DataFrame), ("img", relative path, alt text).
Block = tuple


def _cell(row: pd.Series) -> str:
    """`mean ± std` with three decimals."""
    return f"{row['mean']:.3f} ± {row['std']:.3f}"


def strategy_notes(ev: Evaluation, strategies: Sequence[str]) -> pd.DataFrame:
    """Per strategy: its family, n (units averaged: datasets x repeats) and a note when it covered only part.

    A strategy that ranked only some models (e.g. `imagenet` or `score:` where a fact or score is missing) says
    what share it ranked; one evaluated on fewer datasets than the others says so; one with no prediction at all
    still gets its row, with n = 0."""
    from recommender.evaluation.plots import family

    units = ev.results[["fold", "repeat", "dataset"]].drop_duplicates()
    total = len(units)
    regret = ev.results[ev.results["measure"] == "regret"]
    rows = []
    for name in strategies:
        n = len(regret.loc[regret["strategy"] == name, ["fold", "repeat", "dataset"]].drop_duplicates())
        notes = []
        if n == 0:
            notes.append("not evaluated: no prediction on any dataset (see Issues)")
        elif n < total:
            notes.append(f"{n} of {total} datasets")
        if n and not ev.predictions.empty:
            known = ev.predictions.loc[ev.predictions["strategy"] == name, "prediction"].notna()
            if len(known) and not known.all():
                notes.append(f"ranked {known.mean():.0%} of the models; the rest picked last, tau over the ranked")
        rows.append({"strategy": name, "family": family(name), "n": n, "note": "; ".join(notes)})
    return pd.DataFrame(rows).set_index("strategy")


def summary_table(summary: pd.DataFrame, notes: pd.DataFrame,
                  measures: tuple[str, ...] = ("weighted_tau", "relative_regret", "recall")) -> pd.DataFrame:
    """One row per strategy of `notes` (in its order); columns `weighted_tau`, `relative_regret@B`, ... as
    `mean ± std` ("—" = not defined), then family, n and note."""
    part = summary[summary["measure"].isin(measures)].copy()
    part["column"] = [m if pd.isna(b) else f"{m}@{b}" for m, b in zip(part["measure"], part["budget"], strict=True)]
    part["cell"] = part.apply(_cell, axis=1) if len(part) else pd.Series(dtype=str)
    table = part.pivot(index="strategy", columns="column", values="cell")
    order = [c for m in measures for c in part["column"].drop_duplicates() if c.split("@")[0] == m]
    return table.reindex(index=notes.index, columns=order).fillna("—").join(notes)


def per_dataset_table(results: pd.DataFrame, measure: str, budget: int | None = None) -> pd.DataFrame:
    """One measure per dataset (rows) and strategy (columns), averaged over folds/seeds."""
    part = results[results["measure"] == measure]
    part = part[part["budget"].isna()] if budget is None else part[part["budget"] == budget]
    table = part.pivot_table(index="dataset", columns="strategy", values="value", aggfunc="mean").round(3)
    return table[[s for s in results["strategy"].drop_duplicates() if s in table.columns]]


def _markdown_table(frame: pd.DataFrame) -> str:
    """A DataFrame as a GitHub Markdown table (index included)."""
    frame = frame.reset_index()
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join("—" if pd.isna(v) else str(v) for v in row) + " |"
            for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def to_markdown(blocks: list[Block]) -> str:
    """The report as Markdown (images linked by their paths in the folder)."""
    parts = []
    for kind, *rest in blocks:
        if kind == "h":
            parts.append("#" * rest[0] + " " + rest[1])
        elif kind == "p":
            parts.append(rest[0])
        elif kind == "ul":
            parts.append("\n".join(f"- {item}" for item in rest[0]))
        elif kind == "table":
            parts.append(_markdown_table(rest[0]))
        elif kind == "img":
            parts.append(f"![{rest[1]}]({rest[0]})")
    return "\n\n".join(parts) + "\n"


def to_html(blocks: list[Block], folder: Path, title: str) -> str:
    """The report as one self-contained HTML page: tables inline, images as base64 PNG read from `folder`."""
    esc = html.escape
    parts = []
    for kind, *rest in blocks:
        if kind == "h":
            parts.append(f"<h{rest[0]}>{esc(rest[1])}</h{rest[0]}>")
        elif kind == "p":
            parts.append(f"<p>{esc(rest[0])}</p>")
        elif kind == "ul":
            parts.append("<ul>" + "".join(f"<li>{esc(str(item))}</li>" for item in rest[0]) + "</ul>")
        elif kind == "table":
            parts.append(rest[0].reset_index().to_html(index=False, na_rep="—", border=0))
        elif kind == "img":
            data = base64.b64encode((folder / rest[0]).read_bytes()).decode("ascii")
            parts.append(f'<figure><img alt="{esc(rest[1])}" src="data:image/png;base64,{data}"></figure>')
    style = ("body{font-family:sans-serif;max-width:1300px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;font-size:13px;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}img{max-width:100%}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{esc(title)}</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")


def _issue_blocks(issues: pd.DataFrame) -> list[Block]:
    """The Issues section: counts by kind, then the first MAX_ISSUE_LINES issues."""
    blocks: list[Block] = [("h", 2, "Issues (set aside or flagged, never averaged in)")]
    if issues.empty:
        return [*blocks, ("p", "None.")]
    # pandas-stubs type itertuples' fields as any pandas scalar (bytes, Period, ...): these columns hold text
    items = [f"{r.dataset} {'' if pd.isna(r.model) else r.model}: {r.issue}, {r.detail}"  # type: ignore[arg-type,str-bytes-safe]
             for r in issues.head(MAX_ISSUE_LINES).itertuples()]
    if len(issues) > MAX_ISSUE_LINES:
        items.append(f"... {len(issues) - MAX_ISSUE_LINES} more in issues.csv")
    return [*blocks, ("table", issues.groupby("issue").size().rename("count").to_frame()), ("ul", items)]


def left_out_datasets(ev: Evaluation) -> pd.DataFrame:
    """Every dataset (ranking group) with an issue and no result at all, with why: its own issues (another metric,
    too few models, constant performance, no prediction), else the count of its pairs set aside by kind."""
    issues = ev.issues
    done = set(ev.results["dataset"]) if not ev.results.empty else set()
    rows = []
    for dataset, part in issues[~issues["dataset"].isin(done)].groupby("dataset", sort=True):
        own = part[part["model"].isna()]
        if not own.empty:
            reason = "; ".join(dict.fromkeys(f"{r.issue}: {r.detail}" for r in own.itertuples()))
        else:
            counts = part["issue"].value_counts()
            reason = "every pair set aside (" + ", ".join(f"{k}: {v}" for k, v in counts.items()) + ")"
        rows.append({"dataset": dataset, "reason": reason})
    return pd.DataFrame(rows, columns=["dataset", "reason"])


def report_blocks(ev: Evaluation, summary: pd.DataFrame, notes: pd.DataFrame, title: str,
                  context: dict[str, object], scatters: list[Path]) -> list[Block]:
    """The report's content."""
    budgets = sorted(int(b) for b in summary["budget"].dropna().unique())
    blocks: list[Block] = [
        ("h", 1, title), ("ul", [f"{k}: {v}" for k, v in context.items()]),
        ("h", 2, "Summary (mean ± std over folds/seeds; n = datasets x repeats; 95% bootstrap CIs in summary.csv)"),
        ("table", summary_table(summary, notes)),
        ("p", "Random is no ranking (no correlation); its regret is the exact expectation over subsets. "
              "Hybrids pick per budget (no single ranking). A note says when a strategy ranked only part of the "
              "models or datasets."),
        ("img", "regret_vs_budget.png", "relative regret against budget"),
        ("h", 2, "Weighted tau per dataset"), ("table", per_dataset_table(ev.results, "weighted_tau"))]
    if budgets:
        blocks += [("h", 2, f"Relative regret at B={budgets[0]} per dataset"),
                   ("table", per_dataset_table(ev.results, "relative_regret", budgets[0]))]
    left = left_out_datasets(ev)
    if not left.empty:
        blocks += [("h", 2, f"Datasets left out ({len(left)})"), ("table", left.set_index("dataset"))]
    blocks += _issue_blocks(ev.issues)
    if scatters:
        blocks += [("h", 2, f"Per-dataset predictions (top-{budgets[-1]} picks marked)")]
        blocks += [("img", f"scatter/{p.name}", p.stem) for p in scatters]
    return blocks


def write_report(ev: Evaluation, out: str | Path, title: str, context: dict[str, object], scatter: bool = True,
                 strategies: Sequence[str] | None = None, overwrite: bool = False,
                 executor: Executor | None = None) -> Path:
    """Write report.md, report.html, CSVs (predictions gzipped) and PNG plots (scatters optional) into the folder
    `out`, replacing the files of an earlier report there (and removing its files this one lacks, such as the
    scatter of a dataset no longer evaluated); return the path of report.md.

    `strategies` are the requested names: each gets a summary row, even one with no result. Other files in `out`
    are kept; one with a name the report writes that no earlier report wrote is refused unless `overwrite`.
    The scatter figures, one per dataset, are drawn on ``executor`` (default: this process)."""
    from recommender.evaluation.plots import plot_regret, plot_scatter_task  # matplotlib only when writing

    summary = ev.summary(by_seen=False)  # cross-protocol: seen and unseen apart in summary.csv only
    names = list(dict.fromkeys([*(strategies or []), *summary["strategy"]]))
    notes = strategy_notes(ev, names)

    def build(folder: Path) -> None:
        ev.results.to_csv(folder / "results.csv", index=False)
        ev.summary().to_csv(folder / "summary.csv", index=False)
        ev.predictions.to_csv(folder / "predictions.csv.gz", index=False)
        ev.issues.to_csv(folder / "issues.csv", index=False)
        notes.to_csv(folder / "strategies.csv")
        plot_regret(summary, folder / "regret_vs_budget.png")
        scatters = []
        budgets = summary["budget"].dropna()
        if scatter and len(ev.predictions) and len(budgets):
            (folder / "scatter").mkdir()
            preds, results = ev.predictions.groupby("dataset"), ev.results.groupby("dataset")
            tasks = [(preds.get_group(dataset), results.get_group(dataset) if dataset in results.groups
                      else ev.results.head(0), dataset, int(budgets.max()),
                      folder / "scatter" / (re.sub(r"[^\w.-]+", "_", dataset).strip("_") + ".png"))
                     for dataset in sorted(ev.predictions["dataset"].unique())]
            scatters = (executor or SerialExecutor()).map(plot_scatter_task, tasks)
        blocks = report_blocks(ev, summary, notes, title, context, scatters)
        (folder / "report.md").write_text(to_markdown(blocks))
        (folder / "report.html").write_text(to_html(blocks, folder, title))

    return write_output_folder(out, build, kind="evaluate", overwrite=overwrite) / "report.md"
