"""Score a pool of candidate models on a dataset: extract each one's features (cached), compute the transferability
scores (numpy in tasks on an executor, or batched torch kernels on a device), one pair-table row per model."""

from __future__ import annotations

import math
import sys
import time
import warnings
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from recommender.contracts import dataset_row, score_column
from recommender.errors import UserError
from recommender.executors import Executor, SerialExecutor
from recommender.progress import progress as show_progress
from recommender.zoo.cache import FeatureCache
from recommender.zoo.datasets import Dataset
from recommender.zoo.extract import cache_key, extract
from recommender.zoo.provider import Provider

if TYPE_CHECKING:
    pass


DEFAULT_SCORES = ("logme", "hscore_reg", "lfc", "parc", "knn", "linear")
POOL_BATCH = 64  # models whose features wait in memory for one batched torch scoring, at most
POOL_BYTES = 1 << 30  # and at most this much of their features (scoring holds float64 copies: twice that)
WARNINGS = "warnings"  # a `score_model` row's warnings, issued by `score_pool` in its own process


def dataset_row_of(ds: Dataset, group: str | None = None) -> dict:
    """Pair-table dataset features of ds (`recommender.contracts.dataset_row`)."""
    return dataset_row(ds.name, examples=float(len(ds)), classes=float(len(ds.classes)), modality=ds.modality,
                       group=group or math.nan)


def scores_or_nan(F: np.ndarray, y: np.ndarray, scores: Sequence[str], model: str,
                  source_probs: np.ndarray | None = None) -> tuple[pd.DataFrame, list[str]]:
    """score_all's table (LEEP and NCE from ``source_probs``), where a score that cannot be computed on these
    features is NaN, and one warning per such score (for the caller to issue: this may run in a worker)."""
    from recommender.scores import score_all

    table = score_all(F, y, names=list(scores), task="classification", source_probs=source_probs, errors="nan")
    notes = [f"{row.score} on {model}: {row.error}; left as NaN" for row in table[table["error"].notna()].itertuples()]
    return table.drop(columns="error"), notes


def source_scores(scores: Sequence[str]) -> list[str]:
    """The scores among ``scores`` that need the source model's probabilities (LEEP, NCE)."""
    from recommender.scores.registry import SCORES

    return [s for s in scores if s in SCORES and SCORES[s].needs_source_probs]


