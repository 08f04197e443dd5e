"""Optional GPU path for LogME, LFC and the H-scores: Gram products, eigendecompositions and LogME's fixed point on
a torch device, batched across the models of a zoo.

Per model, F goes to the device once, for its Gram product (F'F, or F F' when n < D), its centred Gram and, for
LogME, F'Y; F then leaves the device. Models whose Gram products have one shape (the same n, and the same D unless
n < D: a dataset's wide models share n x n Grams whatever their D) are decomposed by one batched `eigh`, and
LogME's evidence maximisation (Algorithm 1 of You et al., as `logme.fit_evidence`) runs over their spectra as
batched tensor ops, all classes and models at once: only the final scores come back to the CPU. LFC and the
H-scores need the centred decomposition on the CPU, where the numpy score functions finish from it (O(n D)).
Everything is float64. Validation, limits and error messages are those of the numpy scores; the numbers agree
to round-off (see tests/test_scores_torch.py). torch is imported on use only.
"""

from __future__ import annotations

import math
import time
import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from recommender.errors import UserError
from recommender.scores.hscore import hscore_from
from recommender.scores.inputs import check_classes, check_targets, checked_value, one_hot
from recommender.scores.lfc import lfc_from
from recommender.scores.logme import BOUNDARY, MAX_ITER, TASKS, TOLERANCE, unbounded_message
from recommender.scores.spectrum import FeatureMatrix

# Registry names of the scores computed here, and how each finishes from a prepared FeatureMatrix.
FINISH = {"lfc": lfc_from, "hscore": hscore_from, "hscore_reg": lambda fm, y: hscore_from(fm, y, regularized=True)}
TORCH_SCORES = ("logme", *FINISH)
CHECK_EVERY = 8  # fixed-point steps between convergence checks (each check waits for the device)
BATCH_ELEMENTS = 1 << 27  # Gram entries per batch (1 GiB of float64): bounds the device memory of a large zoo


def default_device() -> str:
    """'cuda' when torch sees a CUDA device, else 'cpu'."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_device(choice: str) -> str | None:
    """The torch device that `--device choice` computes on, or None for the numpy path.

    auto: 'cuda' when torch sees a CUDA device, else None; cpu: None; cuda or cuda:N: checked to exist;
    torch:cpu: the torch kernels on the CPU (the GPU path's numbers, checkable without a GPU).
    """
    if choice == "cpu":
        return None
    if choice == "torch:cpu":
        return "cpu"
    import torch

    available = torch.cuda.is_available()
    if choice == "auto":
        return "cuda" if available else None
    if not available:
        raise UserError(f"--device {choice}: torch sees no CUDA device here; use --device auto or cpu")
    index = int(choice.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise UserError(f"--device {choice}: torch sees {torch.cuda.device_count()} CUDA device(s) (0 to "
                        f"{torch.cuda.device_count() - 1})")
    return choice


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


@dataclass(frozen=True)
class EvidenceFitTorch:
    """LogME's fit of a batch of models on the device: evidence / n (B, K), alpha (for the caller's F) and beta
    (B, K), and each model's number of fixed-point steps (B,), as `logme.EvidenceFit` per model."""

    evidence: Any
    alpha: Any
    beta: Any
    iterations: Any


def _eigh(torch: Any, grams: Any, sides: Any) -> tuple[Any, Any]:
    """Batched eigendecomposition of PSD matrices (B, k, k) on their device; round-off eigenvalues become exact
    zeros by spectrum._eigh's cut (numpy.linalg.matrix_rank's): largest eigenvalue x max(n, D) x eps, with
    max(n, D) of each model in sides (B, 1)."""
    values, vectors = torch.linalg.eigh(grams)
    tol = values[:, -1:].clamp(min=0.0) * sides * torch.finfo(torch.float64).eps
    return torch.where(values > tol, values, torch.zeros_like(values)), vectors


def _fixed_point(torch: Any, s: Any, z2: Any, outside: Any, n: int) -> tuple[Any, Any, Any]:
    """a and b (B, K) of Algorithm 1 for spectra s (B, r), squared coordinates z2 (B, r, K) and residuals (B, K).

    Per model exactly `logme.fit_evidence`'s loop: a column whose a / b leaves (1e-8 x the smallest positive
    eigenvalue, 1e8 x the largest) stops there, and a model stops once every column's relative change of a / b
    is below TOLERANCE. A stopped model's a and b are frozen on the device, so checking only every CHECK_EVERY
    steps changes nothing but the wasted steps. Returns a, b and each model's number of steps.
    """
    batch, columns = outside.shape
    s3 = s[:, :, None]
    low = torch.where(s > 0, s, torch.full_like(s, math.inf)).amin(dim=1, keepdim=True) * BOUNDARY
    high = s[:, -1:] / BOUNDARY
    a = torch.ones(batch, columns, dtype=s.dtype, device=s.device)
    b = torch.ones_like(a)
    at_limit = torch.zeros(batch, columns, dtype=torch.bool, device=s.device)
    done = torch.zeros(batch, dtype=torch.bool, device=s.device)
    steps = torch.zeros(batch, dtype=torch.int64, device=s.device)
    for step in range(1, MAX_ITER + 1):
        denom = a[:, None, :] + b[:, None, :] * s3
        g = (b[:, None, :] * s3 / denom).sum(dim=1)
        inv2 = z2 / denom**2
        a_new = g / (b**2 * (s3 * inv2).sum(dim=1))
        b_new = (n - g) / (outside + a**2 * inv2.sum(dim=1))
        ratio = a_new / b_new
        frozen = done[:, None].expand_as(at_limit)
        at_limit = at_limit | (~frozen & ~((ratio > low) & (ratio < high)))  # also catches 0/0 and inf/inf
        keep = at_limit | frozen
        change = torch.where(keep, torch.zeros_like(a), (ratio - a / b).abs() / (a / b))
        a, b = torch.where(keep, a, a_new), torch.where(keep, b, b_new)
        steps += (~done).to(torch.int64)
        done = done | (change.amax(dim=1) < TOLERANCE)
        if (step % CHECK_EVERY == 0 or step == MAX_ITER) and bool(done.all()):
            break
    else:
        warnings.warn(f"LogME stopped after {MAX_ITER} iterations before reaching relative change {TOLERANCE}",
                      RuntimeWarning, stacklevel=3)
    return a, b, steps


