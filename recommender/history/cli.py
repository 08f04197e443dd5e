"""`recommender history init|ingest|alias|upgrade|stats|export`: the training-history store from the command line."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from recommender.cli_args import add_db_argument, add_quiet_argument

if TYPE_CHECKING:  # the store modules (SQLAlchemy, pandas) load when a command runs: `--help` stays instant
    import pandas as pd

    from recommender.errors import IngestError
    from recommender.history.records import Batch
    from recommender.history.writer import Changes

DESCRIPTION = """\
The training-history store: fine-tuning jobs (yours and the bundled published histories), model and
dataset facts, transferability scores. Pick it with --db URL (before or after the subcommand) or
$RECOMMENDER_DB; the default is the SQLite file $XDG_DATA_HOME/recommender/history.db
(~/.local/share/recommender/history.db when XDG_DATA_HOME is unset).

example:
  recommender history init
  recommender history ingest runs.csv --format mlflow --set protocol=vtab1k
  recommender history stats --db sqlite:///team.db"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `history` command and its subcommands."""
    parser = subparsers.add_parser(
        "history", help="the training-history store", description=DESCRIPTION)
    add_db_argument(parser)
    sub = parser.add_subparsers(dest="history_command", required=True)

    init = sub.add_parser("init", help="create the store and load the bundled real histories",
                          description="Create the store and load the bundled real histories (again: nothing is "
                                      "added twice).\n\nexample:\n  recommender history init --db my.db")
    add_quiet_argument(init)
    init.set_defaults(func=_init)

    ingest = sub.add_parser("ingest", help="add a file of jobs, models, datasets or scores (all or nothing)",
                            description="Add a file of jobs, models, datasets, scores or protocols to the store, "
                                        "all or nothing: on any problem, one line per problem and no change."
                                        "\n\nexample:\n  recommender history ingest runs.csv --format mlflow "
                                        "--set protocol=vtab1k\n  recommender history ingest wandb.csv --format "
                                        "wandb --map config.model_name=model")
    ingest.add_argument("file", help="CSV, TSV, Parquet or JSON Lines (optionally compressed)")
    ingest.add_argument("--kind", default="jobs",
                        help="what the file holds: jobs, models, datasets, scores or protocols")
    ingest.add_argument("--format", default="long", dest="preset",
                        help="long (ours), shift (SHiFT ftrecords), transfergraph (TransferGraph records), "
                             "parc (PARC oracles), "
                             "mlflow (mlflow.search_runs export), wandb (W&B runs export), mlflow-ui and "
                             "wandb-ui (the CSV of the MLflow or W&B web UI's runs table, unprefixed columns)")
    ingest.add_argument("--map", action="append", metavar="COLUMN=FIELD",
                        help="rename a column of the file to a field of ours (repeatable), e.g. acc=value")
    ingest.add_argument("--set", action="append", metavar="FIELD=VALUE",
                        help="a field with the same value on every row (repeatable), e.g. protocol=vtab1k")
    ingest.add_argument("--source", help="where the rows come from, when the file has no source column "
                                         "(default: the file's name). A job is identified by its run id, or "
                                         "else by what ran (model, dataset, protocol, metric, hyper-parameters, "
                                         "seed), never by the file; a score also by its source")
    ingest.add_argument("--alias", action="append", metavar="ALIAS=DATASET",
                        help="another name of a dataset (repeatable): rows under ALIAS land on DATASET, and every "
                             "query naming ALIAS means DATASET; stored with the file's rows, all or nothing")
    ingest.add_argument("--replace", action="store_true",
                        help="take the file's values where the store holds other values for the same jobs, "
                             "scores, models or datasets (default: report each such conflict, change nothing)")
    ingest.add_argument("--skip-invalid", action="store_true",
                        help="ingest the valid rows and leave out each row with a problem (or a conflict with the "
                             "store), writing the rows left out, each with its row number and reasons, to "
                             "--rejected (default: all or nothing)")
    ingest.add_argument("--rejected", metavar="FILE",
                        help="with --skip-invalid: the CSV for the rows left out (default: FILE.rejected.csv beside "
                             "the input)")
    add_quiet_argument(ingest)
    ingest.set_defaults(func=_ingest)

    alias = sub.add_parser("alias", help="add dataset aliases (another name of one dataset), all or nothing",
                           description="Add dataset aliases: rows and queries under ALIAS mean DATASET. All or "
                                       "nothing.\n\nexample:\n  recommender history alias cifar-100=cifar100")
    alias.add_argument("definitions", nargs="*", metavar="ALIAS=DATASET", help="an alias and its dataset")
    alias.add_argument("--file", help="a table of aliases: columns alias, dataset and optionally source (a note)")
    alias.set_defaults(func=_alias)

    upgrade = sub.add_parser("upgrade", help="upgrade a store of an older schema version in place (keeps every row)",
                             description="Upgrade the store to this version's schema in place, all or nothing, "
                                         "keeping every row. Every other command refuses a store of an older "
                                         "version.\n\nexample:\n  recommender history upgrade --db my.db")
    upgrade.set_defaults(func=_upgrade)

    stats = sub.add_parser("stats", help="counts per table; per protocol (pairs, models, datasets, scores, "
                                         "facts); per dataset; aliases",
                           description="Print the store's counts: per table; per protocol (pairs, models, "
                                       "datasets, scores, facts); per dataset; aliases.\n\nexample:\n"
                                       "  recommender history stats --db sqlite:///team.db")
    stats.set_defaults(func=_stats)

    export = sub.add_parser("export", help="write every table to a folder (a round trip loses nothing)",
                            description="Write every table of the store to FOLDER as CSV or Parquet (ingesting "
                                        "them again loses nothing).\n\nexample:\n  recommender history export "
                                        "out/ --to parquet")
    export.add_argument("folder")
    export.add_argument("--to", choices=("csv", "parquet"), default="csv", help="file type")
    export.add_argument("--overwrite", action="store_true",
                        help="replace files in FOLDER that have an exported file's name but no earlier export "
                             "wrote (other files are always kept)")
    export.set_defaults(func=_export)
    for command in sub.choices.values():  # --db after the subcommand too
        add_db_argument(command)


