"""Argument checks shared by every module: one wording and one rule for the exception type.

The rule, everywhere in ``tutorial_lib``: ``TypeError`` when a value has the wrong type (a string
where a number belongs, a float where a count belongs, a tensor where a dataset belongs),
``ValueError`` when it has the right type but a value outside what is allowed. Every message names
the argument, says what is allowed, and shows what was given, so the reader knows what to change.

Booleans are refused where numbers belong: ``True`` is an ``int`` to Python, but ``epochs=True`` is
always a mistake.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Sequence
from typing import Any

__all__ = ["check_bool", "check_choice", "check_int", "check_number", "suggest"]


def _number(value: float) -> str:
    """``0.0`` as ``0``, ``1e-05`` as ``1e-05``; integers in full."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def _bounds(minimum: float | None, maximum: float | None, min_inclusive: bool, max_inclusive: bool) -> str:
    parts = []
    if minimum is not None:
        parts.append(f"{'>=' if min_inclusive else '>'} {_number(minimum)}")
    if maximum is not None:
        parts.append(f"{'<=' if max_inclusive else '<'} {_number(maximum)}")
    return " and ".join(parts)


def check_int(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` as an ``int`` if it is an integer in ``[minimum, maximum]``.

    NumPy integers are accepted (a count read from an array is still a count).

    Args:
        name: the argument's name, as the caller spells it.
        value: what was given.
        minimum: smallest allowed value (inclusive), or ``None`` for no bound.
        maximum: largest allowed value (inclusive), or ``None`` for no bound.

    Raises:
        TypeError: if ``value`` is not an integer (``bool`` and ``float`` included).
        ValueError: if it lies outside the bounds.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} ({value!r})")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be {_bounds(minimum, maximum, True, True)}, got {value}")
    return value


def check_number(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    min_inclusive: bool = True,
    max_inclusive: bool = True,
) -> float:
    """Return ``value`` as a ``float`` if it is a finite real number within the bounds.

    Args:
        name: the argument's name, as the caller spells it.
        value: what was given.
        minimum: lower bound, or ``None`` for none.
        maximum: upper bound, or ``None`` for none.
        min_inclusive: whether ``value == minimum`` is allowed.
        max_inclusive: whether ``value == maximum`` is allowed.

    Raises:
        TypeError: if ``value`` is not a real number (``bool`` and strings included).
        ValueError: if it is NaN or infinite, or outside the bounds.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} ({value!r})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    too_low = minimum is not None and (value < minimum or (value == minimum and not min_inclusive))
    too_high = maximum is not None and (value > maximum or (value == maximum and not max_inclusive))
    if too_low or too_high:
        raise ValueError(f"{name} must be {_bounds(minimum, maximum, min_inclusive, max_inclusive)}, got {value:g}")
    return value


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is ``True`` or ``False``.

    Raises:
        TypeError: for anything else (``0``, ``1``, ``"yes"`` and ``None`` included).
    """
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} ({value!r})")
    return value


def suggest(value: Any, valid: Sequence[str]) -> str:
    """``" Did you mean 'x'?"`` for the closest valid name, or ``""`` when none is close."""
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, list(valid), n=1, cutoff=0.5)
    return f" Did you mean {close[0]!r}?" if close else ""


def check_choice(name: str, value: Any, valid: Sequence[str]) -> str:
    """Return ``value`` if it is one of the names in ``valid``.

    Raises:
        TypeError: if ``value`` is not a string.
        ValueError: if it is not a valid name; the message suggests the closest one and lists all.
    """
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, one of {', '.join(valid)}; got {type(value).__name__} ({value!r})")
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}.{suggest(value, valid)} Valid values: {', '.join(valid)}")
    return value
