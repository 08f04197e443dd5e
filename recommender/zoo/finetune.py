"""Fine-tune a zoo model on a dataset with PyTorch Lightning: a small learning-rate grid, early stopping,
one job per run."""

from __future__ import annotations

import logging
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial

import lightning as L
import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader

from recommender.contracts import finetune_protocol
from recommender.errors import UserError
from recommender.executors import Executor, SerialExecutor
from recommender.zoo.datasets import Dataset
from recommender.zoo.providers import Provider
from recommender.zoo.rank import dataset_row

SOURCE = "recommender finetune"


def accuracy_percent(correct: int, n: int) -> float:
    """Accuracy in % of `correct` out of `n` examples, rounded to what n examples can measure.

    The number of decimals is ceil(log10 n) - 1, so one example (100/n %) is at least ten units of the last digit:
    distinct counts stay distinct and the rounding error is at most a twentieth of an example
    (27 of 40 -> 67.5, 83 of 120 -> 69.17, 7 of 9 -> 78)."""
    if n < 1:
        raise ValueError(f"accuracy needs at least one example, got n={n}")
    decimals = len(str(n - 1)) - 1 if n > 1 else 0  # len(str(n - 1)) = ceil(log10 n) for n >= 2, in integers
    return round(100 * correct / n, decimals)


@dataclass(frozen=True)
class Split:
    """Stratified train / validation / test indices of a dataset."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def split_dataset(ds: Dataset, val: float = 0.2, test: float = 0.2, seed: int = 0) -> Split:
    """A seeded stratified train/val/test split."""
    idx = np.arange(len(ds))
    try:
        rest, te = train_test_split(idx, test_size=test, stratify=ds.y, random_state=seed)
        tr, va = train_test_split(rest, test_size=val / (1 - test), stratify=ds.y[rest], random_state=seed)
    except ValueError as e:  # too few examples of a class, or in all, for a stratified split
        raise UserError(f"dataset {ds.name}: cannot split its {len(ds)} examples of {len(ds.classes)} classes into "
                        f"stratified train/val/test parts: {e}") from None
    return Split(np.sort(tr), np.sort(va), np.sort(te))


class Classifier(L.LightningModule):
    """A provider's encoder with a fresh linear head, trained end to end with AdamW and cross-entropy."""

    def __init__(self, provider: Provider, n_classes: int, dim: int, lr: float, weight_decay: float = 0.01):
        super().__init__()
        self.provider, self.lr, self.weight_decay = provider, lr, weight_decay
        self.encoder = provider.encoder()
        self.head = nn.Linear(dim, n_classes)

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head(self.encoder(**inputs))

    def _step(self, batch: tuple, stage: str) -> torch.Tensor:
        inputs, y = batch
        logits = self(inputs)
        loss = nn.functional.cross_entropy(logits, y)
        self.log(f"{stage}_loss", loss, prog_bar=False, batch_size=len(y))
        self.log(f"{stage}_acc", (logits.argmax(1) == y).float().mean(), prog_bar=stage == "val", batch_size=len(y))
        return loss

    def training_step(self, batch: tuple, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: tuple, batch_idx: int) -> None:
        self._step(batch, "val")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)


