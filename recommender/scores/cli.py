"""`recommender score`: transferability scores of one feature matrix, from files."""

from __future__ import annotations

import argparse
import json

from recommender.cli_args import comma_list

DESCRIPTION = """\
Compute transferability scores (larger = transfers better) of a feature matrix for a target
task: how well a model whose features these are would fine-tune on the task, without
fine-tuning it. Files: .npy, .npz (FILE.npz:KEY picks an array), .csv, .parquet.

scores: logme, leep, nce, hscore, hscore_reg, lfc, parc, knn, linear (leep and nce need
--source-probs; an unknown name is refused with the list).

example:
  recommender score --features feats.npy --labels labels.csv --metrics logme,lfc,parc
  recommender score --features feats.npz:train --labels y.parquet --source-probs probs.npy --json"""


def run(args: argparse.Namespace) -> int:
    """Load the arrays, compute the scores and print them as a table or JSON."""
    from recommender.arrays import load_array  # late: numpy, pandas and the scores load only to run
    from recommender.scores.registry import score_all

    features = load_array(args.features, header=args.header)
    if features.ndim == 1:  # a one-column table: one feature
        features = features[:, None]
    # one row per example: this tells a CSV header from a first label that is a string or a 0
    labels = load_array(args.labels, expect_rows=len(features), header=args.header)
    probs = (load_array(args.source_probs, expect_rows=len(features), header=args.header)
             if args.source_probs else None)
    table = score_all(features, labels, names=comma_list(args.metrics) if args.metrics else None, task=args.task,
                      source_probs=probs)
    if args.json:
        print(json.dumps(table.to_dict(orient="records"), indent=1))
    else:
        print(table.to_string(index=False, float_format=lambda v: f"{v:.6g}"))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `score` subcommand."""
    parser = subparsers.add_parser(
        "score", help="transferability scores of features for a target task", description=DESCRIPTION)
    parser.add_argument("--features", required=True, help="features F, shape (n, D)")
    parser.add_argument("--labels", required=True, help="class labels (n,) or regression targets (n,) / (n, T)")
    parser.add_argument("--metrics",
                        help="comma-separated score names, e.g. logme,lfc,parc (default: all that apply to the task)")
    parser.add_argument("--task", default="classification", help="classification or regression")
    parser.add_argument("--source-probs", help="source model probabilities (n, source classes), for leep and nce")
    parser.add_argument("--json", action="store_true", help="print JSON records instead of a table")
    parser.add_argument("--header", action=argparse.BooleanOptionalAction, default=None,
                        help="CSV files start with a header row (--no-header: they do not); default: decided per "
                             "file, and a first row that could be either is an error")
    parser.set_defaults(func=run)
