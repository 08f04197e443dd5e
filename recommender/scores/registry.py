"""The registry of transferability scores and `score_all`, which computes several on one feature matrix."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import numpy as np
import pandas as pd

from recommender.errors import UserError
from recommender.scores.hscore import hscore_from
from recommender.scores.inputs import check_classes
from recommender.scores.lfc import lfc_from
from recommender.scores.logme import TASKS, logme_from
from recommender.scores.source import leep, nce
from recommender.scores.spectrum import FeatureMatrix


@dataclass(frozen=True)
class ScoreInputs:
    """What a score may use: the shared FeatureMatrix, labels or targets, the task, source probabilities."""

    features: FeatureMatrix
    y: np.ndarray
    task: str
    source_probs: np.ndarray | None


@dataclass(frozen=True)
class Score:
    """One registered score: how to compute it and what it needs; larger is better for every score."""

    name: str
    compute: Callable[[ScoreInputs], float]
    needs_classes: bool
    needs_source_probs: bool
    description: str
    direction: str = "higher"


def _parc(d: ScoreInputs) -> float:
    from recommender.scores.parc import parc  # PARC and the probes bring scikit-learn: imported where computed

    return parc(d.features.F, d.y)


def _knn(d: ScoreInputs) -> float:
    from recommender.scores.probes import knn_accuracy

    return knn_accuracy(d.features.F, d.y)


def _linear(d: ScoreInputs) -> float:
    from recommender.scores.probes import linear_probe_accuracy

    return linear_probe_accuracy(d.features.F, d.y, task=d.task)


SCORES: dict[str, Score] = {s.name: s for s in (
    Score("logme", lambda d: logme_from(d.features, d.y, d.task), False, False,
          "LogME: mean maximum log evidence per example of a Bayesian linear model"),
    # the scores that need source probabilities run only where they are given (score_all checks it)
    Score("leep", lambda d: leep(cast(np.ndarray, d.source_probs), d.y), True, True,
          "LEEP: log expected empirical prediction from source probabilities"),
    Score("nce", lambda d: nce(np.argmax(cast(np.ndarray, d.source_probs), axis=1), d.y), True, True,
          "NCE: minus H(target label | source hard label)"),
    Score("hscore", lambda d: hscore_from(d.features, d.y), True, False,
          "H-score: tr(pinv(cov F) cov G)"),
    Score("hscore_reg", lambda d: hscore_from(d.features, d.y, regularized=True), True, False,
          "regularised H-score with Ledoit-Wolf shrinkage"),
    Score("lfc", lambda d: lfc_from(d.features, d.y), True, False,
          "LFC: centred correlation of F F' with the label-agreement matrix"),
    Score("parc", _parc, True, False,
          "PARC x 100: Spearman correlation of feature and label dissimilarities"),
    Score("knn", _knn, True, False,
          "leave-one-out 1-NN accuracy"),
    Score("linear", _linear, False, False,
          "5-fold linear probe: logistic accuracy (ridge R^2 for regression)"),
)}


def default_names(task: str, has_source_probs: bool) -> list[str]:
    """Every score that applies to the task and the inputs at hand."""
    return [s.name for s in SCORES.values()
            if not (s.needs_classes and task != "classification")
            and not (s.needs_source_probs and not has_source_probs)]


def _resolve(names: list[str] | None, task: str, has_source_probs: bool) -> list[Score]:
    """The requested scores, with a clear error for unknown names or missing inputs."""
    if names is None:
        return [SCORES[name] for name in default_names(task, has_source_probs)]
    unknown = [name for name in names if name not in SCORES]
    if unknown:
        raise UserError(f"unknown score(s) {unknown}: choose from {', '.join(SCORES)}")
    chosen = [SCORES[name] for name in dict.fromkeys(names)]
    for score in chosen:
        if score.needs_classes and task != "classification":
            raise UserError(f"score {score.name!r} needs class labels; it does not apply to task={task!r}")
        if score.needs_source_probs and not has_source_probs:
            raise UserError(f"score {score.name!r} needs the source model's probabilities (source_probs)")
    return chosen


def score_all(F: np.ndarray, y: np.ndarray, names: list[str] | None = None, task: str = "classification",
              source_probs: np.ndarray | None = None, errors: str = "raise") -> pd.DataFrame:
    """Compute several scores on one feature matrix, sharing its Gram product and decompositions.

    Returns one row per score with columns score, value, seconds (a score's seconds include any shared
    decomposition it was the first to need). With errors="nan", a score that raises UserError on these
    features gets value NaN and its message in an extra `error` column; the others still share the
    decompositions. Unknown names and bad labels raise either way.
    """
    if task not in TASKS:
        raise UserError(f"task must be one of {TASKS}, got {task!r}")
    if errors not in ("raise", "nan"):
        raise UserError(f'errors must be "raise" or "nan", got {errors!r}')
    chosen = _resolve(names, task, source_probs is not None)
    features = FeatureMatrix(F)
    if task == "classification":
        check_classes(y, features.n)  # fail on bad labels before any expensive work
    inputs = ScoreInputs(features, np.asarray(y), task, source_probs)
    rows = []
    for score in chosen:
        start = time.perf_counter()
        try:
            value, error = score.compute(inputs), None
        except UserError as exc:
            if errors == "raise":
                raise
            value, error = math.nan, str(exc)
        rows.append({"score": score.name, "value": value, "seconds": time.perf_counter() - start, "error": error})
    columns = ["score", "value", "seconds", *(["error"] if errors == "nan" else [])]
    return pd.DataFrame(rows, columns=columns)
