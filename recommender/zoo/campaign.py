"""A resumable fine-tuning campaign: models x datasets x learning rates x seeds, with every score on every pair.

For each dataset the models' features are extracted once through the feature cache, every score is computed and
logged with its seconds (`score_pool`, `log_scores`: the same rows as `recommender rank --log-scores`), then every
fine-tuning job the store does not hold yet runs. A job's run id names everything that makes it
(`campaign:<protocol>:<model>:<dataset>:lr<lr>:s<seed>`), so a rerun asks the store which jobs are done and runs
only the others. The jobs run on the executor; this process, the only writer, logs each one as soon as it and the
jobs before it are done (`Executor.imap`), so a stopped campaign loses only jobs that were running or waiting for
an earlier one.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd

from recommender.contracts import FINETUNE_HEADS, finetune_protocol
from recommender.errors import UserError
from recommender.executors import Executor, SerialExecutor
from recommender.progress import progress as show_progress
from recommender.zoo.cache import FeatureCache
from recommender.zoo.datasets import Dataset, load_dataset, subsample
from recommender.zoo.extract import extract
from recommender.zoo.finetune import Split, finetune_once, probe_accuracies, split_dataset, with_facts
from recommender.zoo.provider import Provider
from recommender.zoo.scoring import DEFAULT_SCORES, score_pool, source_head_note
from recommender.zoo.store_writes import log_scores, write_frame

SOURCE = "recommender campaign"
# Every score of the registry; LEEP and NCE only for the models with a source head (`Provider.source_head`)
SCORES = (*DEFAULT_SCORES, "hscore", "leep", "nce")
SUBSAMPLE_SEED = 0  # one sample of each dataset for every seed: the seeds vary the split and the training


@dataclass(frozen=True)
class Settings:
    """What every job of a campaign shares: the sample size, the grid, the training budget and the input cuts."""

    n: int | None = 300
    lrs: tuple[float, ...] = (1e-4, 1e-3)
    seeds: tuple[int, ...] = (0,)
    epochs: int = 4
    # as many as the epochs: never stop early, keep the best epoch. LP-FT's validation accuracy can dip for two epochs
    # before it passes the probe's (all-MiniLM-L6-v2 on 300 tweets, lr 1e-4: 75, 57, 50, 78, 80 %)
    patience: int = 4
    batch_size: int = 16  # 12 steps an epoch on 180 training examples
    head: str = "probe"
    max_length: int | None = None  # tokens per text (transformer models)
    image_size: int | None = None  # pixels per side (vision models)

    def check(self) -> None:
        """Refuse a setting that cannot run, in one line, before any work."""
        if not self.lrs:
            raise UserError("--lrs: give at least one learning rate")
        if len(set(self.lrs)) < len(self.lrs) or len(set(self.seeds)) < len(self.seeds):
            raise UserError("--lrs and --seeds: each value may appear once (a run is seeded, so a repeat adds nothing)")
        if any(not lr > 0 for lr in self.lrs):
            raise UserError(f"--lrs: learning rates must be positive, got {', '.join(f'{lr:g}' for lr in self.lrs)}")
        if not self.seeds:
            raise UserError("--seeds: give at least one seed")
        if self.head not in FINETUNE_HEADS:
            raise UserError(f"unknown head {self.head!r}: choose from {', '.join(FINETUNE_HEADS)}")
        for name, value, least in (("--n", self.n, 10), ("--epochs", self.epochs, 1), ("--patience", self.patience, 0),
                                   ("--batch-size", self.batch_size, 1), ("--max-length", self.max_length, 1),
                                   ("--image-size", self.image_size, 8)):
            if value is not None and value < least:
                raise UserError(f"{name} must be at least {least}, got {value}")

    def protocol(self, ds: Dataset, train_examples: int) -> str:
        """The store protocol of the jobs on ds (`contracts.finetune_protocol`): the same for every model."""
        text, image = ds.modality == "text", ds.modality == "image"
        return finetune_protocol(self.epochs, train_examples, self.head, self.max_length if text else None,
                                 self.image_size if image else None)

    def shrunk(self, p: Provider) -> Provider:
        """The provider with the campaign's input cuts (a copy; a model without that input is unchanged)."""
        # the fields are a subclass's (found by hasattr); mypy checks replace() against Provider's own fields
        if self.max_length and hasattr(p, "max_length"):
            return dataclasses.replace(p, max_length=self.max_length)  # type: ignore[call-arg]
        if self.image_size and hasattr(p, "image_size"):
            return dataclasses.replace(p, image_size=self.image_size)  # type: ignore[call-arg]
        return p


    def unreached(self, providers: Sequence[Provider]) -> str:
        """Which models the input cuts do not reach (their own processor or architecture fixes the input: an image
        processor, MTCNN's nets, word vectors), to be said once: the protocol names the cut, their jobs run
        without it. "" where every model takes them."""
        parts = []
        for flag, value, field, modality in (("--max-length", self.max_length, "max_length", "text"),
                                             ("--image-size", self.image_size, "image_size", "image")):
            missed = sorted(p.name for p in providers if value and p.modality == modality and not hasattr(p, field))
            if missed:
                parts.append(f"{flag} {value} does not reach {', '.join(missed)}: they keep their own input size")
        return "; ".join(parts)


