"""`recommender train` and `recommender recommend`: learned recommenders from the history store."""

from __future__ import annotations

import argparse
import json
import math
import re
import time
from typing import TYPE_CHECKING

from recommender.cli_args import add_db_argument, comma_list
from recommender.contracts import DEFAULT_PROTOCOL, score_name
from recommender.errors import UserError
from recommender.models.factory import RECOMMENDERS

if TYPE_CHECKING:
    import pandas as pd

    from recommender.models.base import PairRecommender

# the store, the recommenders (torch for fm) and Optuna load when a command runs: `--help` stays instant

TRAIN_DESCRIPTION = """\
Train a learned recommender on the history store's (model, dataset) pairs of one protocol: LR
(ridge on the encoded pair) or FM (factorisation machine), optionally tuned with Optuna on
inner dataset-grouped splits. The target is performance z-scored within each dataset.

example:
  recommender train --recommender fm --features d,m --protocol vtab1k --modality image --out models/fm
  recommender train --recommender lr --features d,m,logme --modality image --tune 30 --out models/lr"""

RECOMMEND_DESCRIPTION = """\
Recommend the models most worth fine-tuning on one or many datasets, with a recommender written
by `recommender train`. Each row gives the model's facts (family, parameters in millions,
pre-training data), its expected performance in the metric's units (the predicted z-score read
with the dataset's spread in the history; for a dataset new to the history, the typical training
dataset's, and a note says so), the z-score itself, and whether the pair is in the training
history (in_sample: its measured value is shown too). The results already observed on a dataset
(its jobs logged in the store under the protocol, and an --observed file) update the ranking
with the adaptive LR warm start; tried models show their result in `observed`, every model its
spread (the half-width of its 68% interval in predicted_z units, calibrated on held-out training
datasets when the recommender was trained), and a note says what was used.

example:
  recommender recommend --model models/fm --dataset dtd --top-k 5
  recommender recommend --model models/fm --dataset my-task --classes 10 --examples 800 \\
      --group vtab-natural --modality image
  recommender recommend --model models/fm --dataset my-task --observed results.csv
  recommender recommend --model models/fm --datasets dtd,svhn,eurosat --top-k 3 --csv
  recommender recommend --model models/fm --datasets-file datasets.csv --json

(model, configuration) rows -- learning rate and epochs, with the expected performance and the
expected fine-tuning cost in seconds (and its spread) -- from a recommender trained on the jobs
with the configuration block h (`recommender train --features d,m,h`):
  recommender recommend --model models/fm-h --dataset dtd --configs
  recommender recommend --model models/fm-h --dataset dtd --configs --max-params 100M --max-cost 2h
  recommender recommend --model models/fm-h --dataset dtd --configs --pareto --plot pareto.png"""

