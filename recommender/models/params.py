"""Each estimator's parameters as one declarative table, checked when it is fitted (scikit-learn's
``_parameter_constraints``, without importing scikit-learn).

An estimator lists every constructor parameter in ``PARAMETERS`` (name -> `Rule`) and calls
``self._validate_params()`` first in ``fit``: a value outside its rule is one line naming the estimator, the
parameter, the value and what it must be (`recommender.errors.UserError`)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from recommender.errors import UserError


@dataclass(frozen=True)
class Rule:
    """What a parameter may hold: a phrase for the message and the test."""

    text: str
    test: Callable[[object], bool]

    def or_none(self) -> Rule:
        """The same rule, or None (a value left to be chosen)."""
        return Rule(f"None or {self.text}", lambda v: v is None or self.test(v))


def _real(v: object) -> bool:
    """A finite real number, numpy's included; an integer of any size (JSON's have no limit) is finite."""
    if isinstance(v, bool) or type(v).__name__ == "bool_":
        return False
    return isinstance(v, numbers.Integral) or (isinstance(v, numbers.Real) and math.isfinite(v))


def number(low: float | None = None, high: float | None = None, low_open: bool = False,
           integer: bool = False) -> Rule:
    """A finite number (an int with ``integer``) within [low, high] (``low_open``: above low)."""
    kind = "an integer" if integer else "a finite number"
    bounds = [f"{'>' if low_open else '>='} {low:g}"] if low is not None else []
    bounds += [f"<= {high:g}"] if high is not None else []

    def test(v: object) -> bool:
        if not _real(v) or (integer and not isinstance(v, numbers.Integral)):
            return False
        # compared as it is: a huge integer never goes through float
        x = int(v) if isinstance(v, numbers.Integral) else float(v)  # type: ignore[arg-type]  # _real: a number
        return ((low is None or (x > low if low_open else x >= low)) and (high is None or x <= high))

    return Rule(" ".join([kind, *bounds]), test)


def one_of(values: Sequence[object]) -> Rule:
    """One of the given values."""
    return Rule("one of " + ", ".join(map(str, values)), lambda v: isinstance(v, str | int | float) and v in values)


def instance(cls: type | tuple[type, ...], text: str) -> Rule:
    """An instance of `cls`."""
    return Rule(text, lambda v: isinstance(v, cls))


def tuple_of(rule: Rule, non_empty: bool = False) -> Rule:
    """A tuple (or list) whose every item follows `rule`."""
    return Rule(f"a {'non-empty ' if non_empty else ''}tuple, each item {rule.text}",
                lambda v: isinstance(v, (tuple, list)) and (bool(v) or not non_empty) and all(map(rule.test, v)))


BUDGETS = tuple_of(number(1, integer=True), non_empty=True)  # budgets B: picks, at least one
FOLDS = number(1, integer=True)  # inner folds, at least one
TEXT = instance(str, "a string")
FLAG = instance(bool, "true or false")
FEATURES = instance(str, "a feature set such as 'd,m'")  # its blocks checked by `features.parse_features`
OPTIONS = instance(dict, "a dict").or_none()  # keyword arguments passed on, checked by what takes them


class Validated:
    """Mixin: ``_validate_params`` checks every parameter against the class's ``PARAMETERS`` table."""

    PARAMETERS: ClassVar[dict[str, Rule]] = {}

    def _validate_params(self) -> None:
        """A one-line UserError for the first parameter outside its rule."""
        for name, rule in self.PARAMETERS.items():
            value = getattr(self, name)
            if not rule.test(value):
                raise UserError(f"{type(self).__name__}: {name}={value!r} must be {rule.text}")