def source_probabilities(F: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """softmax(F W' + b) of pooled features F (n x D) under a source head (weight K x D, bias K), in float64; each
    row is shifted by its largest logit first, so that no exponent overflows."""
    logits = np.asarray(F, np.float64) @ np.asarray(weight, np.float64).T + np.asarray(bias, np.float64)
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def source_head_note(pairs: pd.DataFrame, scores: Sequence[str]) -> str | None:
    """One line naming the models of a scored pool that got no LEEP or NCE because they have no source head (the
    score was never computed: NaN seconds), or None when every model has one or none was asked for."""
    wanted = source_scores(scores)
    if not wanted:
        return None
    missing = pairs.loc[pairs[f"seconds_{wanted[0]}"].isna(), "model"].tolist()
    if not missing:
        return None
    return (f"{' and '.join(wanted)} need a source head (the model's own classifier on its pooled features): NaN for "
            f"{len(missing)} model(s) without one: {', '.join(missing)}")


def extraction_device(device: str | None) -> str:
    """Where this process extracts features for a scoring `device` (None: the numpy path): that device, or the CPU
    where this process sees no CUDA device (e.g. a Ray task, which gets no GPU unless it asks for one)."""
    if device is None or device == "cpu":
        return "cpu"
    import torch

    return device if torch.cuda.is_available() else "cpu"


def score_model(p: Provider, ds: Dataset, scores: Sequence[str], cache: FeatureCache | None, progress: bool,
                device: str | None = None, deferred: Sequence[str] = (), workers: int = 0) -> dict:
    """One model's pair-table row: its features extracted (through the cache), every score computed. A task of its
    own: it reads and writes nothing but the feature cache, so any executor can run it.

    With a torch `device`, the features are extracted there (`extraction_device`); the scores in `deferred` are
    left NaN for `score_pool` to compute on the device, and the row carries the features under "features".

    LEEP and NCE take the softmax of the model's source head (`Provider.source_head`) on the features; for a model
    without one they do not apply: NaN value and seconds, without a warning (`source_head_note` says it once)."""
    got = extract(p, ds, cache=cache, progress=progress, device=extraction_device(device), workers=workers)
    here = [s for s in scores if s not in deferred]
    value = dict.fromkeys(scores, math.nan)
    seconds = dict.fromkeys(scores, math.nan)
    probs, head_seconds = None, 0.0
    if source := source_scores(here):
        head = p.source_head()
        if head is None:
            here = [s for s in here if s not in source]
        else:
            start = time.perf_counter()
            probs = source_probabilities(got.features, *head)
            head_seconds = time.perf_counter() - start
    notes: list[str] = []
    if here:
        table, notes = scores_or_nan(got.features, ds.y, here, p.name, probs)
        table = table.set_index("score")
        values, times = table["value"].astype(float), table["seconds"].astype(float)
        value |= {s: float(values[s]) for s in here}
        seconds |= {s: float(times[s]) for s in here}
        if probs is not None:  # the head's forward counts to the first score that needs it, as score_all's sharing
            seconds[source[0]] += head_seconds
    row = {"model": p.name, **p.facts.as_row(), **dataset_row_of(ds), "feature_dim": got.features.shape[1]}
    row |= {score_column(s): value[s] for s in scores}
    row |= {"seconds_extract": got.seconds, "cached": got.cached, "features_key": got.key}
    row |= {f"seconds_{s}": seconds[s] for s in scores}
    return row | {WARNINGS: notes} | ({"features": got.features} if deferred else {})


def _warned(row: dict) -> dict:
    """The row of `score_model` without its warnings, issued here (in the caller's process)."""
    for note in row.pop(WARNINGS):
        warnings.warn(note, stacklevel=3)
    return row


def _fill_torch_scores(rows: list[dict], y: np.ndarray, deferred: Sequence[str], device: str) -> list[dict]:
    """The deferred scores of a batch of `score_model` rows, computed together on the torch device (models whose
    Gram products share a shape are batched); a score that cannot be computed becomes NaN with a warning."""
    from recommender.scores.spectrum import FeatureMatrix
    from recommender.scores.torch_batch import score_matrices

    outcomes = score_matrices([FeatureMatrix(row.pop("features")) for row in rows], y, deferred, device)
    for row, out in zip(rows, outcomes, strict=True):
        for s in deferred:
            value = out.values[s]
            if isinstance(value, UserError):
                warnings.warn(f"{s} on {row['model']}: {value}; left as NaN", stacklevel=2)
                value = math.nan
            row[score_column(s)], row[f"seconds_{s}"] = value, out.seconds[s]
    return rows


def score_pool(providers: Sequence[Provider], ds: Dataset, scores: Sequence[str] = DEFAULT_SCORES,
               cache: FeatureCache | None = None, progress: bool = True, executor: Executor | None = None,
               device: str | None = None, workers: int = 0) -> pd.DataFrame:
    """One pair-table row per model: facts, dataset features, `score_<name>` values and the seconds of each step;
    one `score_model` task per model on ``executor`` (default: this process). With ``progress``, the models done
    show on stderr (`recommender.progress`), and on a terminal each extraction of this process gets its own bar.

    With a torch ``device`` (`scores.devices.resolve_device`), features are extracted there and the scores with
    torch kernels (LogME, LFC, H-scores) are computed there in this process, batched over up to POOL_BATCH models
    (POOL_BYTES of features) at a time (their seconds: the batch's shared work split equally); the other scores
    stay numpy in the tasks.
    Without one (None), everything is numpy, as it always was. ``workers``: DataLoader processes per extraction
    (`extract`)."""
    executor = executor or SerialExecutor()
    if cache is not None and all(cache.path(cache_key(p, ds, extraction_device(device))).is_file()
                                 for p in providers):
        executor = SerialExecutor()  # features all cached: scoring takes less than starting a worker
    deferred: tuple[str, ...] = ()
    if device is not None:
        from recommender.scores.torch_batch import TORCH_SCORES

        deferred = tuple(s for s in scores if s in TORCH_SCORES)
    bars = progress and isinstance(executor, SerialExecutor) and sys.stderr.isatty()
    task = partial(score_model, ds=ds, scores=tuple(scores), cache=cache, progress=bars, device=device,
                   deferred=deferred, workers=workers)
    done = map(_warned, show_progress(executor.imap(task, providers), len(providers), f"scores on {ds.name}",
                                      not progress, unit="models"))
    if device is None or not deferred:  # scores are deferred only to a device
        return pd.DataFrame(list(done))
    rows: list[dict] = []
    batch: list[dict] = []
    for row in done:  # features held for one batch at a time
        batch.append(row)
        if len(batch) == POOL_BATCH or sum(r["features"].nbytes for r in batch) >= POOL_BYTES:
            rows += _fill_torch_scores(batch, ds.y, deferred, device)
            batch = []
    if batch:
        rows += _fill_torch_scores(batch, ds.y, deferred, device)
    return pd.DataFrame(rows)
