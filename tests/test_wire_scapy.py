"""Cross-check against scapy, an independent dissector: our packets in scapy, scapy's packets in ours."""

from __future__ import annotations

import os
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpss_fast.wire import OPTION_TYPE, MpssOption, Packet, Srh, Tlv, address, encode_packet, parse_packet
from tests.fuzz_wire import SRC, sample_option, sample_packet

if os.environ.get("MPSS_FAST_NO_SKIPS") == "1":
    import scapy  # noqa: F401  (fail, do not skip, when the cross-check is demanded)
else:
    pytest.importorskip("scapy")

from scapy.layers.inet import UDP
from scapy.layers.inet6 import (
    HBHOptUnknown,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrSegmentRouting,
    Pad1,
    PadN,
)
from scapy.layers.inet6 import IPv6ExtHdrSegmentRoutingTLV as SRTLV
from scapy.packet import Raw


def text(addr: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6, addr)


def canon(addr: str) -> str:
    return text(socket.inet_pton(socket.AF_INET6, addr))


def scapy_checksum_ok(raw: bytes) -> bool:
    """Recompute the UDP checksum in scapy and compare it with the one in the packet."""
    dissected = IPv6(raw)
    sent = dissected[UDP].chksum
    del dissected[UDP].chksum
    return IPv6(bytes(dissected))[UDP].chksum == sent


def check_dissection(packet: Packet, raw: bytes) -> None:
    dissected = IPv6(raw)
    assert dissected.version == 6 and dissected.nh == 60 and dissected.plen == len(raw) - 40
    assert (dissected.src, dissected.dst) == (text(packet.src), text(packet.dst))
    assert (dissected.hlim, dissected.tc, dissected.fl) == (packet.hop_limit, packet.traffic_class, packet.flow_label)
    doh = dissected[IPv6ExtHdrDestOpt]
    assert doh.nh == 43 and 8 * (doh.len + 1) == len(bytes(doh)) - len(bytes(doh.payload))
    unknown = [o for o in doh.options if isinstance(o, HBHOptUnknown)]
    mpss = [o for o in unknown if o.otype == OPTION_TYPE]
    assert len(mpss) == 1
    assert mpss[0].optlen == 52 and mpss[0].optdata == packet.option.encode()[2:]
    assert [(o.otype, o.optdata) for o in unknown if o.otype != OPTION_TYPE] == [
        (t.type, t.data) for t in packet.extra_options
    ]
    srh = dissected[IPv6ExtHdrSegmentRouting]
    assert (srh.nh, srh.type, srh.segleft, srh.lastentry) == (17, 4, packet.srh.segments_left, packet.srh.last_entry)
    assert srh.tag == packet.srh.tag
    assert srh.addresses == [text(s) for s in packet.srh.segments]  # wire order: [0] is the destination
    kept = [(t.type, t.value) for t in srh.tlv_objects if t.type not in (0, 4)]
    assert kept == [(t.type, t.data) for t in packet.srh.tlvs]
    udp = dissected[UDP]
    assert (udp.sport, udp.dport, udp.len) == (packet.sport, packet.dport, 8 + len(packet.payload))
    assert bytes(udp.payload) == packet.payload
    assert scapy_checksum_ok(raw)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"srh": Srh.from_path([address(f"2001:db8:{i}::1") for i in range(1, 5)]), "hop_limit": 3},
        {"srh": Srh.from_path(["2001:db8::a", "2001:db8::2"], tag=0xBEEF, tlvs=[Tlv(6, b"hello")])},
        {"extra_options": (Tlv(0x1E, b"abc"), Tlv(0x3E, b""))},
        {"option": sample_option(share_len=33, poly=0x11D), "payload": bytes(range(33)), "flow_label": 12345},
        {"srh": Srh(Srh.from_path(["2001:db8::a", "2001:db8::2"]).segments, 0)},  # at the destination
    ],
)
def test_our_packets_dissect_in_scapy(changes: dict[str, object]) -> None:
    packet = sample_packet(**changes)
    check_dissection(packet, encode_packet(packet))


segments = st.lists(st.binary(min_size=16, max_size=16), min_size=1, max_size=8)


@settings(max_examples=60, deadline=None)
@given(
    segs=segments,
    left=st.integers(0, 7),
    payload=st.binary(min_size=1, max_size=80),
    ports=st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)),
    src=st.binary(min_size=16, max_size=16),
)
def test_random_packets_dissect_in_scapy(
    segs: list[bytes], left: int, payload: bytes, ports: tuple[int, int], src: bytes
) -> None:
    packet = sample_packet(
        src=src,
        srh=Srh(tuple(segs), min(left, len(segs) - 1)),
        option=sample_option(share_len=len(payload)),
        payload=payload,
        sport=ports[0],
        dport=ports[1],
    )
    check_dissection(packet, encode_packet(packet))


def scapy_packet(option: MpssOption, payload: bytes, path: list[str], left: int, **extra: object) -> bytes:
    doh_options = extra.get("doh_options") or [HBHOptUnknown(otype=OPTION_TYPE, optdata=option.encode()[2:])]
    return bytes(
        IPv6(src=text(SRC), dst=canon(path[::-1][left]), hlim=extra.get("hlim", 64))
        / IPv6ExtHdrDestOpt(nh=43, options=doh_options)
        / IPv6ExtHdrSegmentRouting(
            nh=17, addresses=path[::-1], segleft=left, tag=extra.get("tag", 0), tlv_objects=extra.get("tlvs", [])
        )
        / UDP(sport=1234, dport=5678)
        / Raw(payload)
    )


PATH3 = ["2001:db8:1::1", "2001:db8:2::1", "2001:db8::2"]


@pytest.mark.parametrize("left", [0, 1, 2])
def test_scapy_packets_parse(left: int) -> None:
    option = sample_option(share_len=5)
    raw = scapy_packet(option, b"hello", PATH3, left, hlim=17, tag=7)
    packet = parse_packet(raw)
    assert packet.option == option and packet.payload == b"hello"
    assert packet.srh.segments == tuple(address(a) for a in PATH3[::-1])
    assert (packet.srh.segments_left, packet.srh.tag, packet.hop_limit) == (left, 7, 17)
    assert (packet.src, packet.dst, packet.final_dst) == (SRC, address(PATH3[::-1][left]), address(PATH3[-1]))
    assert (packet.sport, packet.dport) == (1234, 5678)
    assert encode_packet(packet) == raw  # scapy picked the same layout and checksum


def test_scapy_padding_and_extra_options_parse() -> None:
    option = sample_option(share_len=3)
    data = option.encode()[2:]
    doh_options = [Pad1(), PadN(optdata=b"\x00" * 3), HBHOptUnknown(otype=OPTION_TYPE, optdata=data)]
    doh_options += [HBHOptUnknown(otype=0x1E, optdata=b"xy")]
    tlvs = [SRTLV(type=6, len=4, value=b"tlv!")]
    raw = scapy_packet(option, b"abc", PATH3, 2, doh_options=doh_options, tlvs=tlvs)
    packet = parse_packet(raw)
    assert packet.option == option
    assert packet.extra_options == (Tlv(0x1E, b"xy"),)
    assert packet.srh.tlvs == (Tlv(6, b"tlv!"),)
    assert parse_packet(encode_packet(packet)) == packet
    check_dissection(packet, encode_packet(packet))
