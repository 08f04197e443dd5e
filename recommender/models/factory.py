"""Construct or load a learned recommender by name."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, cast

from recommender.errors import UserError

if TYPE_CHECKING:
    from collections.abc import Callable

    from recommender.models.base import PairRecommender

# kind -> (module, class): imported when used, so that naming the kinds (e.g. in --help) does not load torch
RECOMMENDERS: dict[str, tuple[str, str]] = {"lr": ("recommender.models.linear", "LinearRecommender"),
                                            "fm": ("recommender.models.fm", "FMRecommender")}


def recommender_class(kind: str) -> type[PairRecommender]:
    """The estimator class named ``kind`` ("lr" or "fm")."""
    try:
        module, name = RECOMMENDERS[kind]
    except KeyError:
        raise UserError(f"unknown recommender {kind!r}: use one of {', '.join(RECOMMENDERS)}") from None
    return getattr(importlib.import_module(module), name)


def make_recommender(kind: str, features: str = "d,m", **params: object) -> PairRecommender:
    """An unfitted recommender, e.g. ``make_recommender("fm", features="d,m,logme", k=16)``."""
    cls = recommender_class(kind)
    unknown = set(params) - set(cls().get_params())
    if unknown:
        raise UserError(f"{kind} has no hyper-parameter(s) {', '.join(sorted(unknown))}")
    # each kind's constructor takes features and its own keywords; the base class declares no constructor
    return cast("Callable[..., PairRecommender]", cls)(features=features, **params)


def load_recommender(path: str | Path) -> PairRecommender:
    """Load whichever recommender ``save`` wrote to ``path`` (JSON and plain arrays, all checked; never a pickle)."""
    from recommender.models.saved import META_FILE, read_metadata

    meta = read_metadata(path)
    if meta["kind"] not in RECOMMENDERS:
        raise UserError(f"{Path(path) / META_FILE}: unknown recommender kind {meta['kind']!r} "
                        f"(known: {', '.join(RECOMMENDERS)})")
    return recommender_class(meta["kind"]).from_metadata(path, meta)
