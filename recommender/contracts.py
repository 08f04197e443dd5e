"""The contracts the packages exchange (docs/contracts.md), each defined once: the pair-table columns, the model,
dataset and protocol facts, score column names, protocol names, and the rules and constants more than one package
applies (the rankable-dataset rule, default budgets, the equal-value tolerance).

Plain Python only (no pandas or NumPy at import): the CLI reads these names at start-up.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from recommender.errors import UserError

# --- ids and the pair table -------------------------------------------------------------------------------------

MODEL, DATASET, PROTOCOL = "model", "dataset", "protocol"  # the id columns
TARGET_COLUMNS = ("performance", "selected_by")  # what a measured pair adds to a pair to predict

# Model facts: categorical, then scalar (parameters in millions, GMACs, input size, upstream top-1 in %).
MODEL_CATEGORICAL = ("family", "pretrain_dataset")
MODEL_SCALARS = ("params_m", "gmacs", "input_size", "imagenet_top1")
MODEL_FACTS = (*MODEL_CATEGORICAL, *MODEL_SCALARS)
# Dataset facts: training examples (of the protocol, in a pair table), classes, modality, group. The encoder's
# one-hot order is (group, modality), kept as trained recommenders have it.
DATASET_SCALARS = ("examples", "classes")
DATASET_CATEGORICAL = ("group", "modality")
DATASET_FACTS = ("examples", "classes", "modality", "group")
EXAMPLES_FULL = "examples_full"  # the size of the dataset's full official train split
# Protocol facts, stored as data (table `protocols`) and carried in a pair table as `p_<fact>`.
PROTOCOL_FACTS = ("history", "examples", "train_fraction", "epochs", "lr_min", "lr_max", "optimizer", "peft",
                  "lora_r", "split")
PROTOCOL_PREFIX = "p_"
SCORE_PREFIX = "score_"


def protocol_column(fact: str) -> str:
    """The pair-table column of a protocol fact: ``p_<fact>``."""
    return PROTOCOL_PREFIX + fact


PROTOCOL_COLUMNS = tuple(protocol_column(fact) for fact in PROTOCOL_FACTS)
# A configuration's hyper-parameters, carried in a job table as `h_<name>`: read from a job's own hparams, else its
# protocol's facts (one learning rate, its epochs); PEFT, LoRA rank and train fraction are the protocol's (`p_`).
CONFIG_HPARAMS = ("lr", "epochs")
HPARAM_PREFIX = "h_"


def hparam_column(name: str) -> str:
    """The job-table column of a configuration hyper-parameter: ``h_<name>``."""
    return HPARAM_PREFIX + name


# One row per (model, dataset, protocol), in this order; then any `score_<name>` columns.
PAIR_COLUMNS = (MODEL, DATASET, *TARGET_COLUMNS, *MODEL_FACTS, *DATASET_FACTS)
PAIR_TABLE_COLUMNS = (*PAIR_COLUMNS, EXAMPLES_FULL, PROTOCOL, *PROTOCOL_COLUMNS)
MODEL_COLUMNS = (MODEL, *MODEL_CATEGORICAL, *MODEL_SCALARS)  # a model pool's columns
DATASET_COLUMNS = (DATASET, *DATASET_CATEGORICAL, *DATASET_SCALARS)  # a dataset to predict for


def dataset_row(name: str, **facts: object) -> dict[str, object]:
    """The dataset side of a pair-table row: ``dataset``, then each of ``DATASET_FACTS`` (NaN where not given or
    None); a fact outside them is a TypeError."""
    unknown = sorted(set(facts) - set(DATASET_FACTS))
    if unknown:
        raise TypeError(f"not dataset facts: {', '.join(unknown)}")
    return {DATASET: name, **{f: math.nan if facts.get(f) is None else facts[f] for f in DATASET_FACTS}}


def protocol_examples(per_dataset: Any, fixed: Any, train_fraction: Any, full: Any) -> tuple[Any, Any]:
    """The training examples of pairs under their protocol (``p_examples``) and the pairs' ``examples``, from
    pandas Series (or scalars) aligned on the pairs: the protocol's count on the dataset (``per_dataset``), else its
    fixed count, else its train fraction of the full official split (floored); ``examples`` is that count, or the
    full split where the protocol gives none. The one rule of the store's pair table and `recommend`'s pairs."""
    import numpy as np  # only where pairs are built: the CLI reads this module at start-up

    counts = per_dataset.fillna(fixed).fillna(np.floor(full * train_fraction))
    return counts, counts.fillna(full)


def score_column(name: str) -> str:
    """The pair-table column of a stored transferability score: ``score_<name>``."""
    return SCORE_PREFIX + name


def score_name(column: str) -> str:
    """The score a ``score_<name>`` column holds (the inverse of `score_column`)."""
    return column.removeprefix(SCORE_PREFIX)


def is_score_column(column: object) -> bool:
    """Whether a pair-table column holds a transferability score."""
    return isinstance(column, str) and column.startswith(SCORE_PREFIX)


# --- protocol names -----------------------------------------------------------------------------------------------

DEFAULT_PROTOCOL = "vtab1k"  # SHiFT's VTAB-1k runs (train slice `:800`, 25 epochs): the bundled main history
ALL_PROTOCOLS = "all"  # names every stored protocol


def protocol_names(protocol: str | Sequence[str], stored: Sequence[str]) -> list[str]:
    """The protocols a request names: one, several (a list or ``"a,b"``), or ``"all"`` of ``stored``; in order,
    without repeats; a blank name or "all" on an empty store is a one-line error."""
    if isinstance(protocol, str):
        if protocol == ALL_PROTOCOLS:
            if not stored:
                raise UserError("no jobs stored; run `recommender history init`")
            return sorted(stored)
        protocol = protocol.split(",")
    names = list(dict.fromkeys(name.strip() for name in protocol))
    if not names or "" in names:
        raise UserError(f"protocol names must not be blank: {protocol!r}")
    return names


def slice_size(train_slice: str | None) -> tuple[float, float]:
    """(examples, fraction of the train split) of a train slice: `:800` is 800 examples, `:80%` and `:0.8` are 0.8
    of the split; NaN where the slice does not say."""
    text = "" if train_slice is None else train_slice.strip()
    if re.fullmatch(r":\d+", text):
        return float(text[1:]), math.nan
    if re.fullmatch(r":\d+(\.\d+)?%", text):
        return math.nan, float(text[1:-1]) / 100
    if re.fullmatch(r":0?\.\d+|:1\.0*", text):
        return math.nan, float(text[1:])
    return math.nan, math.nan


def shift_protocol(train_slice: str | None, epochs: float | None) -> str:
    """SHiFT's protocol name: `vtab1k` for the `:800`, 25-epoch runs, else `shift:<train_slice>:<epochs>ep`."""
    slice_text = "unsliced" if train_slice is None else train_slice
    epochs_text = "?" if epochs is None else f"{epochs:g}"
    return DEFAULT_PROTOCOL if (slice_text, epochs_text) == (":800", "25") else f"shift:{slice_text}:{epochs_text}ep"


