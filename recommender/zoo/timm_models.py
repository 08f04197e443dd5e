"""timm models by the names of the bundled timm history (`timm/NAME` or `timm:NAME` on the command line):
`timm.create_model(NAME, pretrained=True, num_classes=0)`, the pooled features of its own head, with timm's own
data config (resize, centre crop, interpolation, mean and std).

timm needs torchvision, an optional extra (`pip install timm`): a model asked for without it is one line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from recommender.errors import UserError
from recommender.zoo.hf import rgb_images
from recommender.zoo.provider import Provider

PREFIXES = ("timm/", "timm:")


def timm_name(spec: str) -> str | None:
    """The timm model name of a `timm/NAME` or `timm:NAME` spec, or None for another spec."""
    return next((spec[len(p):] for p in PREFIXES if spec.startswith(p) and len(spec) > len(p)), None)


def import_timm():
    """The timm module, or one line saying why it cannot be used here."""
    try:
        import timm
    except (ImportError, RuntimeError) as e:  # torchvision built for another torch fails inside its import
        raise UserError(f"timm models need timm and a torchvision that loads beside this torch "
                        f"(pip install timm): {' '.join(str(e).split())[:200]}") from None
    return timm


@dataclass
class TimmProvider(Provider):
    """A timm model with pre-trained weights: from the Hugging Face cache (timm's weights live on the hub as
    `timm/NAME`; downloaded first unless `offline`), or from a local `weights` file given with NAME=FILE. Its
    `name` is the history's (SHiFT writes some as timm/NAME); `arch` (or the name without timm/) the one timm knows."""

    weights: str = ""
    offline: bool = False
    arch: str = ""

    @property
    def architecture(self) -> str:
        """The name timm creates the model by."""
        return self.arch or timm_name(self.name) or self.name

    @property
    def preprocessing(self) -> str:
        return "timm-data-config;pool:timm-head;grey->rgb"

    def weights_file(self) -> Path:
        """The weights file: the local one, else the hub snapshot's (safetensors, else PyTorch .bin)."""
        if self.weights:
            return Path(self.weights)
        from recommender.zoo.hub import snapshot_folder

        folder = snapshot_folder(f"timm/{self.architecture}", self.offline)
        found = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("pytorch_model*.bin"))
        if not found:
            raise UserError(f"model timm/{self.architecture}: no weights file in {folder}")
        return found[0]

    def locate(self) -> None:
        import_timm()
        self.weights_file()

    def network(self) -> nn.Module:
        """The network without its classifier (num_classes=0: the head pools), weights loaded through timm's
        `pretrained_cfg_overlay`, so that timm applies its own checkpoint filters."""
        timm = import_timm()
        try:
            return timm.create_model(self.architecture, pretrained=True, num_classes=0,
                                     pretrained_cfg_overlay={"file": str(self.weights_file())})
        except RuntimeError as e:  # unknown architecture, or weights of another shape
            raise UserError(f"model timm/{self.architecture}: {' '.join(str(e).split())[:300]}") from None

    def _build_encoder(self) -> nn.Module:
        return self.network()

    def transform(self):
        """timm's evaluation transform for this model (its data config), built once."""
        if getattr(self, "_transform", None) is None:
            timm = import_timm()
            config = timm.data.resolve_model_data_config(self.encoder())
            self._transform = timm.data.create_transform(**config, is_training=False)
        return self._transform

    def prepare(self, items: list | np.ndarray) -> dict[str, torch.Tensor]:
        from PIL import Image

        transform = self.transform()
        return {"x": torch.stack([transform(Image.fromarray(img)) for img in rgb_images(items)])}
