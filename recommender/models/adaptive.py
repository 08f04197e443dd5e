"""Adaptive search (SPEC §7): rankings that sharpen with each fine-tuning result observed on the target dataset
(the protocol: `recommender.models.session`). The recommenders, by name:

- `similarity`: `recommender.models.similarity.SimilaritySearch`, training datasets weighted by their agreement
  with the observed results;
- `lr`: `recommender.models.warm_start.WarmStartLR`, the static LR prediction updated by a Bayesian ridge;
- `blend`: `recommender.models.blend.BlendSearch`, the two blended;
- `ucb`: the similarity search with an exploration bonus chosen on inner folds."""

from __future__ import annotations

from typing import Any, cast

import pandas as pd

from recommender.errors import UserError
from recommender.models.blend import BlendSearch
from recommender.models.session import AdaptiveRecommender
from recommender.models.similarity import SimilaritySearch
from recommender.models.warm_start import WarmStartLR

ADAPTIVE = {"similarity": SimilaritySearch, "lr": WarmStartLR, "blend": BlendSearch}


def make_adaptive(kind: str, **params: object) -> AdaptiveRecommender:
    """An unfitted adaptive recommender by name: similarity, lr, blend (of the two), ucb (similarity with a chosen
    exploration bonus)."""
    if kind == "ucb":
        return SimilaritySearch(**cast("dict[str, Any]", {"explore": None} | params))
    if kind not in ADAPTIVE:
        raise UserError(f"unknown adaptive recommender {kind!r}: use similarity, lr, blend or ucb")
    return ADAPTIVE[kind](**params)



def next_models(est: AdaptiveRecommender, candidates: pd.DataFrame, observed: pd.Series, budget: int
                ) -> pd.DataFrame:
    """The `budget` best unobserved candidates given the observed results: rank, model, score, spread, reason."""
    if budget < 1:
        raise UserError(f"--budget must be >= 1, got {budget}")
    models = candidates["model"].to_numpy()
    at = pd.Index(models).get_indexer(observed.index)
    ranking = est.session(candidates).rank(list(at), observed.to_numpy(dtype=float), explain=True)
    table = pd.DataFrame({"model": models, "score": ranking.score, "spread": ranking.spread,
                          "reason": ranking.reasons}).drop(index=at)
    best = table.sort_values("score", ascending=False, kind="stable", na_position="last").head(budget)
    return best.reset_index(drop=True).rename_axis("rank").reset_index().assign(rank=lambda t: t["rank"] + 1)
