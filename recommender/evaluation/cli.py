"""`recommender evaluate`: run search strategies over a split of the training history and write a report."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

from recommender.cli_args import add_db_argument, add_quiet_argument, comma_list
from recommender.contracts import EVALUATION_BUDGETS
from recommender.errors import UserError
from recommender.evaluation.catalog import DEFAULT_STRATEGIES, HELP, SPLITS
from recommender.executors import add_executor_arguments

if TYPE_CHECKING:  # pandas, the strategies and the runner load when the command runs: `--help` stays instant
    import pandas as pd

DESCRIPTION = """\
Evaluate search strategies on the training history: on each fold of a split (models or datasets
held out), each strategy ranks the held-out models, and the report measures what it would have
picked (regret at each budget B, rank correlations) against the measured fine-tuning results.
Writes report.md, tables and plots to --out.

example:
  recommender evaluate --split loo --protocol vtab1k --strategies oracle,random,fm,score:logme --out eval/
  recommender evaluate --split unseen-model --pairs pairs.csv --budgets 1,3,5 --out eval-pairs/"""


def _ints(text: str) -> tuple[int, ...]:
    """`1,3,5` as a tuple of positive ints."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"budgets must be >= 1, got {text!r}")
    return values


def with_fact_columns(pairs: pd.DataFrame, path: Path) -> pd.DataFrame:
    """The pair table with every model and dataset fact column; a column the file lacks is unknown (NaN) everywhere.

    So a minimal table (model, dataset, performance) serves the strategies that need nothing else (oracle, random,
    mean-perf, and lr/fm on the d,m ids); one that ranks by an absent fact ranks nothing, and the report says so."""
    from recommender.models.features import BLOCKS  # the columns the learned recommenders' feature sets read

    facts = [c for block in BLOCKS.values() for c in (*block.categorical, *block.scalar)]
    absent = [c for c in facts if c not in pairs.columns]
    if absent:
        print(f"recommender evaluate: note: {path} has no column(s) {', '.join(absent)}; read as unknown",
              file=sys.stderr)
    return pairs.reindex(columns=[*pairs.columns, *absent])


def read_pairs(path: Path, modality: str | None) -> pd.DataFrame:
    """A pair table file (CSV or Parquet), keeping only the pairs of `modality` when one is given."""
    import pandas as pd

    if not path.is_file():
        raise UserError(f"no pair table at {path}")
    kind = "Parquet" if path.suffix == ".parquet" else "CSV"
    try:
        pairs = pd.read_parquet(path) if kind == "Parquet" else pd.read_csv(path)
    except ValueError as exc:  # pandas' ParserError and EmptyDataError, UnicodeDecodeError, pyarrow's ArrowInvalid
        raise UserError(f"{path}: not a readable {kind} pair table ({exc})") from exc
    absent = [c for c in ("model", "dataset", "performance") if c not in pairs.columns]
    if absent:  # before any fact column is filled in as unknown: an id or the target cannot be
        raise UserError(f"{path}: the pair table lacks column(s) {', '.join(absent)}")
    if modality is None:
        return with_fact_columns(pairs, path)
    if "modality" not in pairs.columns:
        raise UserError(f"--modality {modality}: the pair table {path} has no modality column")
    kept = pairs[pairs["modality"] == modality]
    if kept.empty:
        found = sorted(map(str, pairs["modality"].dropna().unique()))
        raise UserError(f"--modality {modality}: no such pairs in {path} (it has {found})")
    return with_fact_columns(kept, path)


def load_pairs(args: argparse.Namespace, scores: list[str], every: bool = False) -> tuple[pd.DataFrame, list[dict]]:
    """The pair table: from --pairs (CSV or Parquet) or from the store for --protocol, with the named scores (and
    every stored one when ``every``); and an issue for each dataset of the store's protocols that the table leaves
    out because it is measured in another metric."""
    if args.pairs:
        if args.select:  # a pair table holds one performance per pair: its hyper-parameters were chosen already
            raise UserError("--select applies to the store only; a --pairs table was selected when it was made")
        return read_pairs(Path(args.pairs), args.modality), []
    if not args.protocol:
        raise UserError("give --protocol (a store protocol such as vtab1k) or --pairs FILE")
    from recommender.contracts import protocol_names
    from recommender.history import open_store

    store = open_store(args.db)
    if every:
        scores = list(dict.fromkeys([*scores, *sorted(store.scores()["score"].unique())]))
    protocols = "all" if args.protocol == "all" else [*comma_list(args.protocol), *args.train_protocols]
    pairs = store.pair_table(protocols, args.modality, scores, select=args.select or "val")
    issues = []
    for name in protocol_names(protocols, list(store.protocols()["protocol"].unique())):
        metric, jobs = store.default_metric(name), store.jobs(protocol=name, modality=args.modality)
        kept = set(pairs.loc[pairs["protocol"] == name, "dataset"])
        for dataset, part in jobs[jobs["metric"] != metric].groupby("dataset", sort=True):
            if dataset not in kept:
                issues.append({"dataset": dataset, "model": None, "issue": "other metric",
                               "detail": f"measured in {', '.join(sorted(set(part['metric'])))} under {name}, not "
                                         f"in the protocol's metric {metric}: not comparable, not evaluated"})
    return pairs, issues


