"""Shared by the zoo tests: skipping a test whose model packages are absent, one short fine-tuning run that keeps
the encoder it trained (`finetune` resets the provider to its pre-trained weights when done), and tiny random Hugging
Face models (ViT, ConvNeXt, BERT with a WordPiece vocabulary written here) saved as transformers saves a model."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from recommender.zoo.datasets import Dataset
from recommender.zoo.provider import Provider


def need(*packages: str) -> None:
    """Skip the calling test, saying how to install them, unless every one of `packages` can be imported."""
    for p in packages:
        if importlib.util.find_spec(p) is None:
            pytest.skip(f"{p} not installed (bash scripts/setup.sh installs the offline zoos)")


def finetune_and_capture(provider: Provider, ds: Dataset, lr: float,
                         monkeypatch: pytest.MonkeyPatch) -> tuple[dict, dict, pd.DataFrame]:
    """(pre-trained state, fine-tuned state, job rows) of a one-epoch `finetune` run at `lr` (batches of 8)."""
    from recommender.zoo.finetune import finetune

    provider.reset_encoder()
    pretrained = {k: v.detach().clone() for k, v in provider.encoder().state_dict().items()}
    built: list[torch.nn.Module] = []
    build = provider._build_encoder

    def keep() -> torch.nn.Module:
        built.append(build())
        return built[-1]

    monkeypatch.setattr(provider, "_build_encoder", keep)
    jobs = finetune(provider, ds, lrs=[lr], max_epochs=1, batch_size=8, seed=0)
    return pretrained, built[0].state_dict(), jobs


WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "cat", "dog", "is", "good", "i", "love", "it",
         "not", "bad", "day", "this", "##s", "happy", "sad"]


def tiny_vit(folder: Path, seed: int = 0, classifier: bool = False) -> Path:
    """A random ViT (32 px, 8 px patches, 32-d) with its image processor, saved as transformers saves a model."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor, ViTModel

    torch.manual_seed(seed)
    config = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                       image_size=32, patch_size=8, num_labels=3)
    (ViTForImageClassification if classifier else ViTModel)(config).save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def tiny_convnext(folder: Path) -> Path:
    """A random two-stage ConvNeXt (8 and 16 channels) with its image processor."""
    from transformers import ConvNextConfig, ConvNextImageProcessor, ConvNextModel

    torch.manual_seed(1)
    ConvNextModel(ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2)).save_pretrained(folder)
    ConvNextImageProcessor(size={"shortest_edge": 32}).save_pretrained(folder)
    return folder


def tiny_bert(folder: Path, seed: int = 0) -> Path:
    """A random BERT (16-d, one layer) with a WordPiece tokenizer over the vocabulary written here."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    BertModel(BertConfig(vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(folder)
    BertTokenizerFast(str(folder / "vocab.txt")).save_pretrained(folder)
    return folder


def processed(folder: Path, images: np.ndarray) -> torch.Tensor:
    """Pixel values straight from the folder's image processor (grey images as three equal channels)."""
    from transformers import AutoImageProcessor

    rgb = [np.repeat(img[..., None], 3, axis=2) for img in images]
    return AutoImageProcessor.from_pretrained(folder)(images=rgb, return_tensors="pt")["pixel_values"]
