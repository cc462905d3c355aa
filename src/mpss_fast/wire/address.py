"""IPv6 addresses as 16-byte ``bytes``: the one representation used on the wire and in parsed headers."""

from __future__ import annotations

from ipaddress import AddressValueError, IPv6Address

from ..exceptions import BadFieldError, InputTypeError

ADDRESS_LEN = 16


def address(value: str | IPv6Address | bytes | bytearray | memoryview) -> bytes:
    """An IPv6 address as 16 bytes, from text (``"2001:db8::1"``), an ``IPv6Address`` or 16 bytes."""
    if type(value) is bytes:
        if len(value) != ADDRESS_LEN:
            raise BadFieldError(f"an IPv6 address is {ADDRESS_LEN} bytes, not {len(value)}")
        return value
    if isinstance(value, IPv6Address):
        return value.packed
    if isinstance(value, str):
        try:
            return IPv6Address(value).packed
        except AddressValueError as exc:
            raise BadFieldError(f"not an IPv6 address: {value!r}") from exc
    if isinstance(value, (bytes, bytearray, memoryview)):
        return address(bytes(value))
    raise InputTypeError(f"an IPv6 address must be str, IPv6Address or bytes, not {type(value).__name__}")
