"""MobileNetV2 (Sandler et al. 2018) with torchvision's parameter names, so that torchvision's ImageNet weights file
loads into it strictly, and its provider (features: the 1280-d global average pool before the classifier)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
from torch import nn

from recommender.zoo.provider import Provider
from recommender.zoo.vision import PooledNet, head_arrays, to_tensor
from recommender.zoo.weights import load_checked_state

# (expansion t, output channels c, repeats n, first stride s): Table 2 of the paper
_BLOCKS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
# torchvision's ImageNet normalisation (pixels scaled to [0, 1] first)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _conv_bn_relu6(cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))


class _InvertedResidual(nn.Module):
    """Expand (1x1), depthwise 3x3, project (1x1, linear); a skip connection where the shape is kept."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = [_conv_bn_relu6(cin, hidden, kernel=1)] if expand != 1 else []
        layers += [_conv_bn_relu6(hidden, hidden, stride=stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.skip else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 (width 1.0) for 1000 ImageNet classes; `pool` gives the 1280-d features, `forward` the logits."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        layers: list[nn.Module] = [_conv_bn_relu6(3, 32, stride=2)]
        cin = 32
        for t, c, n, s in _BLOCKS:
            for i in range(n):
                layers.append(_InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(_conv_bn_relu6(cin, 1280, kernel=1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def pool(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.features(pixels).mean(dim=(2, 3))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(pixels))


@dataclass
class MobileNetV2Provider(Provider):
    """ImageNet MobileNetV2 from a torchvision-format weights file."""

    weights: str = ""
    image_size: int = 224

    @property
    def preprocessing(self) -> str:
        return f"resize:{self.image_size}bilinear-aa;norm:imagenet-mean-std;grey->rgb"

    def network(self) -> MobileNetV2:
        """The full network with its ImageNet classifier, freshly loaded from the weights file."""
        return load_checked_state(MobileNetV2(), self.weights)

    def _build_encoder(self) -> nn.Module:
        return PooledNet(self.network())  # the 1280-d global average pool

    def source_head(self) -> tuple[np.ndarray, np.ndarray]:
        # the 1000-class ImageNet layer after the dropout, which is off at evaluation
        return head_arrays(cast(nn.Linear, self.network().classifier[1]))

    def prepare(self, items: list | np.ndarray) -> dict[str, torch.Tensor]:
        x = to_tensor(np.asarray(items), self.image_size, 0.0, 255.0)  # pixels in [0, 1]
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        return {"pixels": (x - mean) / std}
