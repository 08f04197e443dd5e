"""Evaluation splits of a pair table (SPEC §4): unseen model, unseen dataset, leave-one-dataset-out, cross-protocol.

A table with a `protocol` column may hold several protocols (histories). The pairs tested are those of the target
protocols (all of them unless named); the others are extra training history. A held-out dataset leaves training
under every protocol, so no result on it reaches a strategy. The folds within one table (leave-one-dataset-out,
unseen models) are `recommender.models.selection`'s, which the strategies' inner folds use too."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pandas as pd

from recommender.errors import UserError
from recommender.evaluation.catalog import SPLITS  # the names, where the CLI reads them without pandas
from recommender.models.selection import Fold, loo_folds, unseen_model_folds

__all__ = ["Fold", "cross_protocol_folds", "loo_folds", "make_folds", "unseen_dataset_folds", "unseen_model_folds"]


def unseen_dataset_folds(pairs: pd.DataFrame, sources: Sequence[str]) -> Iterator[Fold]:
    """Train on the named source datasets with all their models; test on the known models of every other dataset."""
    unknown = sorted(set(sources) - set(pairs["dataset"]))
    if not sources or unknown:
        raise UserError("unseen-dataset needs source datasets present in the table; "
                        f"unknown: {unknown or 'none given'}")
    is_source = pairs["dataset"].isin(sources)
    train = pairs.loc[is_source]
    test = pairs.loc[~is_source & pairs["model"].isin(train["model"])]
    if test.empty:
        raise UserError("unseen-dataset: no target dataset shares a model with the sources")
    yield Fold("sources=" + ",".join(sorted(sources)), 0, train, test)


def cross_protocol_folds(pairs: pd.DataFrame, train_protocols: Sequence[str], target: pd.Series) -> Iterator[Fold]:
    """Train on every pair of the training protocols; test on the target protocols' pairs of the models that
    training holds, one fold per target dataset, each marked seen or not by the training protocols."""
    if not train_protocols:
        raise UserError("cross-protocol needs --train-protocols (the protocols to train on)")
    train = pairs.loc[pairs["protocol"].isin(train_protocols)]
    if train.empty:
        raise UserError(f"cross-protocol: no pairs under the training protocols {', '.join(train_protocols)}")
    test = pairs.loc[target & ~pairs["protocol"].isin(train_protocols) & pairs["model"].isin(train["model"])]
    if test.empty:
        raise UserError("cross-protocol: no target pair shares a model with the training protocols")
    seen = frozenset(train["dataset"].astype(str)) & frozenset(test["dataset"].astype(str))
    for dataset in sorted(test["dataset"].unique()):
        yield Fold(str(dataset), 0, train, test.loc[test["dataset"] == dataset], seen)


def make_folds(pairs: pd.DataFrame, split: str, sources: Sequence[str] = (), seeds: Sequence[int] = (0, 1, 2, 3, 4),
               test_fraction: float = 0.2, protocols: Sequence[str] | None = None,
               train_protocols: Sequence[str] = ()) -> list[Fold]:
    """The folds of a named split. With `protocols` (a table with a `protocol` column) only those protocols' pairs
    are tested; `train_protocols` are what cross-protocol trains on (they must not be tested)."""
    if (protocols or train_protocols) and "protocol" not in pairs.columns:
        raise UserError("naming protocols needs a pair table with a protocol column")
    target = pairs["protocol"].isin(protocols) if protocols else pd.Series(True, index=pairs.index)
    if protocols and not target.any():
        raise UserError(f"no pairs under the protocol(s) {', '.join(protocols)}")
    if split == "cross-protocol":
        if set(protocols or ()) & set(train_protocols):
            raise UserError("cross-protocol: a protocol cannot be both trained on and tested")
        return list(cross_protocol_folds(pairs, train_protocols, target))
    if split == "unseen-model":  # within one dataset and protocol: other protocols' results are not this ranking's
        return list(unseen_model_folds(pairs.loc[target], seeds, test_fraction))
    if split == "unseen-dataset":
        return [Fold(f.name, f.repeat, f.train, f.test.loc[target], f.seen)
                for f in unseen_dataset_folds(pairs, sources) if target.loc[f.test.index].any()]
    if split == "loo":
        return [Fold(f.name, f.repeat, f.train, f.test.loc[target], f.seen) for f in loo_folds(pairs)
                if target.loc[f.test.index].any()]
    raise UserError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