def run_id(protocol: str, model: str, dataset: str, lr: float, seed: int) -> str:
    """The job's id in the store: what was run, so the same job again is found and skipped."""
    return f"campaign:{protocol}:{model}:{dataset}:lr{lr:g}:s{seed}"


@dataclass(frozen=True)
class Job:
    """One fine-tuning run of the campaign: everything a worker needs, its run id included."""

    run: str
    protocol: str
    provider: Provider
    dataset: Dataset
    lr: float
    seed: int


def run_job(job: Job, settings: Settings, cache: FeatureCache | None) -> dict:
    """Run one job in this process; its row with the run id, `extra.cpu_seconds` (the CPU time of this process, all
    its threads, during the whole job) and `extra.wall_seconds` (its wall-clock time: loading the model and fitting
    the probe head too, beside `seconds`, the training and evaluation alone)."""
    cpu, wall = time.process_time(), time.perf_counter()
    row = finetune_once(job.provider, job.dataset, split_dataset(job.dataset, seed=job.seed), job.lr,
                        max_epochs=settings.epochs, patience=settings.patience, batch_size=settings.batch_size,
                        seed=job.seed, protocol=job.protocol, head=settings.head, cache=cache)
    return row | {"source": SOURCE, "run": job.run, "extra.cpu_seconds": time.process_time() - cpu,
                  "extra.wall_seconds": time.perf_counter() - wall}


@dataclass
class Result:
    """What a campaign did: the jobs it ran (as logged), those it found done, those it left for later (beyond
    max_jobs), the scores it logged, the linear probes of every pair and seed, the models without fine-tuning
    truth, its wall and CPU seconds, and `summary_table` of every job of its grid in the store."""

    jobs: pd.DataFrame
    skipped: int
    left: int  # missing jobs beyond max_jobs, for a later run
    scores_logged: int
    probes: pd.DataFrame
    untrainable: list[str]
    wall_seconds: float
    cpu_seconds: float  # this process
    summary: pd.DataFrame


def load_datasets(names: Sequence[str], n: int | None) -> dict[str, tuple[Dataset, int]]:
    """Each named dataset's stratified sample of n examples and its full size; an unknown name is a one-line error."""
    if not names:
        raise UserError("--datasets: give at least one dataset")
    out = {}
    for name in dict.fromkeys(names):
        full = load_dataset(name)
        out[name] = (subsample(full, n, SUBSAMPLE_SEED), len(full))
    return out


def probe_rows(pool: Sequence[Provider], ds: Dataset, splits: dict[int, Split], cache: FeatureCache) -> list[dict]:
    """The linear probe's validation and test accuracy per model and seed, on the features in the cache."""
    rows = []
    for p in pool:
        features = extract(p, ds, cache=cache, progress=False).features
        for seed, split in splits.items():
            val, test = probe_accuracies(features, ds.y, split, len(ds.classes))
            rows.append({"model": p.name, "dataset": ds.name, "seed": seed, "probe_val_value": val,
                         "probe_value": test})
    return rows


