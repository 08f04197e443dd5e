"""The results a user has observed on a dataset, for `next`: read from the store and from a `model,performance`
file, every problem one line naming file, row, column and reason."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from recommender.errors import UserError
from recommender.history.records import row_span
from recommender.models.request_files import UserTable

SHOWN_VALUES = 3  # values named in a grouped problem line before "..."


def observed_results(frame: pd.DataFrame, label: str, pool: set[str]) -> pd.Series:
    """`model,performance` rows (cells as read) as performance by model. Every kind of problem is one line
    `label: row N: column: reason`, or, where several rows share it, `label: rows 2, 5-9 (6 rows): column: reason`
    with the first values (ingest's grouping, `row_span`); the lines are raised together."""
    missing = [c for c in ("model", "performance") if c not in frame.columns]
    if missing:
        raise UserError(f"{label}: missing column(s) {', '.join(missing)} (need model,performance)")
    found: dict[tuple[str, str], list[tuple[int, str]]] = {}  # (column, kind) -> (row, the detail of that row)
    seen: dict[str, int] = {}
    models = frame["model"].map(lambda m: "" if pd.isna(m) else str(m).strip())
    numbers = pd.to_numeric(frame["performance"], errors="coerce").to_numpy(dtype=float)
    rows = np.arange(len(frame)) + 1 if not pd.api.types.is_integer_dtype(frame.index) else frame.index + 1
    for row, model, value, number in zip(rows, models, frame["performance"], numbers, strict=True):
        if not model:
            found.setdefault(("model", "empty"), []).append((row, ""))
        elif model not in pool:
            found.setdefault(("model", "unknown model"), []).append((row, repr(model)))
        elif model in seen:
            found.setdefault(("model", "repeated"), []).append((row, f"{model!r} repeated (also row {seen[model]})"))
        if not np.isfinite(number):
            found.setdefault(("performance", "not a finite number"), []).append((row, repr(value)))
        seen.setdefault(model, int(row))
    if found:
        raise UserError("\n".join(_problem_line(label, column, kind, hits) for (column, kind), hits in found.items()))
    return pd.Series(numbers, index=models.to_numpy(), name="performance")


def _problem_line(label: str, column: str, kind: str, hits: list[tuple[int, str]]) -> str:
    """One line for every row with one kind of problem: the row (or rows) and what it holds."""
    rows, details = [row for row, _ in hits], [detail for _, detail in hits]
    if kind == "empty":
        return f"{label}: {row_span(rows)}: {column}: empty"
    if kind == "repeated":
        what = _first(details)
    elif kind == "unknown model":
        what = f"unknown model {_first(details)} (not in the protocol's history)"
    else:
        what = f"{kind} ({_first(details)})"
    return f"{label}: {row_span(rows)}: {column}: {what}"


def _first(values: list[str]) -> str:
    """The first few values, comma-separated, `...` for the rest."""
    return ", ".join(values[:SHOWN_VALUES]) + (", ..." if len(values) > SHOWN_VALUES else "")


def rows_for_dataset(frame: pd.DataFrame, label: str, dataset: str) -> tuple[pd.DataFrame, str]:
    """The rows of an --observed file that are results on ``dataset`` (their index kept: errors name the file's
    rows): all of them without a ``dataset`` column; with one, only the rows that name ``dataset`` (a results file
    of several datasets serves each), and a phrase saying how many rows of which other datasets were left out ("" if
    none). A blank dataset cell, or a file without a row on ``dataset``, is a one-line error naming the file, row
    and column."""
    if "dataset" not in frame.columns:
        return frame, ""
    names = frame["dataset"].map(lambda d: "" if pd.isna(d) else str(d).strip())
    if (blank := names.eq("").to_numpy()).any():
        rows = [int(i) + 1 for i in np.flatnonzero(blank)]
        raise UserError(f"{label}: {row_span(rows)}: dataset: empty (name the dataset of each result, {dataset})")
    mine = names.eq(dataset).to_numpy()
    others = sorted(set(names[~mine]))
    if not mine.any():
        raise UserError(f"{label}: dataset: no row is on {dataset} (the file holds {_first(others)}); results on "
                        "another dataset are not results on this one")
    left = f"{int((~mine).sum())} row(s) on {_first(others)} left out" if others else ""
    return frame[mine], left


def gather_observed(pairs: pd.DataFrame, dataset: str, pool: set[str], given: UserTable | None = None,
                    protocol: str = "", unused: Mapping[str, int] | None = None, metric: str = ""
                    ) -> tuple[pd.Series, list[str]]:
    """The results observed on `dataset`: its measured pairs in `pairs` (the store's jobs of the protocol) for
    models of `pool`, then the `model,performance` rows on `dataset` of the user's file ``given``
    (``rows_for_dataset``, checked by `observed_results`), which override stored ones. Also one phrase per source
    saying what was used, and what was not: the stored results of models outside the pool, and ``unused``, the
    dataset's jobs under another metric than the protocol's ``metric``, counted by metric
    (`PairTables.logged_results`)."""
    mine = pairs[(pairs["dataset"] == dataset) & pairs["performance"].notna()]
    logged = mine[mine["model"].isin(pool)]
    observed = logged.drop_duplicates("model").set_index("model")["performance"].astype(float)
    skipped = [f"{n} under metric {other}" + (f", not {metric}" if metric else "")
               for other, n in sorted((unused or {}).items())]
    if outside := sorted(set(mine["model"]) - pool):
        skipped.append(f"{len(outside)} of model(s) outside the candidates: {_first(outside)}")
    sources = [f"{len(observed)} result(s) logged in the store for {dataset}" + (f" under {protocol}" if protocol
                                                                                 else "")
               + (f" (not used: {'; '.join(skipped)})" if skipped else "")]
    if given is not None:
        rows, left = rows_for_dataset(given.frame, given.label, dataset)
        results = observed_results(rows, given.label, pool)
        both = observed.index.intersection(results.index)
        sources.append(f"{len(results)} from {given.label}" + (f" (overriding {both.size} stored)" if both.size
                                                               else "") + (f" ({left})" if left else ""))
        observed = pd.concat([observed.drop(results.index, errors="ignore"), results])
    return observed, sources
