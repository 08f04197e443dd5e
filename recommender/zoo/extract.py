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
    from recommender.zoo.providers import Provider


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


def cache_key(provider: Provider, ds: Dataset, device: str = "cpu") -> str:
    """The feature-cache key of the provider's features of ds on ``device`` (see ``extract``)."""
    return FeatureCache.key(provider.name, _source(provider), _preprocessing(provider, device), ds.fingerprint())


def extract(provider: Provider, ds: Dataset, cache: FeatureCache | None = None, batch_size: int = 32,
            progress: bool = True, device: str = "cpu") -> Extracted:
    """Pooled features (n x D) of every example of ds, read from or written to the cache.

    With a torch `device` other than the CPU (e.g. "cuda:0"), a provider whose `features` takes a device runs its
    encoder there; the features still come back as a CPU array. They differ from the CPU's by float rounding, so
    the cache keeps them apart: the key gains the device type (";device:cuda"), while features computed on the
    CPU keep the key they always had.
    """
    if provider.modality != ds.modality:
        raise UserError(f"model {provider.name} takes {provider.modality} but dataset {ds.name} holds {ds.modality}")
    on_cpu, preprocessing = _on_cpu(provider, device), _preprocessing(provider, device)
    key = cache_key(provider, ds, device)
    if cache is not None and (hit := cache.get(key)) is not None:
        return Extracted(hit, 0.0, True, key)
    features_of = provider.features if on_cpu else partial(provider.features, device=device)
    start = time.perf_counter()
    parts = [
        features_of(ds.items[i : i + batch_size])
        for i in tqdm(range(0, len(ds), batch_size), desc=f"{provider.name} on {ds.name}", unit="batch",
                      disable=not progress, leave=False)
    ]
    features = np.concatenate(parts).astype(np.float32)
    if not np.isfinite(features).all():
        raise UserError(f"model {provider.name} gave NaN or infinite features on {ds.name}")
    seconds = time.perf_counter() - start
    if cache is not None:
        meta = {"model": provider.name, "dataset": ds.name, "n": len(ds), "dim": features.shape[1],
                "preprocessing": preprocessing, "seconds": seconds}
        cache.put(key, features, meta)
    return Extracted(features, seconds, False, key)
