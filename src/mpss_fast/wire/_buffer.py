"""Input buffers: any bytes-like object becomes ``bytes``; anything else is an ``InputTypeError``."""

from __future__ import annotations

from ..exceptions import InputTypeError


def as_bytes(data: object, what: str) -> bytes:
    """``data`` as ``bytes`` (copied unless it already is)."""
    if type(data) is bytes:
        return data
    try:
        return bytes(memoryview(data))  # type: ignore[arg-type]
    except TypeError:
        raise InputTypeError(f"{what} must be bytes-like, not {type(data).__name__}") from None
