"""The evaluation's figures: regret against budget, and per-dataset prediction scatters (matplotlib, files only).

Every strategy family has one fixed colour in every report; strategies of one family differ by marker, then by
filled or hollow marker, then by shade, so no two strategies of a figure look alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D  # a Figure without pyplot: no display backend, no global state

from recommender.errors import UserError
from recommender.evaluation.catalog import parse_strategy

# Okabe-Ito colours (distinguishable with colour-blindness), one per family, never reassigned between reports.
FAMILY_COLOURS: dict[str, str] = {
    "oracle": "#000000",
    "random": "#7F7F7F",
    "agnostic": "#0072B2",
    "task-aware score": "#E69F00",
    "hybrid": "#009E73",
    "learned": "#D55E00",
    "adaptive": "#CC79A7",
    "other": "#56B4E9",
}
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
PANEL_INCHES = (4.6, 4.9)  # per scatter panel: its axes stay above 3 inches after 3-line titles and labels
# the scatter grid's margins in inches (left, right, bottom, above each panel, between columns): room for tick
# labels, an axis label and a 3-line title at 10 points, fixed rather than measured (`tight_layout` draws every
# text once more to measure it, half of a figure's cost)
SCATTER_MARGINS = (0.7, 0.35, 0.55, 0.62, 0.75)
SCORE_LABELS = {"logme": "LogME", "hscore": "H-score", "hscore_reg": "regularised H-score", "lfc": "LFC",
                "parc": "PARC", "knn": "kNN accuracy", "leep": "LEEP", "nce": "NCE", "sfda": "SFDA", "emms": "EMMS"}
AGNOSTIC_LABELS = {"imagenet": "ImageNet top-1 (%)", "size": "parameters (millions)",
                   "mean-perf": "mean z-scored performance on the training datasets"}


FAMILIES = {"oracle": "oracle", "random": "random", "adaptive": "adaptive", "agnostic": "agnostic",
            "score": "task-aware score", "hybrid": "hybrid", "learned-hybrid": "hybrid", "learned": "learned",
            "combined": "learned"}


def family(strategy: str) -> str:
    """The family of a strategy name: oracle, random, agnostic, task-aware score, hybrid, learned (`auto` too),
    adaptive or other (stacked, auto:LEARNED, history-accuracy, or a name no strategy has)."""
    try:
        form = parse_strategy(strategy).form
    except UserError:
        return "other"
    return FAMILIES.get(form, "other")


def _darker(colour: str, share: float) -> str:
    """A hex colour mixed with black (share 0: unchanged)."""
    rgb = [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(c * (1 - share)):02X}" for c in rgb)


def styles(strategies: list[str]) -> dict[str, dict[str, str]]:
    """Colour (by family), marker and marker face colour ("none": hollow) of each strategy. The k-th strategy of a
    family takes marker k mod 7, is hollow in every second round of markers, and darker by a fifth every two rounds."""
    seen: dict[str, int] = {}
    out = {}
    for name in strategies:
        fam = family(name)
        k = seen.get(fam, 0)
        rounds = k // len(MARKERS)
        colour = _darker(FAMILY_COLOURS[fam], min(0.2 * (rounds // 2), 0.8))
        out[name] = {"color": colour, "marker": MARKERS[k % len(MARKERS)], "face": "none" if rounds % 2 else colour}
        seen[fam] = k + 1
    return out


ACRONYMS = {"lr": "LR", "fm": "FM"}  # linear regression, factorization machine


def axis_label(strategy: str) -> str:
    """What a strategy's prediction is, in its units, for an axis."""
    head, _, rest = strategy.partition(":")
    if head == "score":
        return SCORE_LABELS.get(rest, rest)
    if strategy in AGNOSTIC_LABELS:
        return AGNOSTIC_LABELS[strategy]
    if family(strategy) == "learned":  # the recommenders' acronyms in capitals, other names as written
        name = "+".join(ACRONYMS.get(part, part) for part in strategy.split("+"))
        return f"{name} prediction (z within dataset)"
    return f"{strategy} preference"


def _n_text(n: pd.Series) -> str:
    """`n=19`, or `n=7-19` when the budgets average different numbers of datasets."""
    return f"n={n.max()}" if n.min() == n.max() else f"n={n.min()}-{n.max()}"


def regret_figure(summary: pd.DataFrame) -> Figure:
    """Mean relative regret at each measured budget B, per strategy, with 95% bootstrap intervals as error bars."""
    part = summary[summary["measure"] == "relative_regret"].dropna(subset=["budget"])
    names = list(dict.fromkeys(part["strategy"]))
    budgets = sorted(int(b) for b in part["budget"].unique())
    fig = Figure(figsize=(10, 5.2))
    ax = fig.add_subplot()
    # strategies side by side around each budget (log x: equal room around 1 and 10)
    gap = np.diff(np.log10(budgets)).min() if len(budgets) > 1 else 0.3
    offsets = np.linspace(-0.3, 0.3, len(names)) * gap if len(names) > 1 else np.zeros(1)
    style = styles(names)
    for offset, name in zip(offsets, names, strict=True):
        line = part[part["strategy"] == name].sort_values("budget")
        x = line["budget"].astype(int).to_numpy() * 10 ** offset
        mean = line["mean"].to_numpy(dtype=float)
        err = np.vstack([mean - line["ci_low"].to_numpy(dtype=float), line["ci_high"].to_numpy(dtype=float) - mean])
        ax.errorbar(x, mean, yerr=np.clip(err, 0, None), linestyle=":", linewidth=0.8, elinewidth=1.2, capsize=3,
                    markersize=6, color=style[name]["color"], marker=style[name]["marker"],
                    markerfacecolor=style[name]["face"],
                    label=f"{name} ({family(name)}, {_n_text(line['n'])})")
    ax.set_xscale("log")
    ax.set_xticks(budgets, [str(b) for b in budgets])
    ax.minorticks_off()
    ax.set_xlim(budgets[0] / 10 ** gap, budgets[-1] * 10 ** gap)
    ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]))
    ax.grid(axis="y", alpha=0.3)
    ax.set_xlabel("budget B: models fine-tuned")
    ax.set_ylabel("relative regret (lower is better)\n(best − best of the B picked) / best")
    ax.set_title("Relative regret against budget B", loc="left")
    ax.legend(title="strategy (family, n = datasets averaged)", loc="upper left", bbox_to_anchor=(1.01, 1),
              fontsize=9, title_fontsize=9, frameon=False)
    fig.text(0.01, 0.01, "Points: mean over the n datasets; bars: 95% bootstrap interval of that mean. Only the "
             "budgets on the axis were measured; dotted lines just join one strategy's points.",
             fontsize=8.5, color="#444444")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