def plan(pool: Sequence[Provider], ds: Dataset, splits: dict[int, Split], settings: Settings) -> list[Job]:
    """Every fine-tuning job of the grid on ds, in order: model, seed, learning rate (torch models only)."""
    jobs = []
    for p in pool:
        if not p.trainable:
            continue
        p.reset_encoder()  # a job loads the pre-trained weights itself: do not ship loaded ones to a worker
        for seed, split in splits.items():
            protocol = settings.protocol(ds, len(split.train))
            jobs += [Job(run_id(protocol, p.name, ds.name, lr, seed), protocol, p, ds, lr, seed) for lr in settings.lrs]
    return jobs


def run_campaign(providers: Sequence[Provider], datasets: Sequence[str], settings: Settings, url: str | None,
                 cache: FeatureCache, executor: Executor | None = None, max_jobs: int | None = None,
                 report: Callable[[str], None] = lambda line: None, quiet: bool = False) -> Result:
    """Score every pair and run every fine-tuning job not yet in the store at ``url`` (at most ``max_jobs`` now);
    ``report`` gets one line per dataset scored and per job logged; the models scored and the jobs done show on
    stderr unless ``quiet`` (`recommender.progress`). Models pair with the datasets of their
    modality; models that run outside torch (a user's ONNX file) get scores and probes but no fine-tuning truth."""
    from recommender.history import open_store

    settings.check()
    if max_jobs is not None and max_jobs < 0:
        raise UserError(f"--max-jobs must be at least 0, got {max_jobs}")
    if not providers:
        raise UserError("give at least one model (--zoo or --models)")
    executor = executor or SerialExecutor()
    data = load_datasets(datasets, settings.n)
    for name, (ds, _) in data.items():
        if not any(p.modality == ds.modality for p in providers):
            raise UserError(f"dataset {name} holds {ds.modality}, and no model of the campaign takes {ds.modality}")
    if unreached := settings.unreached([p for p in providers if any(p.modality == ds.modality
                                                                    for ds, _ in data.values())]):
        report(unreached)
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    store = open_store(url, create=True)  # before any work: a bad --db fails first
    done = set(store.jobs(source=SOURCE)["run"].dropna())
    jobs, probes, skipped, left, logged, budget = [], [], 0, 0, 0, max_jobs
    untrainable = sorted({p.name for p in providers if not p.trainable})
    planned: list[str] = []
    notes: set[str] = set()
    for name, (ds, full_examples) in data.items():
        pool = [settings.shrunk(p) for p in providers if p.modality == ds.modality]
        pairs = score_pool(pool, ds, SCORES, cache=cache, progress=not quiet, executor=executor)
        new_scores = log_scores(pairs, list(SCORES), url)
        logged += new_scores
        report(f"{name}: {len(ds)} examples, {len(pool)} models scored (up to {len(SCORES)} scores each, "
               f"{new_scores} new in the store); extraction {pairs['seconds_extract'].sum():.1f} s, scores "
               f"{np.nansum(pairs[[f'seconds_{s}' for s in SCORES]].to_numpy()):.1f} s")
        note = source_head_note(pairs, SCORES)
        if note and note not in notes:  # once per pool of models, not per dataset
            notes.add(note)
            report(note)
        splits = {seed: split_dataset(ds, seed=seed) for seed in settings.seeds}
        probes += probe_rows(pool, ds, splits, cache)
        for p in pool:
            if not p.trainable:
                report(f"{name}: {p.name} runs outside torch: scores and linear probe only, no fine-tuning truth")
        grid = plan(pool, ds, splits, settings)
        planned += [job.run for job in grid]
        pending = [job for job in grid if job.run not in done]
        skipped += len(grid) - len(pending)
        if budget is not None:
            left += max(len(pending) - budget, 0)
            pending, budget = pending[:budget], budget - min(budget, len(pending))
        task = partial(run_job, settings=settings, cache=cache)
        done_jobs = show_progress(executor.imap(task, pending), len(pending), f"campaign on {name}", quiet,
                                  unit="jobs")
        for job, row in zip(pending, done_jobs, strict=True):
            frame = with_facts(pd.DataFrame([row]), job.provider, ds, full_examples)
            write_frame(store, frame, "jobs", SOURCE)  # logged now: a stop later cannot lose it
            jobs.append(frame)
            report(f"job {len(jobs)}: {job.provider.name} on {name} lr {job.lr:g} seed {job.seed}: "
                   f"val {row['val_value']:g} test {row['value']:g} (best epoch {row['extra.best_epoch']}), "
                   f"{row['extra.wall_seconds']:.1f} s wall ({row['seconds']:.1f} s training and evaluation), "
                   f"{row['extra.cpu_seconds']:.1f} s CPU")
    stored = store.jobs(source=SOURCE)
    probe_table = pd.DataFrame(probes, columns=["model", "dataset", "seed", "probe_val_value", "probe_value"])
    return Result(pd.concat(jobs, ignore_index=True) if jobs else pd.DataFrame(), skipped, left, logged, probe_table,
                  untrainable, time.perf_counter() - start_wall, time.process_time() - start_cpu,
                  summary_table(stored[stored["run"].isin(planned)], probe_table))


