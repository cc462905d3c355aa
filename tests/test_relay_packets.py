"""Shares relayed as real packets: every hop checked on the bytes, and by scapy independently."""

from __future__ import annotations

import uuid

import pytest
from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrSegmentRouting

from mpss_fast import Engine
from mpss_fast.exceptions import ChecksumError, KeyReuseError, ParameterError, TagError, TruncatedError
from mpss_fast.relay import (
    Destination,
    LinkKeyPool,
    first_hop_packet,
    first_hop_route,
    message_of,
    relay_packet,
    seal_shares,
)
from mpss_fast.wire import address, parse_packet

from .rng import seeded_rng

SRC = "2001:db8:0::1"
DST = "2001:db8:ff::1"
SESSION = uuid.UUID(int=0x5E55)


def _path(i: int, relays: int) -> list[str]:
    return [f"2001:db8:{i}:{r}::1" for r in range(1, relays + 1)] + [DST]


def _routes(n: int, relays: int) -> list[bytes]:
    """The routing fields share i is sealed under: from SRC along ``_path(i, relays)``."""
    return [first_hop_route(SRC, _path(i, relays)) for i in range(n)]


def _pools(name: str) -> tuple[LinkKeyPool, LinkKeyPool]:
    stream = seeded_rng(name.encode())(1 << 12)
    return LinkKeyPool(name, stream), LinkKeyPool(name, stream)


@pytest.mark.parametrize(("k", "n", "relays"), [(2, 3, 2), (3, 4, 3)])
def test_packets_carry_shares_end_to_end(engine: Engine, k: int, n: int, relays: int) -> None:
    secret = seeded_rng(b"number")(32)
    links = [[_pools(f"p{i}l{h}") for h in range(relays + 1)] for i in range(n)]
    pools = [path[0][0] for path in links]
    messages = seal_shares(secret, k, pools, session_id=SESSION, engine=engine, routes=_routes(n, relays))
    dest = Destination(engine=engine)
    for i, message in enumerate(messages):
        data = first_hop_packet(message, SRC, _path(i, relays))
        for h in range(relays):
            scapy_pkt = IPv6(data)
            assert scapy_pkt.dst == _path(i, relays)[h]  # addressed to the next relay
            assert bytes(scapy_pkt[UDP].payload) != b""  # and carrying ciphertext only
            data = relay_packet(data, links[i][h][1], links[i][h + 1][0], engine=engine)
        final = IPv6(data)
        assert final.dst == DST and final[IPv6ExtHdrSegmentRouting].segleft == 0
        dest.open(message_of(parse_packet(data)), links[i][-1][1])
    assert dest.rebuild(SESSION) == secret


def test_relay_packet_bad_checksum_consumes_no_key(engine: Engine) -> None:
    (tx, _), (rx, _) = _pools("a"), _pools("b")
    sender, receiver = _pools("link")
    message = seal_shares(bytes(16), 2, [sender, tx], session_id=SESSION, engine=engine, routes=_routes(2, 1))[0]
    data = bytearray(first_hop_packet(message, SRC, _path(0, 1)))
    data[-1] ^= 0xFF  # one ciphertext byte: the UDP checksum no longer matches
    with pytest.raises(ChecksumError):
        relay_packet(bytes(data), receiver, rx, engine=engine)
    with pytest.raises(TruncatedError):
        relay_packet(bytes(data[:60]), receiver, rx, engine=engine)
    assert receiver.position == 0 and rx.position == 0


def test_relay_packet_forged_payload_with_fixed_checksum_fails_the_tag(engine: Engine) -> None:
    """An attacker who also fixes the UDP checksum is stopped by the per-hop tag."""
    sender, receiver = _pools("link")
    _, out = _pools("next")
    pools = [sender, _pools("x")[0]]
    message = seal_shares(bytes(16), 2, pools, session_id=SESSION, engine=engine, routes=_routes(2, 1))[0]
    scapy_pkt = IPv6(first_hop_packet(message, SRC, _path(0, 1)))
    scapy_pkt[UDP].remove_payload()
    scapy_pkt[UDP].add_payload(bytes(len(message.ciphertext)))  # same length, other bytes
    del scapy_pkt[UDP].chksum
    del scapy_pkt[IPv6].plen
    with pytest.raises(TagError):
        relay_packet(bytes(scapy_pkt), receiver, out, engine=engine)
    assert out.position == 0 and (receiver.position, receiver.available) == (0, 1 << 12)  # nothing consumed


def test_relay_packet_replay(engine: Engine) -> None:
    sender, receiver = _pools("link")
    _, out = _pools("next")
    pools = [sender, _pools("y")[0]]
    message = seal_shares(bytes(16), 2, pools, session_id=SESSION, engine=engine, routes=_routes(2, 2))[0]
    data = first_hop_packet(message, SRC, _path(0, 2))
    relay_packet(data, receiver, out, engine=engine)
    with pytest.raises(KeyReuseError):
        relay_packet(data, receiver, out, engine=engine)


def test_first_hop_packet_addresses() -> None:
    sender, _ = _pools("link")
    message = seal_shares(bytes(8), 2, [sender, _pools("z")[0]], session_id=SESSION, routes=_routes(2, 2))[0]
    packet = parse_packet(first_hop_packet(message, SRC, _path(0, 2), sport=1000, dport=2000))
    assert packet.src == address(SRC) and packet.dst == address(_path(0, 2)[0]) and packet.final_dst == address(DST)
    assert (packet.sport, packet.dport) == (1000, 2000)
    assert message_of(packet) == message


def test_a_message_sealed_for_another_route_is_refused_at_the_source() -> None:
    sender, _ = _pools("link")
    message = seal_shares(bytes(8), 2, [sender, _pools("w")[0]], session_id=SESSION, routes=_routes(2, 2))[0]
    with pytest.raises(ParameterError, match="not sealed for this route"):
        first_hop_packet(message, SRC, _path(1, 2))
