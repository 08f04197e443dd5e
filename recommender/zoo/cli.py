"""`recommender rank` and `recommender finetune`: the user's path from a dataset and a zoo to a choice, and back into
the store.

Only argparse and the zoo names are imported here; torch, pandas and the rest load when a command runs."""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

from recommender.cli_args import add_db_argument, add_quiet_argument, comma_list
from recommender.contracts import FINETUNE_HEADS, score_column
from recommender.errors import UserError
from recommender.executors import add_executor_arguments
from recommender.zoo.zoos import ZOOS

RANK_DESCRIPTION = """\
Rank candidate models for a dataset: extract each model's pooled features (cached on
disk), compute transferability scores and, with --recommender, the learned recommender's
prediction. Prints the top-k models with the seconds each step took. Without --recommender,
auto orders them: fitted on the store's history on the first call, kept in $RECOMMENDER_CACHE/fits
until the store changes.

example:
  recommender rank --data bbc_news --n 300 --zoo text-offline --top-k 3"""

FINETUNE_DESCRIPTION = """\
Fine-tune a torch model of the zoo with a fresh linear head (Lightning, AdamW, early
stopping on validation accuracy) over a learning-rate grid, on a stratified 60/20/20
train/validation/test split, and log each run as a job in the store. Accuracies are exact
counts in %, rounded to what the split's size can measure. With --head probe (LP-FT) the
head starts from the linear probe's fit and the probe itself (epoch 0) is kept unless a
trained epoch beats it on validation (protocol finetune:lpft-...).

example:
  recommender finetune --data tweets --n 200 --model glove-6B-50d --lrs 1e-3,1e-2 --epochs 3
  (logged under the protocol finetune:3ep-120ex: 3 epochs, 120 training examples)"""


def _floats(text: str) -> list[float]:
    """Learning rates: a comma-separated list of finite numbers > 0 (none: the command says one is needed)."""
    try:
        rates = [float(t) for t in comma_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None
    if not all(math.isfinite(r) and r > 0 for r in rates):
        raise argparse.ArgumentTypeError(f"expected learning rates > 0 separated by commas, got {text!r}")
    return rates


def _at_least(low: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= low."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {low}, got {text!r}")
        return value
    return parse


def _protocol(text: str) -> str:
    """A --protocol name: non-empty and short enough for the store, checked before any training."""
    from recommender.history.schema import jobs  # late: sqlalchemy only when a protocol is named

    name, limit = text.strip(), int(jobs.c.protocol.type.length)  # type: ignore[attr-defined]
    if not name or len(name) > limit:
        raise argparse.ArgumentTypeError(f"expected a protocol name of 1 to {limit} characters, got {len(name)}")
    return name


def _device(text: str) -> str:
    """A --device choice: auto, cpu, cuda, cuda:N or torch:cpu (checked against the machine when rank runs)."""
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|torch:cpu", text):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda, cuda:N or torch:cpu, got {text!r}")
    return text


def add_offline_argument(p: argparse.ArgumentParser) -> None:
    """--offline: hub models only from the Hugging Face cache (as HF_HUB_OFFLINE=1)."""
    p.add_argument("--offline", action="store_true",
                   help="read Hugging Face and timm models only from the local cache (HF_HOME), as "
                        "HF_HUB_OFFLINE=1 does; fetch them ahead with `recommender models fetch`")


def _add_data_args(p: argparse.ArgumentParser) -> None:
    """Arguments shared by both commands: the dataset, its subsample and the seed."""
    p.add_argument("--data", required=True, help="shipped dataset name (e.g. bbc_news, digits), CSV/Parquet file, "
                                                  ".npz file or image folder")
    p.add_argument("--n", type=int, default=None, help="stratified subsample of N examples (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the subsample and of training (default: %(default)s)")
    add_db_argument(p)


