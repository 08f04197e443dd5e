"""A fitted `auto` kept between calls (`recommender.kept`), so that `next` and `rank` do not refit it on a store
that has not changed."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from recommender.kept import kept, kept_folder

if TYPE_CHECKING:
    from recommender.history.store import Store
    from recommender.models.auto import Auto

KIND = "fits"
TABLES = ("history", "inner_taus")  # `Auto.get_state`'s tables
LIBRARIES = ("scipy", "scikit-learn")  # the fit's weighted taus and ridge stacks, besides numpy and pandas


def fits_folder() -> Path:
    """Where fitted models are kept: $RECOMMENDER_CACHE/fits (~/.cache/recommender/fits)."""
    return kept_folder(KIND)


def fitted_auto(store: Store, request: Mapping[str, object], fit: Callable[[], Auto]) -> Auto:
    """The `Auto` that ``fit`` returns for ``request`` on ``store``: from the cache where an entry for the store's
    current revision passes every check, else fitted now and kept (unless the store changed during the fit)."""
    from recommender.models.auto import Auto

    return kept(store, KIND, request, fit, lambda est: est.get_state(), Auto.from_state, TABLES, "the fitted auto",
                LIBRARIES)
