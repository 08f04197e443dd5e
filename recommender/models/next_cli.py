"""`recommender next`: the next model(s) to fine-tune on a dataset, given the results already observed there."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from recommender.cli_args import add_db_argument
from recommender.contracts import ADAPTIVE_BUDGETS, DEFAULT_PROTOCOL
from recommender.errors import UserError
from recommender.models.cli import cost_seconds

if TYPE_CHECKING:
    import pandas as pd

STRATEGIES = ("auto", "similarity", "lr", "ucb")
# chosen on inner leave-one-dataset-out folds of SHiFT vision (`--tune` chooses again on the store's history);
# lr and ucb are always chosen on inner folds
DEFAULTS = {"similarity": {"beta": 5.0, "shrink": 4.0}}
DESCRIPTION = """\
The next model(s) to fine-tune on a dataset, given the results already observed there (its jobs in
the store and an --observed file): an adaptive search learned from every other dataset of the
protocol. The default, auto, is fitted on the store's history on the first call and kept in
$RECOMMENDER_CACHE/fits (~/.cache/recommender/fits) until the store changes.

example:
  recommender next --dataset dtd --budget 3
  recommender next --dataset my-task --observed results.csv --strategy ucb --budget 2
  recommender next --dataset dtd --configs --model models/fm-h --max-cost 5h"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `next` command."""
    p = subparsers.add_parser("next", help="the next model(s) to fine-tune, given the results observed so far",
                              description=DESCRIPTION)
    p.add_argument("--dataset", required=True, help="the target dataset (its jobs in the store count as observed)")
    p.add_argument("--budget", type=int, help="how many models to fine-tune next (default 1; with --max-cost: as "
                                              "many as fit)")
    p.add_argument("--observed", help="CSV/Parquet/JSON Lines of model,performance results on the dataset "
                                      "(added to, and overriding, the store's jobs); with --configs also lr,epochs")
    p.add_argument("--configs", action="store_true",
                   help="propose (model, learning rate, epochs) rows from a recommender trained with the h block "
                        "(--model), updated with the observed results")
    p.add_argument("--model", help="with --configs: folder written by `recommender train --features d,m,h`")
    p.add_argument("--max-cost", type=cost_seconds, metavar="SECONDS",
                   help="with --configs: the best rows whose expected costs add up to at most this (seconds; or "
                        "90m, 5h)")
    p.add_argument("--protocol", help="protocol of the history and the results (default vtab1k; with --configs: "
                                      "the recommender's training protocol)")
    p.add_argument("--modality", help="the dataset's modality, e.g. image: the history keeps that modality's "
                                      "datasets, and only its models are proposed (without it: the modality the store "
                                      "knows for the dataset)")
    p.add_argument("--select", default="val", choices=("val", "test"),
                   help="which value picks each stored pair's best hyper-parameters (default val)")
    p.add_argument("--strategy", choices=STRATEGIES,
                   help="auto (default: the history of every protocol and the store's scores on the dataset, each "
                        "weighted by its reliability, moved by your results), similarity, lr (LR warm start) or ucb "
                        "(similarity + exploration bonus)")
    p.add_argument("--examples", type=float, help="training examples of a new dataset (for --strategy lr)")
    p.add_argument("--classes", type=float, help="classes of a new dataset (for --strategy lr)")
    p.add_argument("--group", help="group of a new dataset, e.g. vtab-natural (for --strategy lr)")
    p.add_argument("--tune", action="store_true",
                   help="choose the similarity's hyper-parameters on inner folds of this history (slower)")
    p.add_argument("--json", action="store_true", help="print JSON records")
    add_db_argument(p)
    p.set_defaults(func=run_next)


def run_next(args: argparse.Namespace) -> int:
    """Fit the adaptive recommender on every other dataset of the protocol and print the next picks."""
    from recommender.history import open_store
    from recommender.models.adaptive import make_adaptive, next_models
    from recommender.models.observed import gather_observed
    from recommender.models.pairs import candidate_pairs, same_modality
    from recommender.models.recommend import lookup_dataset_row
    from recommender.models.request_files import read_user_table

    check_next_flags(args)
    if args.configs:
        return run_next_configs(args)
    strategy, protocol = args.strategy or STRATEGIES[0], args.protocol or DEFAULT_PROTOCOL
    store = open_store(args.db)
    pairs, metrics = store.kept_pairs(protocol, args.modality, args.select)
    train = pairs[(pairs["dataset"] != args.dataset) & pairs["performance"].notna()]
    if train["dataset"].nunique() < 1:
        raise UserError(f"the store has no other dataset under protocol {protocol!r} to learn from")
    row = lookup_dataset_row(pairs, store.dataset_features(), args.dataset, examples=args.examples,
                             classes=args.classes, group=args.group, modality=args.modality)
    train, note = same_modality(train, row.get("modality"), args.dataset)  # only models of the dataset's modality
    pool = set(train["model"])
    metric = metrics.get(protocol, "")
    logged, unused = store.logged_results(protocol, args.dataset, args.select, metric)  # a dataset without facts too
    observed, sources = gather_observed(logged, args.dataset, pool, read_user_table(args.observed), protocol, unused,
                                        metric)
    candidates = candidate_pairs(train, row)
    if strategy == "auto":
        est, candidates, what = auto_for_next(store, args, row, protocol, candidates)
    else:
        fixed = {} if args.tune else DEFAULTS.get(strategy, {})
        est = make_adaptive(strategy, budgets=ADAPTIVE_BUDGETS, **fixed).fit(train)
        what = ", ".join(f"{k}={v:g}" for k, v in est.params_.items())
    best = next_models(est, candidates, observed, args.budget or 1)
    if args.json:
        print(json.dumps(best.to_dict(orient="records"), indent=2))
        return 0
    print(f"{args.dataset}: used {'; '.join(sources)}; {strategy} over {train['dataset'].nunique()} training "
          f"datasets and {len(pool)} models ({what})")
    if best["reason"].nunique() == 1:  # one reason for every row (auto's weights): said once, below the table
        print(best.drop(columns="reason").to_string(index=False, float_format="%.3f"))
        print(f"why: {best['reason'].iloc[0]}")
    else:
        print(best.to_string(index=False, float_format="%.3f"))
    if note:
        print(f"note: {note}")
    return 0