def transfergraph_protocol(train_slice: str | None, peft: str | None, lora_r: float | None,
                           epochs: float | None) -> str:
    """`transfergraph:<parts>` from a record's own settings: the train slice (`70pct`, `800ex`), the fine-tuning
    method (`full`, `lora-r8`), the epochs (`30ep`); a setting the record does not have is left out."""
    parts = []
    examples, fraction = slice_size(train_slice)
    if not math.isnan(fraction):
        parts.append(f"{fraction * 100:g}pct")
    elif not math.isnan(examples):
        parts.append(f"{examples:g}ex")
    elif train_slice is not None:
        parts.append(train_slice.strip())
    if peft is not None:
        parts.append(peft.strip() + ("" if lora_r is None else f"-r{lora_r:g}"))
    parts.append("?ep" if epochs is None else f"{epochs:g}ep")
    return "transfergraph:" + "-".join(parts)


FINETUNE_HEADS = ("random", "probe")  # the fine-tuning head's start: fresh, or the linear probe's fit (LP-FT)


def finetune_protocol(max_epochs: int, train_examples: int, head: str = "random", max_length: int | None = None,
                      image_size: int | None = None) -> str:
    """The protocol `recommender finetune` and `recommender campaign` log a run under unless named: what was run.

    `finetune:3ep-120ex` starts from a fresh random head (the name it always had); `finetune:lpft-3ep-120ex` starts
    from the linear probe's head (LP-FT, Kumar et al. 2022); inputs cut to fit a budget add `-tok<max_length>` (texts)
    or `-px<image_size>` (images: at most that many pixels a side; a net whose fixed input is smaller, MTCNN's 12-48
    px, keeps its own): `finetune:lpft-3ep-180ex-tok64`. Runs with other budgets or starts are not
    comparable, so they never share a protocol (nor the bundled `full-finetune`)."""
    if head not in FINETUNE_HEADS:
        raise UserError(f"unknown head {head!r}: choose from {', '.join(FINETUNE_HEADS)}")
    parts = [*(["lpft"] if head == "probe" else []), f"{max_epochs}ep", f"{train_examples}ex"]
    parts += [*([f"tok{max_length}"] if max_length else []), *([f"px{image_size}"] if image_size else [])]
    return "finetune:" + "-".join(parts)


# --- rules and constants shared by packages ----------------------------------------------------------------------

# A ranking group (a dataset, or a (dataset, protocol)) is rankable with at least this many models and performance
# that is not constant: evaluation reports only those, and tuning optimises the same measure.
MIN_MODELS = 3
EVALUATION_BUDGETS = (1, 2, 3, 5, 10)  # budgets B the evaluation reports by default (top-B regret, hybrids)
ADAPTIVE_BUDGETS = (1, 3, 5, 10)  # budgets an adaptive search plans for by default (`recommender next`)
# Two stored numbers are the same value within this relative tolerance: text formats round what they write.
SAME_VALUE_RTOL = 1e-9
