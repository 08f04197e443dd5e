"""Batched feature extraction with a progress bar, through the feature cache."""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from recommender.errors import UserError
from recommender.zoo.cache import FeatureCache
from recommender.zoo.datasets import Dataset

if TYPE_CHECKING:  # the providers bring torch; extraction only calls their methods
    from recommender.zoo.provider import Provider


@dataclass(frozen=True)
class Extracted:
    """A feature matrix with the seconds its extraction took (0 when it came from the cache) and its cache key."""

    features: np.ndarray
    seconds: float
    cached: bool
    key: str  # identifies model weights, preprocessing and data content, cached or not


def _source(provider: Provider) -> str:
    """Where the provider's weights come from (part of the cache key)."""
    return ";".join(str(getattr(provider, a)) for a in ("path", "onnx_file", "vectors_file", "package", "weights")
                    if getattr(provider, a, ""))


def _on_cpu(provider: Provider, device: str) -> bool:
    """Whether the provider's features are computed on the CPU: the CPU asked for, or a provider whose `features`
    takes no device (a user's ONNX file)."""
    return device.partition(":")[0] == "cpu" or "device" not in inspect.signature(provider.features).parameters


def _preprocessing(provider: Provider, device: str) -> str:
    """The provider's preprocessing, plus the device type where it is not the CPU (see ``extract``)."""
    if _on_cpu(provider, device):
        return provider.preprocessing
    return f"{provider.preprocessing};device:{device.partition(':')[0]}"


def _stages(provider: Provider) -> bool:
    """Whether extraction can split the provider's work into `prepare` (in DataLoader workers) and `embed`: its
    `features` is the one defined beside an `embed`. A provider with a `features` of its own runs whole."""
    if "features" in vars(provider):
        return False
    owner = next((c for c in type(provider).__mro__ if "features" in vars(c)), None)
    return owner is not None and "embed" in vars(owner)


def cache_key(provider: Provider, ds: Dataset, device: str = "cpu") -> str:
    """The feature-cache key of the provider's features of ds on ``device`` (see ``extract``)."""
    return FeatureCache.key(provider.name, _source(provider), _preprocessing(provider, device), ds.fingerprint())


def extract(provider: Provider, ds: Dataset, cache: FeatureCache | None = None, batch_size: int = 32,
            progress: bool = True, device: str = "cpu", workers: int = 0) -> Extracted:
    """Pooled features (n x D) of every example of ds, read from or written to the cache.

    Batches are prepared (tokenised, or decoded, resized and normalised) by a torch DataLoader with `workers`
    processes (0: in this process) while the encoder runs; the features do not depend on `workers`. With a
    cache, a provider whose inputs are worth keeping (`Provider.input_config`: images) reads them from, or writes
    them to, the input cache beside the features (`recommender.zoo.inputs`), so that the next model with the same
    preprocessing prepares nothing.

    With a torch `device` other than the CPU (e.g. "cuda:0"), a provider whose `features` takes a device runs its
    encoder there, under autocast (bfloat16 where the card supports it, else float16: `provider.autocast_dtype`,
    which the cache entry's sidecar records); the features still come back as a float32 CPU array. They differ
    from the CPU's by rounding, so the cache keeps them apart: the key gains the device type (";device:cuda"),
    while features computed on the CPU keep the key they always had.
    """
    if provider.modality != ds.modality:
        raise UserError(f"model {provider.name} takes {provider.modality} but dataset {ds.name} holds {ds.modality}")
    on_cpu, preprocessing = _on_cpu(provider, device), _preprocessing(provider, device)
    key = cache_key(provider, ds, device)
    if cache is not None and (hit := cache.get(key)) is not None:
        return Extracted(hit, 0.0, True, key)
    start = time.perf_counter()
    if not _stages(provider):
        features_of = provider.features if on_cpu else partial(provider.features, device=device)
        parts = [features_of(ds.items[i: i + batch_size])
                 for i in tqdm(range(0, len(ds), batch_size), desc=f"{provider.name} on {ds.name}", unit="batch",
                               disable=not progress, leave=False)]
    else:
        parts = _staged(provider, ds, cache, batch_size, progress, device if not on_cpu else None, workers)
    features = np.concatenate(parts).astype(np.float32)
    if not np.isfinite(features).all():
        raise UserError(f"model {provider.name} gave NaN or infinite features on {ds.name}")
    seconds = time.perf_counter() - start
    if cache is not None:
        meta = {"model": provider.name, "dataset": ds.name, "n": len(ds), "dim": features.shape[1],
                "preprocessing": preprocessing, "seconds": seconds}
        if not on_cpu and _stages(provider):
            from recommender.zoo.provider import autocast_dtype

            meta["autocast"] = str(autocast_dtype(device))
        cache.put(key, features, meta)
    return Extracted(features, seconds, False, key)


def _staged(provider: Provider, ds: Dataset, cache: FeatureCache | None, batch_size: int, progress: bool,
            device: str | None, workers: int) -> list[np.ndarray]:
    """The features of each batch: inputs prepared by DataLoader workers, or read from the input cache (and written
    to it as they are prepared), then `embed`ded here, on `device` (None: the CPU, as `features` without one)."""
    from recommender.zoo.inputs import Batches, InputCache, Sink, StoredInputs

    embed = provider.embed if device is None else partial(provider.embed, device=device)
    config = provider.input_config() if cache is not None else None
    inputs_cache = InputCache(cache.root / "inputs") if cache is not None and config is not None else None
    inputs_key = InputCache.key(config, ds.fingerprint()) if config is not None else ""
    stored = inputs_cache.get(inputs_key, len(ds)) if inputs_cache is not None else None
    batches = (Batches(StoredInputs(stored[0]), stored[1], batch_size) if stored is not None
               else Batches(provider.prepare, ds.items, batch_size))
    parts: list[np.ndarray] = []

    def run(sink: Sink | None) -> None:
        loader = batches.loader(workers, pin_memory=device is not None)
        for inputs in tqdm(loader, desc=f"{provider.name} on {ds.name}", unit="batch", disable=not progress,
                           leave=False):
            if sink is not None:
                sink(inputs)
            parts.append(embed(inputs))

    if inputs_cache is not None and stored is None:
        inputs_cache.record(inputs_key, len(ds), run)
    else:
        run(None)
    return parts
