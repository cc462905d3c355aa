"""Relay hops: seal, verify + re-encrypt + re-tag, open; per-hop Poly1305 over option and ciphertext."""

from __future__ import annotations

import itertools
import uuid

import pytest

from mpss_fast import Engine
from mpss_fast.exceptions import BadFieldError, KeyPoolExhaustedError, KeyReuseError, ShareError, TagError
from mpss_fast.relay import (
    Arrival,
    Destination,
    LinkKeyPool,
    ShareMessage,
    hop_key_bytes,
    open_into,
    relay,
    seal,
    seal_shares,
)
from mpss_fast.wire import MpssOption, Srh, address, route_bytes

from .rng import seeded_rng

SESSION = uuid.UUID("12345678-9abc-def0-1234-56789abcdef0")
ROUTE = route_bytes(address("2001:db8::1"), Srh.from_path([address(f"2001:db8:{i}::1") for i in (1, 2, 3)]))
"""The routing fields of a share's packet (source, Segments Left, ..., segment list): covered by the tag."""


def _poly1305(key: bytes, msg: bytes) -> bytes:
    """RFC 8439 section 2.5, written from the RFC: an oracle independent of ``cryptography``."""
    r = int.from_bytes(key[:16], "little") & 0x0FFFFFFC0FFFFFFC0FFFFFFC0FFFFFFF
    s = int.from_bytes(key[16:], "little")
    p = (1 << 130) - 5
    acc = 0
    for i in range(0, len(msg), 16):
        block = msg[i : i + 16] + b"\x01"
        acc = (acc + int.from_bytes(block, "little")) * r % p
    return ((acc + s) & ((1 << 128) - 1)).to_bytes(16, "little")


def test_poly1305_oracle_matches_rfc8439_vector() -> None:
    key = bytes.fromhex("85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b")
    tag = _poly1305(key, b"Cryptographic Forum Research Group")
    assert tag.hex() == "a8061dc1305136c6c22b8baf0c0127a9"


def _links(name: str, count: int, size: int = 1 << 14) -> list[tuple[LinkKeyPool, LinkKeyPool]]:
    """(sender's pool, receiver's pool) per link: two copies of one key stream."""
    out = []
    for i in range(count):
        stream = seeded_rng(f"{name}-{i}".encode())(size)
        out.append((LinkKeyPool(f"{name}{i}->{name}{i + 1}", stream), LinkKeyPool(f"{name}{i}->{name}{i + 1}", stream)))
    return out


def _option(share_len: int = 32, **kw) -> MpssOption:
    fields = dict(poly=0x11B, k=2, n=3, x=1, path_id=7, share_len=share_len, session_id=SESSION.bytes)
    fields.update(kw)
    return MpssOption(**fields)


@pytest.mark.parametrize("hops", [1, 2, 4])
@pytest.mark.parametrize("size", [1, 32, 1000])
def test_share_crosses_every_hop_and_each_link_sees_a_new_ciphertext(engine: Engine, hops: int, size: int) -> None:
    y = seeded_rng(b"share")(size)
    links = _links("L", hops)
    message = seal(_option(size), y, links[0][0], engine=engine)
    seen = [message.ciphertext]
    for (_, rx), (tx, _) in itertools.pairwise(links):
        message = relay(message, rx, tx, engine=engine)
        seen.append(message.ciphertext)
    out = bytearray(size)
    open_into(message, links[-1][1], out, engine=engine)
    assert bytes(out) == y
    assert y not in seen and len(set(seen)) == hops


def test_ciphertext_and_tag_are_exactly_as_documented(engine: Engine) -> None:
    """Independent recomputation: ciphertext = y ^ pad, tag = Poly1305(mac_key, mac_bytes || ciphertext)."""
    stream = seeded_rng(b"doc")(4096)
    pool = LinkKeyPool("A->B", stream)
    pool.take(100)  # the message starts at key ID 100
    y = seeded_rng(b"y")(32)
    message = seal(_option(), y, pool, engine=engine)
    assert message.option.hop_key_id == 100
    material = stream[100 : 100 + hop_key_bytes(32)]
    assert message.ciphertext == bytes(a ^ b for a, b in zip(y, material[32:], strict=True))
    assert message.option.tag == _poly1305(material[:32], message.option.mac_bytes() + message.ciphertext)
    assert pool.position == 100 + 64


