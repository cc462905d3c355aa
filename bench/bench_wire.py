"""The wire format (pure Python): build + parse of a whole packet carrying a 32-byte share.

The packet: IPv6 | DOH with the MPSS option | SRH with four segments (three relays and
the destination) | UDP | 32-byte share: 208 octets. Also each half on its own, the SRv6
End step on bytes, and a relay's whole wire step (parse, new hop fields, End, encode).
Per-call medians in the summary table; ``extra_info["packets_per_s"]`` in the JSON.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from mpss_fast.wire import (
    MpssOption,
    Packet,
    Srh,
    address,
    encode_packet,
    forward_packet,
    parse_packet,
    segment_endpoint,
)

Record = Callable[..., None]
SHARE_BYTES = 32
PATH = ("2001:db8:1::1", "2001:db8:2::1", "2001:db8:3::1", "2001:db8::2")


@pytest.fixture(scope="module")
def packet() -> Packet:
    """A share in flight on its first hop."""
    option = MpssOption(
        poly=0x11B,
        k=3,
        n=5,
        x=2,
        path_id=17,
        share_len=SHARE_BYTES,
        session_id=os.urandom(16),
        hop_key_id=123_456,
        tag=os.urandom(16),
    )
    return Packet(
        src=address("2001:db8::1"),
        srh=Srh.from_path(PATH),
        option=option,
        payload=os.urandom(SHARE_BYTES),
        sport=4500,
        dport=4500,
    )


def _record(benchmark: Any, record: Record, nbytes: int) -> None:
    record("pure", nbytes, per_call=True)
    stats = getattr(benchmark, "stats", None)
    if stats is not None and not getattr(benchmark, "disabled", False):
        benchmark.extra_info["packets_per_s"] = 1 / stats.stats.median


def bench_wire_build_parse(benchmark: Any, record: Record, packet: Packet) -> None:
    """encode_packet + parse_packet (checksum computed and verified): the figure to hold >= 100,000/s."""
    benchmark.group = "wire build+parse, 32 B share, 4 segments"
    result = benchmark(lambda: parse_packet(encode_packet(packet)))
    _record(benchmark, record, len(encode_packet(packet)))
    assert result == packet


def bench_wire_build(benchmark: Any, record: Record, packet: Packet) -> None:
    """encode_packet alone."""
    benchmark.group = "wire build, 32 B share, 4 segments"
    data = benchmark(encode_packet, packet)
    _record(benchmark, record, len(data))
    assert len(data) == 208


def bench_wire_parse(benchmark: Any, record: Record, packet: Packet) -> None:
    """parse_packet alone."""
    benchmark.group = "wire parse, 32 B share, 4 segments"
    data = encode_packet(packet)
    result = benchmark(parse_packet, data)
    _record(benchmark, record, len(data))
    assert result == packet


def bench_wire_segment_endpoint(benchmark: Any, record: Record, packet: Packet) -> None:
    """segment_endpoint on bytes: full check, then Hop Limit, Segments Left and destination."""
    benchmark.group = "wire segment_endpoint, 32 B share, 4 segments"
    data = encode_packet(packet)
    out = benchmark(segment_endpoint, data)
    _record(benchmark, record, len(data))
    assert parse_packet(out).dst == address(PATH[1])


def bench_wire_relay_step(benchmark: Any, record: Record, packet: Packet) -> None:
    """A relay's wire work per packet, crypto excluded: parse, forward_packet (End + hop fields), encode."""
    benchmark.group = "wire relay step, 32 B share, 4 segments"
    data, tag, ciphertext = encode_packet(packet), os.urandom(16), os.urandom(SHARE_BYTES)

    def step() -> bytes:
        return encode_packet(forward_packet(parse_packet(data), hop_key_id=99, tag=tag, payload=ciphertext))

    out = benchmark(step)
    _record(benchmark, record, len(data))
    assert parse_packet(out).option.hop_key_id == 99
