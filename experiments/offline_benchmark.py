"""The offline benchmark's tables (issue 15): what LogME, LFC and PARC add to the learned recommenders, measured on
fine-tuning truth we produced ourselves from shipped models and data.

`bash scripts/benchmark.sh` runs the whole thing: the resumable fine-tuning campaign (`recommender campaign`, every
score on every pair logged with its cost) into one store, then this script, which reads that store only:

1. The Guided Recommendation table: each score alone; LR and FM on d,m; LR and FM on d,m,S with LogME, LFC and
   PARC individually and together; mean-perf as the baseline. Splits: unseen-model, unseen-dataset (trained on
   the largest dataset of each modality) and leave-one-dataset-out. Weighted tau and relative regret at B=1.
2. The regret-against-budget table under leave-one-dataset-out.
3. The target check: on leave-one-dataset-out, does d,m,S beat both the best single score and mean-perf?
4. What the benchmark is and cost: pairs, models, datasets, fine-tuning wall and CPU time, seconds per score.

Usage: python experiments/offline_benchmark.py --db sqlite:///runs/benchmark/history.db --out experiments/results
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from recommender.evaluation import check_pairs
from recommender.evaluation.report import summary_table
from recommender.history import open_store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paper_tables import SPLITS, markdown, run_split  # noqa: E402 -- shared with the papers' tables

GUIDED_SCORES = ("logme", "lfc", "parc")  # the scores the recommenders take as features (issue 15)


def score_combos(all_scores: list[str]) -> list[str]:
    """The S of d,m,S: each guided score that is stored, then all of them together (`logme+lfc+parc`)."""
    guided = [s for s in GUIDED_SCORES if s in all_scores]
    return [*guided, *(["+".join(guided)] if len(guided) > 1 else [])]


def guided_strategies(all_scores: list[str]) -> list[str]:
    """Rows: mean-perf, each score alone, LR and FM on d,m, and on d,m,S with each guided score and all of them."""
    learned = [f"{kind}{'+' + c if c else ''}" for kind in ("lr", "fm") for c in ("", *score_combos(all_scores))]
    return ["mean-perf", *[f"score:{s}" for s in all_scores], *learned]


def regret_strategies(all_scores: list[str]) -> list[str]:
    """The budget table's rows: bounds, task-agnostic rankings, then the guided rows."""
    return ["oracle", "random", "size", *guided_strategies(all_scores)]


def largest_datasets(pairs: pd.DataFrame) -> list[str]:
    """The unseen-dataset split's training sources: the dataset with the most examples in each modality."""
    sizes = pairs.drop_duplicates("dataset").sort_values(["examples_full", "dataset"], ascending=[False, True])
    return list(sizes.groupby("modality", sort=True)["dataset"].first())


def cell(frame: pd.DataFrame, digits: int = 3) -> pd.Series:
    """`mean ± std` strings of a summary's rows, with `(n=...)` where a row covers fewer datasets than its split's
    most (a score that applies to some models only, e.g. LEEP on the image datasets)."""
    most = frame.groupby("split")["n"].transform("max")
    return pd.Series([(f"{m:.{digits}f} ± {s:.{digits}f}" if np.isfinite(s) else f"{m:.{digits}f}")
                      + (f" (n={n})" if n < top else "")
                      for m, s, n, top in zip(frame["mean"], frame["std"], frame["n"], most, strict=True)],
                     index=frame.index)


def guided_table(summaries: pd.DataFrame, rows: list[str]) -> pd.DataFrame:
    """Weighted tau and relative regret@1 (mean ± std over folds) per strategy and split."""
    tau = summaries[summaries["measure"] == "weighted_tau"].assign(what="weighted tau")
    regret = summaries[(summaries["measure"] == "relative_regret") & (summaries["budget"] == 1)].assign(
        what="regret@1")
    both = pd.concat([tau, regret])
    both = both.assign(cell=cell(both))
    table = both.pivot_table(index="strategy", columns=["split", "what"], values="cell", aggfunc="first")
    cols = [(s, w) for s in SPLITS for w in ("weighted tau", "regret@1") if (s, w) in table.columns]
    return table.reindex(index=[r for r in rows if r in table.index], columns=pd.MultiIndex.from_tuples(cols)
                         ).fillna("—").rename_axis(index="strategy")


