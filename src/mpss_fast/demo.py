"""``mpss demo``: one key relayed k-of-n over node-disjoint SRv6 paths, in packets, hop by hop.

Everything runs in one process on documentation addresses (no network): each link's QKD
key is stood in for by OS randomness given to both ends' pools. The KMP plans five
node-disjoint paths on the built-in metro topology (with the ``sim`` extra installed;
otherwise five fixed paths); the source seals 3-of-5 shares; every relay verifies,
re-encrypts and re-tags real IPv6/SRH/DOH/UDP packets; one compromised relay alters
its share and tags it validly; the destination refuses k-1 shares, corrects the bad one
from the other four, names its path and derives the end-to-end key. The output shows
fingerprints only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from .e2e import derive_key
from .exceptions import MpssError, SessionError, ShareError, TagError
from .relay import (
    CHECK_BYTES,
    Destination,
    LinkKeyPool,
    first_hop_packet,
    first_hop_route,
    hop_key_bytes,
    message_of,
    open_into,
    relay_packet,
    seal,
    seal_shares,
)
from .wire import Packet, Srh, address, advance, encode_packet, forward_packet, parse_packet, route_bytes

SOURCE = "2001:db8::1"
DESTINATION = "2001:db8:ff::1"
OTHER_PATH_RELAY = "2001:db8:9:2::1"
KEY_BYTES = 32


def fingerprint(data: bytes) -> str:
    """A short SHA-256 fingerprint: safe to print, useless to an attacker."""
    return hashlib.sha256(data).hexdigest()[:12]


@dataclass
class DemoResult:
    """What the demo checked; ``ok`` when every check passed."""

    lines: list[str]
    ok: bool


@dataclass(frozen=True)
class _Route:
    """One path as the demo uses it: the SID list in travel order, ending at the destination."""

    source: str
    segments: tuple[str, ...]


def _plan(say: Callable[[str], None]) -> tuple[int, int, list[_Route]]:
    """k, n and the paths: from the KMP on the metro topology, or fixed ones without networkx."""
    try:
        from .kmp import METRO_ENDPOINTS, metro, plan
    except ImportError:
        say("paths: 5 fixed ones (pip install 'mpss-fast[sim]' to plan them with the KMP)")
        routes = [
            _Route(SOURCE, (f"2001:db8:{i + 1:x}:1::1", f"2001:db8:{i + 1:x}:2::1", DESTINATION)) for i in range(5)
        ]
        return 3, 5, routes
    topology = metro()
    src, dst = METRO_ENDPOINTS
    chosen = plan(topology, src, dst, failures=2, compromised=2)
    say(
        f"KMP: metro topology ({len(topology)} nodes), {chosen.n} node-disjoint paths {src} -> {dst}, "
        f"k={chosen.k} n={chosen.n} (tolerates 2 failed paths, 2 compromised relays)"
    )
    return chosen.k, chosen.n, [_Route(topology.sid(src), tuple(p.segments)) for p in chosen.paths]


def _link(name: str, nbytes: int) -> tuple[LinkKeyPool, LinkKeyPool]:
    stream = os.urandom(nbytes)  # stands in for the QKD key both ends of this link hold
    return LinkKeyPool(name, stream), LinkKeyPool(name, stream)


def _compromised_relay(data: bytes, pool_in: LinkKeyPool, pool_out: LinkKeyPool) -> bytes:
    """A relay the attacker owns: it decrypts its share, alters it, and seals it validly for the next link."""
    packet = parse_packet(data)
    y = bytearray(packet.option.share_len)
    open_into(message_of(packet), pool_in, y)
    y[0] ^= 0x5A
    altered = seal(packet.option, y, pool_out, route=route_bytes(packet.src, advance(packet.srh)))
    y[:] = bytes(len(y))
    option = altered.option
    return encode_packet(
        forward_packet(packet, hop_key_id=option.hop_key_id, tag=option.tag, payload=altered.ciphertext)
    )


def run(print_line: Callable[[str], None] = print) -> DemoResult:
    """Run the demo; each output line goes to ``print_line`` as it is made."""
    lines: list[str] = []

    def say(text: str) -> None:
        lines.append(text)
        print_line(text)

    from . import BACKEND, KERNEL

    session = uuid.uuid4()
    say(f"MPSS demo: backend {BACKEND} ({KERNEL}), session {session}")
    k, n, routes = _plan(say)
    key = os.urandom(KEY_BYTES)
    per_hop = hop_key_bytes(KEY_BYTES + CHECK_BYTES)  # Poly1305 key + pad of one share (number and its check)
    say(f"source: random {KEY_BYTES}-byte number, fingerprint {fingerprint(key)}")
    links = [[_link(f"p{i + 1}/{h}", per_hop) for h in range(len(r.segments))] for i, r in enumerate(routes)]
    first_routes = [first_hop_route(r.source, r.segments) for r in routes]
    messages = seal_shares(key, k, [path[0][0] for path in links], session_id=session, routes=first_routes)
    bad_path = 2  # path IDs are 0..n-1: the third path's first relay is compromised
    arrived = []
    for i, (route, message) in enumerate(zip(routes, messages, strict=True)):
        data = first_hop_packet(message, route.source, route.segments)
        relays = len(route.segments) - 1
        for h in range(relays):
            pool_in, pool_out = links[i][h][1], links[i][h + 1][0]
            if i == bad_path and h == 0:
                data = _compromised_relay(data, pool_in, pool_out)
            else:
                data = relay_packet(data, pool_in, pool_out)
        arrived.append(data)
        note = ", its first relay alters the share" if i == bad_path else ""
        say(f"path {i}: {relays} relays, {len(data)}-byte packets, share x={message.option.x}{note}")

    destination = Destination()
    order = sorted(range(n), key=lambda _: secrets.randbelow(1 << 30))
    honest = [i for i in order if i != bad_path]
    for i in honest[: k - 1]:
        destination.open(message_of(parse_packet(arrived[i])), links[i][-1][1])
    try:
        destination.deliver(session)
        too_few_refused = False
    except (ShareError, SessionError):
        too_few_refused = True
    say(f"destination: {k - 1} shares refused as too few: {'yes' if too_few_refused else 'NO'}")
    for i in [*honest[k - 1 :], bad_path]:
        destination.open(message_of(parse_packet(arrived[i])), links[i][-1][1])
    delivery = destination.deliver(session)
    match = secrets.compare_digest(delivery.number, key)
    named = delivery.bad_paths == (bad_path,)
    say(
        f"rebuilt from {n} shares, corrected the share of path(s) {', '.join(map(str, delivery.bad_paths)) or 'none'}: "
        f"fingerprint {fingerprint(delivery.number)}, {'matches' if match else 'DOES NOT MATCH'}"
    )
    e2e = delivery.key()
    same_key = secrets.compare_digest(e2e, derive_key(key, session))
    say(
        f"end-to-end key (HKDF-SHA256, key ID {session}): fingerprint {fingerprint(e2e)}, same at both ends: "
        f"{'yes' if same_key else 'NO'}"
    )

    used = [[(tx.position, rx.position) for tx, rx in path] for path in links]
    one_pad_each = all(pair == (per_hop, per_hop) for path in used for pair in path)
    say(f"link keys: {per_hop} bytes per share per link, each used once: {'yes' if one_pad_each else 'NO'}")
    tamper_caught = _tampering_on_a_link_is_caught(k, n, _flip_a_bit)
    say(f"an attacker on a link who flips a bit is caught by the next hop's tag: {'yes' if tamper_caught else 'NO'}")
    reroute_caught = _tampering_on_a_link_is_caught(k, n, _reroute)
    say(
        "an attacker on a link who rewrites the segment list is caught by the next hop's tag: "
        f"{'yes' if reroute_caught else 'NO'}"
    )
    ok = match and named and same_key and one_pad_each and too_few_refused and tamper_caught and reroute_caught
    return DemoResult(lines, ok)


def _flip_a_bit(packet: Packet) -> Packet:
    return dataclasses.replace(packet, payload=bytes([packet.payload[0] ^ 1]) + packet.payload[1:])


def _reroute(packet: Packet) -> Packet:
    """Send the share on through another relay (one of another path) instead of the planned next one."""
    final, _, *rest = packet.srh.segments
    segments = (final, address(OTHER_PATH_RELAY), *rest)
    return dataclasses.replace(packet, srh=Srh(segments, packet.srh.segments_left))


def _tampering_on_a_link_is_caught(k: int, n: int, change: Callable[[Packet], Packet]) -> bool:
    """An attacker on a link changes a packet (and fixes the UDP checksum): the next relay must refuse it,
    consuming none of its link key."""
    size = hop_key_bytes(KEY_BYTES + CHECK_BYTES)
    (tx, rx), (tx_next, _) = _link("t/0", size), _link("t/1", size)
    path = ("2001:db8:1:1::1", "2001:db8:1:2::1", DESTINATION)
    message = seal_shares(
        os.urandom(KEY_BYTES),
        k,
        [tx] + [_link(f"x{i}", size)[0] for i in range(n - 1)],
        routes=[first_hop_route(SOURCE, path)] * n,
    )[0]
    packet = parse_packet(first_hop_packet(message, SOURCE, path))
    forged = encode_packet(change(packet))  # a fresh, valid checksum
    try:
        relay_packet(forged, rx, tx_next)
    except TagError:
        return rx.position == 0 and rx.available == size
    except MpssError:
        return False
    return False