def _loader(provider: Provider, ds: Dataset, idx: np.ndarray, batch_size: int, shuffle: bool, seed: int) -> DataLoader:
    """Batches of (prepared inputs, labels); the provider prepares raw examples per batch."""
    items = [ds.items[i] for i in idx] if ds.modality == "text" else ds.items[idx]

    def collate(rows: list[int]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        batch = [items[r] for r in rows] if ds.modality == "text" else items[rows]
        return provider.prepare(batch), torch.as_tensor(ds.y[idx][rows], dtype=torch.long)

    return DataLoader(list(range(len(idx))), batch_size=batch_size, shuffle=shuffle, collate_fn=collate,
                      generator=torch.Generator().manual_seed(seed))


def _correct(model: Classifier, loader: DataLoader) -> int:
    """How many examples of the loader the model classifies correctly (an exact count, not a float mean)."""
    model.eval()
    with torch.inference_mode():
        return sum(int((model(inputs).argmax(1) == y).sum()) for inputs, y in loader)


@contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Show only Lightning's errors during the block (the job row is the record), then restore its log levels and
    the warning filters; the deprecation warnings between torch and Lightning versions are not the user's to act on."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            for category in (DeprecationWarning, FutureWarning):
                warnings.filterwarnings("ignore", category=category, module=r"lightning\.")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


@_quiet_lightning()
def finetune_once(provider: Provider, ds: Dataset, split: Split, lr: float, max_epochs: int = 5, patience: int = 2,
                  batch_size: int = 32, seed: int = 0, protocol: str | None = None) -> dict:
    """One fine-tuning run (fresh pre-trained weights) with early stopping on validation accuracy; returns the job.

    Accuracies are exact counts over the validation and test parts, in % rounded by `accuracy_percent`;
    the protocol defaults to `contracts.finetune_protocol(max_epochs, train examples)`."""
    L.seed_everything(seed, workers=True, verbose=False)
    provider.reset_encoder()  # every run starts from the pre-trained weights
    dim = provider.features(ds.items[:2]).shape[1]
    model = Classifier(provider, len(ds.classes), dim, lr)
    model.train()  # extraction left the encoder in eval mode, and Lightning keeps each module's mode: train dropout/BN
    stop = L.pytorch.callbacks.EarlyStopping("val_acc", mode="max", patience=patience)
    best = L.pytorch.callbacks.ModelCheckpoint(monitor="val_acc", mode="max", save_top_k=1, save_weights_only=True)
    with tempfile.TemporaryDirectory(prefix="recommender-finetune-") as scratch:  # checkpoints go with it
        trainer = L.Trainer(max_epochs=max_epochs, callbacks=[stop, best], logger=False, enable_progress_bar=False,
                            enable_model_summary=False, accelerator="cpu", deterministic=True, default_root_dir=scratch)
        start = time.perf_counter()
        trainer.fit(model, _loader(provider, ds, split.train, batch_size, True, seed),
                    _loader(provider, ds, split.val, batch_size, False, seed))
        state = torch.load(best.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
    model.load_state_dict(state)
    val_correct = _correct(model, _loader(provider, ds, split.val, batch_size, False, seed))
    test_correct = _correct(model, _loader(provider, ds, split.test, batch_size, False, seed))
    provider.reset_encoder()  # do not leave fine-tuned weights behind for feature extraction
    return {"model": provider.name, "dataset": ds.name,
            "protocol": protocol or finetune_protocol(max_epochs, len(split.train)),
            "metric": "accuracy", "value": accuracy_percent(test_correct, len(split.test)),
            "val_value": accuracy_percent(val_correct, len(split.val)), "seconds": time.perf_counter() - start,
            "source": SOURCE, "hp.lr": lr, "hp.batch_size": batch_size, "hp.max_epochs": max_epochs,
            "hp.epochs_run": trainer.current_epoch, "hp.train_examples": len(split.train), "hp.seed": seed}


def finetune(provider: Provider, ds: Dataset, lrs: Sequence[float] = (1e-4, 1e-3), max_epochs: int = 5,
             patience: int = 2, batch_size: int = 32, seed: int = 0, full_examples: int | None = None,
             protocol: str | None = None, executor: Executor | None = None) -> pd.DataFrame:
    """Fine-tune over a learning-rate grid; one job row per run (long format of the store, accuracy in %).

    Each learning rate is one `finetune_once` task on ``executor`` (default: this process), seeded with ``seed``
    as the serial run is, so every executor gives the same rows, in grid order; nothing here writes the store.

    `full_examples` is the size of the whole dataset when ds is a subsample (the store's dataset feature);
    the subsample's training size is the hyper-parameter `hp.train_examples`. `protocol` names the runs'
    protocol in the store (default: `contracts.finetune_protocol` of the epochs and training examples)."""
    if protocol is not None:
        protocol = protocol.strip()
        if not protocol:
            raise UserError("protocol: give a non-empty name, "
                            "or leave it out for the default (e.g. finetune:3ep-120ex)")
    if len(set(lrs)) < len(lrs):
        raise UserError(f"learning rates {', '.join(f'{lr:g}' for lr in lrs)}: each may appear once "
                        "(a run is seeded, so a repeat adds nothing)")
    if not provider.trainable:
        provider.encoder()  # raises the clear "cannot be fine-tuned" error
    split = split_dataset(ds, seed=seed)
    session = f"finetune-{datetime.now(timezone.utc).isoformat(timespec='microseconds')}"
    task = partial(finetune_once, provider, ds, split, max_epochs=max_epochs, patience=patience,
                   batch_size=batch_size, seed=seed, protocol=protocol)
    jobs = pd.DataFrame((executor or SerialExecutor()).map(task, lrs))
    side = {**provider.facts.as_row(), **dataset_row(ds), "examples": float(full_examples or len(ds))}
    side.pop("dataset")
    # the store identifies a job by its run: one per session and learning rate, so repeated sessions stay separate
    return jobs.assign(**side, run=[f"{session}-lr{lr:g}" for lr in lrs])
