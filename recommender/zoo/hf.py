"""Hugging Face transformers models by folder or hub id, loaded from disk only with their files checked: text
encoders (sentence-transformers style, mean-pooled: `TransformersProvider`) and image models (ViT, DeiT, BEiT, Swin,
ConvNeXt, ResNet, ...: `AutoModel` with the model's own `AutoImageProcessor`, pooled by the architecture's pooler
where it has one). transformers itself is imported only by the functions that load a model."""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from recommender.errors import UserError
from recommender.zoo.provider import Provider
from recommender.zoo.weights import _load_refusal, _weights_file, check_model_config

if TYPE_CHECKING:
    import torch
    from torch import nn


@contextmanager
def quiet_loading() -> Iterator[None]:
    """Hide transformers' weight-loading progress bar and its notices (a fallback image processor, a pooler left
    unused) during the block, then restore its previous settings."""
    from transformers.utils import logging as hf_logging

    enabled, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if enabled:
            hf_logging.enable_progress_bar()


class _AutoClass(Protocol):
    """A transformers Auto class (AutoModel, AutoTokenizer): what `TransformersProvider` calls on it."""

    def from_pretrained(self, source: str, /, *, local_files_only: bool, output_loading_info: bool = ...) -> Any: ...


@dataclass
class TransformersProvider(Provider):
    """A sentence-transformers or Hugging Face text encoder (folder or hub id), mean-pooled. A hub id loads from
    the Hugging Face cache, downloaded first unless `offline` (`recommender.zoo.hub`)."""

    path: str = ""
    max_length: int = 128
    offline: bool = False

    @property
    def preprocessing(self) -> str:
        return f"tok:max{self.max_length};pool:mean"

    def model_dir(self) -> str:
        """The folder the tokenizer and weights are loaded from: `path`, or a hub id's snapshot in the cache."""
        if Path(self.path).is_dir():
            return self.path
        from recommender.zoo.hub import snapshot_folder

        return str(snapshot_folder(self.path, self.offline))

    def locate(self) -> None:
        self.model_dir()

    def _from_pretrained(self, auto_class: _AutoClass, output_loading_info: bool = False):
        """`auto_class.from_pretrained` on the model's folder (`model_dir`), read from disk only; a bad file in it
        (config.json, weights) is one UserError naming the file.

        An option of the call rather than HF_HUB_OFFLINE in the environment: huggingface_hub reads that variable
        once, at its first import, so setting it later either does nothing or holds for the rest of the process."""
        source = self.model_dir()
        folder = Path(source)
        check_model_config(folder)
        from safetensors import SafetensorError

        try:
            if output_loading_info:  # only models take it
                return auto_class.from_pretrained(source, local_files_only=True, output_loading_info=True)
            return auto_class.from_pretrained(source, local_files_only=True)
        except pickle.UnpicklingError as e:  # torch's weights_only refusal: the refusal stands, in one line
            raise UserError(f"{_weights_file(folder)}: {_load_refusal(e)}") from None
        except SafetensorError as e:
            raise UserError(f"{_weights_file(folder)}: not a readable safetensors file ({e})") from None
        except (OSError, ValueError, RuntimeError, EOFError, KeyError) as e:
            raise UserError(f"model folder {folder}: cannot be loaded ({' '.join(str(e).split())[:300]})") from None

    def tokenizer(self):
        """The model's tokenizer, loaded once."""
        if getattr(self, "_tokenizer", None) is None:
            from transformers import AutoTokenizer

            self._tokenizer = self._from_pretrained(AutoTokenizer)
        return self._tokenizer

    def _build_encoder(self) -> nn.Module:
        from transformers import AutoModel

        from recommender.zoo.nets import MeanPooledTransformer

        with quiet_loading():
            return MeanPooledTransformer(self._from_pretrained(AutoModel))

    def prepare(self, items: list | np.ndarray) -> dict[str, torch.Tensor]:
        enc = self.tokenizer()(list(items), padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}



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
        from recommender.zoo.nets import PooledImageModel

        return PooledImageModel(model, use_pooler=not fresh)

    def input_config(self) -> str:
        """The image processor's class and settings (resize, crop, rescale, normalisation): models that share them
        share their decoded and resized images (`recommender.zoo.inputs`)."""
        settings = {k: v for k, v in self.processor().to_dict().items() if k != "_processor_class"}
        return "grey->rgb;" + json.dumps(settings, sort_keys=True, default=str)

    def prepare(self, items: list | np.ndarray) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.processor()(images=rgb_images(items), return_tensors="pt")["pixel_values"]}
