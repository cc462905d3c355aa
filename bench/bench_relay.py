"""A relay hop of a 32-byte share: verify the tag, re-encrypt (fused), tag for the next link.

``relay`` on a message and ``relay_packet`` on packet bytes (parse, hop, SRv6 End,
encode), per engine (every native tier and pure). Each round relays a fresh message at
the next key ID, made outside the timing. Per-call medians in the summary;
``extra_info["hops_per_s"]`` in the JSON. The figure to hold: >= 50,000 hops/s.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from bench.grid import engine, engine_params
from mpss_fast import Engine
from mpss_fast.relay import LinkKeyPool, first_hop_packet, first_hop_route, hop_key_bytes, relay, relay_packet, seal
from mpss_fast.wire import MpssOption

Record = Callable[..., None]
SHARE_BYTES = 32
ROUNDS = 2000
PATH = ("2001:db8:1::1", "2001:db8:2::1", "2001:db8::2")
ROUTE = first_hop_route("2001:db8::1", PATH)
"""The routing fields the first hop's tag covers."""
OPTION = MpssOption(poly=0x11B, k=2, n=3, x=1, path_id=1, share_len=SHARE_BYTES, session_id=bytes(16))


def _links(rounds: int) -> tuple[LinkKeyPool, LinkKeyPool, LinkKeyPool]:
    """(sender's and relay's copies of the incoming link, the relay's outgoing link), enough for every round."""
    size = hop_key_bytes(SHARE_BYTES) * (rounds + 10)
    stream = os.urandom(size)
    return LinkKeyPool("S->R", stream), LinkKeyPool("S->R", stream), LinkKeyPool("R->D", os.urandom(size))


def _hops_per_s(benchmark: Any) -> None:
    stats = getattr(benchmark, "stats", None)
    if stats is not None and not getattr(benchmark, "disabled", False):
        benchmark.extra_info["hops_per_s"] = 1 / stats.stats.median


@pytest.mark.parametrize("label", engine_params())
def bench_relay_hop(benchmark: Any, record: Record, label: str) -> None:
    """relay(message, pool_in, pool_out) of a 32-byte share."""
    eng: Engine = engine(label)
    benchmark.group = "relay hop, 32 B share"
    tx, rx, out = _links(ROUNDS)

    def fresh() -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (seal(OPTION, os.urandom(SHARE_BYTES), tx, engine=eng), rx, out), {"engine": eng}

    result = benchmark.pedantic(relay, setup=fresh, rounds=ROUNDS if benchmark.enabled else 1)
    record(label, SHARE_BYTES, per_call=True)
    _hops_per_s(benchmark)
    assert len(result.ciphertext) == SHARE_BYTES


@pytest.mark.parametrize("label", engine_params())
def bench_relay_packet(benchmark: Any, record: Record, label: str) -> None:
    """relay_packet(bytes, pool_in, pool_out): parse + checksum, hop, SRv6 End, encode."""
    eng: Engine = engine(label)
    benchmark.group = "relay packet, 32 B share"
    tx, rx, out = _links(ROUNDS)

    def fresh() -> tuple[tuple[Any, ...], dict[str, Any]]:
        message = seal(OPTION, os.urandom(SHARE_BYTES), tx, route=ROUTE, engine=eng)
        return (first_hop_packet(message, "2001:db8::1", PATH), rx, out), {"engine": eng}

    result = benchmark.pedantic(relay_packet, setup=fresh, rounds=ROUNDS if benchmark.enabled else 1)
    record(label, SHARE_BYTES, per_call=True)
    _hops_per_s(benchmark)
    assert len(result) > SHARE_BYTES
