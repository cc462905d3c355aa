"""Opaque type-length-value entries (options the parser skips, SRH TLVs) and padding."""

from __future__ import annotations

from dataclasses import dataclass

from ..exceptions import BadFieldError, InputTypeError

ZEROS = bytes(256)
"""Enough zero bytes for any option data (its length is one octet)."""


@dataclass(frozen=True, slots=True)
class Tlv:
    """An option or TLV kept as it was: ``type`` (0..255) and ``data`` (at most 255 bytes)."""

    type: int
    data: bytes = b""

    def __post_init__(self) -> None:
        if type(self.type) is not int:
            raise InputTypeError(f"TLV type must be an int, not {type(self.type).__name__}")
        if not 0 <= self.type <= 255:
            raise BadFieldError(f"TLV type must be in 0..255, not {self.type}")
        if type(self.data) is not bytes:
            try:
                object.__setattr__(self, "data", bytes(memoryview(self.data)))
            except TypeError:
                raise InputTypeError(f"TLV data must be bytes-like, not {type(self.data).__name__}") from None
        if len(self.data) > 255:
            raise BadFieldError(f"TLV data is at most 255 bytes, not {len(self.data)}")

    def encode(self) -> bytes:
        """``type, length, data``."""
        return bytes((self.type, len(self.data))) + self.data


def padding(size: int, padn_type: int) -> bytes:
    """``size`` octets of padding: nothing, Pad1 (``00``) or PadN (``padn_type, size-2, zeros``)."""
    if size == 0:
        return b""
    if size == 1:
        return b"\x00"
    return bytes((padn_type, size - 2)) + ZEROS[: size - 2]