SUFFIXES = {"count": {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9},
            "seconds": {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `train` and `recommend` commands."""
    train = subparsers.add_parser("train", help="train an LR or FM recommender on the history store",
                                  description=TRAIN_DESCRIPTION)
    train.add_argument("--recommender", required=True, choices=sorted(RECOMMENDERS), help="lr or fm")
    train.add_argument("--features", default="d,m", help="feature set, e.g. d,m or d,m,logme (default d,m)")
    train.add_argument("--protocol", default=DEFAULT_PROTOCOL,
                       help="training protocol(s) of the pairs: one, a,b or all (default vtab1k); pairs are normalised "
                            "within each (dataset, protocol), and the p feature block gives the protocols' facts")
    train.add_argument("--modality", help="keep one modality, e.g. image")
    train.add_argument("--select", default="val", choices=("val", "test"),
                       help="pick each pair's best hyper-parameters by validation (default) or test value")
    train.add_argument("--tune", type=int, default=0, metavar="N",
                       help="Optuna trials on inner dataset-grouped splits (kept in the store; resumes)")
    train.add_argument("--study", metavar="NAME",
                       help="tune the shared Optuna study NAME in the store: this process adds its --tune N trials, "
                            "so several processes or machines on one store (PostgreSQL for a team) tune it together")
    train.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                       help="a hyper-parameter, e.g. k=16 or loss=pairwise (repeatable)")
    train.add_argument("--seed", type=int, default=0, help="seed of the FM and of tuning (default 0)")
    add_db_argument(train)
    train.add_argument("--out", required=True, help="folder to write the trained recommender to")
    train.set_defaults(func=run_train)

    rec = subparsers.add_parser("recommend", help="the models to fine-tune on one or many datasets, with their "
                                                  "expected performance", description=RECOMMEND_DESCRIPTION)
    rec.add_argument("--model", required=True, help="folder written by `recommender train`")
    which = rec.add_mutually_exclusive_group(required=True)
    which.add_argument("--dataset", help="dataset name (a store dataset, or a new one described by the flags below)")
    which.add_argument("--datasets", type=comma_list, metavar="A,B,...",
                       help="several datasets at once (the flags below apply to each); one table")
    which.add_argument("--datasets-file", metavar="FILE",
                       help="CSV/Parquet/JSON Lines of datasets: a dataset column and any of examples, classes, "
                            "group, modality (a blank cell: the store's value, if any); one table")
    rec.add_argument("--examples", type=float, help="training examples of the dataset")
    rec.add_argument("--classes", type=float, help="number of classes")
    rec.add_argument("--group", help="dataset group, e.g. vtab-natural (one the store knows)")
    rec.add_argument("--modality", help="dataset modality, e.g. image (one the store knows)")
    rec.add_argument("--scores", help="CSV/Parquet of scores on the dataset: model,score,value or model,score_<name> "
                                      "(and a dataset column for several datasets)")
    rec.add_argument("--pool", help="CSV/Parquet of candidate models (a 'model' column, optional feature columns); "
                                    "default: every model of the training protocol in the store")
    rec.add_argument("--protocol", help="the protocol you fine-tune under (a stored one), whose facts a recommender "
                                        "with the p block reads; default: its training protocol")
    rec.add_argument("--observed", metavar="FILE", help="CSV/Parquet/JSON Lines of model,performance results on "
                                                     "the --dataset (added to, and overriding, its logged jobs)")
    rec.add_argument("--top-k", type=int, default=10, help="how many models to show per dataset")
    rec.add_argument("--configs", action="store_true",
                     help="rank (model, configuration) rows: learning rate and epochs, with expected performance and "
                          "expected cost in seconds (a recommender trained with the h block: --features d,m,h)")
    rec.add_argument("--max-params", type=parameter_count, metavar="N",
                     help="with --configs: only models of at most N parameters (100M, 1.5B or 86000000)")
    rec.add_argument("--max-cost", type=cost_seconds, metavar="SECONDS",
                     help="with --configs: only configurations expected to cost at most this (seconds; or 90m, 5h)")
    rec.add_argument("--pareto", action="store_true",
                     help="with --configs: every (model, configuration) that no other beats on both expected "
                          "performance and expected cost, cheapest first (instead of the top k)")
    rec.add_argument("--plot", metavar="PNG", help="with --pareto: also draw the front to this PNG file")
    rec.add_argument("--allow-modality-mismatch", action="store_true",
                     help="rank a dataset of a modality the recommender was never trained on (refused otherwise; "
                          "a warning says so)")
    add_db_argument(rec)
    form = rec.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="print JSON records")
    form.add_argument("--csv", action="store_true", help="print CSV")
    rec.set_defaults(func=run_recommend)


def _amount(text: str, kind: str, example: str) -> float:
    """A positive finite number with an optional unit suffix of ``SUFFIXES[kind]`` (case-insensitive)."""
    match = re.fullmatch(r"\s*([0-9.eE+-]+?)\s*([a-zA-Z]*)\s*", text)
    unit = SUFFIXES[kind].get(match.group(2).lower()) if match else None
    try:
        value = float(match.group(1)) * unit if match and unit is not None else math.nan
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number such as {example}, got {text!r}")
    return value


def parameter_count(text: str) -> float:
    """--max-params: a number of parameters, e.g. 100M, 1.5B or 8.6e7."""
    return _amount(text, "count", "100M, 1.5B or 86000000")


def cost_seconds(text: str) -> float:
    """--max-cost: seconds, or with a unit: 90m, 5h, 1d."""
    return _amount(text, "seconds", "3600, 90m or 5h")


def parse_params(items: list[str]) -> dict[str, object]:
    """NAME=VALUE strings as keyword arguments; values parse as JSON when they can (numbers, null)."""
    params: dict[str, object] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UserError(f"--param wants NAME=VALUE, got {item!r}")
        try:
            params[name] = json.loads(value)
        except json.JSONDecodeError:
            params[name] = value
    return params


def score_names(features: str) -> list[str]:
    """Stored score names the feature set needs (``score_logme`` -> ``logme``)."""
    from recommender.models.features import parse_features

    return [score_name(column) for column in parse_features(features)[1]]


def run_train(args: argparse.Namespace) -> int:
    """Train on the store's pair table, optionally tune, and write the recommender to --out."""
    from recommender.history import open_store
    from recommender.history.job_table import job_table
    from recommender.models.calibration import spread_factor
    from recommender.models.configs import uses_configs
    from recommender.models.factory import make_recommender
    from recommender.models.tuning import tune

    if args.study and args.tune < 1:
        raise UserError("--study NAME tunes a shared study: give --tune N, the trials this process adds")
    store = open_store(args.db)
    if uses_configs(args.features):  # one row per job, its configuration beside its pair's features
        if score_names(args.features):
            raise UserError("the configuration block h takes no score features: use e.g. --features d,m,h")
        pairs = job_table(store, args.protocol, args.modality)
    else:
        pairs = store.pair_table(args.protocol, args.modality, scores=score_names(args.features), select=args.select)
    if pairs.empty:
        raise UserError(f"the store has no pairs under protocol {args.protocol!r} (modality {args.modality})")
    params = {"features": args.features, **parse_params(args.param)}
    if args.recommender == "fm":
        params = {"seed": args.seed, "verbose": args.verbose, **params}
    start = time.perf_counter()
    if args.tune > 0:
        fixed = {k: v for k, v in params.items() if k != "features"}
        params = tune(args.recommender, pairs, n_trials=args.tune, seed=args.seed, storage=store.url,
                      features=args.features, verbose=args.verbose, study_name=args.study, shared=bool(args.study),
                      **fixed)
    est = make_recommender(args.recommender, **params).fit(pairs)
    seconds = time.perf_counter() - start
    calibration = None if uses_configs(args.features) else spread_factor(est, pairs)
    calibrated = {} if calibration is None else {"spread_factor": round(calibration[0], 6),
                                                 "spread_datasets": calibration[1]}
    # the protocol and filters go into the saved metadata, so that `recommend` ranks the same pool
    out = est.save(args.out, training={"protocol": args.protocol, "modality": args.modality, "select": args.select,
                                       "tune_trials": args.tune, "seconds": round(seconds, 3), **calibrated})
    rows = "jobs" if uses_configs(args.features) else "pairs"
    print(f"trained {args.recommender} on {len(pairs)} {rows} ({est.training_['models']} models x "
          f"{est.training_['datasets']} datasets, {args.protocol}) in {seconds:.1f} s -> {out}")
    return 0


def run_recommend(args: argparse.Namespace) -> int:
    """Print the top-k models of the pool for each dataset: one table, with expected performance and notes."""
    from recommender.history import open_store
    from recommender.models.factory import load_recommender
    from recommender.models.recommend import Request, recommend
    from recommender.models.request_files import dataset_requests, read_pool, read_scores, read_user_table

    facts = {"examples": args.examples, "classes": args.classes, "group": args.group, "modality": args.modality}
    requests = dataset_requests(args.datasets or ([args.dataset] if args.dataset else []), args.datasets_file,
                                **facts)
    check_config_flags(args)
    est = load_recommender(args.model)
    if args.configs:
        return print_configs(args, est, requests)
    request = Request(requests, read_pool(args.pool) if args.pool else None,
                      read_scores(args.scores, list(requests["dataset"])) if args.scores else None,
                      read_user_table(args.observed), args.top_k, args.protocol, args.allow_modality_mismatch,
                      args.datasets_file or "flags")
    result = recommend(est, open_store(args.db), request)
    table = result.table
    notes = table["dataset"].map(lambda name: result.notes.get(name, []))
    if args.json:  # each record carries its dataset's notes; a tried model's rank is null
        records = table.astype({"rank": object}).assign(notes=notes)
        records["rank"] = records["rank"].where(table["rank"].notna(), None)
        print(json.dumps(records.to_dict(orient="records"), indent=2))
    elif args.csv:
        print(table.assign(notes=notes.map(" | ".join)).to_csv(index=False), end="")
    else:
        tried = table["rank"].isna()
        shown = table if len(requests) > 1 else table.drop(columns="dataset")
        what = requests["dataset"].iloc[0] if len(requests) == 1 else f"{len(requests)} datasets"
        print(f"top {min(args.top_k, result.pool_size)} of {result.pool_size} models for {what} ({est.kind}, "
              f"{est.features}, trained on {est.training_.get('protocol')}); expected: predicted {result.metric}; "
              f"predicted_z: within the dataset, in standard deviations; spread: {spread_meaning(est)}; measured: "
              f"the history's value where in_sample")
        print(shown[~tried].drop(columns="observed").to_string(index=False, float_format="%.4g", na_rep="-"))
        if tried.any():
            print("\ntried already (not ranked), best observed first; observed: the result on the dataset")
            print(shown[tried].drop(columns="rank").to_string(index=False, float_format="%.4g", na_rep="-"))
        for note in result.all_notes():  # in JSON and CSV, each row's `notes`
            print(f"note: {note}")
    return 0


def spread_meaning(est: PairRecommender) -> str:
    """What the printed spread is: a calibrated 68% half-width, or (a recommender saved without the calibration)
    the posterior std."""
    datasets = est.training_.get("spread_datasets")
    if datasets is None:
        return "its posterior std (not calibrated: retrain to calibrate it)"
    return f"half-width of its 68% interval (calibrated on {datasets} held-out training datasets)"


def check_config_flags(args: argparse.Namespace) -> None:
    """One line for a configuration flag given without what it needs."""
    needs_configs = [flag for flag, given in (("--max-params", args.max_params is not None),
                                              ("--max-cost", args.max_cost is not None), ("--pareto", args.pareto))
                     if given]
    if needs_configs and not args.configs:
        raise UserError(f"{', '.join(needs_configs)} rank(s) configurations: add --configs")
    if args.plot and not args.pareto:
        raise UserError("--plot draws the Pareto front: add --pareto")
    if args.configs and (args.observed or args.scores):
        raise UserError(f"--configs takes no {'--observed' if args.observed else '--scores'} file")


def print_configs(args: argparse.Namespace, est: PairRecommender, requests: pd.DataFrame) -> int:
    """Print the (model, configuration) rows of `recommend_configs` as a table, CSV or JSON; --plot draws them."""
    from recommender.history import open_store
    from recommender.models.configs import plot_pareto, recommend_configs
    from recommender.models.request_files import read_pool

    result = recommend_configs(est, open_store(args.db), requests, read_pool(args.pool) if args.pool else None,
                               args.top_k,
                               args.allow_modality_mismatch, where=args.datasets_file or "flags",
                               protocol=args.protocol, max_params=args.max_params, max_cost=args.max_cost,
                               pareto=args.pareto)
    table = result.table
    notes = table["dataset"].map(lambda name: result.notes.get(name, []))
    if args.plot:
        plot_pareto(table, args.plot, result.metric)
    if args.json:
        print(json.dumps(table.assign(notes=notes).to_dict(orient="records"), indent=2))
    elif args.csv:
        print(table.assign(notes=notes.map(" | ".join)).to_csv(index=False), end="")
    else:
        what = requests["dataset"].iloc[0] if len(requests) == 1 else f"{len(requests)} datasets"
        which = ("the Pareto front (no other row is both cheaper and better), cheapest first" if args.pareto else
                 f"top {min(args.top_k, result.pool_size)} of {result.pool_size} (model, configuration) rows")
        print(f"{which} for {what} ({est.kind}, {est.features}); expected: predicted {result.metric}; measured: the "
              f"history's mean over the jobs of that configuration; cost_s: expected fine-tuning seconds, "
              f"cost_low..cost_high its spread on held-out datasets")
        shown = table if len(requests) > 1 else table.drop(columns="dataset")
        print(shown.to_string(index=False, float_format="%.4g", na_rep="-"))
        for note in result.all_notes():
            print(f"note: {note}")
        if args.plot:
            print(f"plot: {args.plot}")
    return 0
