"""The real public histories shipped as package data in `bundled_data/` (see its SOURCES.md) and how
`history init` loads them (read through importlib.resources, so a wheel install works from any folder)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING

import pandas as pd

from recommender.history.ingest import alias_batch, build_batch, read_table
from recommender.history.store import Store
from recommender.progress import progress

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

HISTORY_DIR: Traversable = resources.files("recommender.history") / "bundled_data"
SCORE_NAMES = {"logme": "logme", "regularized_hscore": "hscore_reg"}


ALIASES_FILE = "dataset_aliases.csv"


@dataclass(frozen=True)
class Known:
    """What a bundled file's preparation may look up: the alias map and the datasets with official features."""

    aliases: dict[str, str]
    datasets: frozenset[str]


def _hf_models(frame: pd.DataFrame, known: Known) -> pd.DataFrame:
    """SHiFT's HF models: the upstream accuracy is a fraction; the contract's `imagenet_top1` is in %."""
    reported = pd.to_numeric(frame["reported_accuracy_on_pretrain_dataset"], errors="coerce") * 100
    top1 = pd.to_numeric(frame["imagenet_top1"], errors="coerce")
    return frame.assign(imagenet_top1=top1.fillna(reported))


def _scores(frame: pd.DataFrame, known: Known) -> pd.DataFrame:
    """Score names of the TransferGraph records in this project's spelling."""
    return frame.assign(metric=frame["metric"].map(SCORE_NAMES).fillna(frame["metric"]))


def _transfergraph(frame: pd.DataFrame, known: Known) -> pd.DataFrame:
    """TransferGraph's class counts fill datasets without official features (stanfordcars); where VTAB defines a
    dataset its count stands (TransferGraph writes 101 for caltech101, VTAB 102 with the background class, and 10
    for flowers), and the job keeps TransferGraph's value as `dataset_num_classes`."""
    canonical = frame["dataset"].map(lambda name: known.aliases.get(name, name))
    return frame.assign(classes=frame["dataset_num_classes"].where(~canonical.isin(known.datasets)))


@dataclass(frozen=True)
class BundledFile:
    """One shipped file and how it maps onto the store."""

    name: str
    kind: str
    preset: str = "long"
    mapping: dict[str, str] = field(default_factory=dict)
    constants: dict[str, str] = field(default_factory=dict)
    prepare: Callable[[pd.DataFrame, Known], pd.DataFrame] | None = None


DATASETS_FILE = "datasets.csv.gz"
# Feature tables first, so the jobs' own feature columns (modality, pre-training data) only fill gaps.
BUNDLED = (
    BundledFile(DATASETS_FILE, "datasets", mapping={"num_classes": "classes", "num_train_full": "examples"}),
    BundledFile("models_hf.csv.gz", "models", mapping={"img_size": "input_size", "param_count": "params_m"},
                prepare=_hf_models),
    BundledFile("models_timm.csv.gz", "models", mapping={"img_size": "input_size", "param_count": "params_m"}),
    BundledFile("models_parc.csv.gz", "models"),
    BundledFile("history_shift_vision.csv.gz", "jobs", "shift"),
    BundledFile("history_shift_text.csv.gz", "jobs", "shift"),
    BundledFile("history_transfergraph_image.csv.gz", "jobs", "transfergraph", constants={"modality": "image"},
                prepare=_transfergraph),
    BundledFile("history_transfergraph_text.csv.gz", "jobs", "transfergraph", constants={"modality": "text"},
                prepare=_transfergraph),
    BundledFile("history_parc.csv.gz", "jobs", "parc", constants={"modality": "image", "history": "parc"}),
    BundledFile("history_small_zoos_sfda_emms.csv.gz", "jobs",
                constants={"protocol": "full-finetune", "modality": "image", "history": "small-zoos-sfda-emms"}),
    BundledFile("history_timm_imagenet_variants.csv.gz", "jobs",
                mapping={c: f"hp.{c}" for c in ("img_size", "crop_pct", "interpolation")},
                constants={"protocol": "imagenet-eval", "modality": "image", "history": "timm-imagenet-variants"}),
    BundledFile("scores_logme_hscore.csv.gz", "scores", mapping={"metric": "score", "runtime_s": "seconds"},
                prepare=_scores),
)


def read_bundled(name: str, directory: Traversable = HISTORY_DIR) -> pd.DataFrame:
    """One bundled file as a raw table (as `read_table` reads it)."""
    with resources.as_file(directory / name) as path:
        return read_table(path)


def load_bundled(store: Store, directory: Traversable = HISTORY_DIR, quiet: bool = True) -> pd.DataFrame:
    """Ingest the alias table and every bundled file in one transaction (all or nothing; again adds nothing);
    rows, added and read seconds per file. Rows land on the canonical dataset names. Unless `quiet`, the files
    read and checked show as progress (`recommender.progress`)."""
    start = time.perf_counter()
    definitions = read_bundled(ALIASES_FILE, directory)
    aliases = alias_batch(definitions, ALIASES_FILE)
    known = Known({**store.alias_map(), **dict(zip(definitions["alias"], definitions["dataset"], strict=True))},
                  frozenset(read_bundled(DATASETS_FILE, directory)["dataset"]))
    batches = [aliases]
    rows = [{"file": ALIASES_FILE, "rows": len(definitions), "seconds": time.perf_counter() - start}]
    for spec in progress(BUNDLED, desc="history init: reading and checking", quiet=quiet, unit="file"):
        start = time.perf_counter()
        frame = read_bundled(spec.name, directory)
        if spec.prepare is not None:
            frame = spec.prepare(frame, known)
        batches.append(build_batch(frame, spec.name, spec.kind, spec.preset, spec.mapping, spec.constants,
                                   aliases=known.aliases))
        rows.append({"file": spec.name, "rows": len(frame), "seconds": time.perf_counter() - start})
    kinds = ["dataset_aliases", *(spec.kind for spec in BUNDLED)]
    for row, kind, added in zip(rows, kinds, store.write_all(batches), strict=True):
        row["added"] = added.get(kind, 0)
    return pd.DataFrame(rows, columns=["file", "rows", "added", "seconds"])