def auto_for_next(store, args: argparse.Namespace, row: dict, protocol: str, candidates):  # noqa: ANN001, ANN201
    """`auto` fitted on every other dataset of the store's history of the dataset's modality (every protocol,
    every stored score; its inner folds on the protocol's datasets where it has enough), the candidates with the
    protocol and the dataset's stored scores, and a note."""
    from recommender.models.auto import Auto
    from recommender.models.fit_cache import fitted_auto
    from recommender.models.pairs import wide_scores

    modality = row.get("modality") if isinstance(row.get("modality"), str) else None
    fixed = {} if args.tune else DEFAULTS["similarity"]

    def training() -> pd.DataFrame:
        history, _ = store.scored_history(modality, args.select)
        return history[(history["dataset"] != args.dataset) & history["performance"].notna()]

    request = {"command": "next", "modality": modality, "select": args.select, "without": args.dataset,
               "similarity": fixed, "protocol": protocol}
    est = fitted_auto(store, request, training, lambda train: Auto(similarity=fixed, protocol=protocol).fit(train))
    history, stored = est.history_, store.scores()
    mine = stored[stored["dataset"] == args.dataset]
    candidates = candidates.assign(protocol=protocol)
    if not mine.empty:  # scores logged for the dataset (`rank --log-scores`) join the evidence
        candidates = candidates.merge(wide_scores(mine[["model", "score", "value"]]), on="model", how="left")
    scores = ", ".join(sorted(mine["score"].unique()))
    note = (f"{history['protocol'].nunique()} protocols, {est.measured_on}, shrinkage {est.shrinkage_:g}, "
            + (f"the scores {scores} stored for it" if scores else "no score stored for it"))
    return est, candidates, note


def check_next_flags(args: argparse.Namespace) -> None:
    """One line for a flag given without what it needs, or with what it excludes."""
    if not args.configs:
        if given := [flag for flag, value in (("--model", args.model), ("--max-cost", args.max_cost)) if value]:
            raise UserError(f"{', '.join(given)} propose(s) configurations: add --configs")
        return
    if not args.model:
        raise UserError("--configs needs --model FOLDER, a recommender trained with the h block (--features d,m,h)")
    if given := [flag for flag, value in (("--strategy", args.strategy), ("--tune", args.tune)) if value]:
        raise UserError(f"--configs updates the recommender's prediction with the observed results: "
                        f"{', '.join(given)} does not apply")


def run_next_configs(args: argparse.Namespace) -> int:
    """Print the next (model, configuration) rows: `recommend --configs`' every row, updated with the results."""
    import pandas as pd

    from recommender.history import open_store
    from recommender.models.configs import next_configs, observed_configs, recommend_configs
    from recommender.models.factory import load_recommender
    from recommender.models.observed import rows_for_dataset
    from recommender.models.request_files import dataset_requests, read_user_table

    facts = {"examples": args.examples, "classes": args.classes, "group": args.group, "modality": args.modality}
    requests = dataset_requests([args.dataset], None, **facts)
    est = load_recommender(args.model)
    store = open_store(args.db)
    everything = recommend_configs(est, store, requests, k=2**31 - 1, protocol=args.protocol)
    table = everything.table
    logged = table[table["measured"].notna()]
    observed = pd.DataFrame({"model": logged["model"], "lr": logged["lr"], "epochs": logged["epochs"],
                             "performance": logged["measured"]})
    sources = [f"{len(observed)} configuration(s) logged in the store for {args.dataset}"]
    if (results := read_user_table(args.observed)) is not None:
        rows, left = rows_for_dataset(results.frame, results.label, args.dataset)
        given = observed_configs(rows, results.label, set(table["model"]), table)
        keys = ["model", "lr", "epochs"]
        stored = observed.set_index(keys).index.isin(given.set_index(keys).index)
        sources.append(f"{len(given)} from {args.observed}" + (f" (overriding {stored.sum()} stored)" if stored.any()
                                                              else "") + (f" ({left})" if left else ""))
        observed = pd.concat([observed[~stored], given], ignore_index=True)
    best = next_configs(table, observed, args.budget, args.max_cost)
    if args.json:
        notes = everything.all_notes()
        print(json.dumps([{**record, "notes": notes} for record in best.to_dict(orient="records")], indent=2))
        return 0
    within = "" if args.max_cost is None else f", within {args.max_cost:,.0f} s of expected cost in all"
    print(f"{args.dataset}: used {'; '.join(sources)}; {est.kind} ({est.features}) over {table['model'].nunique()} "
          f"models x {len(table[['lr', 'epochs']].drop_duplicates())} configurations{within}")
    print(f"expected: predicted {everything.metric}, updated with the results (the dataset's shift "
          f"{best.attrs['shift']:+.3g}, and each model's own; reason); prior: before them; cost_s: expected seconds, "
          f"cost_low..cost_high its spread; cumulative_s: the total of the rows so far")
    seconds = ["cost_s", "cost_low", "cost_high", "cumulative_s"]
    print(best.round({c: 0 for c in seconds}).astype({c: "Int64" for c in seconds})
          .to_string(index=False, float_format="{:.4g}".format, na_rep="-"))
    for note in everything.all_notes():
        print(f"note: {note}")
    return 0
