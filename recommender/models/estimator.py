"""scikit-learn's estimator protocol for the recommenders and the encoder, without importing scikit-learn.

Importing ``sklearn.base`` loads scipy and costs about a second (`python -X importtime -c "import sklearn.base"`),
more than everything else `recommend` and `next` do with a saved recommender. Those commands only need the
parameter protocol, so it is kept here by scikit-learn's rules: the constructor's arguments are the parameters,
stored untouched; ``get_params(deep=True)`` adds a nested estimator's as ``name__key``; ``set_params`` refuses an
unknown name. ``sklearn.base.clone``, grid searches and pipelines take these classes as they take scikit-learn's
own (``tests/models/test_estimator_checks.py`` checks against ``sklearn.base.BaseEstimator``). Fitting imports
scikit-learn where it needs it.
"""

from __future__ import annotations

import inspect
from typing import Any, Self


class NotFittedError(ValueError, AttributeError):
    """Raised by ``check_fitted`` on an estimator used before ``fit`` (scikit-learn's exception has both bases too)."""


class Estimator:
    """Parameters by scikit-learn's conventions: ``get_params``, ``set_params`` and a repr of the changed ones."""

    @classmethod
    def _param_names(cls) -> list[str]:
        """The constructor's keyword parameters, sorted (scikit-learn forbids ``*args`` in an estimator)."""
        signature = inspect.signature(cls.__init__)
        return sorted(name for name, p in signature.parameters.items()
                      if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL))

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The parameters by name; with ``deep``, a nested estimator's too, as ``name__key``."""
        out: dict[str, Any] = {}
        for name in self._param_names():
            value = getattr(self, name)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update((f"{name}__{key}", v) for key, v in value.get_params().items())
            out[name] = value
        return out

    def set_params(self, **params: Any) -> Self:
        """Set parameters (``name__key`` reaches into a nested estimator); an unknown name is a ValueError."""
        valid = self.get_params(deep=True)
        nested: dict[str, dict[str, Any]] = {}
        for key, value in params.items():
            name, _, sub = key.partition("__")
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for estimator {type(self).__name__}; valid parameters "
                                 f"are {', '.join(self._param_names())}")
            if sub:
                nested.setdefault(name, {})[sub] = value
            else:
                setattr(self, name, value)
                valid[name] = value
        for name, sub_params in nested.items():
            valid[name].set_params(**sub_params)
        return self

    def __repr__(self) -> str:
        """``Class(name=value, ...)`` with the parameters that differ from the constructor's defaults."""
        defaults = {name: p.default for name, p in inspect.signature(type(self).__init__).parameters.items()}
        changed = [f"{name}={value!r}" for name, value in self.get_params(deep=False).items()
                   if not (name in defaults and _same(defaults[name], value))]
        return f"{type(self).__name__}({', '.join(changed)})"


def _same(a: object, b: object) -> bool:
    """Whether a parameter still holds its default (identity first: NaN and arrays compare oddly)."""
    try:
        return a is b or bool(a == b)
    except (TypeError, ValueError):
        return False


def check_fitted(estimator: object, attribute: str) -> None:
    """A NotFittedError unless ``fit`` has set ``attribute`` on the estimator."""
    if not hasattr(estimator, attribute):
        raise NotFittedError(f"this {type(estimator).__name__} is not fitted yet: call fit first")