def _init(args: argparse.Namespace) -> int:
    """Create the store and load the bundled history (again: nothing is added twice)."""
    from recommender.history.bundled import load_bundled
    from recommender.history.store import store_for_writing
    from recommender.history.url import shown_url

    start = time.perf_counter()
    with store_for_writing(args.db) as store:
        report = load_bundled(store, quiet=getattr(args, "quiet", False))
    print(report.to_string(index=False, float_format="%.2f"))
    print(f"store {shown_url(store.url)}: {store.counts()} ({time.perf_counter() - start:.1f} s)")
    return 0


def _ingest(args: argparse.Namespace) -> int:
    """Ingest one file (and its --alias definitions); on any problem print one line per problem and change
    nothing (create no store), or with --skip-invalid leave out the rows with problems and write them to a file."""
    from recommender.errors import UserError
    from recommender.files import write_atomic
    from recommender.history.ingest import (
        Rejected,
        alias_batch,
        build_batch,
        parse_aliases,
        parse_pairs,
        read_table,
        rejected_path,
        valid_batch,
    )
    from recommender.progress import progress

    label, mapping, constants = str(args.file), parse_pairs(args.map, "--map"), parse_pairs(args.set, "--set")
    out = Path(args.rejected) if args.rejected else rejected_path(args.file)
    if args.skip_invalid and out.resolve() == Path(args.file).resolve():
        raise UserError(f"--rejected {out} is the input itself: name another file")
    # The three steps of a large file (reading, checking every row, writing) show as progress unless --quiet.
    steps = progress(("read", "check", "write"), desc=f"history ingest {Path(args.file).name}", unit="step",
                     quiet=getattr(args, "quiet", False))
    next(steps, None)
    table = read_table(args.file)
    next(steps, None)
    rejected = Rejected(table) if args.skip_invalid else None

    def batches() -> list[Batch]:
        stored = _stored_aliases(args.db)
        definitions = alias_batch(parse_aliases(args.alias), "--alias", "--alias")
        new = definitions.tables["dataset_aliases"]
        aliases = {**stored, **dict(zip(new["alias"], new["dataset"], strict=True))}

        def build(frame: pd.DataFrame, rows: list[int] | None = None) -> Batch:
            return build_batch(frame, label, args.kind, args.preset, mapping, constants, args.source, aliases, rows)

        batch = build(table) if rejected is None else valid_batch(rejected, build)
        next(steps, None)
        return [definitions, batch] if len(new) else [batch]

    def skip(exc: IngestError) -> bool:
        """With --skip-invalid, a conflict of the file's rows with the store rejects those rows (and the write is
        tried again); any other problem stays one."""
        if rejected is None or not exc.found.get(label) or any(v for k, v in exc.found.items() if k != label):
            return False
        rejected.add(exc.found[label])
        return True

    changes = _write(args, batches, "ingest", skip)
    next(steps, None)
    if changes is None:
        return 2  # the file's or the arguments' problems: a user error
    _print_changes(changes)
    if rejected is not None and rejected.reasons:
        write_atomic(out, lambda part: rejected.table().to_csv(part, index=False))
        print(f"recommender history ingest: skipped {len(rejected.reasons)} invalid row(s) of {args.file}; they are "
              f"in {out} with their row numbers and reasons", file=sys.stderr)
    return 0


