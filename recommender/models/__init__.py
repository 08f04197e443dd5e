"""Learned recommenders (SPEC §3): pair encoder, LR and FM, Optuna tuning, save/load."""

from recommender.models.base import PairRecommender
from recommender.models.factory import load_recommender, make_recommender
from recommender.models.features import PairEncoder, parse_features
from recommender.models.fm import FMRecommender
from recommender.models.linear import LinearRecommender
from recommender.models.targets import mean_weighted_tau, normalise_target
from recommender.models.tuning import tune

__all__ = [
    "FMRecommender",
    "LinearRecommender",
    "PairEncoder",
    "PairRecommender",
    "load_recommender",
    "make_recommender",
    "mean_weighted_tau",
    "normalise_target",
    "parse_features",
    "tune",
]
