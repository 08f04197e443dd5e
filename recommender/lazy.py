"""Lazy package exports (PEP 562): a package names its public API without importing it, so that importing one
light submodule (a command's argument parser) does not load torch, pandas or scikit-learn."""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any


class _LazyPackage(types.ModuleType):
    """A package whose exports may share a name with the submodule defining them (`scores.logme` in `logme.py`).

    Importing a submodule binds it on its package under its own name, which would hide the export of that name
    from ``__getattr__``; this class binds the export instead."""

    _lazy_exports: Mapping[str, str]

    def __setattr__(self, name: str, value: Any) -> None:
        exports = self.__dict__.get("_lazy_exports", {})
        if isinstance(value, types.ModuleType) and exports.get(name) == name and hasattr(value, name):
            value = getattr(value, name)
        super().__setattr__(name, value)


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``, where ``exports`` maps each public name to the submodule
    (relative to the package) that defines it; that submodule is imported when the name is first read."""
    module = sys.modules[package]
    module.__class__ = _LazyPackage
    vars(module)["_lazy_exports"] = dict(exports)  # read by _LazyPackage.__setattr__

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        setattr(module, name, value)  # later reads skip this function
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(module), *exports})

    return __getattr__, __dir__