def plot_regret(summary: pd.DataFrame, path: Path) -> Path:
    """The regret figure (regret_figure) as a PNG."""
    regret_figure(summary).savefig(path, dpi=110, format="png")
    return path


def _top(frame: pd.DataFrame, budget: int) -> pd.Series:
    """Whether each row is among the top `budget` predictions of its fold (NaN predictions are never picked)."""
    ranks = frame.groupby("fold")["prediction"].rank(ascending=False, method="first")
    return ranks <= budget


def scatter_figure(predictions: pd.DataFrame, results: pd.DataFrame, dataset: str, budget: int) -> Figure:
    """True against predicted performance of every model on one dataset: one panel per ranking strategy.

    Each panel marks the strategy's top-`budget` picks and the best model, and gives its weighted tau and
    relative regret at `budget`. The oracle (true against true) is left out."""
    preds = predictions[predictions["dataset"] == dataset]
    mine = results[results["dataset"] == dataset]
    taus = mine[mine["measure"] == "weighted_tau"].groupby("strategy")["value"].mean()
    regret = (mine[(mine["measure"] == "relative_regret") & (mine["budget"] == budget)]
              .groupby("strategy")["value"].mean())
    names = [n for n in dict.fromkeys(preds["strategy"]) if n in taus.index and family(n) != "oracle"]
    cols = min(3, max(len(names), 1))
    rows = -(-max(len(names), 1) // cols)
    key_cols = 3 if cols > 1 else 1  # one panel is too narrow for the key in one row
    header = 0.5 + 0.25 * (3 // key_cols)  # inches above the panels: title and key
    fig = Figure(figsize=(PANEL_INCHES[0] * cols, PANEL_INCHES[1] * rows + header))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    style = styles(list(dict.fromkeys(preds["strategy"])))
    for ax, name in zip(axes, names, strict=False):  # the grid may have spare panels
        p = preds[preds["strategy"] == name]
        known = p[p["prediction"].notna()]
        top = _top(known, budget)
        best = (p["performance"] == p.groupby("fold")["performance"].transform("max"))[known.index]
        ax.scatter(known["prediction"], known["performance"], s=10, color="#BBBBBB")
        ax.scatter(known.loc[top, "prediction"], known.loc[top, "performance"], s=40, facecolors="none",
                   edgecolors=style[name]["color"], linewidths=1.5)
        ax.scatter(known.loc[best, "prediction"], known.loc[best, "performance"], s=90, marker="*", color="black")
        unranked = len(p) - len(known)
        note = f"\n{unranked} of {len(p)} models unranked (not shown)" if unranked else ""
        ax.set_title(f"{name}\nweighted tau {taus[name]:.2f}, relative regret@{budget} {regret.get(name, np.nan):.3f}"
                     f"{note}", fontsize=10)
        ax.set_xlabel(axis_label(name), fontsize=10)
        ax.set_ylabel("fine-tuned performance", fontsize=10)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    fig.suptitle(dataset, fontsize=13)
    key = [Line2D([], [], linestyle="", marker="o", markersize=4, color="#BBBBBB", label="one model"),
           Line2D([], [], linestyle="", marker="o", markersize=8, markerfacecolor="none", markeredgecolor="#444444",
                  label=f"top-{budget} picks (ring in the strategy's colour)"),
           Line2D([], [], linestyle="", marker="*", markersize=10, color="black", label="best model")]
    fig.legend(handles=key, loc="upper center", bbox_to_anchor=(0.5, 1 - 0.45 / fig.get_figheight()),
               ncols=key_cols, fontsize=9, frameon=False)
    left, right, bottom, title, gap = SCATTER_MARGINS
    width, height = fig.get_size_inches()
    panel_width = (width - left - right - gap * (cols - 1)) / cols
    panel_height = (height - header - title - bottom - (bottom + title) * (rows - 1)) / rows
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height,
                        top=1 - (header + title) / height, wspace=gap / panel_width,
                        hspace=(bottom + title) / panel_height)
    return fig


def plot_scatter(predictions: pd.DataFrame, results: pd.DataFrame, dataset: str, budget: int, path: Path) -> Path:
    """The scatter grid of one dataset (scatter_figure) as a PNG."""
    scatter_figure(predictions, results, dataset, budget).savefig(path, dpi=90, format="png")
    return path


ScatterTask = tuple[pd.DataFrame, pd.DataFrame, str, int, Path]


def plot_scatter_task(task: ScatterTask) -> Path:
    """``plot_scatter(*task)``: one dataset's figure, the unit an executor runs (its rows travel with it)."""
    return plot_scatter(*task)
