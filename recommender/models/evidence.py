"""What a ranking rests on: warnings where the pairs to rank lack the facts a recommender learned from, and the
refusal to apply a recommender to a modality it never saw."""

from __future__ import annotations

import warnings
from typing import cast

import pandas as pd

from recommender.errors import UserError
from recommender.models.base import PairRecommender
from recommender.models.features import BLOCKS, parse_features

SHOWN = 5  # names listed in a warning before "..."


class EvidenceWarning(UserWarning):
    """A ranking computed without the facts the recommender's features need."""


def _names(values: list[str]) -> str:
    """The first few names, comma-separated."""
    return ", ".join(values[:SHOWN]) + (", ..." if len(values) > SHOWN else "")


def _known(rows: pd.DataFrame, columns: tuple[str, ...]) -> list[str]:
    """The columns that hold a value in some row."""
    return [c for c in columns if c in rows.columns and rows[c].notna().any()]


def _trained_modalities(est: PairRecommender) -> list[str]:
    """The modalities the recommender was trained on (none recorded: empty)."""
    return cast(list[str], est.training_.get("modalities") or [])  # training metadata holds a list of names


def _dataset_gaps(est: PairRecommender, dataset: str, rows: pd.DataFrame) -> tuple[str | None, bool]:
    """What the dataset lacks that the recommender would use, as a warning (None when nothing is missing), and
    whether it lacks everything (then that one warning covers its missing scores too)."""
    blocks, scores = parse_features(est.features)
    trained = _trained_modalities(est)
    side = BLOCKS["d_side"].categorical + BLOCKS["d_side"].scalar if "d_side" in blocks else ()
    unchecked = bool(trained) and "modality" not in _known(rows, ("modality",))
    if ("d_id" in blocks and dataset in est.encoder_.categories_["dataset"]) or not (side or scores):
        # a trained dataset, or features that do not depend on the dataset: only the modality check can miss
        return (f"dataset {dataset} has no modality: it is not checked against the recommender's training "
                f"modalities ({', '.join(trained)})") if unchecked else None, False
    missing = [c for c in side if c not in _known(rows, side)]
    if len(missing) == len(side) and not _known(rows, scores):
        return (f"dataset {dataset} is new to the recommender and has no facts ({', '.join(side) or 'none used'})"
                f"{' or scores' if scores else ''}: its ranking is the one any new dataset gets"), True
    # a group (a benchmark's taxonomy) is optional for a user's dataset: its absence alone is not worth a warning
    missing = [c for c in missing if c != "group"] + (["modality"] if unchecked and "modality" not in missing else [])
    if not missing:
        return None, False
    return (f"dataset {dataset} is new to the recommender and lacks {', '.join(missing)}: "
            f"those features take their training defaults"), False


def check_modality(est: PairRecommender, pairs: pd.DataFrame, allow_mismatch: bool = False) -> None:
    """Refuse pairs of a modality ``est`` was never trained on; a warning instead when ``allow_mismatch``."""
    trained = _trained_modalities(est)
    if not trained or "modality" not in pairs.columns:
        return
    for dataset, rows in pairs.groupby(pairs["dataset"].astype(str), sort=True):
        for modality in rows["modality"].dropna().astype(str).unique():
            if modality not in trained:
                what = (f"the recommender was trained on {', '.join(trained)} datasets only, "
                        f"and {dataset} is {modality}")
                if not allow_mismatch:
                    raise UserError(f"{what}: its ranking would rest on nothing learned; "
                                    f"pass --allow-modality-mismatch to rank anyway")
                warnings.warn(f"{what}; ranking anyway (--allow-modality-mismatch)", EvidenceWarning, stacklevel=2)


def warn_missing_evidence(est: PairRecommender, pairs: pd.DataFrame) -> None:
    """Warn (EvidenceWarning, one per problem) where the pairs ``est`` is about to rank lack evidence:

    - a dataset new to the recommender without the facts or scores its features use, or without some of them;
    - pool models unknown to the recommender, with no facts and no scores (their predictions tie);
    - a score the features use that is missing for some models of a dataset (the dataset mean stands in).
    """
    blocks, scores = parse_features(est.features)
    for dataset, rows in pairs.groupby(pairs["dataset"].astype(str), sort=True):
        gap, factless = _dataset_gaps(est, dataset, rows)
        if gap:
            warnings.warn(gap, EvidenceWarning, stacklevel=2)
        if factless:
            continue  # that warning covers the missing scores too
        for column in scores:
            absent = rows.loc[rows[column].isna(), "model"].astype(str).tolist() if column in rows.columns else []
            if absent:
                warnings.warn(f"{column} is missing for {len(absent)} of {len(rows)} models on {dataset} "
                              f"({_names(absent)}): the dataset mean stands in", EvidenceWarning, stacklevel=2)
    model_side = BLOCKS["m_side"].categorical + BLOCKS["m_side"].scalar if "m_side" in blocks else ()
    known_ids = set(est.encoder_.categories_["model"]) if "m_id" in blocks else set()
    columns = [c for c in (*model_side, *scores) if c in pairs.columns]
    has_evidence = pairs[columns].notna().any(axis=1).groupby(pairs["model"].astype(str), sort=False).any()
    blind = [str(model) for model, known in has_evidence.items() if model not in known_ids and not known]
    if blind:
        warnings.warn(f"{len(blind)} of {pairs['model'].nunique()} pool models are unknown to the recommender and "
                      f"have no facts or scores ({_names(blind)}): their predictions tie", EvidenceWarning,
                      stacklevel=2)


def check_evidence(est: PairRecommender, pairs: pd.DataFrame, allow_modality_mismatch: bool = False) -> None:
    """``check_modality`` then ``warn_missing_evidence`` on the pairs ``est`` is about to rank."""
    check_modality(est, pairs, allow_modality_mismatch)
    warn_missing_evidence(est, pairs)
