"""Ingest a file into the store: read it, apply the column map and preset, validate every row, write all or nothing."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from recommender.errors import UserError
from recommender.history import records
from recommender.history.presets import JOBS_ONLY, PRESETS
from recommender.history.records import KINDS, ROW, Batch
from recommender.history.store import Store

FILE_TYPES = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl",
              ".ndjson": "jsonl", ".json": "jsonl"}


def file_type(path: Path) -> str:
    """csv, tsv, parquet or jsonl, from the file name (a .gz/.bz2/.xz/.zst suffix is looked through)."""
    suffixes = [s for s in path.suffixes if s not in (".gz", ".bz2", ".xz", ".zst", ".zip")]
    kind = FILE_TYPES.get(suffixes[-1].lower()) if suffixes else None
    if kind is None:
        raise UserError(f"{path}: unknown file type (expected one of {', '.join(sorted(FILE_TYPES))})")
    return kind


def read_table(path: str | Path) -> pd.DataFrame:
    """Read CSV (cells kept as text; numbers are parsed during validation), Parquet or JSON Lines."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    kind = file_type(path)
    try:
        if kind in ("csv", "tsv"):
            return pd.read_csv(path, dtype=str, sep="," if kind == "csv" else "\t")
        if kind == "parquet":
            return pd.read_parquet(path)
        return pd.read_json(path, lines=True, dtype=False)
    except (ValueError, OSError) as exc:
        raise UserError(f"{path}: cannot read as {kind}: {exc}") from None


def parse_pairs(items: list[str] | None, what: str) -> dict[str, str]:
    """`a=b` arguments as a mapping (for --map and --set)."""
    pairs = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"{what} expects COLUMN=VALUE, got {item!r}")
        pairs[key.strip()] = value.strip()
    return pairs


def build_batch(frame: pd.DataFrame, label: str, kind: str = "jobs", preset: str = "long",
                mapping: Mapping[str, str] | None = None, constants: Mapping[str, str] | None = None,
                source: str | None = None) -> Batch:
    """Validate a raw table as `kind` in format `preset`: the batch holds store rows and every problem found."""
    if kind not in KINDS:
        raise UserError(f"{label}: unknown kind {kind!r} (expected one of {', '.join(KINDS)})")
    if preset not in PRESETS:
        raise UserError(f"{label}: unknown format {preset!r} (expected one of {', '.join(PRESETS)})")
    if preset in JOBS_ONLY and kind != "jobs":
        raise UserError(f"{label}: format {preset!r} holds jobs, not {kind}")
    frame = frame.rename(columns=dict(mapping or {})).assign(**dict(constants or {}))
    duplicated = frame.columns[frame.columns.duplicated()]
    if len(duplicated):
        raise UserError(f"{label}: column {duplicated[0]!r} appears twice (check --map)")
    frame = frame.assign(**{ROW: range(1, len(frame) + 1)})  # 1-based data row, header not counted
    batch = Batch(label)
    source = source or Path(label).name
    for table_kind, table in PRESETS[preset](frame, kind).items():
        if table_kind == "jobs":
            batch.tables["jobs"] = records.job_rows(table, batch, source)
        elif table_kind == "scores":
            batch.tables["scores"] = records.score_rows(table, batch, source)
        else:
            rows = records.feature_rows(table, table_kind, batch, source)
            batch.tables[table_kind] = records.merge_features(rows, table_kind, batch)
    return batch


def content_source(path: str | Path) -> str:
    """A file's default `source`: a hash of its bytes, so a renamed copy has the same jobs' keys."""
    with open(path, "rb") as f:
        return f"file-sha256:{hashlib.file_digest(f, 'sha256').hexdigest()[:12]}"


def ingest_file(store: Store, path: str | Path, kind: str = "jobs", preset: str = "long",
                mapping: Mapping[str, str] | None = None, constants: Mapping[str, str] | None = None,
                source: str | None = None) -> dict[str, int]:
    """Ingest one file all or nothing (default source: its content hash); rows added per table, or IngestError."""
    batch = build_batch(read_table(path), str(path), kind, preset, mapping, constants, source or content_source(path))
    return store.write(batch)