def run_rank(args: argparse.Namespace) -> int:
    """Extract features, score every model, predict with the recommender, print the top-k."""
    import pandas as pd

    from recommender.executors import executor_from_args
    from recommender.models.pairs import tried_last
    from recommender.scores.devices import resolve_device
    from recommender.scores.torch_batch import device_note
    from recommender.zoo.cache import FeatureCache
    from recommender.zoo.datasets import load_dataset, subsample
    from recommender.zoo.rank import (
        auto_from_store,
        load_checked_recommender,
        models_of_modality,
        observed_in_store,
        rank_pool,
        stacking_for,
        with_protocol_facts,
        with_store_facts,
    )
    from recommender.zoo.scoring import DEFAULT_SCORES, score_pool, source_head_note
    from recommender.zoo.zoos import resolve_models

    device = resolve_device(args.device)  # a missing CUDA device is refused before any loading
    ds = subsample(load_dataset(args.data), args.n, args.seed)
    scores = comma_list(args.scores) if args.scores else list(DEFAULT_SCORES)
    models = comma_list(args.models) if args.models else []
    selection = recommender = None
    if args.from_history:  # hybrid search: the history's top N first, then the data's evidence on those N
        from recommender.history import open_store
        from recommender.zoo.hybrid import candidates, folder_ties, preselect

        if not args.recommender or args.zoo:
            raise UserError("--from-history takes its candidates from the history: give --recommender, not --zoo")
        ties = folder_ties(models)
        recommender = load_checked_recommender(args.recommender, ds, scores, args.allow_modality_mismatch)
        selection = preselect(recommender, open_store(args.db), ds, args.preselect, args.protocol, args.modality,
                              args.allow_modality_mismatch)
        aware_start = time.perf_counter()
        pool, unavailable = candidates(selection.picks, ties, args.offline)
    else:
        pool = resolve_models(args.zoo, models or None, args.offline)
    providers, left_out = models_of_modality(pool, ds)
    if left_out:
        print(f"recommender rank: note: {left_out}", file=sys.stderr)
    # absolute: a worker process (Ray's run in the folder its node started in) must find the same folder
    cache = None if args.no_cache else FeatureCache(Path(args.cache).absolute() if args.cache else None)
    progress = not getattr(args, "quiet", False)
    stacking = None
    if args.recommender and recommender is None:  # a bad folder, modality or score list: before any extraction
        recommender = load_checked_recommender(args.recommender, ds, scores, args.allow_modality_mismatch)
    pairs = score_pool(providers, ds, scores, cache=cache, progress=progress, executor=executor_from_args(args),
                       device=device, workers=args.loader_workers)
    if device is not None:
        print(f"recommender rank: {device_note(scores, device)}", file=sys.stderr)
    if note := source_head_note(pairs, scores):
        print(f"recommender rank: {note}", file=sys.stderr)
    if recommender is not None:
        from recommender.history import open_store

        store = open_store(args.db)
        pairs = with_store_facts(pairs, store.model_features().set_index("model"))
        pairs = with_protocol_facts(pairs, store, recommender, args.protocol)  # for a recommender with the p block
        stacking = stacking_for(store, recommender, scores)  # a d,m recommender still uses the scores computed
    auto, auto_note = None, ""
    if recommender is None:  # the default: the store's history and the scores, each as far as it has earned
        pairs = pairs.assign(protocol=args.protocol)
        auto, auto_note = auto_from_store(args.db, scores, ds.modality, args.protocol)
    ranked, evidence = rank_pool(pairs, scores, recommender, stacking, auto)
    notes = [evidence, *(n for n in (left_out, source_head_note(pairs, scores), auto_note) if n)]
    if recommender is not None:  # the store's results on the dataset: tried models are never ranked first
        observed, tried_note = observed_in_store(store, recommender, ds.name, ranked["model"].tolist(),
                                                 args.protocol)
        ranked = tried_last(ranked, observed)
        notes += [tried_note] if tried_note else []
    if selection is not None:
        from recommender.zoo.hybrid import stage_note, with_stages

        ranked = with_stages(ranked, selection.picks, unavailable)
        notes += [*selection.notes, stage_note(selection, len(providers), time.perf_counter() - aware_start,
                                               unavailable)]
    tried = ranked["rank"].isna() if "observed" in ranked.columns else pd.Series(False, index=ranked.index)
    top = pd.concat([ranked[~tried].head(args.top_k), ranked[tried]])
    if args.csv:  # each row carries the notes of the ranking
        ranked.assign(notes=" | ".join(notes)).to_csv(args.csv, index=False)
    if args.json:
        print(f"recommender rank: {evidence}", file=sys.stderr)
        records = json.loads(top.to_json(orient="records"))
        print(json.dumps([record | {"notes": notes} for record in records], indent=1))
    else:
        ordered = [c for c in ("combined", "predicted", "auto", "spread") if c in ranked.columns]
        staged = ["stage", "agnostic_rank"] if selection is not None else []
        cols = ["rank", "model", *staged, *ordered, *[score_column(s) for s in scores],
                "seconds_extract", *[f"seconds_{s}" for s in scores],
                *(["seconds_predict"] if recommender is not None else [])]
        print(f"dataset {ds.name}: {len(ds)} examples, {len(ds.classes)} classes; "
              f"top {len(top)} of {len(ranked)} models")
        print(evidence)
        shown = top.loc[~tried.reindex(top.index, fill_value=False)]
        print(shown[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        if tried.any():
            print("\ntried already (not ranked), best observed first; observed: its result in the store")
            print(top.loc[tried.reindex(top.index, fill_value=False), ["model", "observed", *cols[2:]]].to_string(
                index=False, float_format=lambda v: f"{v:.4g}"))
        for note in notes[1:]:
            print(f"note: {note}")
    if args.log_scores:  # after the output, so that a store problem never loses the ranking
        from recommender.zoo.store_writes import log_scores

        print(f"logged {log_scores(ranked, scores, args.db)} new score(s) into the store", file=sys.stderr)
    return 0


def run_finetune(args: argparse.Namespace) -> int:
    """Fine-tune one model over a learning-rate grid and log each run as a job."""
    from recommender.executors import executor_from_args
    from recommender.zoo.datasets import load_dataset, subsample
    from recommender.zoo.finetune import SOURCE, finetune
    from recommender.zoo.zoos import get_provider

    if not args.lrs:
        raise UserError("--lrs: give at least one learning rate")
    executor = executor_from_args(args)  # a bad --executor/--address is refused before any loading
    full = load_dataset(args.data)
    jobs = finetune(get_provider(args.model, args.offline), subsample(full, args.n, args.seed), lrs=args.lrs,
                    max_epochs=args.epochs, patience=args.patience, batch_size=args.batch_size, seed=args.seed,
                    full_examples=len(full), protocol=args.protocol, executor=executor, head=args.head)
    if not args.no_log:  # the one writer: after every run, in grid order
        from recommender.history.store import store_for_writing
        from recommender.zoo.store_writes import write_frame

        with store_for_writing(args.db) as store:
            added = write_frame(store, jobs, "jobs", SOURCE)
        print(f"logged {added.get('jobs', 0)} job(s) into the store under protocol {jobs['protocol'].iloc[0]}",
              file=sys.stderr)
    cols = ["model", "dataset", "hp.lr", "hp.epochs_run", "val_value", "value", "seconds"]
    print(jobs[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `rank` and `finetune` to the CLI."""
    zoos = ", ".join(ZOOS)
    p = subparsers.add_parser("rank",
                              help="rank candidate models for a dataset (features, scores, learned recommender)",
                              description=RANK_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_data_args(p)
    p.add_argument("--zoo", default=None, help=f"named model zoo ({zoos}); give --zoo, --models or both")
    p.add_argument("--models", default=None,
                   help="comma-separated models: zoo names, names of the bundled histories (Hugging Face ids, "
                        "timm names), hub ids (owner/name), timm/NAME, model folders, NAME=FOLDER (a folder under "
                        "a history's name) or .onnx files")
    p.add_argument("--from-history", action="store_true",
                   help="hybrid search: the recommender's top --preselect models of the history for the data "
                        "(task-agnostic), then features, scores and the d,m,S ranking of those (task-aware); "
                        "needs --recommender")
    p.add_argument("--preselect", type=_at_least(1), default=20,
                   help="with --from-history: how many models the task-agnostic stage passes on "
                        "(default: %(default)s)")
    p.add_argument("--modality", default=None,
                   help="with --from-history: the data's modality for the pre-selection (default: the data's own)")
    add_offline_argument(p)
    # the default list lives in recommender.zoo.scoring, which imports torch: named here, checked by a test
    p.add_argument("--scores", default=None,
                   help="comma-separated score names; the first ranks when no recommender is given "
                        "(default: logme,hscore_reg,lfc,parc,knn,linear)")
    p.add_argument("--recommender", default=None, help="folder of a trained recommender (recommender.models save); "
                                                       "default: rank by the first score")
    p.add_argument("--allow-modality-mismatch", action="store_true",
                   help="use --recommender on a dataset of a modality it was never trained on (refused otherwise; "
                        "a warning says so)")
    p.add_argument("--protocol", default=None, help="the protocol you fine-tune under, whose facts a recommender with "
                                                    "the p block reads (default: its training protocol)")
    p.add_argument("--top-k", type=int, default=5, help="how many models to print (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print the top-k as JSON")
    p.add_argument("--csv", default=None, help="write the full ranked table to this CSV file")
    p.add_argument("--cache", default=None, help="feature cache folder (default: $RECOMMENDER_CACHE/features or "
                                                 "~/.cache/recommender/features)")
    p.add_argument("--no-cache", action="store_true", help="recompute features")
    add_executor_arguments(p, "one model: its features and every score")
    add_quiet_argument(p)
    p.add_argument("--device", type=_device, default="auto",
                   help="where LogME, LFC and the H-scores run, batched over the models, and where features are "
                        "extracted: auto (CUDA when torch sees a device, else cpu), cpu (numpy), cuda, cuda:N, "
                        "or torch:cpu (the torch kernels on the CPU: the GPU path's numbers without a GPU) "
                        "(default: %(default)s)")
    p.add_argument("--loader-workers", type=_at_least(0), default=0,
                   help="processes that prepare batches (tokenise texts; resize and normalise images) while a "
                        "model runs; the features do not depend on it. 0: in the main process, best on few cores, "
                        "where the model's own threads use them all (default: %(default)s)")
    p.add_argument("--log-scores", action="store_true",
                   help="after printing, write the computed scores into the store (run: the features' cache key, "
                        "so the same model and data again add nothing)")
    p.set_defaults(func=run_rank)

    f = subparsers.add_parser("finetune",
                              help="fine-tune a zoo model (Lightning, lr grid, early stopping) and log the jobs",
                              description=FINETUNE_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_data_args(f)
    f.add_argument("--model", required=True, help="a torch model: zoo name, history name, hub id, timm/NAME, model "
                                                  "folder or NAME=FOLDER")
    add_offline_argument(f)
    f.add_argument("--lrs", type=_floats, default="1e-4,1e-3",
                   help="comma-separated learning rates (default: %(default)s)")
    f.add_argument("--epochs", type=_at_least(1), default=5, help="maximum epochs per run (default: %(default)s)")
    f.add_argument("--patience", type=_at_least(0), default=2,
                   help="early-stopping patience in epochs of validation accuracy (default: %(default)s)")
    f.add_argument("--batch-size", type=_at_least(1), default=32, help="examples per batch (default: %(default)s)")
    f.add_argument("--protocol", type=_protocol, default=None,
                   help="store protocol of the logged jobs; runs under one protocol should be comparable "
                        "(default: finetune:<epochs>ep-<training examples>ex, e.g. finetune:3ep-120ex)")
    f.add_argument("--head", choices=FINETUNE_HEADS, default="random",
                   help="the head's start: random (a fresh head, as always) or probe (LP-FT: the linear probe's "
                        "fit on the frozen features) (default: %(default)s)")
    add_executor_arguments(f, "one learning rate: a fresh model trained and tested")
    f.add_argument("--no-log", action="store_true", help="do not write the jobs into the store")
    f.set_defaults(func=run_finetune)
