"""Ingest a file into the store: read it, apply the column map and preset, validate every row, write all or nothing."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TextIO

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
    """Read CSV/TSV (cells as text: only an empty cell is missing, so a model named `NA` stays `NA`; a BOM is
    dropped), Parquet or JSON Lines; any failure to read is one UserError line naming the file, and so is a column
    name the file holds twice (which no reader may rename or drop silently)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    kind = file_type(path)
    try:
        if kind in ("csv", "tsv"):
            sep = "," if kind == "csv" else "\t"
            if path.stat().st_size:  # the header as written (pandas would rename a second `x` to `x.1`)
                _check_names(path, pd.read_csv(path, sep=sep, encoding="utf-8-sig", header=None, nrows=1, dtype=str,
                                               keep_default_na=False).iloc[0].tolist())
            return pd.read_csv(path, sep=sep, encoding="utf-8-sig", dtype=str, keep_default_na=False,
                               na_values=[""])
        if kind == "parquet":
            import pyarrow.parquet as pq

            _check_names(path, pq.read_schema(path).names)
            return pd.read_parquet(path)
        return _read_json_lines(path)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 -- a corrupt file fails anywhere in the readers (EOFError, zlib, arrow)
        raise UserError(f"{path}: cannot read as {kind}: {type(exc).__name__}: {exc}") from None


def _check_names(path: Path, names: list, line: int | None = None) -> None:
    """A column name given twice is refused, naming it (a reader would keep one, or rename the other `x.1`); blank
    names are the reader's to number (`Unnamed: 0`)."""
    seen: set[object] = set()
    for name in names:
        if name in seen and name != "":
            where = f"line {line}: " if line is not None else ""
            raise UserError(f"{path}: {where}column {name!r} appears twice; give each column its own name")
        seen.add(name)


def _read_json_lines(path: Path) -> pd.DataFrame:
    """JSON Lines: one JSON object per line (blank lines skipped); a JSON array or other value is refused, and so
    is an object that names a key twice."""
    with open_compressed(path) as handle:
        lines = [(n, line) for n, line in enumerate(handle.read().lstrip("\ufeff").splitlines(), 1) if line.strip()]
    records = []
    for number, line in lines:
        try:
            value = json.loads(line, object_pairs_hook=partial(_object, path, line=number))
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: line {number}: not JSON: {exc}") from None
        if not isinstance(value, dict):
            what = "a JSON array" if isinstance(value, list) else f"a JSON {type(value).__name__}"
            raise UserError(f"{path}: line {number}: {what}, not an object; JSON Lines holds one object per line")
        records.append(value)
    return pd.DataFrame.from_records(records)


def _object(path: Path, pairs: list[tuple[str, object]], *, line: int) -> dict:
    """A JSON object whose keys are all different."""
    _check_names(path, [key for key, _ in pairs], line)
    return dict(pairs)


def open_compressed(path: Path) -> TextIO:
    """A text handle on a file, decompressed by its suffix (.gz, .bz2, .xz)."""
    openers: dict[str, Callable[..., TextIO]] = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
    opener = openers.get(path.suffix.lower())
    if opener is None and path.suffix.lower() in (".zst", ".zip"):
        raise UserError(f"{path}: JSON Lines compressed as {path.suffix} is not supported (use .gz, .bz2 or .xz)")
    return opener(path, "rt", encoding="utf-8") if opener else open(path, encoding="utf-8")


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
                source: str | None = None, aliases: Mapping[str, str] | None = None,
                rows: Sequence[int] | None = None) -> Batch:
    """Validate a raw table as `kind` in format `preset`: the batch holds store rows and every problem found.

    `aliases` (alias -> dataset) renames every dataset to its canonical name, so rows land on that dataset.
    `rows` numbers the table's rows as problems name them (default 1, 2, ...: the data rows of the file).
    """
    if kind not in KINDS:
        raise UserError(f"{label}: unknown kind {kind!r} (expected one of {', '.join(KINDS)})")
    if preset not in PRESETS:
        raise UserError(f"{label}: unknown format {preset!r} (expected one of {', '.join(PRESETS)})")
    if preset in JOBS_ONLY and kind != "jobs":
        raise UserError(f"{label}: format {preset!r} holds jobs, not {kind}")
    frame = _drop_blank_twins(frame.rename(columns=dict(mapping or {})))
    frame = frame.drop(columns=[c for c in constants or {} if c in frame]).assign(**dict(constants or {}))
    duplicated = frame.columns[frame.columns.duplicated()]
    if len(duplicated):
        raise UserError(f"{label}: column {duplicated[0]!r} appears twice (check --map)")
    frame = frame.assign(**{ROW: list(rows) if rows is not None else range(1, len(frame) + 1)})  # header not counted
    batch = Batch(label)
    records.check_cells(frame, batch)
    source = source or Path(label).name
    for table_kind, table in PRESETS[preset](frame, kind).items():
        if "dataset" in table and aliases:
            table = table.assign(dataset=resolve_aliases(table["dataset"], aliases))
        if table_kind == "jobs":
            batch.tables["jobs"] = records.job_rows(table, batch, source)
        elif table_kind == "scores":
            batch.tables["scores"] = records.score_rows(table, batch, source)
        elif table_kind == "protocol_datasets":
            batch.tables[table_kind] = records.protocol_dataset_rows(table, batch, source)
        else:
            features = records.feature_rows(table, table_kind, batch, source)
            batch.tables[table_kind] = records.merge_features(features, table_kind, batch)
    return batch


