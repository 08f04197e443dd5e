"""FM recommender (SPEC §3): a second-order factorization machine in PyTorch, trained with Lightning."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator, Mapping

import lightning as L
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from lightning.fabric.utilities.warnings import PossibleUserWarning
from torch import nn
from torch.utils.data import DataLoader

from recommender.errors import UserError
from recommender.models.base import PairRecommender, check_number
from recommender.models.saved import ArraySpec

LOSSES = ("mse", "pairwise")
MAX_THREADS = 1024  # a saved n_threads above this is not a thread count
MAX_FACTORS = 4096  # nor a k above this a factor dimension (k = 8 to 32 is the useful range)


class FactorizationMachine(nn.Module):
    """S(z) = w0 + <w, z> + sum_{i<j} <u_i, u_j> z_i z_j, the pair term in O(k |z|)."""

    def __init__(self, n_features: int, k: int, init_std: float = 0.01):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(()))
        self.weights = nn.Parameter(torch.zeros(n_features))
        self.factors = nn.Parameter(torch.randn(n_features, k) * init_std)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Scores of the rows of z (n, |z|)."""
        # Rendle's identity: sum_{i<j} <u_i,u_j> z_i z_j = 1/2 sum_f [(sum_i u_if z_i)^2 - sum_i u_if^2 z_i^2]
        pairs = 0.5 * ((z @ self.factors) ** 2 - (z * z) @ (self.factors * self.factors)).sum(dim=1)
        return self.bias + z @ self.weights + pairs


