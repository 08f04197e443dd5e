"""Shared by the zoo-model tests: skipping a test whose model packages are absent, and one short fine-tuning run
that keeps the encoder it trained (`finetune` resets the provider to its pre-trained weights when done)."""

from __future__ import annotations

import importlib.util

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
