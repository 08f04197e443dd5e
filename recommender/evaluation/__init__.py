"""Evaluation of model recommendations: measures, splits, search strategies, reports (SPEC §4-6)."""

from recommender.evaluation.catalog import make_strategy
from recommender.evaluation.checks import check_pairs
from recommender.evaluation.measures import budget_measures, rank_correlations, summarize, weighted_tau
from recommender.evaluation.runner import Evaluation, evaluate
from recommender.evaluation.splits import Fold, make_folds

__all__ = ["Evaluation", "Fold", "budget_measures", "check_pairs", "evaluate", "make_folds", "make_strategy",
           "rank_correlations", "summarize", "weighted_tau"]
