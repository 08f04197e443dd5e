"""Writing files so that a reader never sees half of one."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path


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