def _tampered(message: ShareMessage, where: str, index: int) -> ShareMessage:
    o = message.option
    route = message.route
    if where == "ciphertext":
        ct = bytearray(message.ciphertext)
        ct[index] ^= 1
        return ShareMessage(o, bytes(ct), route)
    if where == "tag":
        tag = bytearray(o.tag)
        tag[index] ^= 0x80
        return ShareMessage(o.with_hop(o.hop_key_id, bytes(tag)), message.ciphertext, route)
    if where == "route":  # one routing byte: the source, Segments Left, a segment
        changed = bytearray(route)
        changed[index] ^= 1
        return ShareMessage(o, message.ciphertext, bytes(changed))
    if where == "no route":
        return ShareMessage(o, message.ciphertext)
    changes = {"x": o.x ^ 2, "k": 3, "n": 4, "path_id": o.path_id + 1, "poly": 0x11D}
    fields = dict(poly=o.poly, k=o.k, n=o.n, x=o.x, path_id=o.path_id, share_len=o.share_len)
    if where in changes:
        fields[where] = changes[where]
    sid = bytearray(o.session_id)
    if where == "session":
        sid[index] ^= 1
    forged = MpssOption(**fields, session_id=bytes(sid), hop_key_id=o.hop_key_id, tag=o.tag)
    return ShareMessage(forged, message.ciphertext, route)


@pytest.mark.parametrize(
    ("where", "index"),
    [("ciphertext", 0), ("ciphertext", 31), ("tag", 0), ("tag", 15), ("x", 0), ("k", 0), ("n", 0),
     ("path_id", 0), ("poly", 0), ("session", 0), ("session", 15), ("route", 0), ("route", 16), ("route", 40),
     ("route", -1), ("no route", 0)],
)  # fmt: skip
def test_any_change_fails_the_tag_and_consumes_nothing(engine: Engine, where: str, index: int) -> None:
    (tx, rx), (tx2, _) = _links("T", 2)
    message = seal(_option(), seeded_rng(b"y")(32), tx, route=ROUTE, engine=engine)
    bad = _tampered(message, where, index)
    before = (rx.position, rx.available)
    with pytest.raises(TagError) as info:
        relay(bad, rx, tx2, route_out=ROUTE, engine=engine)
    err = info.value
    assert (err.link, err.path_id) == (rx.link, bad.option.path_id)
    assert err.session_id == bad.option.session_id and err.x == bad.option.x
    assert (rx.position, rx.available) == before  # a forgery consumes and discards nothing
    assert tx2.position == 0  # nothing taken for the next hop
    relay(message, rx, tx2, route_out=ROUTE, engine=engine)  # the genuine message still goes through, once
    assert rx.position == hop_key_bytes(32)
    with pytest.raises(KeyReuseError):
        relay(message, rx, tx2, route_out=ROUTE, engine=engine)


def test_tag_error_message_names_link_and_session_but_no_key_bytes(engine: Engine) -> None:
    ((tx, rx),) = _links("M", 1)
    y = seeded_rng(b"secret share")(32)
    message = _tampered(seal(_option(), y, tx, engine=engine), "ciphertext", 3)
    with pytest.raises(TagError) as info:
        open_into(message, rx, bytearray(32), engine=engine)
    text = str(info.value)
    assert rx.link in text and str(SESSION) in text
    for secret in (y, message.ciphertext, message.option.tag):
        assert secret.hex() not in text and repr(secret) not in text


def test_replayed_message_is_refused_at_a_relay(engine: Engine) -> None:
    (tx, rx), (tx2, _) = _links("R", 2)
    message = seal(_option(), bytes(32), tx, engine=engine)
    relay(message, rx, tx2, engine=engine)
    with pytest.raises(KeyReuseError):
        relay(message, rx, tx2, engine=engine)


def test_exhausted_pool_at_seal_takes_nothing(engine: Engine) -> None:
    pool = LinkKeyPool("A->B", bytes(63))
    with pytest.raises(KeyPoolExhaustedError):
        seal(_option(), bytes(32), pool, engine=engine)
    assert pool.available == 63


def test_exhausted_outgoing_pool_at_a_relay(engine: Engine) -> None:
    ((tx, rx),) = _links("X", 1)
    message = seal(_option(), bytes(32), tx, engine=engine)
    with pytest.raises(KeyPoolExhaustedError):
        relay(message, rx, LinkKeyPool("B->C", bytes(10)), engine=engine)
    assert rx.position == hop_key_bytes(32)  # the incoming pad is spent: the share is lost, never re-used


