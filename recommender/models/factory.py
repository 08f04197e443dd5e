"""Construct or load a learned recommender by name."""

from __future__ import annotations

import json
from pathlib import Path

from recommender.errors import UserError
from recommender.models.base import META_FILE, PairRecommender
from recommender.models.fm import FMRecommender
from recommender.models.linear import LinearRecommender

RECOMMENDERS: dict[str, type[PairRecommender]] = {"lr": LinearRecommender, "fm": FMRecommender}


def recommender_class(kind: str) -> type[PairRecommender]:
    """The estimator class named ``kind`` ("lr" or "fm")."""
    try:
        return RECOMMENDERS[kind]
    except KeyError:
        raise UserError(f"unknown recommender {kind!r}: use one of {', '.join(RECOMMENDERS)}") from None


def make_recommender(kind: str, features: str = "d,m", **params: object) -> PairRecommender:
    """An unfitted recommender, e.g. ``make_recommender("fm", features="d,m,logme", k=16)``."""
    cls = recommender_class(kind)
    unknown = set(params) - set(cls().get_params())
    if unknown:
        raise UserError(f"{kind} has no hyper-parameter(s) {', '.join(sorted(unknown))}")
    return cls(features=features, **params)


def load_recommender(path: str | Path) -> PairRecommender:
    """Load whichever recommender ``save`` wrote to ``path``."""
    meta_path = Path(path) / META_FILE
    if not meta_path.is_file():
        raise UserError(f"{path} holds no saved recommender ({META_FILE} missing)")
    return recommender_class(json.loads(meta_path.read_text())["kind"]).load(path)
