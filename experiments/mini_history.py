"""Build a real mini history from scratch and evaluate every score and the learned recommender on it.

The offline zoos x the shipped datasets: every score on the training split's features, two ground truths
(fine-tuning accuracy of the torch models: lr grid, early stopping; linear-probe test accuracy of every model),
then weighted tau and regret@1 of each score and of a leave-one-dataset-out LR recommender per dataset.
To finish within an hour on a shared 2-core CPU it uses subsets: N examples per dataset (stratified, seed 0),
images resized to 64 px and texts cut to 64 tokens, at most 3 epochs. Run: python experiments/mini_history.py
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from recommender.evaluation.measures import budget_measures, weighted_tau
from recommender.models.factory import make_recommender
from recommender.scores import score_all
from recommender.zoo.cache import FeatureCache
from recommender.zoo.datasets import load_dataset, subsample
from recommender.zoo.extract import extract
from recommender.zoo.finetune import finetune_once, split_dataset
from recommender.zoo.provider import Provider
from recommender.zoo.scoring import DEFAULT_SCORES, dataset_row_of
from recommender.zoo.zoos import get_provider, zoo_models

DATASETS = {"text": ["bbc_news", "tweets", "austen", "fine_foods"], "image": ["digits", "mnist5k"]}
ZOO = {"text": "text-offline", "image": "vision-offline"}
OUT = Path(__file__).resolve().parent / "results"


def small(p: Provider) -> Provider:
    """The experiment's cheaper preprocessing: 64-px images, 64-token texts."""
    if hasattr(p, "image_size"):
        return dataclasses.replace(p, image_size=64)
    if hasattr(p, "max_length"):
        return dataclasses.replace(p, max_length=64)
    return p


def probe_accuracy(F: np.ndarray, y: np.ndarray, split) -> float:
    """Linear-probe ground truth: logistic regression on the train split's features, test accuracy in %."""
    clf = LogisticRegression(max_iter=2000, C=1.0).fit(F[split.train], y[split.train])
    return 100 * float((clf.predict(F[split.test]) == y[split.test]).mean())


def build_pairs(n: int, lrs: list[float], epochs: int, cache: FeatureCache) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The pair table (scores, facts, both ground truths) and the fine-tuning jobs."""
    pairs, jobs = [], []
    for modality, names in DATASETS.items():
        providers = [small(get_provider(m)) for m in zoo_models(ZOO[modality], available_only=True)]
        for name in names:
            ds = subsample(load_dataset(name), n, seed=0)
            split = split_dataset(ds, seed=0)
            for p in providers:
                got = extract(p, ds, cache=cache, progress=False)
                table = score_all(got.features[split.train], ds.y[split.train],
                                  names=list(DEFAULT_SCORES)).set_index("score")
                row = {"model": p.name, **p.facts.as_row(), **dataset_row_of(ds), "examples": float(len(split.train))}
                row |= {f"score_{s}": table.at[s, "value"] for s in DEFAULT_SCORES}
                row |= {"probe_acc": probe_accuracy(got.features, ds.y, split), "seconds_extract": got.seconds}
                if p.trainable:
                    runs = pd.DataFrame([finetune_once(p, ds, split, lr, max_epochs=epochs, patience=1) for lr in lrs])
                    jobs.append(runs)
                    row["finetune_acc"] = runs.loc[runs["val_value"].idxmax(), "value"]  # chosen on validation
                pairs.append(row)
                print(f"{name:>10} {p.name:>24} probe {row['probe_acc']:.1f} "
                      f"finetune {row.get('finetune_acc', np.nan):.1f}", flush=True)
    return pd.DataFrame(pairs), pd.concat(jobs, ignore_index=True)


def learned_scores(pairs: pd.DataFrame, truth: str) -> pd.Series:
    """Leave-one-dataset-out predictions of an LR recommender (model facts + LogME) trained on the other datasets."""
    out = pd.Series(np.nan, index=pairs.index)
    known = pairs[pairs[truth].notna()]
    for ds in known["dataset"].unique():
        train, test = known[known["dataset"] != ds], known[known["dataset"] == ds]
        est = make_recommender("lr", features="d,m,logme").fit(train, train[truth].to_numpy())
        out[test.index] = est.predict(test)
    return out


def evaluate(pairs: pd.DataFrame) -> pd.DataFrame:
    """Weighted tau and relative regret@1 per (ground truth, strategy, dataset)."""
    rows = []
    for truth in ("finetune_acc", "probe_acc"):
        strategies = {s: pairs[f"score_{s}"] for s in DEFAULT_SCORES} | {
            "imagenet_top1/upstream": pairs["imagenet_top1"], "learned_lr_loo": learned_scores(pairs, truth)}
        for ds, g in pairs[pairs[truth].notna()].groupby("dataset"):
            if len(g) < 2:
                continue
            for name, score in strategies.items():
                s = score[g.index].to_numpy(dtype=float)
                if np.isnan(s).all():
                    continue
                s = np.where(np.isnan(s), np.nanmin(s) - 1.0, s)  # a model without the value ranks last
                rows.append({"truth": truth, "strategy": name, "dataset": ds, "models": len(g),
                             "weighted_tau": weighted_tau(s, g[truth]), **budget_measures(s, g[truth], 1)})
    return pd.DataFrame(rows)


def main() -> None:
    """Run the experiment and write its tables under experiments/results/."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=300, help="examples per dataset (stratified subset)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lrs", default="1e-4,1e-3")
    ap.add_argument("--cache", default=None)
    ap.add_argument("--evaluate-only", action="store_true", help="re-evaluate the saved pair table")
    args = ap.parse_args()
    start = time.perf_counter()
    OUT.mkdir(exist_ok=True)
    if args.evaluate_only:
        pairs = pd.read_csv(OUT / "mini_history_pairs.csv")
    else:
        pairs, jobs = build_pairs(args.n, [float(v) for v in args.lrs.split(",")], args.epochs,
                                  FeatureCache(args.cache))
        pairs.to_csv(OUT / "mini_history_pairs.csv", index=False)
        jobs.to_csv(OUT / "mini_history_jobs.csv", index=False)
        meta = {"n": args.n, "epochs": args.epochs, "lrs": args.lrs,
                "build_minutes": round((time.perf_counter() - start) / 60, 1)}
        (OUT / "mini_history_meta.json").write_text(json.dumps(meta))
    meta = json.loads((OUT / "mini_history_meta.json").read_text())
    results = evaluate(pairs)
    results.to_csv(OUT / "mini_history.csv", index=False)
    summary = (results.groupby(["truth", "strategy"])[["weighted_tau", "relative_regret", "recall"]]
               .agg(["mean", "std"]).round(3))
    text = (f"# Mini history (recommender.zoo)\n\n{meta['n']} examples per dataset (60% train, 20% val, 20% test), "
            f"{meta['epochs']} epochs max, lrs {meta['lrs']}; built in {meta['build_minutes']} min on a shared "
            "2-core CPU. Fine-tuning covers the torch models only (the ONNX and spaCy models cannot be fine-tuned "
            "here).\n\nMean (std over datasets) per ground truth and strategy:\n\n"
            f"```\n{summary.to_string()}\n```\n\nGround truth per pair (accuracy, %):\n\n"
            f"```\n{pairs[['dataset', 'model', 'finetune_acc', 'probe_acc']].round(1).to_string(index=False)}\n```\n")
    (OUT / "mini_history.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
