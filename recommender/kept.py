"""Results computed from the store and kept between calls until it changes: `auto`'s fit (`next`, `rank`) and the
pair tables `recommend` and `next` start from, so that a command run in a loop does not compute them again.

An entry is ``$RECOMMENDER_CACHE/<kind>/<key>.json`` (JSON values, and the SHA-256 of each table file) beside one
Parquet file per table (``<key>.<table>.parquet``); never a pickle. The JSON is written last, so an entry caught
between two writes is refused. The key hashes the store (its URL and `Store.revision`, which every write of this
package changes), the package's source code, the libraries that compute and read the entry, and what was asked
(``request``). An entry that fails any check is treated as absent and computed again. At most ``MAX_ENTRIES`` are
kept per kind: the least recently used go first.
"""

from __future__ import annotations

import hashlib
import io
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

import recommender
from recommender.errors import UserError
from recommender.files import cache_root, file_sha256, write_atomic

if TYPE_CHECKING:
    from recommender.history.queries import Queries

FORMAT = "recommender-kept"
FORMAT_VERSION = 1
MAX_ENTRIES = 32  # per kind: one per (store state, request), a few MiB each at most
MAX_JSON_BYTES = 1 << 20
LIBRARIES = ("numpy", "pandas", "pyarrow", "scipy")  # their versions are part of the key: they compute and read it
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
def library_versions() -> dict[str, str]:
    """The installed versions of ``LIBRARIES``: of those imported already, their own; of the others, from their
    metadata (importing scipy would cost more than the cache saves)."""
    from importlib.metadata import version

    return {name: getattr(sys.modules[name], "__version__", None) or version(name) if name in sys.modules
            else version(name) for name in LIBRARIES}


def entry_key(url: str, revision: str, request: Mapping[str, object]) -> str:
    """The entry's name: a hash of the store's URL and ``revision``, the code and the libraries' versions, and
    ``request`` (JSON values)."""
    described = {"store": url, "revision": revision, "code": code_fingerprint(), "libraries": library_versions(),
                 "request": dict(request)}
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:32]


def kept(store: Queries, kind: str, request: Mapping[str, object], compute: Callable[[], T],
         state: Callable[[T], State], restore: Callable[[dict[str, object], dict[str, pd.DataFrame]], T],
         tables: Sequence[str], what: str) -> T:
    """What ``compute`` returns for ``request`` on ``store``: restored from the entry for the store's current
    revision where one passes every check (``restore`` raises ValueError, TypeError or KeyError on a wrong field),
    else computed now and kept as ``state`` gives it (unless the store changed meanwhile). ``tables`` names the
    state's tables; ``what`` names the result in a warning."""
    folder = kept_folder(kind)
    revision = store.revision()
    key = entry_key(store.url, revision, request)
    found = read_entry(folder, key, tables, restore)
    if found is not None:
        with suppress(OSError):  # recently used, pruned last; a cache of another user's or read-only: as it is
            os.utime(folder / f"{key}.json")
        return found
    result = compute()
    if store.revision() != revision:  # written to meanwhile: the result may hold rows of a later revision
        return result
    try:
        write_entry(folder, key, state(result))
        prune(folder)
    # a read-only or full cache, or a state pyarrow or JSON cannot hold, costs speed, never the answer
    except (OSError, ValueError, TypeError, NotImplementedError) as exc:
        warnings.warn(f"could not keep {what} in {folder}: {exc}", stacklevel=2)
    return result


def write_entry(folder: Path, key: str, state: State) -> None:
    """Write ``state`` as entry ``key``: the tables first, then the JSON that names their checksums."""
    folder.mkdir(parents=True, exist_ok=True)
    values, tables = state
    checksums = {}
    for name, table in tables.items():
        def write(part: Path, table: pd.DataFrame = table) -> None:
            table.to_parquet(part, index=False)

        checksums[name] = file_sha256(write_atomic(folder / f"{key}.{name}.parquet", write))
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
            data = (folder / f"{key}.{name}.parquet").read_bytes()  # read once: the bytes checked are those parsed
            if hashlib.sha256(data).hexdigest() != checksum:
                return None
            read[name] = pd.read_parquet(io.BytesIO(data))
        return restore(entry["values"], read)
    except (OSError, ValueError, KeyError, TypeError, RecursionError, UserError):
        return None  # unreadable or damaged: computed again, and the entry replaced


def prune(folder: Path, keep: int = MAX_ENTRIES) -> None:
    """Remove all but the ``keep`` most recently used entries."""
    entries = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[keep:]:
        old.unlink(missing_ok=True)  # the JSON first: a reader never trusts the tables alone
        for table in folder.glob(f"{old.stem}.*.parquet"):
            table.unlink(missing_ok=True)
