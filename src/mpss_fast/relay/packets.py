"""Shares in real packets: a sealed message on its first hop, a relay's whole step on packet bytes, and back.

These join the hop logic (``hop``) to the wire format (``mpss_fast.wire``): a relay
receives packet bytes, checks and relays the share, performs the SRv6 End step and
sends the result on. The UDP payload is the share ciphertext. Every hop tag covers the
packet's routing fields (``route_bytes``): a share is sealed for the route it is sent on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..engine import Engine
from ..exceptions import ParameterError
from ..wire import Packet, Srh, address, advance, encode_packet, forward_packet, parse_packet, route_bytes
from .hop import ShareMessage, relay
from .pool import LinkKeyPool

MPSS_UDP_PORT = 6379
"""Default UDP port of MPSS share packets (ours to define; configurable)."""


def first_hop_route(src: Any, path: Sequence[Any]) -> bytes:
    """The routing fields a share sent from ``src`` along ``path`` is sealed under (``seal(route=...)``).

    ``path`` lists the SIDs in travel order: the relays, then the destination.
    """
    return route_bytes(address(src), Srh.from_path([address(a) for a in path]))


def first_hop_packet(
    message: ShareMessage,
    src: Any,
    path: Sequence[Any],
    *,
    sport: int = MPSS_UDP_PORT,
    dport: int = MPSS_UDP_PORT,
) -> bytes:
    """The packet that carries a sealed share from ``src`` along ``path``.

    ``path`` lists the SIDs in travel order: the relays, then the destination. The
    message must have been sealed for this route (:func:`first_hop_route`), or the first
    relay would drop it: ``ParameterError`` says so here instead.
    """
    source = address(src)
    srh = Srh.from_path([address(a) for a in path])
    if message.route != route_bytes(source, srh):
        raise ParameterError("the message was not sealed for this route: seal it with route=first_hop_route(src, path)")
    return encode_packet(Packet(source, srh, message.option, message.ciphertext, sport, dport))


def message_of(packet: Packet) -> ShareMessage:
    """The share message a parsed packet carries, with the routing fields its tag covers."""
    return ShareMessage(packet.option, packet.payload, route_bytes(packet.src, packet.srh))


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
    route_out = route_bytes(packet.src, advance(packet.srh))
    out = relay(message_of(packet), pool_in, pool_out, route_out=route_out, engine=engine)
    forwarded = forward_packet(packet, hop_key_id=out.option.hop_key_id, tag=out.option.tag, payload=out.ciphertext)
    return encode_packet(forwarded)
