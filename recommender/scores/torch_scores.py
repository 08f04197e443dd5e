"""The numpy score functions' torch counterparts: LogME, LFC and the H-scores of one feature matrix, or of every
model of a zoo as one table, through the batched scoring of `torch_batch`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recommender.errors import UserError
from recommender.scores.inputs import check_classes
from recommender.scores.spectrum import FeatureMatrix
from recommender.scores.torch_batch import TORCH_SCORES, score_matrices


def _one(F: np.ndarray, y: np.ndarray, score: str, device: str | None, task: str = "classification") -> float:
    """One score of one feature matrix through `score_matrices`, raising its UserError."""
    value = score_matrices([FeatureMatrix(F)], y, [score], device, task)[0].values[score]
    if isinstance(value, UserError):
        raise value
    return value


def logme_torch(F: np.ndarray, y: np.ndarray, device: str | None = None, task: str = "classification") -> float:
    """LogME as `logme.logme` (classification or regression), decomposition and fixed point on torch."""
    return _one(F, y, "logme", device, task)


def lfc_torch(F: np.ndarray, y: np.ndarray, device: str | None = None) -> float:
    """LFC as `lfc.lfc`, with the centred Gram product computed on torch."""
    return _one(F, y, "lfc", device)


def hscore_torch(F: np.ndarray, y: np.ndarray, regularized: bool = False, device: str | None = None) -> float:
    """H-score as `hscore.hscore` (Ledoit-Wolf with regularized=True), with the centred spectrum from torch."""
    return _one(F, y, "hscore_reg" if regularized else "hscore", device)


def score_zoo_torch(features: list[np.ndarray], y: np.ndarray, names: list[str],
                    device: str | None = None) -> pd.DataFrame:
    """LogME, LFC, H-score and regularised H-score of every model of a zoo on one dataset (class labels y).

    Models whose Gram products share a shape are decomposed together (one batched `eigh`, one batched LogME
    fixed point). Returns one row per model, in the order given: columns model and the scores by their registry
    names (TORCH_SCORES: logme, lfc, hscore, hscore_reg). A score's error on a model's features is raised, naming
    the model.
    """
    if len(features) != len(names):
        raise UserError(f"{len(features)} feature matrices but {len(names)} model names")
    matrices = []
    for name, F in zip(names, features, strict=True):
        try:
            matrices.append(FeatureMatrix(F))
            check_classes(y, matrices[-1].n)
        except UserError as exc:
            raise UserError(f"model {name}: {exc}") from None
    rows = []
    for name, out in zip(names, score_matrices(matrices, y, TORCH_SCORES, device), strict=True):
        for value in out.values.values():
            if isinstance(value, UserError):
                raise UserError(f"model {name}: {value}")
        rows.append({"model": name, **out.values})
    return pd.DataFrame(rows)[["model", *TORCH_SCORES]]
