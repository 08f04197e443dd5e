"""Writing files and output folders so that a reader never sees half a file, and a re-run never deletes a file
the tool did not write."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import uuid
from collections.abc import Callable, Iterable
from contextlib import suppress
from pathlib import Path

from recommender.errors import UserError

# Written into every output folder: which files each command wrote there. Those, and only those, a later run of
# the command replaces or removes; every other file in the folder is the user's and is kept.
MANIFEST = ".recommender-manifest.json"
LEGACY_MARKER = ".recommender-output.json"  # older versions swapped a whole folder and marked it with this
# Temporary names carry this host and process, so a later run removes those of a killed run, never a live one's.
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]
_PART = re.compile(rf"\.(?:recommender-)?part-{_HOST}-(\d+)-[0-9a-f]{{8}}(?:-.*)?", re.DOTALL)


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cache_root() -> Path:
    """The folder of everything the package caches (features, models, fitted recommenders): $RECOMMENDER_CACHE,
    else ~/.cache/recommender."""
    return Path(os.environ.get("RECOMMENDER_CACHE", Path.home() / ".cache" / "recommender"))


def _part_tag() -> str:
    """A temporary name's unique part: host, process id, random."""
    return f"{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _alive(pid: int) -> bool:
    """Whether a process with this id runs on this host (an id we may not signal is alive)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_parts(folder: Path, suffix: str = "") -> None:
    """Remove the temporary files and folders (ending with `suffix`) that a killed run of this tool left in
    `folder`: only names of this tool's pattern, made on this host by a process that no longer runs."""
    with suppress(OSError):
        for entry in os.scandir(folder):
            match = _PART.fullmatch(entry.name)
            if match and entry.name.endswith(suffix) and not _alive(int(match[1])):
                with suppress(OSError):
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path)
                    else:
                        os.unlink(entry.path)


def write_atomic(path: Path, write: Callable[[Path], object]) -> Path:
    """Run `write` on a temporary file beside `path`, then move it onto `path`: a reader never sees half a file."""
    path = Path(path)
    remove_stale_parts(path.parent, f"-{path.name}")
    # the temporary name ends with the real one, so pandas, numpy and matplotlib infer the same format
    part = path.with_name(f".part-{_part_tag()}-{path.name}")
    try:
        write(part)
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)
    return path


def _safe_name(name: object) -> bool:
    """Whether a manifest entry is a plain relative path inside the folder (anything else is never touched)."""
    if not isinstance(name, str) or not name or "\\" in name or "\0" in name:
        return False
    parts = Path(name).parts
    return not Path(name).is_absolute() and ".." not in parts and parts[0] not in (MANIFEST, LEGACY_MARKER)


def _read_manifest(folder: Path) -> dict[str, list[str]]:
    """The files each command wrote in `folder`, from its manifest; empty when absent or unreadable."""
    try:
        outputs = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))["outputs"]
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return {}
    if not isinstance(outputs, dict):
        return {}
    return {str(kind): [n for n in names if _safe_name(n)] for kind, names in outputs.items()
            if isinstance(names, list)}


def _legacy_kind(folder: Path) -> str | None:
    """The command that wrote `folder` as a whole under an older version (its marker file), or None."""
    try:
        return str(json.loads((folder / LEGACY_MARKER).read_text())["kind"])
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None


def owned_files(folder: Path, kind: str, names: Iterable[str] = ()) -> set[str]:
    """The files in `folder` that `kind` wrote: its manifest entries, and in a folder an older version wrote
    whole for `kind`, those of `names` (the files it writes now) that are there."""
    owned = set(_read_manifest(folder).get(kind, []))
    if _legacy_kind(folder) == kind:
        owned |= {name for name in names if (folder / name).is_file()}
    return owned


def _inside(folder: Path, name: str) -> bool:
    """Whether `folder/name`'s parent folder is where it says (no link leads out of `folder`)."""
    try:
        return (folder / name).parent.resolve() == folder.resolve().joinpath(*Path(name).parts[:-1])
    except OSError:
        return False


def output_folder(target: str | Path) -> Path:
    """`target` as a folder to write outputs in, refused in one line when it is a file or lies under one."""
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise UserError(f"{target} is a file; give a folder")
    above = next((p for p in target.absolute().parents if p.exists()), None)  # the nearest existing folder above
    if above is not None and not above.is_dir():
        raise UserError(f"{target}: {above} is a file, not a folder")
    return target


