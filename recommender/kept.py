"""Results computed from the store and kept between calls until it changes: `auto`'s fit (`next`, `rank`) and the pair
tables `recommend` and `next` start from, so that a command run in a loop does not compute them again.

An entry is ``$RECOMMENDER_CACHE/<kind>/<key>.json`` (JSON values, and the SHA-256 of each table file) beside one
Arrow IPC file per table (``<key>.<table>.arrow``, zstd-compressed: pandas' columns read back exactly, by the reader
pandas has loaded already, where Parquet's import and read cost about 25 ms more); never a pickle. The JSON is
written last, so an entry caught between two writes is refused. The key hashes the store (its URL and
`Store.revision`, which every write of this package changes), the package's source code, the libraries that compute
and read the entry (``libraries``), and what was asked (``request``). An entry that fails any check is treated as
absent and computed again. At most ``MAX_ENTRIES`` are kept per kind: the least recently used go first.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pandas as pd
import pyarrow as pa
from pyarrow import ArrowException

import recommender
from recommender.errors import UserError
from recommender.files import cache_root, file_sha256, write_atomic

if TYPE_CHECKING:
    from recommender.history.queries import Queries

FORMAT = "recommender-kept"
FORMAT_VERSION = 2  # 1: Parquet tables
MAX_ENTRIES = 32  # per kind: one per (store state, request), a few MiB each at most
MAX_JSON_BYTES = 1 << 20
LIBRARIES = ("numpy", "pandas", "pyarrow")  # every entry's: they compute and read its tables
SUFFIX = ".arrow"
IPC = pa.ipc.IpcWriteOptions(compression="zstd")  # a pair table: 1.5 MB raw, 0.1 MB so, read in the same 4 ms
MODULES = {"scikit-learn": "sklearn"}  # a distribution's module, where the names differ
T = TypeVar("T")
State = tuple[dict[str, object], dict[str, pd.DataFrame]]  # JSON values, tables


def kept_folder(kind: str) -> Path:
    """Where entries of ``kind`` are kept: $RECOMMENDER_CACHE/<kind> (~/.cache/recommender/<kind>)."""
    return cache_root() / kind


@cache
def code_fingerprint() -> str:
    """SHA-256 of the package's Python sources: a changed line of code makes every entry stale."""
    root = Path(recommender.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@cache
def library_version(name: str) -> str:
    """The installed version of distribution ``name``: an imported module's own, else from its metadata (importing
    scipy would cost more than the cache saves; reading metadata costs tens of milliseconds, so only where the
    module is not loaded)."""
    module = sys.modules.get(MODULES.get(name, name))
    found = getattr(module, "__version__", None)
    if isinstance(found, str):
        return found
    from importlib.metadata import version

    return version(name)


def entry_key(url: str, revision: str, request: Mapping[str, object], libraries: Sequence[str] = ()) -> str:
    """The entry's name: a hash of the store's URL and ``revision``, the code, the versions of ``LIBRARIES`` and
    ``libraries``, and ``request`` (JSON values)."""
    versions = {name: library_version(name) for name in (*LIBRARIES, *libraries)}
    described = {"store": url, "revision": revision, "code": code_fingerprint(), "libraries": versions,
                 "request": dict(request)}
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:32]


def kept(store: Queries, kind: str, request: Mapping[str, object], compute: Callable[[], T],
         state: Callable[[T], State], restore: Callable[[dict[str, object], dict[str, pd.DataFrame]], T],
         tables: Sequence[str], what: str, libraries: Sequence[str] = ()) -> T:
    """What ``compute`` returns for ``request`` on ``store``: restored from the entry for the store's current
    revision where one passes every check (``restore`` raises ValueError, TypeError or KeyError on a wrong field),
    else computed now and kept as ``state`` gives it (unless the store changed meanwhile). ``tables`` names the
    state's tables; ``what`` names the result in a warning; ``libraries`` are those ``compute`` uses besides
    ``LIBRARIES`` (their versions are part of the key)."""
    revision = store.revision()
    return kept_under(kind, entry_key(store.url, revision, request, libraries), compute, state, restore, tables,
                      what, lambda: store.revision() == revision)