def summary_table(jobs: pd.DataFrame, probes: pd.DataFrame) -> pd.DataFrame:
    """Per dataset and model: the fine-tuned accuracy against the linear probe's, both test accuracy in %.

    ``jobs`` are store rows (`Store.jobs`: test_value, val_value, hparams and extra as JSON); the learning rate is
    chosen by the mean validation accuracy over the seeds (the first on ties), and `finetune_value` is the mean
    test accuracy at it; `probe_value` is the mean over the seeds of the probe on the same splits (``probes``, as
    `Result.probes`; its validation accuracy is `probe_val_value`). `kept_probe` is the share of the chosen runs
    that kept the epoch-0 model (LP-FT's probe head); a model without jobs has NaN for the fine-tuned columns."""
    probe = (probes.groupby(["dataset", "model"], sort=False)
             .agg(probe_value=("probe_value", "mean"), probe_val_value=("probe_val_value", "mean"),
                  seeds=("seed", "nunique")).reset_index())
    if jobs.empty:
        return probe.assign(finetune_value=np.nan, delta=np.nan, lr=np.nan, kept_probe=np.nan)
    hp = pd.DataFrame([json.loads(h) for h in jobs["hparams"]], index=jobs.index)
    extra = pd.DataFrame([json.loads(e) if isinstance(e, str) else {} for e in jobs["extra"]], index=jobs.index)
    runs = jobs[["dataset", "model", "test_value", "val_value"]].assign(
        lr=hp["lr"], kept=(extra["best_epoch"] == 0) if "best_epoch" in extra else np.nan)
    per_lr = (runs.groupby(["dataset", "model", "lr"], sort=False)
              .agg(val=("val_value", "mean"), finetune_value=("test_value", "mean"), kept_probe=("kept", "mean"))
              .reset_index())
    chosen = per_lr.loc[per_lr.groupby(["dataset", "model"], sort=False)["val"].idxmax()].drop(columns="val")
    out = probe.merge(chosen, on=["dataset", "model"], how="left")
    return out.assign(delta=out["finetune_value"] - out["probe_value"])[
        ["dataset", "model", "seeds", "probe_val_value", "probe_value", "finetune_value", "delta", "lr",
         "kept_probe"]]


def verdicts(summary: pd.DataFrame) -> pd.DataFrame:
    """Per dataset: of the models with fine-tuning truth, how many fine-tuning beats, ties and loses against the
    probe, and a line saying why where it does not beat it for most."""
    rows = []
    for dataset, g in summary.dropna(subset=["finetune_value"]).groupby("dataset", sort=False):
        beats, ties = int((g["delta"] > 0).sum()), int((g["delta"] == 0).sum())
        loses, kept = len(g) - beats - ties, float(g["kept_probe"].mean())
        why = ""
        if beats * 2 <= len(g):
            gap = float(g["delta"].mean())
            why = (f"the chosen runs kept the probe head in {kept:.0%} of cases: no trained epoch beat its validation "
                   f"accuracy ({g['probe_val_value'].mean():.1f}% on average)" if kept >= 0.5 else
                   "the fine-tuned models chosen on validation fell short of the probe on test by "
                   f"{-gap:.1f} points on average" if gap < 0 else
                   f"fine-tuning moved off the probe but beat it on test for only {beats} of {len(g)} models "
                   f"({gap:+.1f} points on average)")
        rows.append({"dataset": dataset, "models": len(g), "beats": beats, "ties": ties, "loses": loses,
                     "why_not": why})
    return pd.DataFrame(rows, columns=["dataset", "models", "beats", "ties", "loses", "why_not"])
