"""SRv6 SIDs for QKD nodes: validation and the automatic numbering scheme.

A node added without a SID gets the next free one from ``2001:db8::/32`` (the IPv6
documentation prefix): node number ``i`` (1, 2, ... in the order nodes are added) owns the
/64 locator ``2001:db8:H:L::/64`` with ``H = i >> 16`` and ``L = i & 0xffff``, and its End
SID is ``::1`` in that locator. Node 1 is ``2001:db8:0:1::1``, node 70000 is
``2001:db8:1:1170::1``. A number whose SID is already taken (given explicitly) is skipped.
"""

from __future__ import annotations

from ipaddress import AddressValueError, IPv6Address

from ..exceptions import InputTypeError, TopologyError

SID_PREFIX = "2001:db8::/32"
"""The prefix automatic SIDs are drawn from."""

MAX_AUTO_SID = (1 << 32) - 1
"""The highest node number the automatic scheme can give a SID."""


def auto_sid(number: int) -> str:
    """The automatic SID of node number ``number`` (1 .. 2**32 - 1), in compressed text form."""
    if not 1 <= number <= MAX_AUTO_SID:
        raise TopologyError(f"automatic SIDs run from node number 1 to {MAX_AUTO_SID}, not {number}")
    return str(IPv6Address(f"2001:db8:{number >> 16:x}:{number & 0xFFFF:x}::1"))


def normalize_sid(sid: object, *, node: str) -> str:
    """``sid`` as a compressed IPv6 address string; ``TopologyError`` if it is not one."""
    if not isinstance(sid, str):
        raise InputTypeError(f"the SID of node {node!r} must be an IPv6 address string, not {type(sid).__name__}")
    try:
        address = IPv6Address(sid)
    except AddressValueError as exc:
        raise TopologyError(f"the SID of node {node!r} is not an IPv6 address: {sid!r}") from exc
    if address.scope_id is not None or address.is_unspecified or address.is_multicast:
        raise TopologyError(f"the SID of node {node!r} must be a unicast address without a scope, not {sid!r}")
    return str(address)
