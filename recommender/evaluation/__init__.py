"""Evaluation of model recommendations: measures, splits, search strategies, reports (SPEC §4-6).

The names below load on first use (PEP 562), so that `recommender --help` does not import the strategies."""

from recommender.lazy import lazy_exports

_EXPORTS = {"make_strategy": "factory", "check_pairs": "checks", "budget_measures": "measures",
            "rank_correlations": "measures", "summarize": "measures", "weighted_tau": "measures",
            "Evaluation": "runner", "evaluate": "runner", "Fold": "splits", "make_folds": "splits"}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