def test_share_length_mismatch_is_a_field_error() -> None:
    with pytest.raises(BadFieldError, match="share_len"):
        ShareMessage(_option(32), bytes(31))


def test_seal_checks_the_share_length(engine: Engine) -> None:
    ((tx, _),) = _links("S", 1)
    with pytest.raises(ValueError):
        seal(_option(32), bytes(31), tx, engine=engine)


def _session(engine: Engine, k: int, n: int, hops: int, secret: bytes):
    paths = [_links(f"P{i}-", hops) for i in range(n)]
    messages = seal_shares(secret, k, [p[0][0] for p in paths], session_id=SESSION, engine=engine)
    delivered = []
    for path, message in zip(paths, messages, strict=True):
        for (_, rx), (tx, _) in itertools.pairwise(path):
            message = relay(message, rx, tx, engine=engine)
        delivered.append((message, path[-1][1]))
    return messages, delivered


@pytest.mark.parametrize(("k", "n"), [(2, 3), (3, 5)])
def test_source_to_destination(engine: Engine, k: int, n: int) -> None:
    secret = seeded_rng(b"number")(32)
    messages, delivered = _session(engine, k, n, 3, secret)
    assert [m.option.x for m in messages] == list(range(1, n + 1))
    assert {m.option.session_id for m in messages} == {SESSION.bytes}
    dest = Destination(engine=engine)
    for i, (message, pool) in enumerate(delivered[:k]):
        assert not dest.ready(SESSION)
        receipt = dest.open(message, pool)
        assert (receipt.status, receipt.shares, receipt.x) == (Arrival.NEW, i + 1, message.option.x)
    assert dest.ready(SESSION)
    assert dest.rebuild(SESSION) == secret
    with pytest.raises(ShareError):  # the session is gone once rebuilt
        dest.rebuild(SESSION)


def test_too_few_shares(engine: Engine) -> None:
    _, delivered = _session(engine, 3, 4, 1, bytes(16))
    dest = Destination(engine=engine)
    for message, pool in delivered[:2]:
        dest.open(message, pool)
    with pytest.raises(ShareError, match="2 of the 3"):
        dest.rebuild(SESSION)


def test_same_share_index_twice_same_bytes_is_a_duplicate_and_different_bytes_a_conflict(engine: Engine) -> None:
    """A second copy of x is reported, never an error; its incoming key material is consumed all the same."""
    (tx_a, rx_a), (tx_b, rx_b), (tx_c, rx_c) = _links("D", 3)
    y = bytes(32)
    dest = Destination(engine=engine)
    dest.open(seal(_option(x=2, path_id=1), y, tx_a, engine=engine), rx_a)
    again = dest.open(seal(_option(x=2, path_id=2), y, tx_b, engine=engine), rx_b)
    assert (again.status, again.shares, again.earlier_paths) == (Arrival.DUPLICATE, 1, (1,))
    assert rx_b.position == hop_key_bytes(32)
    other = dest.open(seal(_option(x=2, path_id=3), b"\1" * 32, tx_c, engine=engine), rx_c)
    assert (other.status, other.shares, other.arrived, other.earlier_paths) == (Arrival.CONFLICT, 0, 1, (1, 2))
    assert rx_c.position == hop_key_bytes(32)


def test_message_disagreeing_with_its_session(engine: Engine) -> None:
    (tx_a, rx_a), (tx_b, rx_b) = _links("C", 2)
    dest = Destination(engine=engine)
    dest.open(seal(_option(x=1), bytes(32), tx_a, engine=engine), rx_a)
    with pytest.raises(BadFieldError, match="disagrees"):
        dest.open(seal(_option(x=2, k=3), bytes(32), tx_b, engine=engine), rx_b)


def test_seal_shares_argument_errors(engine: Engine) -> None:
    pools = [p for p, _ in _links("E", 3)]
    with pytest.raises(ValueError, match="path IDs"):
        seal_shares(bytes(32), 2, pools, path_ids=[1, 2], engine=engine)
    with pytest.raises(ValueError):
        seal_shares(bytes(32), 4, pools, engine=engine)
    with pytest.raises(TypeError):
        seal_shares("text", 2, pools, engine=engine)
    assert all(p.position == 0 for p in pools)
