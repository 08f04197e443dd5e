"""Writing files and folders so that a reader never sees half of one, nor a mix of two runs."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from recommender.errors import UserError

# Written into every folder write_folder_atomic builds: it marks the folder as ours, so a later run may replace it.
OUTPUT_MARKER = ".recommender-output.json"


def write_atomic(path: Path, write: Callable[[Path], object]) -> Path:
    """Run `write` on a temporary file beside `path`, then move it onto `path`: a reader never sees half a file."""
    # the temporary name ends with the real one, so pandas, numpy and matplotlib infer the same format
    path = Path(path)
    part = path.with_name(f".part-{uuid.uuid4().hex[:8]}-{path.name}")
    try:
        write(part)
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)
    return path


def written_by(folder: Path) -> str | None:
    """The command that wrote `folder` with write_folder_atomic, or None (no marker, or not readable as ours)."""
    try:
        return str(json.loads((Path(folder) / OUTPUT_MARKER).read_text())["kind"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_folder_target(target: Path, kind: str, overwrite: bool = False) -> None:
    """Refuse `target` unless it is absent, an empty folder, an earlier output of `kind`, or `overwrite` is set."""
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise UserError(f"{target} is a file; give a folder")
    above = next((p for p in target.parents if p.exists()), None)  # the nearest existing folder above it
    if above is not None and not above.is_dir():
        raise UserError(f"{target}: {above} is a file, not a folder")
    if overwrite or not target.is_dir() or written_by(target) == kind or not any(target.iterdir()):
        return
    raise UserError(f"{target} is a non-empty folder that `recommender {kind}` did not write; "
                    "give --overwrite to replace all of it, or another folder")


def write_folder_atomic(target: Path, build: Callable[[Path], object], *, kind: str = "output",
                        overwrite: bool = False) -> Path:
    """Build a whole output folder with `build(tmp)` in a new folder beside `target`, then swap it in for `target`.

    `kind` names the command (e.g. "evaluate", "history export"); it is recorded in the folder's marker file, so a
    later run of the same command replaces its own earlier output without `overwrite`. A non-empty folder of anything
    else is refused (UserError) before anything is built, unless `overwrite`. When `build` fails, or the process is
    killed while building, `target` keeps its old content whole and the temporary folder is removed (a kill leaves a
    hidden `.<name>.part-*` folder, never a mix). The swap is two renames; a kill between them leaves the old output
    under a hidden `.<name>.old-*` name and no `target`, again never a mix of two runs. Returns `target`.
    """
    target = Path(target)
    check_folder_target(target, kind, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    part = target.with_name(f".{target.name}.part-{tag}")
    old = target.with_name(f".{target.name}.old-{tag}")
    try:
        part.mkdir()
        build(part)
        (part / OUTPUT_MARKER).write_text(json.dumps({"kind": kind}) + "\n")
        check_folder_target(target, kind, overwrite)  # another process may have filled it meanwhile
        if target.exists():
            os.rename(target, old)
        os.rename(part, target)
    finally:
        shutil.rmtree(part, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return target
