"""The scores with torch kernels (LogME, LFC, the H-scores) of many feature matrices at once, batched on a device.

Per model, F goes to the device once, for its Gram product (F'F, or F F' when n < D), its centred Gram and, for
LogME, F'Y; F then leaves the device. Models whose Gram products have one shape (the same n, and the same D unless
n < D: a dataset's wide models share n x n Grams whatever their D) are decomposed by one batched `eigh`, and
LogME's evidence maximisation (`evidence.maximise_evidence`, the numpy path's own code) runs over their spectra
as batched tensor ops, all classes and models at once: only the final scores come back to the CPU. LFC and the
H-scores need the centred decomposition on the CPU, where the numpy score functions finish from it (O(n D)).
Everything is float64. Validation, limits and error messages are those of the numpy scores; the numbers agree
to round-off (see tests/scores/test_scores_torch.py). torch is imported on use only.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from recommender.errors import UserError
from recommender.scores.devices import default_device
from recommender.scores.evidence import EvidenceFit, maximise_evidence, projections
from recommender.scores.hscore import hscore_from
from recommender.scores.inputs import check_classes, check_targets, checked_value, one_hot
from recommender.scores.lfc import lfc_from
from recommender.scores.logme import TASKS, unbounded_message
from recommender.scores.spectrum import FeatureMatrix

# Registry names of the scores computed here, and how each finishes from a prepared FeatureMatrix.
FINISH = {"lfc": lfc_from, "hscore": hscore_from, "hscore_reg": lambda fm, y: hscore_from(fm, y, regularized=True)}
TORCH_SCORES = ("logme", *FINISH)
CHECK_EVERY = 8  # fixed-point steps between convergence checks (each check waits for the device)
BATCH_ELEMENTS = 1 << 27  # Gram entries per batch (1 GiB of float64): bounds the device memory of a large zoo


def device_note(scores: Sequence[str], device: str) -> str:
    """One line saying which of `scores` ran on torch (on `device`, batched over the models) and which on numpy."""
    on_torch = [s for s in scores if s in TORCH_SCORES]
    rest = [s for s in scores if s not in TORCH_SCORES]
    note = f"{', '.join(on_torch) or 'no score'} on torch ({device}), batched over the models"
    note += f"; {', '.join(rest)} on numpy" if rest else ""
    if device == "cpu":
        return note + "; features extracted on the CPU"
    return note + (f"; features extracted on {device} (on the CPU by providers outside torch and by workers that "
                   "see no CUDA device)")


@dataclass
class ScoreOutcome:
    """One model's torch scores: value or the UserError that score raised, and the seconds it took."""

    values: dict[str, float | UserError]
    seconds: dict[str, float]


def _eigh(torch: Any, grams: Any, sides: Any) -> tuple[Any, Any]:
    """Batched eigendecomposition of PSD matrices (B, k, k) on their device; round-off eigenvalues become exact
    zeros by spectrum._eigh's cut (numpy.linalg.matrix_rank's): largest eigenvalue x max(n, D) x eps, with
    max(n, D) of each model in sides (B, 1)."""
    values, vectors = torch.linalg.eigh(grams)
    tol = values[:, -1:].clamp(min=0.0) * sides * torch.finfo(torch.float64).eps
    return torch.where(values > tol, values, torch.zeros_like(values)), vectors


def fit_evidence_torch(s: Any, z2: Any, outside: Any, n: int, scale: Any) -> tuple[EvidenceFit, Any, Any]:
    """LogME's evidence of a batch of models on their device, as `logme.fit_evidence` per model.

    `evidence.maximise_evidence` on tensors: s (B, r), z2 (B, r, K), outside (B, K), scale (B,); convergence is
    checked every CHECK_EVERY steps. Returns the fit (B, K), each model's rank and whether LogME is unbounded.
    """
    import torch

    return maximise_evidence(torch, s, z2, outside, n, scale, CHECK_EVERY)


def _logme_targets(y: np.ndarray, n: int, task: str) -> np.ndarray:
    """LogME's target matrix Y (n, K): one-hot classes, or the checked regression targets."""
    if task not in TASKS:
        raise UserError(f"task must be one of {TASKS}, got {task!r}")
    if task == "classification":
        return one_hot(*check_classes(y, n))
    return check_targets(y, n)