def _alias(args: argparse.Namespace) -> int:
    """Add dataset aliases from arguments and/or a file; on any problem print one line per problem, add none."""
    import pandas as pd

    from recommender.errors import UserError
    from recommender.history.ingest import alias_batch, parse_aliases, read_table

    def batches() -> list[Batch]:
        frames = [parse_aliases(args.definitions)]
        if args.file:
            frames.append(read_table(args.file))
        definitions = pd.concat(frames, ignore_index=True)
        if definitions.empty:
            raise UserError("no alias given: pass ALIAS=DATASET arguments or --file")
        label = args.file if args.file and not args.definitions else "aliases"
        return [alias_batch(definitions, label, Path(args.file).name if args.file else "command line")]

    changes = _write(args, batches, "alias")
    if changes is None:
        return 2  # the file's or the arguments' problems: a user error
    _print_changes(changes)
    return 0


def _print_changes(changes: list[Changes]) -> None:
    """One line per table the write touched: rows added, and unchanged, updated or replaced where any were."""
    totals: dict[str, dict[str, int]] = {}
    for part in changes:
        for table, counts in part.items():
            for what, n in counts.items():
                totals.setdefault(table, dict.fromkeys(counts, 0))[what] += n
    for table, counts in totals.items():
        print(f"{table}: " + ", ".join(f"{n} {what}" for what, n in counts.items() if n or what == "added"))


def _stored_aliases(url: str | None) -> dict[str, str]:
    """The aliases of the store at `url` (none when there is no readable store yet: the write creates it)."""
    from recommender.errors import UserError
    from recommender.history.store import open_store

    try:
        return open_store(url).alias_map()
    except UserError:
        return {}


def _write(args: argparse.Namespace, make: Callable[[], list[Batch]], command: str,
           skip: Callable[[IngestError], bool] | None = None) -> list[Changes] | None:
    """Write the batches `make` builds, all or nothing; what changed per batch, or None after printing each
    problem on its own line. Where `skip` takes a write's problems (True), the batches are built and written
    again."""
    from recommender.history.store import IngestError, store_for_writing

    try:
        while True:
            batches = make()
            problems = [line for batch in batches for line in batch.problems]
            if problems:
                raise IngestError(problems)
            try:
                with store_for_writing(args.db) as store:
                    return store.write_changes(batches, getattr(args, "replace", False))
            except IngestError as exc:
                if skip is None or not skip(exc):
                    raise
    except IngestError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        hint = "" if getattr(args, "replace", True) or not any("is stored with" in p for p in exc.problems) else \
            " (`--replace` takes the file's values over stored ones)"
        print(f"recommender history {command}: {len(exc.problems)} problem(s); nothing was ingested{hint}",
              file=sys.stderr)
        return None


def _upgrade(args: argparse.Namespace) -> int:
    """Upgrade the store's schema in place."""
    from recommender.history.store import Store
    from recommender.history.url import shown_url

    store = Store(args.db, check=False)
    before, after = store.upgrade()
    print(f"store {shown_url(store.url)}: schema version {before} -> {after}" if after != before else
          f"store {shown_url(store.url)}: already at schema version {after}")
    return 0


def _stats(args: argparse.Namespace) -> int:
    """Print the store's counts."""
    from recommender.history.export import stats
    from recommender.history.store import open_store

    for title, table in stats(open_store(args.db)).items():
        print(f"== {title}")
        print(table.to_string(index=False))
    return 0


def _export(args: argparse.Namespace) -> int:
    """Write the store's tables to a folder."""
    from recommender.history.export import export
    from recommender.history.store import open_store

    for path in export(open_store(args.db), args.folder, args.to, args.overwrite):
        print(path)
    return 0
