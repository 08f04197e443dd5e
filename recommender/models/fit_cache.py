"""A fitted `auto` kept between calls (`recommender.kept`), so that `next` and `rank` do not refit it on a store
that has not changed, nor on one whose only change leaves the training history as it was."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from recommender.kept import State, entry_key, frame_fingerprint, kept, kept_folder, kept_under

if TYPE_CHECKING:
    import pandas as pd

    from recommender.history.store import Store
    from recommender.models.auto import Auto

KIND = "fits"
TABLES = ("history", "inner_taus", "learned")  # `Auto.get_state`'s tables
LIBRARIES = ("scipy", "scikit-learn")  # the fit's weighted taus and ridge stacks, besides numpy and pandas


def fits_folder() -> Path:
    """Where fitted models are kept: $RECOMMENDER_CACHE/fits (~/.cache/recommender/fits)."""
    return kept_folder(KIND)


def fitted_auto(store: Store, request: Mapping[str, object], history: Callable[[], pd.DataFrame],
                fit: Callable[[pd.DataFrame], Auto]) -> Auto:
    """``fit(history())``, the `Auto` for ``request`` on ``store``: from the entry for the store's current revision
    where one passes every check; else from the entry for the training history's content, so that a write which
    leaves the history as it was (a result logged on the dataset being ranked, which its fit leaves out; scores
    logged for it) costs reading the history, not a fit; else fitted now and kept under both keys (under the
    revision unless the store changed during the fit)."""
    from recommender.models.auto import Auto

    def state(est: Auto) -> State:
        return est.get_state()

    def by_content() -> Auto:
        train = history()
        key = entry_key(store.url, f"content:{frame_fingerprint(train)}", request, LIBRARIES)
        return kept_under(KIND, key, lambda: fit(train), state, Auto.from_state, TABLES, "the fitted auto")

    return kept(store, KIND, request, by_content, state, Auto.from_state, TABLES, "the fitted auto", LIBRARIES)
