"""Argument checks shared by the planning modules."""

from __future__ import annotations

from numbers import Integral

from ..exceptions import InputTypeError, ParameterError


def check_count(value: object, what: str, minimum: int) -> int:
    """``value`` as an int >= ``minimum``: ``InputTypeError`` for a non-int (bool too), else ``ParameterError``."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise InputTypeError(f"{what} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ParameterError(f"{what} must be >= {minimum}, not {value}")
    return int(value)
