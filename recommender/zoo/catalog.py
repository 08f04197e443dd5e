"""The models the bundled histories know, by the name the history stores (a Hugging Face id, a timm name): where
each loads from (the Hugging Face hub or timm), its modality and its stored facts.

A model's name here is the recommender's model id and the store's, so a model scored by `rank` under this name
meets its history. Read once per process from the bundled files (`recommender.history.bundled`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import pandas as pd

from recommender.contracts import MODEL_FACTS

HF, TIMM = "hf", "timm"
# the bundled job files whose models load from the Hugging Face hub (by their SHiFT or TransferGraph id), and
# their modality where the file has no column for it
_HF_HISTORIES = {"history_shift_vision.csv.gz": None, "history_shift_text.csv.gz": None,
                 "history_transfergraph_image.csv.gz": "image", "history_transfergraph_text.csv.gz": "text"}
_TIMM_HISTORY = "history_timm_imagenet_variants.csv.gz"
# the bundled feature tables' column of each model fact (the mapping `history init` applies)
_FACT_COLUMNS = {"params_m": "param_count", "input_size": "img_size"}


@dataclass(frozen=True)
class HistoryModel:
    """A model of the bundled histories: its name, where it loads from (HF or TIMM), its modality and its stored
    facts (`contracts.MODEL_FACTS`, None where unknown)."""

    name: str
    source: str
    modality: str
    facts: dict[str, str | float | None]


def _facts(row: pd.Series) -> dict[str, str | float | None]:
    """A feature-table row's model facts: categoricals as text, scalars as numbers (None where missing)."""
    out: dict[str, str | float | None] = {}
    for fact in MODEL_FACTS:
        value = row.get(_FACT_COLUMNS.get(fact, fact))
        if fact in ("family", "pretrain_dataset"):
            out[fact] = None if pd.isna(value) else str(value)
        else:
            number = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
            out[fact] = None if pd.isna(number) or not math.isfinite(float(number)) else float(number)
    return out


@lru_cache(maxsize=1)
def history_models() -> dict[str, HistoryModel]:
    """Every model the bundled histories name, by that name: the feature tables' models with their facts, then the
    job files' models they lack (no facts)."""
    from recommender.history.bundled import _hf_models, read_bundled

    known: dict[str, HistoryModel] = {}
    hf = _hf_models(read_bundled("models_hf.csv.gz"), None)  # type: ignore[arg-type]  # the alias map is unused
    for _, row in hf.iterrows():
        known[row["model"]] = HistoryModel(row["model"], HF, str(row["modality"]), _facts(row))
    for _, row in read_bundled("models_timm.csv.gz").iterrows():
        known[row["model"]] = HistoryModel(row["model"], TIMM, "image", _facts(row))
    empty = dict.fromkeys(MODEL_FACTS)
    for name, modality in _HF_HISTORIES.items():
        jobs = read_bundled(name)
        modalities = jobs["modality"] if modality is None else pd.Series(modality, index=jobs.index)
        for model, kind in zip(jobs["model"], modalities, strict=True):
            known.setdefault(model, HistoryModel(model, HF, str(kind), empty))
    for name, model in known.items():  # SHiFT's timm/NAME ids: timm's own weights on the hub, loaded by timm
        if name.startswith("timm/"):
            known[name] = HistoryModel(name, TIMM, model.modality, model.facts)
    for model in read_bundled(_TIMM_HISTORY)["model"].unique():
        known.setdefault(model, HistoryModel(model, TIMM, "image", empty))
    return known


def history_model(name: str) -> HistoryModel | None:
    """The bundled histories' model of this name, or None."""
    return history_models().get(name)
