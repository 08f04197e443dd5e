"""LogME's evidence maximisation (Algorithm 1 of You et al. 2021), written once for numpy and torch.

Every function takes the array namespace `xp` (the numpy or the torch module) and works on a batch of B models:
Gram eigenvalues s (B, r) with round-off zeros cut, ascending; squared target coordinates z2 (B, r, K) on the
eigenvectors; what lies outside their span, outside (B, K). Only what both namespaces spell alike is used (axis=,
keepdims=, where with Python scalars, amax, swapaxes; from numpy 1.24 and torch 2.2 on), so `logme.fit_evidence`
(numpy, B = 1) and the torch path (batched, on any device) run one arithmetic. Neither is imported here.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

TOLERANCE = 1e-10
MAX_ITER = 10_000
BOUNDARY = 1e-8  # a / b this far beyond the spectrum: the evidence is at its limit there


@dataclass(frozen=True)
class EvidenceFit:
    """Per target column: evidence L(a*, b*) / n, prior precision a* (for the caller's F), noise precision b*;
    and the number of fixed-point steps. Shapes (K,) and an int for one model, (B, K) and (B,) for a batch.

    a* or b* is inf where the maximum lies at a limit.
    """

    evidence: Any
    alpha: Any
    beta: Any
    iterations: Any


def projections(xp: Any, s: Any, vectors: Any, Y: Any, FtY: Any | None) -> tuple[Any, Any]:
    """z^2 (B, r, K) on the Gram eigenvectors (B, r, r) and the residual outside col(F) (B, K), clipped at 0.

    FtY (B, D, K) is F'Y where the Gram is F'F; None where it is F F' (n < D).
    """
    if FtY is None:
        # The n x n eigenvectors span R^n: nothing of Y lies outside them.
        z = vectors.swapaxes(1, 2) @ Y
        return z * z, xp.zeros_like(z[:, 0, :])
    w = vectors.swapaxes(1, 2) @ FtY  # coordinates of F'y: w_i = sigma_i z_i
    s3 = s[:, :, None]
    z2 = xp.where(s3 > 0, w**2 / xp.where(s3 > 0, s3, 1.0), 0.0)
    outside = xp.einsum("ij,ij->j", Y, Y) - z2.sum(axis=1)
    return z2, xp.maximum(outside, xp.zeros_like(outside))


def _fixed_point(xp: Any, s: Any, z2: Any, outside: Any, n: int, check_every: int) -> tuple[Any, Any, Any]:
    """a and b (B, K) of Algorithm 1, and each model's number of steps (B,).

    A column whose a / b leaves (1e-8 x the smallest positive eigenvalue, 1e8 x the largest) stops there, and a
    model stops once every column's relative change of a / b is below TOLERANCE. A stopped model's a and b are
    frozen, so checking only every `check_every` steps (each check waits for a device) changes nothing but the
    wasted steps.
    """
    s3 = s[:, :, None]
    low = xp.amin(xp.where(s > 0, s, math.inf), axis=1, keepdims=True) * BOUNDARY
    high = s[:, -1:] / BOUNDARY
    a = xp.ones_like(outside)
    b = xp.ones_like(outside)
    at_limit = xp.zeros_like(outside, dtype=bool)
    done = xp.zeros_like(outside[:, 0], dtype=bool)
    steps = xp.zeros_like(outside[:, 0], dtype=xp.int64)
    for step in range(1, MAX_ITER + 1):
        # g, m'm and ||F m - y||^2 for every column at once, with m = b A^-1 F'y in the eigenbasis
        denom = a[:, None, :] + b[:, None, :] * s3
        g = (b[:, None, :] * s3 / denom).sum(axis=1)
        inv2 = z2 / denom**2
        a_new = g / (b**2 * (s3 * inv2).sum(axis=1))
        b_new = (n - g) / (outside + a**2 * inv2.sum(axis=1))
        ratio = a_new / b_new
        frozen = done[:, None]
        at_limit = at_limit | (~frozen & ~((ratio > low) & (ratio < high)))  # also catches 0/0 and inf/inf
        keep = at_limit | frozen
        change = xp.where(keep, 0.0, xp.abs(ratio - a / b) / (a / b))
        a, b = xp.where(keep, a, a_new), xp.where(keep, b, b_new)
        steps = steps + ~done
        done = done | (xp.amax(change, axis=1) < TOLERANCE)
        if (step % check_every == 0 or step == MAX_ITER) and bool(done.all()):
            break
    else:
        # stacklevel: the caller of logme.fit_evidence or of the torch path's fit_evidence_torch
        warnings.warn(f"LogME stopped after {MAX_ITER} iterations before reaching relative change {TOLERANCE}",
                      RuntimeWarning, stacklevel=4)
    return a, b, steps


def maximise_evidence(xp: Any, s: Any, z2: Any, outside: Any, n: int, scale: Any,
                      check_every: int = 1) -> tuple[EvidenceFit, Any, Any]:
    """Maximise the evidence of every column of every model by the fixed point of Algorithm 1, to convergence.

    The maximum may lie at a limit: a / b -> inf (y has no linear signal: m = 0) or a / b -> 0 (n <= D with
    F F' invertible: the noise-free interpolation, b -> inf); LogME takes the best of the stationary point and
    the two limits. n is the number of examples (D drops out: the D - r zero eigenvalues add (D - r)/2 log a to
    both D/2 log a and log|A|/2); scale (B,) is FeatureMatrix.scale. Returns the fit, each model's rank (B,), and
    whether a column is fitted exactly by rank-deficient features (B,): LogME is unbounded there.
    """
    a, b, steps = _fixed_point(xp, s, z2, outside, n, check_every)
    positive = s > 0
    p3 = positive[:, :, None]
    rank = positive.sum(axis=1)
    count = xp.where(positive, xp.ones_like(s), xp.zeros_like(s)).sum(axis=1, keepdims=True)  # rank as a float
    rest = outside + xp.where(p3, 0.0, z2).sum(axis=1)
    rest = xp.where(rest > 1e-12 * (z2.sum(axis=1) + outside), rest, 0.0)  # round-off of an exact fit
    unbounded = ((rest == 0) & (count < n)).any(axis=1)
    constant = n / 2 * (math.log(n) - 1 - math.log(2 * math.pi))
    s3 = s[:, :, None]
    # The stationary point: a / b = lam with b at its optimum n / E(lam), where E = ||F m - y||^2 + lam m'm;
    # E(lam) / lam has one term per positive eigenvalue, plus what no positive direction explains.
    lam = a / b
    q = xp.where(p3, z2 / (lam[:, None, :] + s3), 0.0).sum(axis=1) + rest / lam
    logdet = xp.where(p3, xp.log(lam[:, None, :] + s3), 0.0).sum(axis=1)
    interior = ((count - n) / 2 * xp.log(lam) - n / 2 * xp.log(q) - logdet / 2 + constant) / n
    interior_beta = n / (lam * q)
    # a / b -> 0 (b -> inf): finite only where F F' is invertible and fits y exactly.
    q0 = xp.where(p3, z2 / s3, 0.0).sum(axis=1)
    logdet0 = xp.where(positive, xp.log(s), 0.0).sum(axis=1, keepdims=True)
    zero = xp.where((count < n) | (rest > 0), -math.inf, (-n / 2 * xp.log(q0) - logdet0 / 2 + constant) / n)
    # a -> inf: m = 0 and b = n / ||y||^2.
    total = z2.sum(axis=1) + outside
    infinity = (xp.log(n / total) - 1 - math.log(2 * math.pi)) / 2
    values = xp.nan_to_num(xp.stack([interior, zero, infinity]), nan=-math.inf)
    best = values.argmax(axis=0)  # the first of equal maxima

    def pick(candidates: tuple[Any, Any, Any]) -> Any:
        """Per column, the candidate of the best of the three."""
        return xp.where(best == 0, candidates[0], xp.where(best == 1, candidates[1], candidates[2]))

    alpha = pick((lam * interior_beta, xp.where(count < n, 0.0, n / q0), math.inf))
    # L(a c^2, b; c F) = L(a, b; F): the evidence is scale-free, its prior precision is not.
    alpha = alpha / scale[:, None] / scale[:, None]
    beta = pick((interior_beta, math.inf, n / total))
    return EvidenceFit(pick((values[0], values[1], values[2])), alpha, beta, steps), rank, unbounded
