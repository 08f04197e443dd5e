"""What `recommend` and `next` are asked, read from the user's files: the datasets (with their facts), a pool of
candidate models, score values and the results observed so far. Each reader checks what only the file can say (its
columns, its rows' names and numbers) and reports a problem in one line naming the file, row and column; the
computations (`recommender.models.recommend`, `recommender.models.observed`) take the tables read here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recommender.errors import UserError
from recommender.history.ingest import read_table

FACTS = ("examples", "classes", "group", "modality")  # the facts a user may give of a dataset (flags, file columns)
NUMBER_FACTS = ("examples", "classes")


@dataclass(frozen=True)
class UserTable:
    """A table as read from a user's file, and the file's name for messages (row i of the table is the file's
    data row i + 1)."""

    frame: pd.DataFrame
    label: str


def read_user_table(path: str | Path | None) -> UserTable | None:
    """The file at ``path`` as read (`recommender.history.ingest.read_table`), None without a path."""
    return None if path is None else UserTable(read_table(path), str(path))


def dataset_requests(names: Sequence[str] = (), path: str | Path | None = None,
                     **facts: object) -> pd.DataFrame:
    """The datasets asked about, one row each with columns ``dataset`` and ``FACTS``: the ``names`` with the same
    ``facts`` (flags), or the rows of a file (CSV/Parquet/JSON Lines: a ``dataset`` column and any of ``FACTS``)."""
    if path is not None:
        if any(v is not None for v in facts.values()):
            raise UserError("with a datasets file, give the datasets' facts as its columns, not as flags")
        return _read_requests(Path(path))
    if not names:
        raise UserError("no dataset given")
    duplicated = sorted({n for n in names if list(names).count(n) > 1})
    if duplicated:
        raise UserError(f"dataset(s) named twice: {', '.join(duplicated)}")
    return pd.DataFrame([{"dataset": name, **{k: facts.get(k) for k in FACTS}} for name in names],
                        columns=["dataset", *FACTS])


def _read_requests(path: Path) -> pd.DataFrame:
    """A datasets file, checked: one line naming the file, row and column of the first problem."""
    table = read_table(path)
    unknown = [c for c in table.columns if c not in ("dataset", *FACTS)]
    if "dataset" not in table.columns or unknown:
        raise UserError(f"{path}: columns must be dataset and any of {', '.join(FACTS)}"
                        + (f"; unknown column(s) {', '.join(map(str, unknown))}" if unknown else
                           "; no dataset column"))
    if table.empty:
        raise UserError(f"{path}: no datasets")
    out = table.reindex(columns=["dataset", *FACTS]).reset_index(drop=True)
    for i, name in enumerate(out["dataset"], start=1):
        if pd.isna(name) or not str(name).strip():
            raise UserError(f"{path}: row {i}: dataset: blank name")
        if (out["dataset"].iloc[: i - 1] == name).any():
            raise UserError(f"{path}: row {i}: dataset: {name} is named again")
    for column in NUMBER_FACTS:
        values = pd.to_numeric(out[column], errors="coerce")
        for i, (text, value) in enumerate(zip(out[column], values, strict=True), start=1):
            if pd.notna(text) and not (np.isfinite(value) and value > 0):
                raise UserError(f"{path}: row {i}: {column}: {text!r} is not a positive number")
        out[column] = values.astype(float)
    return out


def read_pool(path: str | Path) -> pd.DataFrame:
    """A file of candidate models: a ``model`` column and any model facts (the rest come from the store)."""
    pool = read_table(path)
    if "model" not in pool.columns:
        raise UserError(f"{path}: the model pool needs a 'model' column")
    return pool


def read_scores(path: str | Path, datasets: Sequence[str]) -> pd.DataFrame:
    """A file of score values (model,score,value or model,score_<name>), with a ``dataset`` column; one that has
    none holds the values of the one dataset asked about."""
    scores = read_table(path)
    if "dataset" not in scores.columns:
        if len(datasets) > 1:
            raise UserError(f"{path}: a scores file for several datasets needs a dataset column")
        scores = scores.assign(dataset=datasets[0])
    return scores