def target_check(loo: pd.DataFrame, all_scores: list[str]) -> list[str]:
    """Issue 15's target on LOO: d,m,S (each LR/FM with scores) against the best single score and mean-perf."""
    mean = loo.set_index(["strategy", "measure", "budget"])["mean"]

    def get(strategy: str, measure: str, budget: object = pd.NA) -> float:
        key = (strategy, measure, budget)
        return float(mean[key]) if key in mean.index else float("nan")

    n = loo.set_index(["strategy", "measure", "budget"])["n"]
    lines = []
    for measure, budget, better in (("weighted_tau", pd.NA, max), ("relative_regret", 1, min)):
        # a score that applies to some datasets only (LEEP, NCE) is not compared on a mean over fewer datasets
        full = n.get(("mean-perf", measure, budget), 0)
        singles = {s: get(f"score:{s}", measure, budget) for s in all_scores
                   if n.get((f"score:{s}", measure, budget), 0) == full}
        singles = {s: v for s, v in singles.items() if np.isfinite(v)}
        best_single = better(singles, key=singles.get) if singles else None
        baseline = get("mean-perf", measure, budget)
        rivals = [v for v in (singles.get(best_single, np.nan), baseline) if np.isfinite(v)]
        label = "weighted tau" if measure == "weighted_tau" else "relative regret@1"
        lines.append(f"- {label}: best single score {best_single} {singles.get(best_single, np.nan):.3f}, "
                     f"mean-perf {baseline:.3f}")
        for strategy in [s for s in guided_strategies(all_scores) if "+" in s]:
            value = get(strategy, measure, budget)
            if not np.isfinite(value) or not rivals:
                continue
            gap = (value - better(rivals)) * (1 if better is max else -1)  # > 0: beats both
            verdict = "beats both" if gap > 0 else f"misses by {-gap:.3f}"
            lines.append(f"  - {strategy}: {value:.3f} ({verdict})")
    return lines


def adds_table(summaries: pd.DataFrame, all_scores: list[str]) -> pd.DataFrame:
    """What each guided score adds to LR and FM: (d,m,S) minus (d,m), in weighted tau (higher is better) and in
    relative regret@1 (lower is better), per split."""
    combos = score_combos(all_scores)
    tau = summaries[summaries["measure"] == "weighted_tau"].set_index(["split", "strategy"])["mean"]
    regret = summaries[(summaries["measure"] == "relative_regret") & (summaries["budget"] == 1)].set_index(
        ["split", "strategy"])["mean"]
    rows = []
    for split in [s for s in SPLITS if s in summaries["split"].unique()]:
        for kind in ("lr", "fm"):
            row = {"split": split, "recommender": kind}
            for combo in combos:
                with_s, without = (split, f"{kind}+{combo}"), (split, kind)
                if with_s in tau.index and without in tau.index:
                    row[f"+{combo}"] = (f"{tau[with_s] - tau[without]:+.3f} / "
                                        f"{regret[with_s] - regret[without]:+.3f}")
            rows.append(row)
    return pd.DataFrame(rows).set_index(["split", "recommender"]).fillna("—")


def campaign_jobs(store, protocols: list[str]) -> pd.DataFrame:
    """The campaign's jobs with their `extra` facts as columns (cpu_seconds, probe_value, probe_val_value, ...)."""
    jobs = pd.concat([store.jobs(protocol=p) for p in protocols], ignore_index=True)
    extra = pd.DataFrame([json.loads(e) for e in jobs["extra"]], index=jobs.index)
    return jobs.join(extra.drop(columns=[c for c in extra.columns if c in jobs.columns]))


