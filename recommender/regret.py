"""Relative regret (SPEC §5): one definition below both the evaluation's measures and the adaptive recommenders'
inner-fold tuning (models must not depend on the evaluation)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def relative_regret(best: float, picked: float) -> float:
    """(best - picked) / best: the share of the best performance lost by fine-tuning only what was picked; NaN
    where best <= 0 (a ratio of a non-positive best means nothing)."""
    return float((best - picked) / best) if best > 0 else float("nan")


def relative_regret_of_picks(truth: np.ndarray, picks: Sequence[int], budget: int) -> float:
    """Relative regret at `budget` of fine-tuning the first `budget` of `picks` (positions in `truth`)."""
    truth = np.asarray(truth, dtype=float)
    return relative_regret(float(truth.max()), float(truth[list(picks[:budget])].max()))