def _batches(matrices: list[FeatureMatrix]) -> list[list[int]]:
    """Indices of the models decomposed together: one Gram shape (and side), at most BATCH_ELEMENTS entries."""
    groups: dict[tuple[bool, int, int], list[int]] = defaultdict(list)
    for i, fm in enumerate(matrices):
        groups[fm.wide, fm.n, min(fm.n, fm.dim) if fm.wide else fm.dim].append(i)
    out = []
    for (_, _, side), members in groups.items():
        step = max(1, BATCH_ELEMENTS // (side * side))
        out += [members[i:i + step] for i in range(0, len(members), step)]
    return out


def _logme_checked(fm: FeatureMatrix) -> UserError | None:
    """The error LogME raises on fm before any decomposition (unbalanced or all-zero features), else None."""
    try:
        fm.check_balanced("LogME")
    except UserError as exc:
        return exc
    return None if fm.F.any() else UserError("features are all zero: LogME is undefined")


def _score_batch(torch: Any, matrices: list[FeatureMatrix], y: np.ndarray, scores: Sequence[str], target: Any,
                 task: str) -> list[ScoreOutcome]:
    """The requested torch scores of models whose Gram products share one shape."""
    start = time.perf_counter()
    outcomes = [ScoreOutcome({}, {}) for _ in matrices]
    fm0 = matrices[0]
    wide = fm0.wide
    sides = torch.tensor([[float(max(fm.n, fm.dim))] for fm in matrices], dtype=torch.float64, device=target)
    logme = "logme" in scores
    finish = [s for s in scores if s in FINISH]
    Y = torch.from_numpy(_logme_targets(y, fm0.n, task)).to(target) if logme else None
    grams, cgrams, ftys = [], [], []
    for fm in matrices:  # one model's F on the device at a time
        F = torch.from_numpy(fm.F).to(target)
        if logme:
            grams.append(F @ F.T if wide else F.T @ F)
            ftys.append(None if wide else F.T @ Y)
        if finish:
            # Centred directly (not derived from the Gram): never loses digits to a dominant mean.
            Fc = F - torch.from_numpy(fm.mean).to(target)
            cgrams.append(Fc @ Fc.T if wide else Fc.T @ Fc)
        del F
    if finish:
        cgram = torch.stack(cgrams)
        values, vectors = _eigh(torch, cgram, sides)
        for fm, g, v, u in zip(matrices, cgram.cpu().numpy(), values.cpu().numpy(), vectors.cpu().numpy(),
                               strict=True):
            fm.set_centered(g, (v, u))
    shared = (time.perf_counter() - start) / len(matrices)  # the decompositions, shared out equally
    if logme:
        start = time.perf_counter()
        checked = [_logme_checked(fm) for fm in matrices]
        s, vectors = _eigh(torch, torch.stack(grams), sides)
        z2, outside = projections(torch, s, vectors, Y, None if wide else torch.stack(ftys))
        scale = torch.tensor([fm.scale for fm in matrices], dtype=torch.float64, device=target)
        fit, rank, unbounded = fit_evidence_torch(s, z2, outside, fm0.n, scale)
        means, rank, unbounded = (t.cpu().numpy() for t in (fit.evidence.mean(dim=1), rank, unbounded))
        seconds = (time.perf_counter() - start) / len(matrices)
        for fm, out, error, value, r, bad in zip(matrices, outcomes, checked, means, rank, unbounded, strict=True):
            if error is None and bad:
                error = UserError(unbounded_message(fm.wide, int(r), fm.n))
            out.values["logme"] = error if error is not None else _checked(value, "LogME")
            out.seconds["logme"] = seconds
    for fm, out in zip(matrices, outcomes, strict=True):
        for name in finish:
            start = time.perf_counter()
            try:
                out.values[name] = FINISH[name](fm, y)
            except UserError as exc:
                out.values[name] = exc
            out.seconds[name] = time.perf_counter() - start
        out.seconds[scores[0]] += shared
    return outcomes


def _checked(value: float, score: str) -> float | UserError:
    """checked_value's result, or its error as a value."""
    try:
        return checked_value(value, score)
    except UserError as exc:
        return exc


def score_matrices(matrices: list[FeatureMatrix], y: np.ndarray, scores: Sequence[str], device: str | None = None,
                   task: str = "classification") -> list[ScoreOutcome]:
    """The torch scores (names from TORCH_SCORES) of every matrix on `device` (default: default_device()).

    One outcome per matrix, in order: per score its value or the UserError it raised on those features, and its
    seconds (the shared decompositions' time is split equally among a batch's models, counted with the first
    score). Bad labels raise, as in `score_all`.
    """
    import torch

    unknown = [s for s in scores if s not in TORCH_SCORES]
    if unknown:
        raise UserError(f"score(s) {unknown} have no torch kernel: choose from {', '.join(TORCH_SCORES)}")
    if task != "classification" and list(scores) != ["logme"]:
        raise UserError(f"task {task!r}: only logme applies (the others need class labels)")
    target = torch.device(device or default_device())
    for fm in matrices:
        if task == "classification":
            check_classes(y, fm.n)
    outcomes: list[ScoreOutcome | None] = [None] * len(matrices)
    for members in _batches(matrices):
        for i, out in zip(members, _score_batch(torch, [matrices[i] for i in members], y, scores, target, task),
                          strict=True):
            outcomes[i] = out
    return outcomes  # type: ignore[return-value]  # every index belongs to one batch
