"""Checked loading of a model's files: a weights file holding only the module's own tensors (`load_checked_state`),
and a transformers model folder's config.json; a bad file is refused in one line naming it."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from recommender.errors import UserError

if TYPE_CHECKING:
    from torch import nn

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json")


def _weights_file(folder: Path) -> Path:
    """The weights file transformers reads in a model folder (the first of WEIGHT_FILES there)."""
    return next((folder / name for name in WEIGHT_FILES if (folder / name).is_file()), folder / WEIGHT_FILES[0])


def check_model_config(folder: Path) -> None:
    """Refuse, in one line naming it, a model folder's config.json that is not JSON or not an object (a folder
    without one, such as an ONNX model's tokenizer folder, is left to transformers)."""
    path = folder / "config.json"
    if not path.exists():
        return
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise UserError(f"{path}: not valid JSON ({type(e).__name__})") from None
    if not isinstance(config, dict):
        raise UserError(f"{path}: must be a JSON object, got {type(config).__name__}")


M = TypeVar("M", bound="nn.Module")
_TERMINAL_CODES = re.compile(r"\x1b\[[0-9;]*m")


def _load_refusal(e: Exception) -> str:
    """Why torch.load refused a weights file, in one line, without torch's advice or terminal colour codes."""
    if isinstance(e, FileNotFoundError):
        return "no such file"
    if isinstance(e, OSError):  # a zip archive cut short reads as "[Errno 22] Invalid argument"
        return f"not a plain tensor file, refused (cannot be read whole: {e.strerror or e}; truncated or damaged?)"
    text = _TERMINAL_CODES.sub("", str(e))
    named = re.search(r"unsupported global:?\s+(?:GLOBAL\s+)?([\w.]+)", text, re.IGNORECASE)
    if named:
        return f"holds a pickled object, not plain tensors, refused (Unsupported global {named.group(1)})"
    # torch's own words on what it met come after "WeightsUnpickler error:", when it says so
    lines = [line.strip() for line in text.split("WeightsUnpickler error:")[-1].splitlines() if line.strip()]
    return f"not a plain tensor file, refused ({(lines[0] if lines else type(e).__name__)[:200]})"


def load_checked_state(module: M, path: str | Path) -> M:
    """Load a weights file into module, refusing (UserError, one line naming the file; module unchanged) a file that
    holds anything but a mapping of the module's own parameter and buffer names to tensors of their shapes.

    `weights_only=True` never imports or calls what a pickle names: it refuses any object but tensors and plain
    containers before building it."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as e:
        raise UserError(f"weights {path}: {_load_refusal(e)}") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise UserError(f"weights {path}: expected a mapping of parameter names (strings) to tensors")
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    wanted = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    if shapes != wanted:
        missing, unexpected = sorted(wanted.keys() - shapes.keys()), sorted(shapes.keys() - wanted.keys())
        reshaped = [(k, shapes[k], wanted[k]) for k in sorted(wanted.keys() & shapes.keys()) if shapes[k] != wanted[k]]
        raise UserError(f"weights {path}: parameters differ from {type(module).__name__}'s: missing keys "
                        f"{missing[:3]}, unexpected keys {unexpected[:3]}, (name, shape, wanted) {reshaped[:3]}")
    module.load_state_dict(state, strict=True)
    return module
