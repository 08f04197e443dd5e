"""The sequential protocol of adaptive search (SPEC §7) inside the evaluation.

With budget B a strategy picks one model, is shown that pick's true performance on the held-out dataset, and picks
the next. An adaptive strategy's picks S_B = {m_1, ..., m_B} are turned into a preference whose top B is S_B, so
adaptive regret@B, relative regret, rel@B and recall@B come from the same `budget_measures` as the static ones.
A static strategy ignores what it is shown: its picks are its top B, with the static measures' exact tie handling,
so static and adaptive numbers share one table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np
import pandas as pd

from recommender.evaluation.strategies import Adaptive, Strategy
from recommender.models.session import pick_preference, simulate


def adaptive_preferences(est: Strategy, hidden: pd.DataFrame, truth: np.ndarray, budgets: Sequence[int]
                         ) -> dict[int, np.ndarray]:
    """Per budget, a preference over the rows of one held-out dataset whose top B are the strategy's B picks.

    `hidden` holds the dataset's pairs without their performance; `truth` (aligned with it) is revealed to the
    strategy one pick at a time, and only for the picks already made."""
    picks = simulate(cast(Adaptive, est).session(hidden), np.asarray(truth, dtype=float), max(budgets))
    pref = pick_preference(picks, len(hidden))
    return dict.fromkeys(budgets, pref)
