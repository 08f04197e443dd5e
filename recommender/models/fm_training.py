"""Training the FM of ``recommender.models.fm`` in PyTorch: the module, the losses and a full-batch loop.

Imported only when an FM is fitted, so that loading a saved FM and predicting needs numpy alone. The loop is plain
torch: on a few thousand pairs an epoch is one Adam step over one batch, and a training framework's per-step
bookkeeping would cost more than the step itself.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

log = logging.getLogger(__name__)
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class FactorizationMachine(nn.Module):
    """S(z) = w0 + <w, z> + sum_{i<j} <u_i, u_j> z_i z_j, the pair term in O(k |z|)."""

    def __init__(self, n_features: int, k: int, init_std: float = 0.01):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(()))
        self.weights = nn.Parameter(torch.zeros(n_features))
        self.factors = nn.Parameter(torch.randn(n_features, k) * init_std)

    def forward(self, z: torch.Tensor, z2: torch.Tensor | None = None) -> torch.Tensor:
        """Scores of the rows of z (n, |z|); ``z2`` is z * z, when the caller keeps it across steps."""
        # Rendle's identity: sum_{i<j} <u_i,u_j> z_i z_j = 1/2 sum_f [(sum_i u_if z_i)^2 - sum_i u_if^2 z_i^2]
        z2 = z * z if z2 is None else z2
        pairs = 0.5 * ((z @ self.factors) ** 2 - z2 @ (self.factors * self.factors)).sum(dim=1)
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


def dataset_batches(Z: np.ndarray, t: np.ndarray, datasets: pd.Series, batch_datasets: int | None) -> list[Batch]:
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


def train_fm(Z: np.ndarray, t: np.ndarray, datasets: pd.Series, *, k: int, learning_rate: float,
             weight_decay: float, epochs: int, loss: str, batch_datasets: int | None, init_std: float, seed: int,
             n_threads: int, verbose: bool = False) -> dict[str, np.ndarray]:
    """Fit a FactorizationMachine by Adam (L2 weight decay on w and u, not on the bias) over batches of whole
    datasets, seeded so that a refit gives the same weights; returns its float32 parameters as numpy arrays."""
    batches = dataset_batches(Z, t, datasets, batch_datasets)
    with torch.random.fork_rng(devices=[]), torch_threads(n_threads):
        torch.manual_seed(seed)
        fm = FactorizationMachine(Z.shape[1], k, init_std)
        optimiser = torch.optim.Adam(
            [{"params": [fm.bias], "weight_decay": 0.0},
             {"params": [fm.weights, fm.factors], "weight_decay": weight_decay}],
            lr=learning_rate)
        order = torch.Generator().manual_seed(seed)
        # torch's stubs want a Dataset; any list with len and indexing is one to the DataLoader
        loader: DataLoader[Batch] = DataLoader(
            batches, batch_size=None, shuffle=len(batches) > 1, generator=order)  # type: ignore[arg-type]
        squares = {id(z): z * z for z, _, _ in batches}  # the same values each epoch: computed once
        for epoch in range(epochs):
            for z, target, offsets in loader:
                scores = fm(z, squares[id(z)])
                value = (F.mse_loss(scores, target) if loss == "mse"
                         else pairwise_logistic_loss(scores, target, offsets))
                optimiser.zero_grad()
                value.backward()
                optimiser.step()
            if verbose and (epoch + 1) % max(epochs // 10, 1) == 0:
                log.info("fm epoch %d/%d: %s loss %.5f", epoch + 1, epochs, loss, float(value))
    return {name: value.detach().cpu().numpy().copy() for name, value in fm.state_dict().items()}