def check_output_files(target: str | Path, kind: str, names: Iterable[str], overwrite: bool = False,
                       protect: Iterable[Path] = ()) -> None:
    """Refuse, in one line, to write `names` in `target` where one is a folder, leads out through a link, is a
    protected file (e.g. the store being exported), or is a file `kind` did not write (unless `overwrite`)."""
    target = output_folder(target)
    names = list(names)
    owned = owned_files(target, kind, names) if target.is_dir() else set()
    protected = {p.resolve() for p in protect}
    for name in names:
        path = target / name
        if path.resolve() in protected:
            raise UserError(f"{path} is the store being exported; give another folder")
        if target.is_dir() and not _inside(target, name):
            raise UserError(f"{path}: a link or file in the way of {target / Path(name).parent}; "
                            "give another folder")
        if path.is_dir() and not path.is_symlink():
            raise UserError(f"{path} is a folder, where `recommender {kind}` writes a file; give another folder")
        if (path.exists() or path.is_symlink()) and name not in owned and not overwrite:
            raise UserError(f"{path} exists and `recommender {kind}` did not write it; give --overwrite to "
                            "replace it, or another folder")


def _write_manifest(folder: Path, outputs: dict[str, list[str]]) -> None:
    """Record which files each command wrote in `folder`."""
    text = json.dumps({"outputs": {kind: sorted(names) for kind, names in outputs.items() if names}}, indent=1)
    write_atomic(folder / MANIFEST, lambda part: part.write_text(text + "\n", encoding="utf-8"))


def _remove(folder: Path, name: str) -> None:
    """Remove an earlier output file, and the folders it leaves empty (never `folder` itself)."""
    path = folder / name
    if not _inside(folder, name) or (path.is_dir() and not path.is_symlink()):
        return
    path.unlink(missing_ok=True)
    for parent in Path(name).parents:
        if parent == Path("."):
            break
        with suppress(OSError):
            (folder / parent).rmdir()  # only when empty


def write_output_folder(target: str | Path, build: Callable[[Path], object], *, kind: str,
                        overwrite: bool = False, protect: Iterable[Path] = ()) -> Path:
    """Write the files `build(tmp)` makes into the folder `target`, owning them file by file; return `target`.

    `build` writes into a hidden temporary folder inside `target`, so a failure or a kill while building leaves
    every file in `target` as it was (a kill leaves the hidden folder, which a later run removes). Each built file
    then replaces its namesake in one rename, and the files an earlier run of `kind` (e.g. "evaluate", "history
    export") wrote and this one did not are removed. Which files those are, `target`'s manifest says: a file the
    tool did not write is never removed, and is replaced only with `overwrite` (else UserError before anything
    changes). `target` may be `.` or a link to a folder (written through, never replaced).
    """
    protect = list(protect)
    target = output_folder(target)
    created = not target.exists()
    target.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(target)
    part = target / f".recommender-part-{_part_tag()}"
    try:
        part.mkdir()
        build(part)
        names = sorted(p.relative_to(part).as_posix() for p in part.rglob("*") if not p.is_dir())
        check_output_files(target, kind, names, overwrite, protect)  # checked again: files may have appeared
        outputs = _read_manifest(target)
        earlier = owned_files(target, kind, names)
        for other, files in outputs.items():  # a file --overwrite takes from another command is no longer its
            outputs[other] = [n for n in files if other == kind or n not in names]
        outputs[kind] = sorted(earlier | set(names))  # during the moves, both runs' files are listed as ours
        _write_manifest(target, outputs)
        for name in names:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            os.replace(part / name, target / name)
        for name in sorted(earlier - set(names)):
            _remove(target, name)
        outputs[kind] = names
        _write_manifest(target, outputs)
        if _legacy_kind(target) == kind:
            (target / LEGACY_MARKER).unlink(missing_ok=True)
    finally:
        shutil.rmtree(part, ignore_errors=True)
        if created:
            with suppress(OSError):
                target.rmdir()  # a failed first run leaves no empty folder (a written one is not empty)
    return target
