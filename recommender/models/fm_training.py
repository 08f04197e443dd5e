"""Training the FM of ``recommender.models.fm`` in PyTorch: the module, the losses and a full-batch loop.

Imported only when an FM is fitted, so that loading a saved FM and predicting needs numpy alone. The loop is plain
torch: on a few thousand pairs an epoch is one Adam step over one batch, and a training framework's per-step
bookkeeping would cost more than the step itself. The step reads only the nonzero features of each pair
(`SparseRows`), with its gradient written out (`_Scores`; tests/models/test_models.py checks it against autograd
through the dense definition).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

log = logging.getLogger(__name__)
Batch = tuple["SparseRows", torch.Tensor, torch.Tensor]


class FactorizationMachine(nn.Module):
    """S(z) = w0 + <w, z> + sum_{i<j} <u_i, u_j> z_i z_j, the pair term in O(k nnz(z)).

    A batch comes as its rows' nonzero entries (`SparseRows`): an encoded pair has a dozen nonzero features of a few
    hundred (one-hot ids and categories, a few scalars), so gathering those rows of the parameters costs a few
    percent of a dense product with every column."""

    def __init__(self, n_features: int, k: int, init_std: float = 0.01):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(()))
        self.weights = nn.Parameter(torch.zeros(n_features))
        self.factors = nn.Parameter(torch.randn(n_features, k) * init_std)

    def forward(self, z: SparseRows) -> torch.Tensor:
        """Scores of the rows of z."""
        return _Scores.apply(z, self.bias, self.weights, self.factors)


@dataclass(frozen=True)
class SparseRows:
    """The nonzero entries of a matrix Z (n, features), as `FactorizationMachine` reads them: by row, padded to the
    longest row with column 0 and value 0 (which add nothing), for the scores; by column, for their gradient."""

    columns: torch.Tensor  # (n, width) int64: each row's nonzero columns
    values: torch.Tensor  # (n, width) float32: their values
    rows: torch.Tensor  # (nnz,) int64: the rows of each column's nonzero entries, column after column
    column_values: torch.Tensor  # (nnz,) float32: their values
    starts: torch.Tensor  # (features,) int64: where each column's entries start in `rows`

    @classmethod
    def of(cls, Z: np.ndarray) -> SparseRows:
        """The nonzero entries of ``Z``, kept in float32."""
        Z = np.asarray(Z, dtype=np.float32)
        rows, cols = np.nonzero(Z)  # row-major: each row's columns in increasing order
        counts = np.bincount(rows, minlength=Z.shape[0])
        width = max(int(counts.max(initial=0)), 1)
        slot = np.arange(rows.size) - np.repeat(np.cumsum(counts) - counts, counts)
        columns, values = np.zeros((Z.shape[0], width), np.int64), np.zeros((Z.shape[0], width), np.float32)
        columns[rows, slot], values[rows, slot] = cols, Z[rows, cols]
        by_column = np.lexsort((rows, cols))  # column-major, rows in increasing order within a column
        starts = np.cumsum(np.bincount(cols, minlength=Z.shape[1])) - np.bincount(cols, minlength=Z.shape[1])
        return cls(torch.as_tensor(columns), torch.as_tensor(values), torch.as_tensor(rows[by_column]),
                   torch.as_tensor(Z[rows, cols][by_column]), torch.as_tensor(starts))

    def transposed_product(self, X: torch.Tensor, squared: bool = False) -> torch.Tensor:
        """Z^T X (or (Z * Z)^T X with ``squared``) for X (n, m): (features, m)."""
        weights = self.column_values.to(X.dtype)
        return F.embedding_bag(self.rows, X, self.starts, per_sample_weights=weights * weights if squared else weights,
                               mode="sum")


class _Scores(torch.autograd.Function):
    """The FM's scores from Z's nonzero entries, with the gradient written out: gathering the parameters' rows for
    each pair, and for the gradient each column's pairs (autograd's own backward of a gather scatters through a
    slower general path)."""

    @staticmethod
    def forward(ctx: Any, z: SparseRows, bias: torch.Tensor, weights: torch.Tensor,  # noqa: ANN401
                factors: torch.Tensor) -> torch.Tensor:
        # Rendle's identity: sum_{i<j} <u_i,u_j> z_i z_j = 1/2 sum_f [(sum_i u_if z_i)^2 - sum_i u_if^2 z_i^2]
        values = z.values.to(factors.dtype)
        first = F.embedding_bag(z.columns, torch.cat([factors, weights[:, None]], dim=1), per_sample_weights=values,
                                mode="sum")  # (Vz, <w, z>) in one gather
        squares = F.embedding_bag(z.columns, factors * factors, per_sample_weights=values * values, mode="sum")
        sums = first[:, :-1]
        ctx.z = z
        ctx.save_for_backward(factors, sums)
        return bias + first[:, -1] + 0.5 * (sums * sums - squares).sum(dim=1)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[None, torch.Tensor, torch.Tensor, torch.Tensor]:  # noqa: ANN401
        # d score / d u_if = z_i (Vz)_f - u_if z_i^2 and d score / d w_i = z_i, summed over the rows with their g
        factors, sums = ctx.saved_tensors
        totals = ctx.z.transposed_product(torch.cat([g[:, None] * sums, g[:, None]], dim=1))
        squared = ctx.z.transposed_product(g[:, None], squared=True)
        return None, g.sum(), totals[:, -1], totals[:, :-1] - factors * squared


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
        batches.append((SparseRows.of(Z[rows]), torch.as_tensor(t[rows], dtype=torch.float32), offsets))
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
        for epoch in range(epochs):
            for z, target, offsets in loader:
                scores = fm(z)
                value = (F.mse_loss(scores, target) if loss == "mse"
                         else pairwise_logistic_loss(scores, target, offsets))
                optimiser.zero_grad()
                value.backward()
                optimiser.step()
            if verbose and (epoch + 1) % max(epochs // 10, 1) == 0:
                log.info("fm epoch %d/%d: %s loss %.5f", epoch + 1, epochs, loss, float(value))
    return {name: value.detach().cpu().numpy().copy() for name, value in fm.state_dict().items()}
