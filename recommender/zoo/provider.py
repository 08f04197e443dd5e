"""The model provider interface: one object that turns a batch of examples into pooled feature vectors, with the
model facts the pair table records.

A torch provider exposes its encoder (`encoder()` and `prepare(items)`), which serves both feature extraction
and fine-tuning; providers backed by another runtime (ONNX) override `features` and cannot be fine-tuned.

torch is imported where a batch is prepared or an encoder built, not with the providers: `rank` on features already
cached (`recommender.zoo.cache`) names its models and their facts without it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from recommender.contracts import MODEL_FACTS
from recommender.errors import UserError

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass(frozen=True)
class ModelFacts:
    """Pair-table model features: family, pre-training data, size, upstream accuracy (`contracts.MODEL_FACTS`,
    the fields in that order)."""

    family: str | None = None
    pretrain_dataset: str | None = None
    params_m: float | None = None
    gmacs: float | None = None
    input_size: float | None = None
    imagenet_top1: float | None = None

    def as_row(self) -> dict:
        """The facts as pair-table columns (None becomes NaN)."""
        return {name: (np.nan if getattr(self, name) is None else getattr(self, name)) for name in MODEL_FACTS}


@dataclass
class Provider(ABC):
    """A pre-trained model that maps examples of one modality to pooled features."""

    name: str
    modality: str
    facts: ModelFacts = field(default_factory=ModelFacts)

    @property
    def preprocessing(self) -> str:
        """A string naming everything that changes the features besides the weights (part of the cache key)."""
        return ""

    @property
    def trainable(self) -> bool:
        """Whether `encoder()` gives a torch module that can be fine-tuned."""
        return True

    def locate(self) -> None:
        """Make sure the model's files are here, fetching them where that is allowed; a model that cannot be had is
        one UserError. Packaged models are always here (the default)."""
        return None

    def encoder(self) -> nn.Module:
        """The torch module mapping `prepare(items)` to pooled features (B x D); loaded once."""
        encoder: nn.Module | None = getattr(self, "_encoder", None)
        if encoder is None:
            encoder = self._build_encoder()
            self._encoder: nn.Module | None = encoder
        return encoder

    def reset_encoder(self) -> None:
        """Drop the loaded encoder, so that the next `encoder()` loads the pre-trained weights again
        (fine-tuning changes the encoder's weights in place)."""
        self._encoder = None

    def _build_encoder(self) -> nn.Module:
        raise UserError(f"model {self.name} runs outside torch and cannot be fine-tuned; pick a torch model")

    def source_head(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The pre-trained classifier on the pooled features, as weight (K x D) and bias (K), whose softmax gives the
        source probabilities of LEEP and NCE; None for a model without one (the default)."""
        return None

    @abstractmethod
    def prepare(self, items: list | np.ndarray) -> dict[str, torch.Tensor]:
        """Turn raw examples into the encoder's keyword inputs."""

    def input_config(self) -> str | None:
        """The configuration of `prepare`, for a provider whose prepared inputs are worth caching (decoded and
        resized images: `recommender.zoo.inputs`): two providers with the same configuration prepare the same items
        into the same tensors. None (the default): never cached."""
        return None

    def features(self, items: list | np.ndarray, device: str = "cpu") -> np.ndarray:
        """Pooled features (B x D, float32, on the CPU) of a batch of raw examples, without gradients."""
        return self.embed(self.prepare(items), device)

    def embed(self, inputs: dict[str, torch.Tensor], device: str = "cpu") -> np.ndarray:
        """Pooled features (B x D, float32, on the CPU) of a batch of `prepare`d inputs, without gradients.

        The encoder and the batch run on the torch `device`; the encoder stays there until `reset_encoder`. On
        CUDA the forward runs under autocast (`autocast_dtype`); on the CPU in float32, as always."""
        import torch

        enc = self.encoder().to(device).eval()
        dtype = autocast_dtype(device)
        autocast = torch.autocast("cuda", dtype=dtype) if dtype is not None else nullcontext()
        with torch.inference_mode(), autocast:
            moved = {name: tensor.to(device, non_blocking=True) for name, tensor in inputs.items()}
            return enc(**moved).float().cpu().numpy()


def autocast_dtype(device: str) -> torch.dtype | None:
    """The autocast dtype of feature extraction on a torch `device`: bfloat16 on a CUDA card that supports it,
    else float16; None (no autocast, float32) on the CPU."""
    if device.partition(":")[0] != "cuda":
        return None
    import torch

    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def masked_mean(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of token vectors (B x T x D) over the positions where mask (B x T) is 1."""
    m = mask.unsqueeze(-1).to(tokens.dtype)
    return (tokens * m).sum(1) / m.sum(1).clamp(min=1.0)
