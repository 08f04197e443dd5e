"""Fine-tune a zoo model on a dataset with PyTorch Lightning: a small learning-rate grid, early stopping,
one job per run; the head starts fresh (`head="random"`) or from the linear probe's fit (`head="probe"`: LP-FT,
Kumar et al., ICLR 2022)."""

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
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader

from recommender.contracts import FINETUNE_HEADS, finetune_protocol
from recommender.errors import UserError
from recommender.executors import Executor, SerialExecutor
from recommender.zoo.cache import FeatureCache
from recommender.zoo.datasets import Dataset
from recommender.zoo.extract import extract
from recommender.zoo.provider import Provider
from recommender.zoo.scoring import dataset_row_of

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


@dataclass(frozen=True)
class ProbeHead:
    """A linear probe folded into one linear layer on the raw features: logits = F @ weight.T + bias."""

    weight: np.ndarray  # classes x D
    bias: np.ndarray  # classes


def probe_pipeline() -> Pipeline:
    """The linear probe: multinomial logistic regression (C = 1) on standardised features, as the `linear` score."""
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))


def fit_probe(F: np.ndarray, y: np.ndarray, n_classes: int) -> tuple[Pipeline, ProbeHead]:
    """The linear probe fitted on features F (n x D) and labels 0..n_classes-1, and the same map as one linear layer.

    The scaler is folded in exactly: W (F - mean) / scale + b = (W / scale) F + (b - W mean / scale). A binary
    probe's single logit z becomes the two logits (-z/2, z/2), whose softmax is (sigmoid(-z), sigmoid(z)): the
    same probabilities."""
    present = np.unique(y)
    if len(present) < n_classes:
        raise UserError(f"the training split holds {len(present)} of {n_classes} classes: a probe head needs "
                        "every class (use more examples per class)")
    pipe = probe_pipeline().fit(np.asarray(F, dtype=np.float64), y)
    scaler, logistic = pipe[0], pipe[-1]
    coef, intercept = logistic.coef_, logistic.intercept_
    if n_classes == 2:
        coef, intercept = np.vstack([-coef / 2, coef / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
    weight = coef / scaler.scale_
    return pipe, ProbeHead(weight, intercept - weight @ scaler.mean_)


def probe_accuracies(F: np.ndarray, y: np.ndarray, split: Split, n_classes: int) -> tuple[float, float]:
    """(validation, test) accuracy in % (`accuracy_percent`) of the linear probe fitted on the split's train rows."""
    pipe, _ = fit_probe(F[split.train], y[split.train], n_classes)
    F = np.asarray(F, dtype=np.float64)
    val, test = (accuracy_percent(int((pipe.predict(F[rows]) == y[rows]).sum()), len(rows))
                 for rows in (split.val, split.test))
    return val, test


class Classifier(L.LightningModule):
    """A provider's encoder with a linear head (fresh, or the probe's when given), trained end to end with AdamW
    and cross-entropy."""

    def __init__(self, provider: Provider, n_classes: int, dim: int, lr: float, weight_decay: float = 0.01,
                 head: ProbeHead | None = None):
        super().__init__()
        self.provider, self.lr, self.weight_decay = provider, lr, weight_decay
        self.encoder = provider.encoder()
        self.head = nn.Linear(dim, n_classes)
        if head is not None:
            with torch.no_grad():
                self.head.weight.copy_(torch.as_tensor(head.weight, dtype=torch.float32))
                self.head.bias.copy_(torch.as_tensor(head.bias, dtype=torch.float32))

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
        batch = [items[r] for r in rows] if isinstance(items, list) else items[rows]  # text: a list
        return provider.prepare(batch), torch.as_tensor(ds.y[idx][rows], dtype=torch.long)

    # torch's annotation asks for a Dataset; a map-style loader needs only __getitem__ and __len__, as a list has
    return DataLoader(list(range(len(idx))), batch_size=batch_size, shuffle=shuffle,  # type: ignore[arg-type]
                      collate_fn=collate, generator=torch.Generator().manual_seed(seed))


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


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the model's weights (training changes the tensors of state_dict() in place)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@_quiet_lightning()
def finetune_once(provider: Provider, ds: Dataset, split: Split, lr: float, max_epochs: int = 5, patience: int = 2,
                  batch_size: int = 32, seed: int = 0, protocol: str | None = None, head: str = "random",
                  cache: FeatureCache | None = None) -> dict:
    """One fine-tuning run (fresh pre-trained weights) with early stopping on validation accuracy; returns the job.

    With ``head="probe"`` (LP-FT) the head starts as the linear probe fitted on the frozen features of the train
    rows (extracted through ``cache`` when given), and that epoch-0 model is a candidate too: early stopping counts
    from its validation accuracy, and it is kept unless a trained epoch beats it on validation, so fine-tuning
    loses to the probe only through validation noise. Its accuracies are in `extra.probe_val_value` and
    `extra.probe_value`; `extra.best_epoch` is the epoch kept (0: the probe head, unchanged).

    Accuracies are exact counts over the validation and test parts, in % rounded by `accuracy_percent`;
    the protocol defaults to `contracts.finetune_protocol(max_epochs, train examples, head)`."""
    if head not in FINETUNE_HEADS:
        raise UserError(f"unknown head {head!r}: choose from {', '.join(FINETUNE_HEADS)}")
    L.seed_everything(seed, workers=True, verbose=False)
    provider.reset_encoder()  # every run starts from the pre-trained weights
    probe = None
    if head == "probe":
        features = extract(provider, ds, cache=cache, batch_size=batch_size, progress=False).features
        probe = fit_probe(features[split.train], ds.y[split.train], len(ds.classes))[1]
    dim = provider.features(ds.items[:2]).shape[1]
    model = Classifier(provider, len(ds.classes), dim, lr, head=probe)
    val_loader = _loader(provider, ds, split.val, batch_size, False, seed)
    test_loader = _loader(provider, ds, split.test, batch_size, False, seed)
    stop = L.pytorch.callbacks.EarlyStopping("val_acc", mode="max", patience=patience)
    start, extra = time.perf_counter(), {}
    if probe is not None:
        start_val, start_weights = _correct(model, val_loader), _snapshot(model)
        extra = {"extra.probe_val_value": accuracy_percent(start_val, len(split.val)),
                 "extra.probe_value": accuracy_percent(_correct(model, test_loader), len(split.test))}
        stop.best_score = torch.tensor(start_val / len(split.val))  # patience counts from the probe's accuracy
    model.train()  # extraction left the encoder in eval mode, and Lightning keeps each module's mode: train dropout/BN
    best = L.pytorch.callbacks.ModelCheckpoint(monitor="val_acc", mode="max", save_top_k=1, save_weights_only=True)
    with tempfile.TemporaryDirectory(prefix="recommender-finetune-") as scratch:  # checkpoints go with it
        trainer = L.Trainer(max_epochs=max_epochs, callbacks=[stop, best], logger=False, enable_progress_bar=False,
                            enable_model_summary=False, accelerator="cpu", deterministic=True, default_root_dir=scratch)
        trainer.fit(model, _loader(provider, ds, split.train, batch_size, True, seed), val_loader)
        checkpoint = torch.load(best.best_model_path, map_location="cpu", weights_only=True)
    model.load_state_dict(checkpoint["state_dict"])
    val_correct, best_epoch = _correct(model, val_loader), checkpoint["epoch"] + 1
    if probe is not None and start_val >= val_correct:  # ties keep the earliest best, as the checkpoint does
        model.load_state_dict(start_weights)
        val_correct, best_epoch = start_val, 0
    test_correct = _correct(model, test_loader)
    provider.reset_encoder()  # do not leave fine-tuned weights behind for feature extraction
    return {"model": provider.name, "dataset": ds.name,
            "protocol": protocol or finetune_protocol(max_epochs, len(split.train), head),
            "metric": "accuracy", "value": accuracy_percent(test_correct, len(split.test)),
            "val_value": accuracy_percent(val_correct, len(split.val)), "seconds": time.perf_counter() - start,
            "source": SOURCE, "hp.lr": lr, "hp.batch_size": batch_size, "hp.max_epochs": max_epochs,
            "hp.epochs_run": trainer.current_epoch, "hp.train_examples": len(split.train), "hp.seed": seed,
            "extra.best_epoch": best_epoch, **extra}


def with_facts(jobs: pd.DataFrame, provider: Provider, ds: Dataset, full_examples: int | None = None) -> pd.DataFrame:
    """Job rows with the model's facts and the dataset's features, which the store keeps beside the jobs;
    `examples` is the size of the whole dataset (`full_examples`) when ds is a subsample."""
    side = {**provider.facts.as_row(), **dataset_row_of(ds), "examples": float(full_examples or len(ds))}
    side.pop("dataset")
    return jobs.assign(**side)


def finetune(provider: Provider, ds: Dataset, lrs: Sequence[float] = (1e-4, 1e-3), max_epochs: int = 5,
             patience: int = 2, batch_size: int = 32, seed: int = 0, full_examples: int | None = None,
             protocol: str | None = None, executor: Executor | None = None, head: str = "random") -> pd.DataFrame:
    """Fine-tune over a learning-rate grid; one job row per run (long format of the store, accuracy in %).

    Each learning rate is one `finetune_once` task on ``executor`` (default: this process), seeded with ``seed``
    as the serial run is, so every executor gives the same rows, in grid order; nothing here writes the store.

    `full_examples` is the size of the whole dataset when ds is a subsample (the store's dataset feature);
    the subsample's training size is the hyper-parameter `hp.train_examples`. `protocol` names the runs'
    protocol in the store (default: `contracts.finetune_protocol` of the epochs, training examples and head).
    `head` is where the head starts: "random" (the default, as before) or "probe" (LP-FT, see `finetune_once`)."""
    if protocol is not None:
        protocol = protocol.strip()
        if not protocol:
            raise UserError("protocol: give a non-empty name, "
                            "or leave it out for the default (e.g. finetune:3ep-120ex)")
    if len(set(lrs)) < len(lrs):
        raise UserError(f"learning rates {', '.join(f'{lr:g}' for lr in lrs)}: each may appear once "
                        "(a run is seeded, so a repeat adds nothing)")
    if head not in FINETUNE_HEADS:
        raise UserError(f"unknown head {head!r}: choose from {', '.join(FINETUNE_HEADS)}")
    if not provider.trainable:
        provider.encoder()  # raises the clear "cannot be fine-tuned" error
    split = split_dataset(ds, seed=seed)
    session = f"finetune-{datetime.now(timezone.utc).isoformat(timespec='microseconds')}"
    task = partial(finetune_once, provider, ds, split, max_epochs=max_epochs, patience=patience,
                   batch_size=batch_size, seed=seed, protocol=protocol, head=head)
    jobs = with_facts(pd.DataFrame((executor or SerialExecutor()).map(task, lrs)), provider, ds, full_examples)
    # the store identifies a job by its run: one per session and learning rate, so repeated sessions stay separate
    return jobs.assign(run=[f"{session}-lr{lr:g}" for lr in lrs])
