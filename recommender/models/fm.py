"""FM recommender (SPEC §3): a second-order factorization machine, trained in PyTorch (``fm_training``) and
evaluated in closed form with numpy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np
import pandas as pd

from recommender.models.base import PairRecommender
from recommender.models.params import FEATURES, FLAG, TEXT, Rule, number, one_of
from recommender.models.saved import ArraySpec

LOSSES = ("mse", "pairwise")
MAX_THREADS = 1024  # a saved n_threads above this is not a thread count
MAX_FACTORS = 4096  # nor a k above this a factor dimension (k = 8 to 32 is the useful range)


def fm_scores(Z: np.ndarray, bias: np.ndarray, weights: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """S(z) = w0 + <w, z> + 1/2 sum_f [(Vz)_f^2 - (V^2 z^2)_f] for the rows of Z, in float64 (numpy alone: loading a
    saved FM and predicting never imports torch)."""
    V = factors.astype(np.float64)
    pairs = 0.5 * ((Z @ V) ** 2 - (Z * Z) @ (V * V)).sum(axis=1)
    return float(bias) + Z @ weights.astype(np.float64) + pairs


class FMRecommender(PairRecommender):
    """Factorization machine on the encoded pair features; loss ``"mse"`` or within-dataset ``"pairwise"``.

    k = 16 won on inner dataset-grouped folds of the SHiFT vision LOO training folds (over k 8 and 32,
    weight decay 1e-3 and 1e-2, the pairwise loss and a three-seed ensemble).
    """

    kind = "fm"
    PARAMETERS: ClassVar[dict[str, Rule]] = {
        "features": FEATURES, "k": number(1, MAX_FACTORS, integer=True), "learning_rate": number(0),
        "weight_decay": number(0), "epochs": number(1, integer=True), "loss": one_of(LOSSES), "target": TEXT,
        "batch_datasets": number(1, integer=True).or_none(), "init_std": number(0),
        "seed": number(-(2**63), 2**64 - 1, integer=True), "n_threads": number(1, MAX_THREADS, integer=True),
        "verbose": FLAG}

    def __init__(
        self,
        features: str = "d,m",
        k: int = 16,
        learning_rate: float = 0.05,
        weight_decay: float = 1e-4,
        epochs: int = 200,
        loss: str = "mse",
        target: str = "zscore",
        batch_datasets: int | None = None,
        init_std: float = 0.01,
        seed: int = 0,
        n_threads: int = 1,
        verbose: bool = False,
    ):
        self.features = features
        self.k = k
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.loss = loss
        self.target = target
        self.batch_datasets = batch_datasets
        self.init_std = init_std
        self.seed = seed
        self.n_threads = n_threads
        self.verbose = verbose

    def _fit_encoded(self, Z: np.ndarray, t: np.ndarray, datasets: pd.Series) -> None:
        """Train the FM in torch on CPU, seeded so that a refit gives the same weights."""
        from recommender.models.fm_training import train_fm  # torch loads only where an FM is trained

        self.weights_ = train_fm(
            Z, t, datasets, k=int(self.k), learning_rate=self.learning_rate, weight_decay=self.weight_decay,
            epochs=int(self.epochs), loss=self.loss, batch_datasets=self.batch_datasets, init_std=self.init_std,
            seed=int(self.seed), n_threads=int(self.n_threads), verbose=self.verbose)

    def _predict_encoded(self, Z: np.ndarray) -> np.ndarray:
        """FM scores as float64, from the float32 weights."""
        return fm_scores(Z, **self.weights_)

    def _weight_spec(self) -> ArraySpec:
        """The FM's parameters, float32 as torch trains them."""
        width = self.encoder_.width
        return {"bias": ((), "float32"), "weights": ((width,), "float32"), "factors": ((width, int(self.k)), "float32")}

    def _get_weights(self) -> dict[str, np.ndarray]:
        """The fitted parameters as numpy arrays."""
        return {name: value.copy() for name, value in self.weights_.items()}

    def _set_weights(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Install the checked arrays (bit for bit the saved float32 values)."""
        self.weights_ = {name: np.array(value) for name, value in arrays.items()}
