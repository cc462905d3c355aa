"""Shares in real packets: a sealed message on its first hop, a relay's whole step on packet bytes, and back.

These join the hop logic (``hop``) to the wire format (``mpss_fast.wire``): a relay
receives packet bytes, checks and relays the share, performs the SRv6 End step and
sends the result on. The UDP payload is the share ciphertext.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..engine import Engine
from ..wire import Packet, Srh, address, encode_packet, forward_packet, parse_packet
from .hop import ShareMessage, relay
from .pool import LinkKeyPool

MPSS_UDP_PORT = 6379
"""Default UDP port of MPSS share packets (ours to define; configurable)."""


def first_hop_packet(
    message: ShareMessage,
    src: Any,
    path: Sequence[Any],
    *,
    sport: int = MPSS_UDP_PORT,
    dport: int = MPSS_UDP_PORT,
) -> bytes:
    """The packet that carries a sealed share from ``src`` along ``path``.

    ``path`` lists the SIDs in travel order: the relays, then the destination.
    """
    srh = Srh.from_path([address(a) for a in path])
    return encode_packet(Packet(address(src), srh, message.option, message.ciphertext, sport, dport))


def message_of(packet: Packet) -> ShareMessage:
    """The share message a parsed packet carries."""
    return ShareMessage(packet.option, packet.payload)


def relay_packet(
    data: Any,
    pool_in: LinkKeyPool,
    pool_out: LinkKeyPool,
    *,
    engine: Engine | None = None,
) -> bytes:
    """A relay's step on one packet: parse (checksum included), relay the share, SRv6 End, encode.

    Raises a ``WireError`` for a malformed packet (no key consumed), or the errors of
    :func:`~mpss_fast.relay.relay` (``TagError``, ``KeyReuseError``, ...).
    """
    packet = parse_packet(data)
    out = relay(message_of(packet), pool_in, pool_out, engine=engine)
    forwarded = forward_packet(packet, hop_key_id=out.option.hop_key_id, tag=out.option.tag, payload=out.ciphertext)
    return encode_packet(forwarded)