def kept_under(kind: str, key: str, compute: Callable[[], T], state: Callable[[T], State],
               restore: Callable[[dict[str, object], dict[str, pd.DataFrame]], T], tables: Sequence[str], what: str,
               still_valid: Callable[[], bool] = lambda: True) -> T:
    """`kept` under a key of the caller's (``entry_key``): the result is kept only where ``still_valid()`` holds
    once it is computed (`kept`: the store has not changed meanwhile; a key of the input's content: always)."""
    folder = kept_folder(kind)
    found = read_entry(folder, key, tables, restore)
    if found is not None:
        with suppress(OSError):  # recently used, pruned last; a cache of another user's or read-only: as it is
            os.utime(folder / f"{key}.json")
        return found
    result = compute()
    if not still_valid():  # e.g. the store was written to meanwhile: the result may hold rows of a later revision
        return result
    try:
        write_entry(folder, key, state(result))
        prune(folder)
    # a read-only or full cache, or a state pyarrow or JSON cannot hold, costs speed, never the answer
    except (OSError, ValueError, TypeError, NotImplementedError, ArrowException) as exc:
        warnings.warn(f"could not keep {what} in {folder}: {exc}", stacklevel=2)
    return result


def frame_fingerprint(frame: pd.DataFrame) -> str:
    """SHA-256 of a table's column names, dtypes and values (pandas' hash of each row; the index left out): the key
    of a result computed from that table alone, which no write to the store that leaves the table as it was can
    make stale."""
    digest = hashlib.sha256(json.dumps([[str(c) for c in frame.columns], [str(t) for t in frame.dtypes]]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def write_entry(folder: Path, key: str, state: State) -> None:
    """Write ``state`` as entry ``key``: the tables first, then the JSON that names their checksums."""
    folder.mkdir(parents=True, exist_ok=True)
    values, tables = state
    checksums = {}
    for name, table in tables.items():
        def write(part: Path, table: pd.DataFrame = table) -> None:
            arrow = pa.Table.from_pandas(table, preserve_index=False)
            with pa.OSFile(str(part), "wb") as sink, pa.ipc.new_file(sink, arrow.schema, options=IPC) as writer:
                writer.write_table(arrow)

        checksums[name] = file_sha256(write_atomic(folder / f"{key}.{name}{SUFFIX}", write))
    text = json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION, "values": values,
                       "tables": checksums}, allow_nan=False)
    write_atomic(folder / f"{key}.json", lambda part: part.write_text(text, encoding="utf-8"))


def read_entry(folder: Path, key: str, tables: Sequence[str],
               restore: Callable[[dict[str, object], dict[str, pd.DataFrame]], T]) -> T | None:
    """What entry ``key`` restores to; None where there is none, or it fails a check (checksums, fields, types)."""
    path = folder / f"{key}.json"
    try:
        if not path.is_file() or path.stat().st_size > MAX_JSON_BYTES:
            return None
        entry = json.loads(path.read_text(encoding="utf-8"))
        if (not isinstance(entry, dict) or entry.get("format") != FORMAT
                or entry.get("format_version") != FORMAT_VERSION or not isinstance(entry.get("tables"), dict)
                or not isinstance(entry.get("values"), dict)):
            return None
        if set(entry["tables"]) != set(tables):
            return None
        read = {}
        for name, checksum in entry["tables"].items():
            data = (folder / f"{key}.{name}{SUFFIX}").read_bytes()  # read once: the bytes checked are those parsed
            if hashlib.sha256(data).hexdigest() != checksum:
                return None
            read[name] = pa.ipc.open_file(pa.py_buffer(data)).read_all().to_pandas()
        return restore(entry["values"], read)
    except (OSError, ValueError, KeyError, TypeError, RecursionError, UserError, ArrowException):
        return None  # unreadable or damaged: computed again, and the entry replaced


def prune(folder: Path, keep: int = MAX_ENTRIES) -> None:
    """Remove all but the ``keep`` most recently used entries."""
    entries = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[keep:]:
        old.unlink(missing_ok=True)  # the JSON first: a reader never trusts the tables alone
        for table in folder.glob(f"{old.stem}.*{SUFFIX}"):
            table.unlink(missing_ok=True)
