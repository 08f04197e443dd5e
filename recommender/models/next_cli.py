"""`recommender next`: the next model(s) to fine-tune on a dataset, given the results already observed there."""

from __future__ import annotations

import argparse

from recommender.cli_args import add_db_argument
from recommender.contracts import ADAPTIVE_BUDGETS, DEFAULT_PROTOCOL

STRATEGIES = ("similarity", "lr", "ucb")
# chosen on inner leave-one-dataset-out folds of SHiFT vision (`--tune` chooses again on the store's history);
# lr and ucb are always chosen on inner folds
DEFAULTS = {"similarity": {"beta": 5.0, "shrink": 4.0}}
DESCRIPTION = """\
The next model(s) to fine-tune on a dataset, given the results already observed there (its jobs in
the store and an --observed file): an adaptive search learned from every other dataset of the
protocol.

example:
  recommender next --dataset dtd --budget 3
  recommender next --dataset my-task --observed results.csv --strategy ucb --budget 2"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `next` command."""
    p = subparsers.add_parser("next", help="the next model(s) to fine-tune, given the results observed so far",
                              description=DESCRIPTION)
    p.add_argument("--dataset", required=True, help="the target dataset (its jobs in the store count as observed)")
    p.add_argument("--budget", type=int, default=1, help="how many models to fine-tune next (default 1)")
    p.add_argument("--observed", help="CSV/Parquet/JSON Lines of model,performance results on the dataset "
                                      "(added to, and overriding, the store's jobs)")
    p.add_argument("--protocol", default=DEFAULT_PROTOCOL,
                   help="protocol of the history and the results (default vtab1k)")
    p.add_argument("--modality", help="the dataset's modality, e.g. image: the history keeps that modality's "
                                      "datasets, and only its models are proposed (without it: the modality the store "
                                      "knows for the dataset)")
    p.add_argument("--select", default="val", choices=("val", "test"),
                   help="which value picks each stored pair's best hyper-parameters (default val)")
    p.add_argument("--strategy", default="similarity", choices=STRATEGIES,
                   help="similarity (default), lr (LR warm start) or ucb (similarity + exploration bonus)")
    p.add_argument("--examples", type=float, help="training examples of a new dataset (for --strategy lr)")
    p.add_argument("--classes", type=float, help="classes of a new dataset (for --strategy lr)")
    p.add_argument("--group", help="group of a new dataset, e.g. vtab-natural (for --strategy lr)")
    p.add_argument("--tune", action="store_true",
                   help="choose the similarity's hyper-parameters on inner folds of this history (slower)")
    add_db_argument(p)
    p.set_defaults(func=run_next)


def run_next(args: argparse.Namespace) -> int:
    """Fit the adaptive recommender on every other dataset of the protocol and print the next picks."""
    from recommender.errors import UserError
    from recommender.history import open_store
    from recommender.models.adaptive import gather_observed, make_adaptive, next_models
    from recommender.models.pairs import candidate_pairs, same_modality
    from recommender.models.recommend import lookup_dataset_row

    store = open_store(args.db)
    pairs = store.pair_table(args.protocol, args.modality, select=args.select)
    train = pairs[(pairs["dataset"] != args.dataset) & pairs["performance"].notna()]
    if train["dataset"].nunique() < 1:
        raise UserError(f"the store has no other dataset under protocol {args.protocol!r} to learn from")
    row = lookup_dataset_row(pairs, store.dataset_features(), args.dataset, examples=args.examples,
                             classes=args.classes, group=args.group, modality=args.modality)
    train, note = same_modality(train, row.get("modality"), args.dataset)  # only models of the dataset's modality
    pool = set(train["model"])
    observed, sources = gather_observed(pairs, args.dataset, pool, args.observed, args.protocol)
    candidates = candidate_pairs(train, row)
    fixed = {} if args.tune else DEFAULTS.get(args.strategy, {})
    est = make_adaptive(args.strategy, budgets=ADAPTIVE_BUDGETS, **fixed).fit(train)
    best = next_models(est, candidates, observed, args.budget)
    print(f"{args.dataset}: used {'; '.join(sources)}; {args.strategy} over {train['dataset'].nunique()} training "
          f"datasets and {len(pool)} models ({', '.join(f'{k}={v:g}' for k, v in est.params_.items())})")
    print(best.to_string(index=False, float_format="%.3f"))
    if note:
        print(f"note: {note}")
    return 0
