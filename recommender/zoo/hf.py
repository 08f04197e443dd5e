"""Hugging Face transformers image models (ViT, DeiT, BEiT, Swin, ConvNeXt, ResNet, ...) by folder or hub id:
`AutoModel` with the model's own `AutoImageProcessor`, pooled by the architecture's pooler where it has one."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from recommender.zoo.providers import TransformersProvider, quiet_loading


def pooled(out: object, use_pooler: bool) -> torch.Tensor:
    """B x D features of a transformers vision model's output: its `pooler_output` when `use_pooler` and the
    architecture gives one, else the mean of the last hidden state over tokens (B x T x D) or positions
    (B x C x H x W)."""
    features = getattr(out, "pooler_output", None) if use_pooler else None
    if features is None:
        hidden = out.last_hidden_state  # type: ignore[attr-defined]  # every transformers vision encoder has it
        features = hidden.mean(dim=(2, 3)) if hidden.ndim == 4 else hidden.mean(dim=1)
    return features.reshape(features.shape[0], -1)  # ResNet's pooler keeps 1 x 1 spatial axes


class _PooledImageModel(nn.Module):
    """A transformers vision encoder whose forward gives pooled features (`pooled`)."""

    def __init__(self, model: nn.Module, use_pooler: bool):
        super().__init__()
        self.model = model
        self.use_pooler = use_pooler

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return pooled(self.model(pixel_values=pixel_values), self.use_pooler)


def rgb_images(items: list | np.ndarray) -> list[np.ndarray]:
    """uint8 images (H x W grey, or H x W x 3) as H x W x 3 arrays, the layout every image processor takes."""
    return [np.repeat(np.asarray(img)[..., None], 3, axis=2) if np.ndim(img) == 2 else np.asarray(img)
            for img in items]


@dataclass
class HFImageProvider(TransformersProvider):
    """A transformers image model (folder or hub id): its own image processor (resize, crop, normalisation), then
    `pooler_output` where the architecture has a pooler whose weights the checkpoint holds, else the mean of the
    last hidden state. An image-classification checkpoint (ViTForImageClassification, ...) holds no weights for
    ViT's or DeiT's dense pooler: AutoModel would initialise it at random, so those pool by the mean."""

    @property
    def preprocessing(self) -> str:
        return "hf-image-processor;pool:pooler-if-trained-else-mean;grey->rgb"

    def processor(self):
        """The model's image processor, loaded once."""
        if getattr(self, "_processor", None) is None:
            from transformers import AutoImageProcessor

            with quiet_loading():  # without torchvision, transformers falls back to its PIL processors and says so
                self._processor = self._from_pretrained(AutoImageProcessor)
        return self._processor

    def _build_encoder(self) -> nn.Module:
        from transformers import AutoModel

        with quiet_loading():
            model, info = self._from_pretrained(AutoModel, output_loading_info=True)
        fresh = [key for key in info["missing_keys"] if "pooler" in key.split(".")]
        return _PooledImageModel(model, use_pooler=not fresh)

    def input_config(self) -> str:
        """The image processor's class and settings (resize, crop, rescale, normalisation): models that share them
        share their decoded and resized images (`recommender.zoo.inputs`)."""
        settings = {k: v for k, v in self.processor().to_dict().items() if k != "_processor_class"}
        return "grey->rgb;" + json.dumps(settings, sort_keys=True, default=str)

    def prepare(self, items: list | np.ndarray) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.processor()(images=rgb_images(items), return_tensors="pt")["pixel_values"]}