def tested_protocols(args: argparse.Namespace) -> list[str] | None:
    """The protocols whose pairs are ranked (--protocol; None: every protocol of the table)."""
    return None if args.protocol in (None, "all") else comma_list(args.protocol)


def run(args: argparse.Namespace) -> int:
    """Evaluate the strategies on the split and write the report to --out."""
    # late: the strategies, matplotlib and the runner only when running
    from recommender.evaluation.catalog import every_score, scores_needed
    from recommender.evaluation.pipeline import run_evaluation
    from recommender.evaluation.report import REPORT_FILES, left_out_datasets, write_report
    from recommender.executors import executor_from_args
    from recommender.files import check_output_files

    check_output_files(args.out, "evaluate", REPORT_FILES, args.overwrite)  # refused now, not after the evaluation
    loaded, other_metric = load_pairs(args, scores_needed(args.strategies), every_score(args.strategies))
    executor = executor_from_args(args)
    with progress_lines() if getattr(args, "verbose", False) else nullcontext():  # `recommender --verbose`
        run = run_evaluation(loaded, args.split, args.strategies, args.budgets, issues=other_metric,
                             drop_broken=not args.keep_broken, tune_trials=args.tune_trials, adaptive=args.adaptive,
                             executor=executor, progress=not getattr(args, "quiet", False), sources=args.sources,
                             seeds=range(args.seeds), protocols=tested_protocols(args),
                             train_protocols=args.train_protocols)
    ev, pairs = run.evaluation, run.pairs
    if ev.results.empty:
        raise UserError("no dataset could be evaluated; see the issues: " + "; ".join(ev.issues["issue"].unique()))
    context = {"split": args.split, "pairs": args.pairs or f"store protocol {args.protocol}",
               "modality": args.modality or "all",
               "hyper-parameters selected by": "the pair table" if args.pairs else args.select or "val",
               "folds": run.folds, "datasets": pairs["dataset"].nunique(), "models": pairs["model"].nunique(),
               "broken runs": "kept (flagged)" if args.keep_broken else "dropped (listed under issues)"}
    if args.split == "unseen-dataset":
        context["sources"] = ", ".join(args.sources)
    report = write_report(ev, args.out, f"Evaluation: {args.split}", context,
                          strategies=list(dict.fromkeys(args.strategies)), overwrite=args.overwrite, executor=executor)
    print(f"wrote {report} ({len(ev.results)} numbers, {len(ev.issues)} issues)")
    for row in left_out_datasets(ev).itertuples():
        print(f"left out: {row.dataset}: {row.reason}")
    return 0


@contextmanager
def progress_lines() -> Iterator[None]:
    """While in the block, the runner's log lines (one per fold and strategy) go to stderr, timed."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("recommender evaluate: %(asctime)s %(message)s", datefmt="%H:%M:%S"))
    logger = logging.getLogger("recommender.evaluation.runner")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `evaluate` subcommand."""
    p = subparsers.add_parser("evaluate", help="evaluate search strategies on the training history",
                              description=DESCRIPTION)
    p.add_argument("--split", choices=SPLITS, required=True)
    p.add_argument("--strategies", type=comma_list, default=list(DEFAULT_STRATEGIES), help=HELP)
    p.add_argument("--budgets", type=_ints, default=EVALUATION_BUDGETS, help="budgets B, e.g. 1,3,5")
    p.add_argument("--protocol", help="store protocol(s) whose pairs are ranked, e.g. vtab1k, a,b or all (pairs are "
                                      "ranked within one dataset and protocol)")
    p.add_argument("--train-protocols", type=comma_list, default=[],
                   help="protocols added to training only: the cross-protocol split trains on these alone; the other "
                        "splits add them as extra history")
    p.add_argument("--modality", help="only datasets of this modality (image, text); with --pairs, by its modality "
                                      "column")
    p.add_argument("--select", choices=("val", "test"),
                   help="which value picks the best hyper-parameters of a pair in the store (default val; not with "
                        "--pairs)")
    p.add_argument("--pairs", help="a pair table file (CSV/Parquet) instead of the store")
    add_db_argument(p)
    p.add_argument("--sources", type=comma_list, default=[], help="source datasets of the unseen-dataset split")
    p.add_argument("--seeds", type=int, default=5, help="repeats of the unseen-model split")
    p.add_argument("--tune-trials", type=int, default=0, help="Optuna trials per fold for learned strategies")
    p.add_argument("--keep-broken", action="store_true",
                   help="keep near-zero broken runs (flagged) instead of dropping")
    p.add_argument("--adaptive", action="store_true",
                   help="adaptive strategies (adaptive:...) pick one model at a time, shown each pick's true "
                        "performance (SPEC §7); static strategies in the same table")
    add_quiet_argument(p)
    add_executor_arguments(p, "one strategy on one fold")
    p.add_argument("--out", required=True,
                   help="output folder; an earlier report's files there are replaced, other files are kept")
    p.add_argument("--overwrite", action="store_true",
                   help="replace files in --out that have a report file's name but no earlier report wrote")
    p.set_defaults(func=run)
