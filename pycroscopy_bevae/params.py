"""Declarative parameter checks shared by the estimators and the processes.

Each class states what a parameter accepts; :func:`check_params` checks a mapping of
values against a mapping of constraints and returns the values as plain Python types
(``np.int64(3)`` -> ``3``), or raises a :class:`~pycroscopy_bevae.exceptions.ParameterError`
naming the parameter, the value and what is allowed. Booleans and strings never pass as
numbers, numbers never as flags, and non-finite numbers never pass at all.

Examples
--------
>>> import numpy as np
>>> check_params({"epochs": np.int64(3), "rate": 1e-3},
...              {"epochs": Integer(low=1), "rate": Real(low=0, low_open=True)})
{'epochs': 3, 'rate': 0.001}
>>> check_params({"epochs": True}, {"epochs": Integer(low=1)})
Traceback (most recent call last):
...
pycroscopy_bevae.exceptions.ParameterError: epochs must be a positive integer, got True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .exceptions import ParameterError

__all__ = ["Choice", "Constraint", "Either", "Flag", "Integer", "Literal", "Real", "check",
           "check_optional_ints", "check_params", "plain"]


def plain(value):
    """A numpy scalar as the plain Python value it stands for (others unchanged).

    Examples
    --------
    >>> plain(np.float32(0.5)), plain(np.str_("off")), plain([1])
    (0.5, 'off', [1])
    """
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.str_):
        return str(value)
    return value


class Constraint:
    """What a parameter accepts: :meth:`accepts` a plain value, :meth:`describe` it."""

    def accepts(self, value) -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


def _within(value, low, high, low_open: bool = False, high_open: bool = False) -> bool:
    """``value`` between the bounds (None: unbounded on that side)."""
    if low is not None and (value <= low if low_open else value < low):
        return False
    return high is None or (value < high if high_open else value <= high)


def _bound(x) -> str:
    return "2**32" if x == 2**32 else f"{x:g}"


@dataclass(frozen=True)
class Integer(Constraint):
    """An integer (not a bool) in ``[low, high]`` (``high_open``: ``[low, high)``)."""

    low: int | None = None
    high: int | None = None
    high_open: bool = False

    def accepts(self, value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and _within(
            value, self.low, self.high, high_open=self.high_open)

    def describe(self) -> str:
        if self.high is None:
            return {1: "a positive integer", 0: "a non-negative integer"}.get(
                self.low, "an integer" if self.low is None else f"an integer >= {self.low}")
        close = ")" if self.high_open else "]"
        return f"an integer in [{_bound(self.low)}, {_bound(self.high)}{close}"


@dataclass(frozen=True)
class Real(Constraint):
    """A finite number (int or float, not a bool) within the given bounds."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def accepts(self, value) -> bool:
        return (isinstance(value, (int, float)) and not isinstance(value, bool)
                and math.isfinite(value)
                and _within(value, self.low, self.high, self.low_open, self.high_open))

    def describe(self) -> str:
        if self.high is None:
            if self.low is None:
                return "a finite number"
            if self.low == 0 and self.low_open:
                return "a finite positive number"
            return f"a finite number {'>' if self.low_open else '>='} {_bound(self.low)}"
        return (f"a number in {'(' if self.low_open else '['}{_bound(self.low)}, "
                f"{_bound(self.high)}{')' if self.high_open else ']'}")


@dataclass(frozen=True)
class Flag(Constraint):
    """``True`` or ``False`` (numpy booleans too; not 0/1, not strings)."""

    def accepts(self, value) -> bool:
        return isinstance(value, bool)

    def describe(self) -> str:
        return "True or False"


@dataclass(frozen=True)
class Choice(Constraint):
    """One of a fixed set of values."""

    options: tuple

    def accepts(self, value) -> bool:
        return any(type(value) is type(o) and value == o for o in self.options)

    def describe(self) -> str:
        return f"one of {self.options}"


@dataclass(frozen=True)
class Either(Constraint):
    """Any of several constraints (e.g. ``'auto'`` or a number)."""

    options: tuple

    def accepts(self, value) -> bool:
        return any(c.accepts(value) for c in self.options)

    def describe(self) -> str:
        return " or ".join(c.describe() for c in self.options)


@dataclass(frozen=True)
class Literal(Constraint):
    """Exactly this value (e.g. ``None`` or ``'auto'``)."""

    value: object

    def accepts(self, value) -> bool:
        return value is self.value if self.value is None else value == self.value

    def describe(self) -> str:
        return repr(self.value) if self.value is not None else "None"


def check(name: str, value, constraint: Constraint):
    """``value`` as a plain Python value if ``constraint`` accepts it, else a ParameterError.

    Examples
    --------
    >>> check("tol", np.float32(1e-3), Real(low=0))
    0.0010000000474974513
    >>> check("beta_start", "auto", Either((Literal("auto"), Real(low=0))))
    'auto'
    """
    val = plain(value)
    if not constraint.accepts(val):
        raise ParameterError(f"{name} must be {constraint.describe()}, got {value!r}")
    return val


def check_params(values: Mapping, constraints: Mapping[str, Constraint]) -> dict:
    """Check every value that has a constraint; return all values as plain types."""
    return {k: check(k, v, constraints[k]) if k in constraints else plain(v)
            for k, v in values.items()}


def check_optional_ints(**values) -> tuple:
    """Each value None or a non-negative integer (returned as plain values, in order).

    Examples
    --------
    >>> check_optional_ints(n_active=np.int64(2), snapshot=None)
    (2, None)
    >>> check_optional_ints(snapshot=1.5)
    Traceback (most recent call last):
    ...
    pycroscopy_bevae.exceptions.ParameterError: snapshot must be None or a non-negative ...
    """
    allowed = Either((Literal(None), Integer(low=0)))
    return tuple(check(k, v, allowed) for k, v in values.items())
