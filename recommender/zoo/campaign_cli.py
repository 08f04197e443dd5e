"""`recommender campaign`: fine-tune models x datasets x learning rates x seeds, score every pair, log it all, and
resume where a stopped campaign left off (`recommender.zoo.campaign`).

Only argparse-level names are imported here; torch, pandas and the rest load when the command runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from recommender.cli_args import add_db_argument, add_quiet_argument, comma_list
from recommender.contracts import FINETUNE_HEADS
from recommender.executors import add_executor_arguments
from recommender.zoo.cli import _floats, add_offline_argument
from recommender.zoo.zoos import ZOOS

DESCRIPTION = """\
Build fine-tuning truth and every transferability score for models x datasets.

For each dataset (a stratified sample of --n examples): extract each model's features once
(through the feature cache), compute every score (LogME, H-score and regularised H-score, LFC,
PARC, kNN and linear probes; LEEP and NCE for the models with a source head: the vision
models' own classifiers) and log it with its seconds; then run each fine-tuning job
(learning rate x seed; 60/20/20 split by seed) that the store does not hold yet, logging it
as soon as it finishes, with its wall and CPU seconds. Rerun the same command to resume:
finished jobs are skipped; with --max-jobs 0 it logs the scores the store lacks and runs no
job. With --head probe (the default) the head starts from the linear probe's fit (LP-FT) and
the best epoch by validation accuracy is kept, epoch 0 (the probe) included. Models outside
torch (a user's ONNX file) get scores and probes only.

example:
  recommender campaign --models all-MiniLM-L6-v2,glove-6B-50d --datasets tweets,bbc_news \\
      --n 300 --lrs 1e-4,1e-3 --epochs 3 --max-length 64
  (jobs logged under the protocol finetune:lpft-3ep-180ex-tok64)"""


def _ints(text: str) -> list[int]:
    """Split a comma-separated list of integers."""
    try:
        return [int(t) for t in comma_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, got {text!r}") from None


def run_campaign_command(args: argparse.Namespace) -> int:
    """Run the campaign, printing a line per dataset scored and per job, then the summary."""
    from recommender.executors import executor_from_args
    from recommender.zoo.cache import FeatureCache
    from recommender.zoo.campaign import Settings, run_campaign, verdicts
    from recommender.zoo.zoos import resolve_models

    settings = Settings(n=args.n, lrs=tuple(args.lrs), seeds=tuple(args.seeds), epochs=args.epochs,
                        patience=args.patience, batch_size=args.batch_size, head=args.head,
                        max_length=args.max_length, image_size=args.image_size)
    settings.check()  # before any model is loaded
    executor = executor_from_args(args)
    providers = resolve_models(args.zoo, comma_list(args.models) if args.models else None, args.offline)
    # absolute: a worker process (Ray's run in the folder its node started in) must find the same folder
    cache = FeatureCache(Path(args.cache).absolute() if args.cache else None)
    result = run_campaign(providers, comma_list(args.datasets), settings, args.db, cache, executor,
                          max_jobs=args.max_jobs, report=lambda line: print(line, flush=True),
                          quiet=getattr(args, "quiet", False))
    cpu_jobs = float(result.jobs["extra.cpu_seconds"].sum()) if len(result.jobs) else 0.0
    later = f", {result.left} left for a later run (--max-jobs)" if result.left else ""
    print(f"\n{len(result.jobs)} job(s) run, {result.skipped} already in the store (skipped){later}, "
          f"{result.scores_logged} new score(s) logged; {result.wall_seconds:.1f} s wall, "
          f"{result.cpu_seconds:.1f} s CPU in this process, {cpu_jobs:.1f} s CPU in the jobs")
    if result.untrainable:
        print(f"no fine-tuning truth (outside torch): {', '.join(result.untrainable)}")
    print("\ntest accuracy (%): fine-tuned (lr chosen on validation) vs linear probe, per dataset")
    print(result.summary.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    table = verdicts(result.summary)
    if len(table):
        print()
        print(table.to_string(index=False))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `campaign` to the CLI."""
    c = subparsers.add_parser("campaign", help="fine-tune and score models x datasets, resumable, logged as it goes",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("--zoo", default=None, help=f"named model zoo ({', '.join(ZOOS)}); give --zoo, --models or both")
    c.add_argument("--models", default=None, help="comma-separated models: zoo names, history names, hub ids, "
                                                  "timm/NAME, model folders or NAME=FOLDER")
    add_offline_argument(c)
    c.add_argument("--datasets", required=True, help="comma-separated shipped dataset names or data files")
    c.add_argument("--n", type=int, default=300,
                   help="stratified sample of N examples per dataset, the same for every seed (default: %(default)s)")
    c.add_argument("--lrs", type=_floats, default="1e-4,1e-3",
                   help="comma-separated learning rates (default: %(default)s)")
    c.add_argument("--seeds", type=_ints, default="0",
                   help="comma-separated seeds: each one splits and trains anew (default: %(default)s)")
    # the defaults of campaign.Settings (which imports torch), named here and checked by a test
    c.add_argument("--epochs", type=int, default=4, help="maximum epochs per job (default: %(default)s)")
    c.add_argument("--patience", type=int, default=4,
                   help="early-stopping patience in epochs of validation accuracy; as many as --epochs never stops "
                        "early (LP-FT's validation accuracy can dip before it passes the probe's) "
                        "(default: %(default)s)")
    c.add_argument("--batch-size", type=int, default=16, help="examples per batch (default: %(default)s)")
    c.add_argument("--head", choices=FINETUNE_HEADS, default="probe",
                   help="the head's start: probe (LP-FT: the linear probe's fit) or random (default: %(default)s)")
    c.add_argument("--max-length", type=int, default=None,
                   help="cut texts to this many tokens for transformer models (cheaper; named in the protocol)")
    c.add_argument("--image-size", type=int, default=None,
                   help="resize images to this many pixels per side for vision models (cheaper; named in the protocol)")
    c.add_argument("--max-jobs", type=int, default=None,
                   help="run at most this many of the missing jobs now (rerun to continue; default: all)")
    c.add_argument("--cache", default=None, help="feature cache folder (default: $RECOMMENDER_CACHE/features or "
                                                 "~/.cache/recommender/features)")
    add_executor_arguments(c, "one model's features and scores; one fine-tuning job")
    add_db_argument(c)
    add_quiet_argument(c)
    c.set_defaults(func=run_campaign_command)