def fit_evidence_torch(s: Any, z2: Any, outside: Any, n: int, scale: Any) -> tuple[EvidenceFitTorch, Any, Any]:
    """Maximise LogME's evidence of a batch of models on their device, as `logme.fit_evidence` does per model.

    s (B, r): Gram eigenvalues with round-off zeros cut; z2 (B, r, K): squared target coordinates on the Gram
    eigenvectors; outside (B, K): what lies outside the eigenvectors' span; scale (B,): FeatureMatrix.scale.
    The maximum is the best of the stationary point and the limits a / b -> 0 and -> inf. Also returns each
    model's rank and whether a column is fitted exactly by rank-deficient features (LogME unbounded).
    """
    import torch

    a, b, steps = _fixed_point(torch, s, z2, outside, n)
    positive = (s > 0)[:, :, None]
    count = positive.sum(dim=1).to(s.dtype)  # (B, 1)
    rest = outside + torch.where(positive, 0.0, z2).sum(dim=1)
    rest = torch.where(rest > 1e-12 * (z2.sum(dim=1) + outside), rest, 0.0)  # round-off of an exact fit
    unbounded = ((rest == 0) & (count < n)).any(dim=1)
    constant = n / 2 * (math.log(n) - 1 - math.log(2 * math.pi))
    s3 = s[:, :, None]
    # The stationary point: a / b = lam with b at its optimum n / E(lam) (logme._interior).
    lam = a / b
    q = torch.where(positive, z2 / (lam[:, None, :] + s3), 0.0).sum(dim=1) + rest / lam
    logdet = torch.where(positive, torch.log(lam[:, None, :] + s3), 0.0).sum(dim=1)
    interior = ((count - n) / 2 * torch.log(lam) - n / 2 * torch.log(q) - logdet / 2 + constant) / n
    interior_beta = n / (lam * q)
    # a / b -> 0: finite only where F F' is invertible and fits y exactly (logme._at_zero).
    q0 = torch.where(positive, z2 / s3, 0.0).sum(dim=1)
    logdet0 = torch.where(s > 0, torch.log(s), 0.0).sum(dim=1, keepdim=True)
    zero = torch.where((count < n) | (rest > 0), -math.inf, (-n / 2 * torch.log(q0) - logdet0 / 2 + constant) / n)
    # a -> inf: m = 0 and b = n / ||y||^2 (logme._at_infinity).
    total = z2.sum(dim=1) + outside
    infinity = (torch.log(n / total) - 1 - math.log(2 * math.pi)) / 2
    values = torch.nan_to_num(torch.stack([interior, zero, infinity]), nan=-math.inf)
    best = values.argmax(dim=0, keepdim=True)  # the first of equal maxima, as numpy's argmax
    inf = torch.full_like(a, math.inf)
    alpha = torch.stack([lam * interior_beta, torch.where(count < n, 0.0, n / q0), inf]).gather(0, best)[0]
    beta = torch.stack([interior_beta, inf, n / total]).gather(0, best)[0]
    fit = EvidenceFitTorch(values.gather(0, best)[0], alpha / scale[:, None] / scale[:, None], beta, steps)
    return fit, count[:, 0].to(torch.int64), unbounded


def _projections(torch: Any, s: Any, vectors: Any, Y: Any, FtY: Any | None) -> tuple[Any, Any]:
    """z^2 (B, r, K) on the Gram eigenvectors and the residual outside col(F) (B, K), as logme._projections."""
    if FtY is None:  # n < D: the n x n eigenvectors span R^n
        z = vectors.transpose(1, 2) @ Y
        return z * z, torch.zeros(z.shape[0], z.shape[2], dtype=z.dtype, device=z.device)
    w = vectors.transpose(1, 2) @ FtY  # coordinates of F'y: w_i = sigma_i z_i
    s3 = s[:, :, None]
    z2 = torch.where(s3 > 0, w**2 / torch.where(s3 > 0, s3, 1.0), 0.0)
    return z2, (Y * Y).sum(dim=0) - z2.sum(dim=1)


@dataclass
class ScoreOutcome:
    """One model's torch scores: value or the UserError that score raised, and the seconds it took."""

    values: dict[str, float | UserError]
    seconds: dict[str, float]


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
            fm.__dict__["centered_gram"], fm.__dict__["centered_spectrum"] = g, (v, u)
    shared = (time.perf_counter() - start) / len(matrices)  # the decompositions, shared out equally
    if logme:
        start = time.perf_counter()
        checked = [_logme_checked(fm) for fm in matrices]
        s, vectors = _eigh(torch, torch.stack(grams), sides)
        z2, outside = _projections(torch, s, vectors, Y, None if wide else torch.stack(ftys))
        outside = outside.clamp(min=0.0)
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
    fixed point). Returns one row per model, in the order given: columns model, logme, lfc, hscore,
    hscore_regularized. A score's error on a model's features is raised, naming the model.
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
    table = pd.DataFrame(rows).rename(columns={"hscore_reg": "hscore_regularized"})
    return table[["model", "logme", "lfc", "hscore", "hscore_regularized"]]
