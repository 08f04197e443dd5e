"""Optional GPU path for LogME, LFC and the H-scores: the Gram products and eigendecompositions run on torch.

The O(n D min(n, D)) part of these scores is F'F (or F F') and its eigendecomposition, plus the same for the
centred features. Here it runs in float64 on a torch device, batched across the models of a zoo that share a
shape, and the results fill a FeatureMatrix's cached products; the numpy score functions then finish from those
(the LogME fixed point over the spectrum, O(D K) per step, and the O(n D) class sums). So validation, limits and
error messages are those of the numpy scores, and the numbers agree to round-off. torch is imported on use only.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import pandas as pd

from recommender.errors import UserError
from recommender.scores.hscore import hscore_from
from recommender.scores.inputs import check_classes, check_targets
from recommender.scores.lfc import lfc_from
from recommender.scores.logme import TASKS, logme_from
from recommender.scores.spectrum import FeatureMatrix


def default_device() -> str:
    """'cuda' when torch sees a CUDA device, else 'cpu'."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _eigh(torch: Any, grams: Any, side: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Batched eigendecomposition of PSD matrices (B, k, k); round-off eigenvalues become exact zeros.

    The cut is spectrum._eigh's (numpy.linalg.matrix_rank's): largest eigenvalue x max(n, D) x eps.
    """
    values, vectors = torch.linalg.eigh(grams)
    tol = values[:, -1:].clamp(min=0.0) * side * torch.finfo(torch.float64).eps
    values = torch.where(values > tol, values, torch.zeros_like(values))
    return list(zip(values.cpu().numpy(), vectors.cpu().numpy(), strict=True))


def _fill(matrices: list[FeatureMatrix], device: str | None, centered: bool) -> None:
    """Compute gram and spectrum (and centered_gram, centered_spectrum) of each matrix on `device`, batched.

    Matrices of one shape (n, D) go through one batched product and one batched `torch.linalg.eigh` call.
    """
    import torch

    target = torch.device(device or default_device())
    groups: dict[tuple[int, int], list[FeatureMatrix]] = defaultdict(list)
    for fm in matrices:
        groups[fm.F.shape].append(fm)
    for (n, dim), group in groups.items():
        F = torch.from_numpy(np.stack([fm.F for fm in group])).to(target, torch.float64)
        side = max(n, dim)
        transpose = F.transpose(1, 2)
        gram = F @ transpose if n < dim else transpose @ F
        for fm, g, spectrum in zip(group, gram.cpu().numpy(), _eigh(torch, gram, side), strict=True):
            fm.__dict__["gram"], fm.__dict__["spectrum"] = g, spectrum
        if not centered:
            continue
        # Centred directly (not derived from the Gram): never loses digits to a dominant mean.
        means = torch.from_numpy(np.stack([fm.mean for fm in group])).to(target, torch.float64)
        Fc = F - means[:, None, :]
        transpose = Fc.transpose(1, 2)
        cgram = Fc @ transpose if n < dim else transpose @ Fc
        for fm, g, spectrum in zip(group, cgram.cpu().numpy(), _eigh(torch, cgram, side), strict=True):
            fm.__dict__["centered_gram"], fm.__dict__["centered_spectrum"] = g, spectrum


def logme_torch(F: np.ndarray, y: np.ndarray, device: str | None = None, task: str = "classification") -> float:
    """LogME as `logme.logme` (classification or regression), with F'F and its eigendecomposition on torch."""
    fm = FeatureMatrix(F)
    if task not in TASKS:
        raise UserError(f"task must be one of {TASKS}, got {task!r}")
    if task == "classification":
        check_classes(y, fm.n)
    else:
        check_targets(y, fm.n)
    _fill([fm], device, centered=False)
    return logme_from(fm, y, task)


def lfc_torch(F: np.ndarray, y: np.ndarray, device: str | None = None) -> float:
    """LFC as `lfc.lfc`, with the centred Gram product computed on torch."""
    fm = FeatureMatrix(F)
    check_classes(y, fm.n)
    _fill([fm], device, centered=True)
    return lfc_from(fm, y)


def hscore_torch(F: np.ndarray, y: np.ndarray, regularized: bool = False, device: str | None = None) -> float:
    """H-score as `hscore.hscore` (Ledoit-Wolf with regularized=True), with the centred spectrum from torch."""
    fm = FeatureMatrix(F)
    check_classes(y, fm.n)
    _fill([fm], device, centered=True)
    return hscore_from(fm, y, regularized)


def score_zoo_torch(features: list[np.ndarray], y: np.ndarray, names: list[str],
                    device: str | None = None) -> pd.DataFrame:
    """LogME, LFC, H-score and regularised H-score of every model of a zoo on one dataset (class labels y).

    Models whose features share a shape are decomposed together: one batched product and `eigh` per shape.
    Returns one row per model, in the order given: columns model, logme, lfc, hscore, hscore_regularized.
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
    _fill(matrices, device, centered=True)
    rows = [{"model": name, "logme": logme_from(fm, y), "lfc": lfc_from(fm, y), "hscore": hscore_from(fm, y),
             "hscore_regularized": hscore_from(fm, y, regularized=True)}
            for name, fm in zip(names, matrices, strict=True)]
    return pd.DataFrame(rows, columns=["model", "logme", "lfc", "hscore", "hscore_regularized"])
