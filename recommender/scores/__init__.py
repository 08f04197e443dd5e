"""Transferability scores: how well a pre-trained model's features F suit a target task (larger is better)."""

from recommender.scores.hscore import hscore
from recommender.scores.lfc import lfc
from recommender.scores.logme import logme
from recommender.scores.parc import parc
from recommender.scores.probes import knn_accuracy, linear_probe_accuracy
from recommender.scores.registry import SCORES, Score, default_names, score_all
from recommender.scores.source import leep, nce

__all__ = ["SCORES", "Score", "default_names", "hscore", "knn_accuracy", "leep", "lfc", "linear_probe_accuracy",
           "logme", "nce", "parc", "score_all"]
