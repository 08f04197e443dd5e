"""Torch vision providers: images resized to the model's input size, pooled by the network's own head."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recommender.zoo.provider import Provider
from recommender.zoo.weights import load_checked_state

if TYPE_CHECKING:
    from efficientnet_lite_pytorch import EfficientNet


def to_tensor(images: np.ndarray, size: int, mean: float, std: float) -> torch.Tensor:
    """uint8 images (B x H x W, grey, or B x H x W x 3) -> normalised float B x 3 x size x size (bilinear)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float()
    x = x.unsqueeze(1).expand(-1, 3, -1, -1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return (x - mean) / std


def head_arrays(layer: nn.Linear | nn.Conv2d) -> tuple[np.ndarray, np.ndarray]:
    """A linear (or 1 x 1 convolution) classifier's weight as a K x D array and its bias (K), float32 numpy."""
    weight = layer.weight.detach().reshape(layer.weight.shape[0], -1)
    bias = torch.zeros(weight.shape[0]) if layer.bias is None else layer.bias.detach()  # no bias: a zero one
    return weight.numpy().copy(), bias.numpy().copy()


class _Pooling(Protocol):
    """A network (an nn.Module) whose `pool` gives the features its classifier reads."""

    def pool(self, pixels: torch.Tensor) -> torch.Tensor: ...


class PooledNet(nn.Module):
    """A network's encoder for extraction and fine-tuning: its `pool(pixels)` features (B x D); the network's own
    classifier stays inside, unused, so that `net.*` weights keep their names."""

    net: _Pooling

    def __init__(self, net: _Pooling):  # an nn.Module with `pool`: MobileNetV2, the MTCNN nets
        super().__init__()
        self.net = net

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.net.pool(pixels)


class _PooledEfficientNet(nn.Module):
    """EfficientNet-Lite up to its global average pooling (1280-d), classifier dropped."""

    def __init__(self, net: EfficientNet):
        super().__init__()
        self.net = net

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(pixels).mean(dim=(2, 3))


@dataclass
class EfficientNetLiteProvider(Provider):
    """ImageNet EfficientNet-Lite0..4 from the `efficientnet-lite-pytorch` code and a weights file."""

    arch: str = "efficientnet-lite0"
    weights: str = ""
    image_size: int = 224

    @property
    def preprocessing(self) -> str:
        return f"resize:{self.image_size}bilinear-aa;norm:127/128;grey->rgb"

    def network(self) -> EfficientNet:
        """The full network with its ImageNet classifier, freshly loaded from the weights file."""
        from efficientnet_lite_pytorch import EfficientNet

        return load_checked_state(EfficientNet.from_name(self.arch), self.weights)

    def _build_encoder(self) -> nn.Module:
        return _PooledEfficientNet(self.network())

    def source_head(self) -> tuple[np.ndarray, np.ndarray]:
        # the 1000-class ImageNet layer on the pooled features (its dropout is off at evaluation)
        return head_arrays(self.network()._fc)

    def prepare(self, items: list | np.ndarray) -> dict[str, torch.Tensor]:
        # the TF-Lite training pipeline scales pixels by (x - 127) / 128
        return {"pixels": to_tensor(np.asarray(items), self.image_size, 127.0, 128.0)}