def _drop_blank_twins(frame: pd.DataFrame) -> pd.DataFrame:
    """Where --map gives a column the name of another, an all-blank one of the two holds nothing: it is dropped
    (exports carry empty `model` or `dataset` columns beside the filled ones); two filled ones stay a problem."""
    names = frame.columns
    if not names.duplicated().any():
        return frame
    blank = [frame.iloc[:, i].map(records.text_or_none).isna().all() for i in range(len(names))]
    keep = [True] * len(names)
    for name in names[names.duplicated()].unique():
        positions = [i for i, n in enumerate(names) if n == name]
        filled = [i for i in positions if not blank[i]] or positions[:1]
        for i in positions:
            keep[i] = i in filled
    return frame.loc[:, keep]


def resolve_aliases(names: pd.Series, aliases: Mapping[str, str]) -> pd.Series:
    """Dataset names with each alias replaced by its dataset (other names, and missing cells, as they are)."""
    def resolved(name: object) -> object:
        text = records.text_or_none(name)
        return name if text is None else aliases.get(text, name)

    return pd.Series(records.mapped(names, resolved), index=names.index, dtype=object)


def alias_batch(definitions: pd.DataFrame, label: str, source: str | None = None) -> Batch:
    """Validate alias definitions (columns alias, dataset, optional source). An alias names a dataset directly:
    one whose dataset is itself an alias (in the same definitions, or, when written, in the store) is refused."""
    frame = definitions.assign(**{ROW: range(1, len(definitions) + 1)})
    batch = Batch(label)
    records.check_cells(frame, batch)
    batch.tables["dataset_aliases"] = records.alias_rows(frame, batch, source or Path(label).name)
    return batch


def parse_aliases(items: list[str] | None) -> pd.DataFrame:
    """`--alias ALIAS=DATASET` arguments as alias definitions."""
    rows = []
    for item in items or []:
        alias, sep, dataset = item.partition("=")
        if not sep or not alias.strip() or not dataset.strip():
            raise UserError(f"--alias expects ALIAS=DATASET, got {item!r}")
        rows.append((alias.strip(), dataset.strip()))
    return pd.DataFrame(rows, columns=["alias", "dataset"], dtype=object)


def ingest_file(store: Store, path: str | Path, kind: str = "jobs", preset: str = "long",
                mapping: Mapping[str, str] | None = None, constants: Mapping[str, str] | None = None,
                source: str | None = None, replace: bool = False) -> dict[str, int]:
    """Ingest one file all or nothing; rows added per table, or IngestError (one line per problem or conflict).

    Jobs are identified by their content (see `records.job_rows`), so the same jobs in another file, encoding,
    order or compression add nothing; `source` (default: the file's name) only records where rows came from,
    except for scores, where it names the data a score was computed on. `replace` overwrites stored values
    that differ instead of reporting them.
    """
    return store.write(read_batch(path, kind, preset, mapping, constants, source, store.alias_map()), replace)


def read_batch(path: str | Path, kind: str = "jobs", preset: str = "long", mapping: Mapping[str, str] | None = None,
               constants: Mapping[str, str] | None = None, source: str | None = None,
               aliases: Mapping[str, str] | None = None) -> Batch:
    """Read and validate one file (nothing is written): the batch `ingest_file` stores."""
    return build_batch(read_table(path), str(path), kind, preset, mapping, constants, source, aliases)


class Rejected:
    """The rows of one input that `--skip-invalid` leaves out, each with its reasons (`row` is its data row)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.reasons: dict[int, list[str]] = {}

    def add(self, found: list[tuple[int, str, str]]) -> None:
        """Reject the rows of these problems (row, column, reason)."""
        for row, column, reason in found:
            self.reasons.setdefault(row, []).append(f"{column}: {reason}")

    def kept(self) -> list[int]:
        """The data rows not rejected, in file order."""
        return [row for row in range(1, len(self.frame) + 1) if row not in self.reasons]

    def table(self) -> pd.DataFrame:
        """The rejected rows as read, after a `row` and a `reason` column (`rejected_row`, `rejected_reason` where
        the file has those names)."""
        taken = set(map(str, self.frame.columns))
        row, reason = ("row", "reason") if not {"row", "reason"} & taken else ("rejected_row", "rejected_reason")
        numbers = sorted(self.reasons)
        lines = self.frame.iloc[[n - 1 for n in numbers]].reset_index(drop=True)
        return pd.concat([pd.DataFrame({row: numbers, reason: ["; ".join(self.reasons[n]) for n in numbers]}),
                          lines], axis=1)


def valid_batch(rejected: Rejected, build: Callable[[pd.DataFrame, list[int]], Batch]) -> Batch:
    """The batch of the rows not rejected: built, its problem rows rejected, built again until it has none (each
    round rejects at least one row, so this ends)."""
    while True:
        kept = rejected.kept()
        batch = build(rejected.frame.iloc[[n - 1 for n in kept]], kept)
        if not batch.found:
            return batch
        rejected.add(batch.found)


def rejected_path(path: str | Path) -> Path:
    """Where `--skip-invalid` writes the rows it left out by default: `<input>.rejected.csv` beside the input."""
    path = Path(path)
    return path.with_name(path.name + ".rejected.csv")
