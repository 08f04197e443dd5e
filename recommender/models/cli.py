"""`recommender train` and `recommender recommend`: learned recommenders from the history store."""

from __future__ import annotations

import argparse
import json
import time

import pandas as pd

from recommender.cli_args import add_db_argument
from recommender.errors import UserError
from recommender.history import Store, open_store
from recommender.history.ingest import read_table
from recommender.models.evidence import check_evidence
from recommender.models.factory import RECOMMENDERS, load_recommender, make_recommender
from recommender.models.features import parse_features
from recommender.models.pairs import DATASET_COLUMNS, MODEL_COLUMNS, candidate_pairs, top_k
from recommender.models.tuning import tune


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `train` and `recommend` commands."""
    train = subparsers.add_parser("train", help="train an LR or FM recommender on the history store")
    train.add_argument("--recommender", required=True, choices=sorted(RECOMMENDERS), help="lr or fm")
    train.add_argument("--features", default="d,m", help="feature set, e.g. d,m or d,m,logme (default d,m)")
    train.add_argument("--protocol", default="vtab1k", help="training protocol of the pairs (default vtab1k)")
    train.add_argument("--modality", help="keep one modality, e.g. image")
    train.add_argument("--select", default="val", choices=("val", "test"),
                       help="pick each pair's best hyper-parameters by validation (default) or test value")
    train.add_argument("--tune", type=int, default=0, metavar="N",
                       help="Optuna trials on inner dataset-grouped splits (kept in the store; resumes)")
    train.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                       help="a hyper-parameter, e.g. k=16 or loss=pairwise (repeatable)")
    train.add_argument("--seed", type=int, default=0, help="seed of the FM and of tuning (default 0)")
    add_db_argument(train)
    train.add_argument("--out", required=True, help="folder to write the trained recommender to")
    train.set_defaults(func=run_train)

    rec = subparsers.add_parser("recommend", help="rank a pool of models for a dataset with a trained recommender")
    rec.add_argument("--model", required=True, help="folder written by `recommender train`")
    rec.add_argument("--dataset", required=True, help="dataset name (a store dataset, or a new one)")
    rec.add_argument("--examples", type=float, help="training examples of the dataset")
    rec.add_argument("--classes", type=float, help="number of classes")
    rec.add_argument("--group", help="dataset group, e.g. vtab-natural")
    rec.add_argument("--modality", help="dataset modality, e.g. image")
    rec.add_argument("--scores", help="CSV/Parquet of scores on this dataset: model,score,value or model,score_<name>")
    rec.add_argument("--pool", help="CSV/Parquet of candidate models (a 'model' column, optional feature columns); "
                                    "default: every model of the training protocol in the store")
    rec.add_argument("--top-k", type=int, default=10, help="how many models to print (default 10)")
    rec.add_argument("--allow-modality-mismatch", action="store_true",
                     help="rank a dataset of a modality the recommender was never trained on (refused otherwise; "
                          "a warning says so)")
    add_db_argument(rec)
    form = rec.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="print JSON records")
    form.add_argument("--csv", action="store_true", help="print CSV")
    rec.set_defaults(func=run_recommend)


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
    return [column.removeprefix("score_") for column in parse_features(features)[1]]


def run_train(args: argparse.Namespace) -> int:
    """Train on the store's pair table, optionally tune, and write the recommender to --out."""
    store = open_store(args.db)
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
                      features=args.features, verbose=args.verbose, **fixed)
    est = make_recommender(args.recommender, **params).fit(pairs)
    seconds = time.perf_counter() - start
    # the protocol and filters go into the saved metadata, so that `recommend` ranks the same pool
    out = est.save(args.out, training={"protocol": args.protocol, "modality": args.modality, "select": args.select,
                                       "tune_trials": args.tune, "seconds": round(seconds, 3)})
    print(f"trained {args.recommender} on {len(pairs)} pairs ({est.training_['models']} models x "
          f"{est.training_['datasets']} datasets, {args.protocol}) in {seconds:.1f} s -> {out}")
    return 0


def dataset_row(pairs: pd.DataFrame, datasets: pd.DataFrame, args: argparse.Namespace) -> dict[str, object]:
    """The dataset's features: from the training protocol's pairs, else the store, overridden by the flags."""
    row: dict[str, object] = {"dataset": args.dataset}
    known = pairs[pairs["dataset"] == args.dataset]
    stored = datasets[datasets["dataset"] == args.dataset]
    if not known.empty:
        row.update(known.iloc[0][list(DATASET_COLUMNS)].to_dict())
    elif not stored.empty:
        row.update(stored.iloc[0].reindex(list(DATASET_COLUMNS)).to_dict())
    flags = {"examples": args.examples, "classes": args.classes, "group": args.group, "modality": args.modality}
    row.update({k: v for k, v in flags.items() if v is not None})
    return row


def model_pool(store: Store, path: str) -> pd.DataFrame:
    """Candidate models from a file; the model features it leaves out come from the store."""
    pool = read_table(path)
    stored = store.model_features().reindex(columns=list(MODEL_COLUMNS))
    missing = [c for c in MODEL_COLUMNS if c not in pool.columns]
    return pool.merge(stored[["model", *missing]], on="model", how="left")


def run_recommend(args: argparse.Namespace) -> int:
    """Print the top-k models of the pool for the dataset, by predicted normalised performance."""
    est = load_recommender(args.model)
    training = est.training_
    store = open_store(args.db)
    names = score_names(est.features)
    pairs = store.pair_table(training.get("protocol", "vtab1k"), training.get("modality"), select="val")
    pool = model_pool(store, args.pool) if args.pool else pairs
    scores = read_table(args.scores) if args.scores else None
    if scores is None and names:
        scores = store.scores(names)
        scores = scores[scores["dataset"] == args.dataset]
        if scores.empty:
            raise UserError(f"features {est.features} need scores ({', '.join(names)}): the store has none "
                            f"for {args.dataset}; pass --scores FILE")
    candidates = candidate_pairs(pool, dataset_row(pairs, store.dataset_features(), args), scores)
    check_evidence(est, candidates, args.allow_modality_mismatch)
    best = top_k(candidates, est.predict(candidates), args.top_k)
    if args.json:
        print(json.dumps(best.to_dict(orient="records"), indent=2))
    elif args.csv:
        print(best.to_csv(index=False), end="")
    else:
        print(f"top {len(best)} of {len(candidates)} models for {args.dataset} ({est.kind}, {est.features}):")
        print(best.to_string(index=False, float_format="%.4f"))
    return 0
