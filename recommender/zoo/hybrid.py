"""Hybrid search on the user's data (`rank --from-history`), as Guided Recommendation's hybrid: a task-agnostic stage
picks the recommender's top N of the history's models for the dataset (no look at its examples), then a task-aware
stage extracts features and computes scores for those N on the data and ranks them by d,m,S (`rank.rank_pool`).

Every row says which stage placed it: `task-aware` (scored on the data and ranked on both evidences) or
`task-agnostic` (picked by the history alone: its weights could not be had here, so it follows the scored ones in the
first stage's order, with the reason in the notes)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from recommender.errors import UserError
from recommender.zoo.datasets import Dataset

if TYPE_CHECKING:
    from recommender.history import Store
    from recommender.models.base import PairRecommender
    from recommender.zoo.provider import Provider

AWARE, AGNOSTIC = "task-aware", "task-agnostic"


@dataclass(frozen=True)
class Preselection:
    """The task-agnostic stage's picks: model, agnostic_rank (1..N) and history_z (the recommender's prediction,
    z-scored within the dataset), out of `pool` history models of the dataset's modality, in `seconds`."""

    picks: pd.DataFrame
    pool: int
    seconds: float
    notes: tuple[str, ...]


def preselect(recommender: PairRecommender, store: Store, ds: Dataset, n: int, protocol: str | None = None,
              modality: str | None = None, allow_modality_mismatch: bool = False) -> Preselection:
    """The recommender's top ``n`` untried models of the store's history for ``ds`` (`models.recommend.recommend`
    on the dataset's facts: its examples, classes and ``modality``, by default the data's), under ``protocol``."""
    from recommender.models.recommend import Request, recommend
    from recommender.models.request_files import dataset_requests

    if n < 1:
        raise UserError(f"--preselect must be at least 1, got {n}")
    start = time.perf_counter()
    requests = dataset_requests([ds.name], examples=float(len(ds)), classes=float(len(ds.classes)),
                                modality=modality or ds.modality)
    found = recommend(recommender, store, Request(requests, k=n, protocol=protocol,
                                                  allow_modality_mismatch=allow_modality_mismatch))
    ranked = found.table[found.table["rank"].notna()].head(n)
    if ranked.empty:
        raise UserError(f"the history holds no untried {modality or ds.modality} model to pre-select for {ds.name}")
    picks = pd.DataFrame({"model": ranked["model"].astype(str).to_numpy(),
                          "agnostic_rank": np.arange(1, len(ranked) + 1),
                          "history_z": ranked["predicted_z"].astype(float).to_numpy()})
    # rank shows no `expected` performance, so recommend's note on its scale is left out
    notes = tuple(note for note in found.all_notes() if "`expected`" not in note)
    return Preselection(picks, found.pool_size, time.perf_counter() - start, notes)


def folder_ties(specs: Sequence[str]) -> dict[str, str]:
    """`--models` entries NAME=FOLDER (a local model under a history's name) by NAME; with --from-history they are
    the only kind of entry (the candidates come from the history)."""
    plain = [s for s in specs if "=" not in s]
    if plain:
        raise UserError(f"with --from-history the candidates come from the history; --models only ties folders to "
                        f"history names (NAME=FOLDER), got {', '.join(plain)}")
    return {s.partition("=")[0].strip(): s for s in specs}


def candidates(picks: pd.DataFrame, ties: dict[str, str], offline: bool = False
               ) -> tuple[list[Provider], dict[str, str]]:
    """Providers of the picked models whose weights are here or can be fetched (`Provider.locate`), by their
    history name or the folder tied to it; and the others, each with the one-line reason."""
    from recommender.zoo.zoos import get_provider

    providers: list[Provider] = []
    unavailable: dict[str, str] = {}
    for name in picks["model"]:
        try:
            provider = get_provider(ties.get(name, name), offline)
            provider.locate()
        except (UserError, OSError) as e:
            unavailable[name] = str(e)
            continue
        providers.append(provider)
    if not providers:
        raise UserError(f"none of the {len(picks)} pre-selected models can be loaded here; the first: "
                        f"{next(iter(unavailable.values()))}")
    return providers, unavailable


def with_stages(ranked: pd.DataFrame, picks: pd.DataFrame, unavailable: dict[str, str]) -> pd.DataFrame:
    """The task-aware ranking (rank_pool's table, tried models last and unranked) with each row's stage and
    first-stage rank and prediction, and the picks that could not be scored after the ranked ones, in the first
    stage's order, ranked on from there."""
    first = picks.set_index("model")
    out = ranked.assign(stage=AWARE, agnostic_rank=ranked["model"].map(first["agnostic_rank"]),
                        history_z=ranked["model"].map(first["history_z"]))
    head, tail = out[out["rank"].notna()], out[out["rank"].isna()]
    left = picks[picks["model"].isin(list(unavailable))].assign(stage=AGNOSTIC)
    left.insert(0, "rank", np.arange(len(head) + 1, len(head) + len(left) + 1))
    return pd.concat([head, left, tail], ignore_index=True).astype({"rank": "Int64"})


def stage_note(selection: Preselection, scored: int, aware_seconds: float, unavailable: dict[str, str]) -> str:
    """One line: what each stage did and its cost in seconds."""
    note = (f"stages: task-agnostic {selection.seconds:.3g} s (the recommender's top {len(selection.picks)} of "
            f"{selection.pool} history models); task-aware {aware_seconds:.3g} s (features and scores of {scored} "
            f"model(s), then the d,m,S ranking)")
    if unavailable:
        note += (f"; {len(unavailable)} pick(s) not scored, kept in the first stage's order: "
                 + "; ".join(f"{name}: {why}" for name, why in unavailable.items()))
    return note
