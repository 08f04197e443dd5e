"""Evaluation splits of a pair table (SPEC §4): unseen model, unseen dataset, leave-one-dataset-out."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recommender.errors import UserError

SPLITS = ("unseen-model", "unseen-dataset", "loo")


@dataclass(frozen=True)
class Fold:
    """One train/test split: strategies fit on `train` and rank the models of each dataset in `test`."""

    name: str
    repeat: int
    train: pd.DataFrame
    test: pd.DataFrame


def unseen_model_folds(pairs: pd.DataFrame, seeds: Sequence[int] = (0, 1, 2, 3, 4),
                       test_fraction: float = 0.2) -> Iterator[Fold]:
    """Per dataset and seed: train on a random (1 - test_fraction) of its models, test on the rest."""
    if not 0 < test_fraction < 1:
        raise UserError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    for dataset, part in pairs.groupby("dataset", sort=True):
        models = np.sort(part["model"].unique())
        n_test = max(1, int(round(test_fraction * models.size)))
        if models.size - n_test < 1:
            continue  # nothing to train on; reported by the runner as a dataset without folds
        for seed in seeds:
            held = np.random.default_rng(seed).choice(models, n_test, replace=False)
            is_test = part["model"].isin(held)
            yield Fold(f"{dataset}/seed{seed}", seed, part.loc[~is_test], part.loc[is_test])


def unseen_dataset_folds(pairs: pd.DataFrame, sources: Sequence[str]) -> Iterator[Fold]:
    """Train on the named source datasets with all their models; test on the known models of every other dataset."""
    unknown = sorted(set(sources) - set(pairs["dataset"]))
    if not sources or unknown:
        raise UserError(f"unseen-dataset needs source datasets present in the table; unknown: {unknown or 'none given'}")
    is_source = pairs["dataset"].isin(sources)
    train = pairs.loc[is_source]
    test = pairs.loc[~is_source & pairs["model"].isin(train["model"])]
    if test.empty:
        raise UserError("unseen-dataset: no target dataset shares a model with the sources")
    yield Fold("sources=" + ",".join(sorted(sources)), 0, train, test)


def loo_folds(pairs: pd.DataFrame) -> Iterator[Fold]:
    """One fold per dataset: train on every other dataset, test on this one."""
    if pairs["dataset"].nunique() < 2:
        raise UserError("leave-one-dataset-out needs at least 2 datasets")
    for dataset in sorted(pairs["dataset"].unique()):
        held = pairs["dataset"] == dataset
        yield Fold(dataset, 0, pairs.loc[~held], pairs.loc[held])


def make_folds(pairs: pd.DataFrame, split: str, sources: Sequence[str] = (), seeds: Sequence[int] = (0, 1, 2, 3, 4),
               test_fraction: float = 0.2) -> list[Fold]:
    """The folds of a named split."""
    if split == "unseen-model":
        return list(unseen_model_folds(pairs, seeds, test_fraction))
    if split == "unseen-dataset":
        return list(unseen_dataset_folds(pairs, sources))
    if split == "loo":
        return list(loo_folds(pairs))
    raise UserError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