def probe_verdicts(jobs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fine-tuned against frozen linear-probe accuracy per pair, and per dataset (recommender.zoo.campaign)."""
    from recommender.zoo.campaign import summary_table, verdicts

    # the campaign's seed is a hyper-parameter (it splits and trains anew): one probe per dataset, model and seed
    seeds = pd.Series([json.loads(h)["seed"] for h in jobs["hparams"]], index=jobs.index)
    probes = jobs.assign(seed=seeds)[["dataset", "model", "seed", "probe_value", "probe_val_value"]].drop_duplicates(
        ["dataset", "model", "seed"])
    summary = summary_table(jobs, probes)
    return summary, verdicts(summary)


def costs(store, jobs: pd.DataFrame, all_scores: list[str]) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Per-score seconds (mean, total over pairs), per-model fine-tuning wall and CPU seconds, and the totals."""
    per_model = jobs.groupby("model").agg(jobs=("seconds", "size"), wall_s=("seconds", "sum"),
                                          cpu_s=("cpu_seconds", "sum")).round(1)
    scores = store.latest_scores(all_scores)  # the computations the tables use (not those a re-extraction replaced)
    per_score = scores.groupby("score")["seconds"].agg(pairs="size", mean_s="mean", total_s="sum").round(3)
    totals = {"jobs": len(jobs), "fine-tuning wall hours": round(jobs["seconds"].sum() / 3600, 2),
              "fine-tuning CPU hours": round(jobs["cpu_seconds"].sum() / 3600, 2),
              "scoring hours": round(scores["seconds"].sum() / 3600, 3)}
    return per_score, per_model, totals


def main(argv: list[str] | None = None) -> int:
    """Read the campaign's store, evaluate every split, write offline_benchmark.md and its CSVs."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", required=True, help="the campaign's store URL")
    parser.add_argument("--protocol", required=True, help="the campaign's fine-tuning protocol(s), comma-separated")
    parser.add_argument("--out", default="experiments/results")
    parser.add_argument("--seeds", type=int, default=3, help="repeats of the unseen-model split")
    # a ranking needs 3 held-out models; with 6-7 models per dataset that takes half of them (0.2 holds out 1)
    parser.add_argument("--unseen-model-fraction", type=float, default=0.5,
                        help="share of each dataset's models the unseen-model split holds out")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = open_store(args.db)
    all_scores = sorted(store.scores()["score"].unique())
    protocols = args.protocol.split(",")
    raw = store.pair_table(protocols, None, all_scores, select="val")
    pairs, _ = check_pairs(raw)
    print(f"{len(pairs)} pairs: {pairs['model'].nunique()} models x {pairs['dataset'].nunique()} datasets",
          file=sys.stderr)
    summaries, loo_notes = [], pd.DataFrame()
    for split in SPLITS:
        names = regret_strategies(all_scores) if split == "loo" else guided_strategies(all_scores)
        # no scatter grids: a dozen datasets of them is megabytes the tables already summarise
        found = run_split(raw, split, names, name="offline", sources=largest_datasets(pairs),
                          context={"protocols": args.protocol, "hyper-parameters selected by": "val"},
                          seeds=args.seeds, out=out, scatter=False, overwrite=True,
                          test_fraction=args.unseen_model_fraction)
        if found is not None:
            summaries.append(found[0])
            loo_notes = found[1] if split == "loo" else loo_notes
    summary = pd.concat(summaries, ignore_index=True)
    summary.to_csv(out / "offline_benchmark_summaries.csv", index=False)
    raw.to_csv(out / "offline_benchmark_pairs.csv", index=False)
    jobs = campaign_jobs(store, protocols)
    per_score, per_model, totals = costs(store, jobs, all_scores)
    ft_summary, ft_verdicts = probe_verdicts(jobs)
    ft_summary.to_csv(out / "offline_benchmark_probe.csv", index=False)
    loo = summary[summary["split"] == "loo"]
    shape = pairs.groupby("modality").agg(models=("model", "nunique"), datasets=("dataset", "nunique"),
                                          pairs=("model", "size"))
    command = " ".join(["python experiments/offline_benchmark.py", *(sys.argv[1:] if argv is None else argv)])
    text = ["# Offline benchmark: shipped models x shipped datasets, our own fine-tuning truth", "",
            f"Command: `{command}` (after the campaign of `scripts/benchmark.sh`). Protocols `{args.protocol}`; "
            "the learning rate of each pair is chosen on validation accuracy, and its test accuracy is the truth.", "",
            markdown(shape), "",
            "## Does the truth rank? Fine-tuned (LP-FT) against the frozen linear probe, test accuracy %", "",
            markdown(ft_verdicts.set_index("dataset")), "",
            "## Guided Recommendation table (mean ± std over folds)", "",
            markdown(guided_table(summary, guided_strategies(all_scores))), "",
            "## What LogME, LFC and PARC add to the learned recommenders", "",
            "(d,m,S) minus (d,m): weighted tau (higher is better) / relative regret@1 (lower is better), means "
            "over the split's datasets.", "",
            markdown(adds_table(summary, all_scores).reset_index().set_index("split")), "",
            "## Target (leave-one-dataset-out): d,m,S against the best single score and mean-perf", "",
            *target_check(loo, all_scores), "",
            "## Regret against budget, leave-one-dataset-out (mean ± std over datasets)", "",
            markdown(summary_table(loo.drop(columns=["benchmark", "split"]), loo_notes,
                                   ("weighted_tau", "relative_regret"))), "",
            "## Cost", "", *[f"- {k}: {v}" for k, v in totals.items()], "",
            markdown(per_score), "", markdown(per_model), ""]
    (out / "offline_benchmark.md").write_text("\n".join(text) + "\n")
    store.engine.dispose()
    print(f"wrote {out / 'offline_benchmark.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