def pairwise_logistic_loss(scores: torch.Tensor, target: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Mean log(1 + exp(-(s_i - s_j))) over pairs of one dataset with target_i > target_j (RankNet).

    Rows are sorted by dataset; dataset g spans rows offsets[g]:offsets[g+1].
    """
    total = scores.sum() * 0.0  # keeps the graph when a batch has no ordered pair
    count = 0
    for start, stop in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True):
        s, t = scores[start:stop], target[start:stop]
        better = t[:, None] > t[None, :]
        total = total + F.softplus(-(s[:, None] - s[None, :])[better]).sum()
        count += int(better.sum())
    return total / max(count, 1)


class FMTask(L.LightningModule):
    """Lightning wrapper: the loss and the optimiser around a FactorizationMachine."""

    def __init__(self, fm: FactorizationMachine, learning_rate: float, weight_decay: float, loss: str):
        super().__init__()
        self.fm = fm
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.loss = loss

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        """Loss on one batch of whole datasets."""
        z, target, offsets = batch
        scores = self.fm(z)
        if self.loss == "mse":
            return F.mse_loss(scores, target)
        return pairwise_logistic_loss(scores, target, offsets)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam with L2 weight decay on w and u (not on the bias)."""
        return torch.optim.Adam(
            [
                {"params": [self.fm.bias], "weight_decay": 0.0},
                {"params": [self.fm.weights, self.fm.factors], "weight_decay": self.weight_decay},
            ],
            lr=self.learning_rate,
        )


def dataset_batches(
    Z: np.ndarray, t: np.ndarray, datasets: pd.Series, batch_datasets: int | None
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Batches of whole datasets (all of them when batch_datasets is None), rows sorted by dataset."""
    codes, names = pd.factorize(datasets.astype(str).to_numpy(), sort=True)
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes, minlength=len(names))
    per_batch = len(names) if batch_datasets is None else batch_datasets
    batches = []
    for first in range(0, len(names), per_batch):
        group_sizes = sizes[first : first + per_batch]
        start = sizes[:first].sum()
        rows = order[start : start + group_sizes.sum()]
        offsets = torch.as_tensor(np.concatenate([[0], np.cumsum(group_sizes)]))
        batches.append(
            (torch.as_tensor(Z[rows], dtype=torch.float32), torch.as_tensor(t[rows], dtype=torch.float32), offsets)
        )
    return batches


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with n intra-op threads, then restore (spinning threads slow small matrices on a busy box)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def quiet_lightning(verbose: bool) -> Iterator[None]:
    """Silence Lightning's info logs and hints unless verbose."""
    if verbose:
        yield
        return
    loggers = [logging.getLogger(name) for name in ("lightning", "lightning.pytorch", "lightning.fabric")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PossibleUserWarning)
            # Lightning 2.6 still builds torch's deprecated LeafSpec when moving batches
            warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


class FMRecommender(PairRecommender):
    """Factorization machine on the encoded pair features; loss ``"mse"`` or within-dataset ``"pairwise"``.

    k = 16 won on inner dataset-grouped folds of the SHiFT vision LOO training folds (over k 8 and 32,
    weight decay 1e-3 and 1e-2, the pairwise loss and a three-seed ensemble).
    """

    kind = "fm"

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

    def _check_params(self) -> None:
        """One-line errors for hyper-parameters outside their domain."""
        super()._check_params()
        if self.loss not in LOSSES:
            raise UserError(f"unknown loss {self.loss!r}: use one of {', '.join(LOSSES)}")
        check_number("k", self.k, integer=True, low=1, high=MAX_FACTORS)
        check_number("epochs", self.epochs, integer=True, low=1)
        check_number("n_threads", self.n_threads, integer=True, low=1, high=MAX_THREADS)
        check_number("seed", self.seed, integer=True, low=-(2**63), high=2**64 - 1)
        if self.batch_datasets is not None:
            check_number("batch_datasets", self.batch_datasets, integer=True, low=1)
        for name in ("learning_rate", "weight_decay", "init_std"):
            check_number(name, getattr(self, name))
        if not isinstance(self.verbose, bool):
            raise UserError(f"verbose must be true or false, got {self.verbose!r}")

    def _fit_encoded(self, Z: np.ndarray, t: np.ndarray, datasets: pd.Series) -> None:
        """Train the FM with Lightning on CPU, seeded so that a refit gives the same weights."""
        batches = dataset_batches(Z, t, datasets, self.batch_datasets)
        with torch.random.fork_rng(devices=[]), torch_threads(int(self.n_threads)), quiet_lightning(self.verbose):
            torch.manual_seed(self.seed)
            fm = FactorizationMachine(Z.shape[1], int(self.k), self.init_std)
            task = FMTask(fm, self.learning_rate, self.weight_decay, self.loss)
            order = torch.Generator().manual_seed(self.seed)
            # torch's stubs want a Dataset; any list with len and indexing is one to the DataLoader
            loader: DataLoader[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = DataLoader(
                batches, batch_size=None, shuffle=len(batches) > 1, generator=order)  # type: ignore[arg-type]
            trainer = L.Trainer(
                max_epochs=int(self.epochs),
                accelerator="cpu",
                devices=1,
                logger=False,
                enable_checkpointing=False,
                enable_progress_bar=self.verbose,
                enable_model_summary=self.verbose,
                log_every_n_steps=1,
            )
            trainer.fit(task, loader)
        self.module_ = fm.eval()

    def _predict_encoded(self, Z: np.ndarray) -> np.ndarray:
        """FM scores as float64."""
        with torch.no_grad(), torch_threads(int(self.n_threads)):
            return self.module_(torch.as_tensor(Z, dtype=torch.float32)).double().numpy()

    def _weight_spec(self) -> ArraySpec:
        """FactorizationMachine's parameters, float32 as torch trains them."""
        width = self.encoder_.width
        return {"bias": ((), "float32"), "weights": ((width,), "float32"), "factors": ((width, int(self.k)), "float32")}

    def _get_weights(self) -> dict[str, np.ndarray]:
        """The module's parameters as numpy arrays."""
        return {name: value.detach().cpu().numpy().copy() for name, value in self.module_.state_dict().items()}

    def _set_weights(self, arrays: Mapping[str, np.ndarray]) -> None:
        """A FactorizationMachine holding the checked arrays (bit for bit the saved float32 values)."""
        with torch.random.fork_rng(devices=[]):  # the throw-away initial factors leave the global seed alone
            fm = FactorizationMachine(self.encoder_.width, int(self.k))
        fm.load_state_dict({name: torch.from_numpy(np.array(value)) for name, value in arrays.items()})
        self.module_ = fm.eval()
