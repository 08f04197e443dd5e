"""Transferability scores: how well a pre-trained model's features F suit a target task (larger is better).

The names below load on first use (PEP 562), so that `recommender --help` does not import scikit-learn."""

from recommender.lazy import lazy_exports

_EXPORTS = {"SCORES": "registry", "Score": "registry", "default_names": "registry", "score_all": "registry",
            "hscore": "hscore", "lfc": "lfc", "logme": "logme", "parc": "parc", "knn_accuracy": "probes",
            "linear_probe_accuracy": "probes", "leep": "source", "nce": "source"}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
