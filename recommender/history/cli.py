"""`recommender history init|ingest|stats|export`: the training-history store from the command line."""

from __future__ import annotations

import argparse
import sys
import time

from recommender.cli_args import add_db_argument
from recommender.history.engine import ENV_VAR, default_path
from recommender.history.records import KINDS
from recommender.history.store import IngestError, open_store, store_for_writing


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `history` command and its subcommands."""
    parser = subparsers.add_parser(
        "history", help="the training-history store",
        description=f"The training-history store. Pick it with --db URL or ${ENV_VAR}; the default is the "
                    f"SQLite file {default_path()} (under $XDG_DATA_HOME when set).")
    add_db_argument(parser)
    sub = parser.add_subparsers(dest="history_command", required=True)

    init = sub.add_parser("init", help="create the store and load the bundled real histories")
    init.set_defaults(func=_init)

    ingest = sub.add_parser("ingest", help="add a file of jobs, models, datasets or scores (all or nothing)")
    ingest.add_argument("file", help="CSV, TSV, Parquet or JSON Lines (optionally compressed)")
    ingest.add_argument("--kind", default="jobs", help=f"what the file holds: {', '.join(KINDS)} (default jobs)")
    ingest.add_argument("--format", default="long", dest="preset",
                        help="long (ours, default), shift (SHiFT ftrecords), parc (PARC oracles), "
                             "mlflow (mlflow.search_runs export), wandb (W&B runs export)")
    ingest.add_argument("--map", action="append", metavar="COLUMN=FIELD",
                        help="rename a column of the file to a field of ours (repeatable), e.g. acc=value")
    ingest.add_argument("--set", action="append", metavar="FIELD=VALUE",
                        help="a field with the same value on every row (repeatable), e.g. protocol=vtab1k")
    ingest.add_argument("--source", help="where the rows come from, when the file has no source column "
                                         "(default: the file's name). A job is identified by its run id, or "
                                         "else by what ran (model, dataset, protocol, metric, hyper-parameters, "
                                         "seed), never by the file; a score also by its source")
    ingest.add_argument("--replace", action="store_true",
                        help="take the file's values where the store holds other values for the same jobs, "
                             "scores, models or datasets (default: report each such conflict, change nothing)")
    ingest.set_defaults(func=_ingest)

    stats = sub.add_parser("stats", help="counts per table, per protocol and per dataset")
    stats.set_defaults(func=_stats)

    export = sub.add_parser("export", help="write every table to a folder (a round trip loses nothing)")
    export.add_argument("folder")
    export.add_argument("--to", choices=("csv", "parquet"), default="csv", help="file type (default csv)")
    export.add_argument("--overwrite", action="store_true",
                        help="replace FOLDER even when it holds files an earlier export did not write")
    export.set_defaults(func=_export)


def _init(args: argparse.Namespace) -> int:
    """Create the store and load the bundled history (again: nothing is added twice)."""
    from recommender.history.bundled import load_bundled

    start = time.perf_counter()
    with store_for_writing(args.db) as store:
        report = load_bundled(store)
    print(report.to_string(index=False, float_format="%.2f"))
    print(f"store {store.url}: {store.counts()} ({time.perf_counter() - start:.1f} s)")
    return 0


def _ingest(args: argparse.Namespace) -> int:
    """Ingest one file; on any problem print one line per problem and change nothing (create no store)."""
    from recommender.history.ingest import parse_pairs, read_batch

    try:
        batch = read_batch(args.file, args.kind, args.preset, parse_pairs(args.map, "--map"),
                           parse_pairs(args.set, "--set"), args.source)
        if batch.problems:
            raise IngestError(batch.problems)
        with store_for_writing(args.db) as store:
            added = store.write(batch, args.replace)
    except IngestError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        hint = "" if args.replace or not any("is stored with" in p for p in exc.problems) else \
            " (`--replace` takes the file's values over stored ones)"
        print(f"recommender history ingest: {len(exc.problems)} problem(s); nothing was ingested{hint}",
              file=sys.stderr)
        return 1
    print(", ".join(f"{kind}: {n} added" for kind, n in added.items()))
    return 0


def _stats(args: argparse.Namespace) -> int:
    """Print the store's counts."""
    from recommender.history.export import stats

    for title, table in stats(open_store(args.db)).items():
        print(f"== {title}")
        print(table.to_string(index=False))
    return 0


def _export(args: argparse.Namespace) -> int:
    """Write the store's tables to a folder."""
    from recommender.history.export import export

    for path in export(open_store(args.db), args.folder, args.to, args.overwrite):
        print(path)
    return 0
