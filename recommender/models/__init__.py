"""Learned recommenders (SPEC §3): pair encoder, LR and FM, Optuna tuning, save/load.

The names below load on first use (PEP 562), so that `recommender --help` does not import torch."""

from recommender.lazy import lazy_exports

_EXPORTS = {
    "FMRecommender": "fm",
    "LinearRecommender": "linear",
    "PairEncoder": "features",
    "PairRecommender": "base",
    "load_recommender": "factory",
    "make_recommender": "factory",
    "mean_weighted_tau": "targets",
    "normalise_target": "targets",
    "parse_features": "features",
    "tune": "tuning",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
