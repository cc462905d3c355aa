"""``mpss demo``: one key relayed k-of-n over node-disjoint SRv6 paths, in packets, hop by hop.

Everything runs in one process on made-up addresses (no network): each link's QKD key
is stood in for by OS randomness given to both ends' pools; the source seals n shares,
every relay verifies, re-encrypts and re-tags real IPv6/SRH/DOH/UDP packets, and the
destination rebuilds the key from k of them. The output shows fingerprints only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from .exceptions import MpssError, ShareError, TagError
from .relay import (
    CHECK_BYTES,
    Destination,
    LinkKeyPool,
    first_hop_packet,
    hop_key_bytes,
    message_of,
    relay_packet,
    seal_shares,
)
from .wire import encode_packet, parse_packet

SOURCE = "2001:db8::1"
DESTINATION = "2001:db8:ff::1"


def fingerprint(data: bytes) -> str:
    """A short SHA-256 fingerprint: safe to print, useless to an attacker."""
    return hashlib.sha256(data).hexdigest()[:12]


@dataclass
class DemoResult:
    """What the demo checked; ``ok`` when every check passed."""

    lines: list[str]
    ok: bool


def _path(i: int, relays: int) -> list[str]:
    return [f"2001:db8:{i + 1:x}:{r}::1" for r in range(1, relays + 1)] + [DESTINATION]


def _link(name: str, nbytes: int) -> tuple[LinkKeyPool, LinkKeyPool]:
    stream = os.urandom(nbytes)  # stands in for the QKD key both ends of this link hold
    return LinkKeyPool(name, stream), LinkKeyPool(name, stream)


def run(k: int = 3, n: int = 5, relays: int = 3, print_line: Callable[[str], None] = print) -> DemoResult:
    """Run the demo; each output line goes to ``print_line`` as it is made."""
    lines: list[str] = []

    def say(text: str) -> None:
        lines.append(text)
        print_line(text)

    key = os.urandom(32)
    session = uuid.uuid4()
    per_hop = hop_key_bytes(len(key) + CHECK_BYTES)  # Poly1305 key + pad of the share (key and its check)
    from . import BACKEND, KERNEL

    say(f"MPSS demo: backend {BACKEND} ({KERNEL}), k={k}, n={n}, {relays} relays per path, session {session}")
    say(f"source {SOURCE}: random 32-byte key, fingerprint {fingerprint(key)}")
    links = [[_link(f"p{i + 1}/{h}", per_hop * 2) for h in range(relays + 1)] for i in range(n)]
    messages = seal_shares(key, k, [path[0][0] for path in links], session_id=session)
    arrived = {}
    for i, message in enumerate(messages):
        data = first_hop_packet(message, SOURCE, _path(i, relays))
        size = len(data)
        for h in range(relays):
            data = relay_packet(data, links[i][h][1], links[i][h + 1][0])
        arrived[i] = data
        say(f"path {i + 1}: {relays + 1} links, {size}-byte packets, share x={message.option.x} relayed")
    chosen = sorted(secrets.SystemRandom().sample(range(n), k))
    destination = Destination()
    for i in chosen[: k - 1]:
        destination.open(message_of(parse_packet(arrived[i])), links[i][-1][1])
    try:
        destination.rebuild(session)
        below_threshold_refused = False
    except ShareError:
        below_threshold_refused = True
    say(f"destination {DESTINATION}: {k - 1} shares refused as too few: {'yes' if below_threshold_refused else 'NO'}")
    last = chosen[k - 1]
    destination.open(message_of(parse_packet(arrived[last])), links[last][-1][1])
    rebuilt = destination.rebuild(session)
    match = secrets.compare_digest(rebuilt, key)
    paths = ", ".join(str(i + 1) for i in chosen)
    say(f"rebuilt from paths {paths}: fingerprint {fingerprint(rebuilt)}, {'matches' if match else 'DOES NOT MATCH'}")

    # Every link end used one message's material once; the last links of paths the
    # destination did not read still hold theirs (their receivers never took it).
    expected = [[(per_hop, per_hop if h < relays or i in chosen else 0) for h in range(relays + 1)] for i in range(n)]
    used = [[(tx.position, rx.position) for tx, rx in path] for path in links]
    one_pad_each = used == expected
    say(f"link keys: {per_hop} bytes per message per link, each used once: {'yes' if one_pad_each else 'NO'}")
    tamper_caught = _tampering_is_caught(k, n)
    say(f"a relay that flips one ciphertext bit is caught by the next hop's tag: {'yes' if tamper_caught else 'NO'}")
    ok = match and one_pad_each and below_threshold_refused and tamper_caught
    return DemoResult(lines, ok)


def _tampering_is_caught(k: int, n: int) -> bool:
    """An attacker on a link flips a ciphertext bit and fixes the UDP checksum: the next relay must refuse it."""
    size = hop_key_bytes(32 + CHECK_BYTES)
    (tx, rx), (tx_next, _) = _link("t/0", size), _link("t/1", size)
    message = seal_shares(os.urandom(32), k, [tx] + [_link(f"x{i}", size)[0] for i in range(n - 1)])[0]
    packet = parse_packet(first_hop_packet(message, SOURCE, _path(0, 1)))
    flipped = bytes([packet.payload[0] ^ 1]) + packet.payload[1:]
    forged = encode_packet(dataclasses.replace(packet, payload=flipped))  # a fresh, valid checksum
    try:
        relay_packet(forged, rx, tx_next)
    except TagError:
        return True
    except MpssError:
        return False
    return False
