"""Whole packets: byte layout, UDP checksum, the SRv6 End step, and a catalogue of bad packets."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from mpss_fast.exceptions import (
    BadFieldError,
    BadHeaderError,
    BadPaddingError,
    ChecksumError,
    DuplicateOptionError,
    HopLimitError,
    InputTypeError,
    MissingOptionError,
    NextHeaderError,
    SegmentsLeftError,
    TruncatedError,
    UnknownOptionError,
    UnsupportedVersionError,
    WireError,
)
from mpss_fast.wire import (
    Srh,
    Tlv,
    address,
    advance_packet,
    encode_packet,
    forward_packet,
    parse_packet,
    segment_endpoint,
    udp_checksum,
    udp_checksum_ok,
)
from tests.fuzz_wire import PATH, SRC, sample_option, sample_packet

RELAY, DEST = PATH

# The example of docs/wire-format.md, written out header by header; the checksum was
# summed by hand (0x1C64 folded) and agrees with the reference below and with scapy.
EXAMPLE = bytes.fromhex(
    "60000000" "006c" "3c" "40"  # IPv6: version 6, Payload Length 108, Next Header 60, Hop Limit 64
    "20010db8000000000000000000000001"  # source
    "20010db800000000000000000000000a"  # destination = the relay = Segment List[1]
    "2b" "06" "7e" "34"  # DOH: Next Header 43, Hdr Ext Len 6, MPSS option, 52 octets
    "21020301" "00000007" "00040000"
    "000102030405060708090a0b0c0d0e0f" "0102030405060708" "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"
    "11" "04" "04" "01" "01" "00" "0000"  # SRH: NH 17, len 4, type 4, SL 1, LE 1, flags, tag
    "20010db8000000000000000000000002"  # Segment List[0]: the destination
    "20010db800000000000000000000000a"  # Segment List[1]: the relay
    "1194" "1194" "000c" "e39b"  # UDP 4500 -> 4500, length 12, checksum
    "deadbeef"
)  # fmt: skip
SRH_AT = 96
UDP_AT = SRH_AT + 40


def reference_checksum(data: bytes) -> int:
    """RFC 1071, word by word with end-around carry: an independent reference."""
    if len(data) % 2:
        data += b"\x00"
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def reference_udp_checksum(src: bytes, final: bytes, udp: bytes) -> int:
    """The UDP checksum of ``udp`` (checksum field zero) with the RFC 8200 §8.1 pseudo-header."""
    pseudo = src + final + len(udp).to_bytes(4, "big") + b"\x00\x00\x00\x11"
    return reference_checksum(pseudo + udp) or 0xFFFF


def assemble(
    doh: bytes,
    srh: bytes,
    payload: bytes,
    *,
    dst: bytes = RELAY,
    final: bytes = DEST,
    next_header: int = 60,
    hop_limit: int = 64,
    udp_len: int | None = None,
) -> bytes:
    """A packet from raw header bytes, with a consistent Payload Length and a correct checksum."""
    length = 8 + len(payload) if udp_len is None else udp_len
    udp = (4500).to_bytes(2, "big") * 2 + length.to_bytes(2, "big") + b"\x00\x00" + payload
    udp = udp[:6] + reference_udp_checksum(SRC, final, udp).to_bytes(2, "big") + udp[8:]
    ipv6 = b"\x60\x00\x00\x00" + (len(doh) + len(srh) + len(udp)).to_bytes(2, "big")
    return ipv6 + bytes((next_header, hop_limit)) + SRC + dst + doh + srh + udp


def example_parts() -> tuple[bytes, bytes, bytes]:
    """(DOH, SRH, payload) of EXAMPLE."""
    return EXAMPLE[40:SRH_AT], EXAMPLE[SRH_AT:UDP_AT], EXAMPLE[UDP_AT + 8 :]


def patch(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value) :]


def test_encode_matches_hand_computed_bytes() -> None:
    assert encode_packet(sample_packet()) == EXAMPLE
    assert assemble(*example_parts()) == EXAMPLE


def test_parse_hand_computed_bytes() -> None:
    packet = parse_packet(EXAMPLE)
    assert packet == sample_packet()
    assert (packet.src, packet.dst, packet.final_dst) == (SRC, RELAY, DEST)
    assert (packet.sport, packet.dport, packet.hop_limit, packet.payload) == (4500, 4500, 64, b"\xde\xad\xbe\xef")


def test_checksum_against_the_reference() -> None:
    assert udp_checksum(SRC, DEST, 4500, 4500, b"\xde\xad\xbe\xef") == 0xE39B
    for size in (1, 2, 3, 31, 32, 33, 1000):
        for _ in range(20):
            src, final, payload = os.urandom(16), os.urandom(16), os.urandom(size)
            sport, dport = int.from_bytes(os.urandom(2), "big"), int.from_bytes(os.urandom(2), "big")
            udp = sport.to_bytes(2, "big") + dport.to_bytes(2, "big") + (8 + size).to_bytes(2, "big") + b"\0\0"
            expected = reference_udp_checksum(src, final, udp + payload)
            assert udp_checksum(src, final, sport, dport, payload) == expected
            assert udp_checksum_ok(src, final, udp[:6] + expected.to_bytes(2, "big") + payload)


def test_checksum_never_zero() -> None:
    # a payload whose sum makes the one's complement sum 0xFFFF: the checksum is sent as 0xFFFF
    base = 0xFFFF - udp_checksum(SRC, DEST, 0, 0, b"\x00\x00")
    payload = (0xFFFF - base).to_bytes(2, "big") if base else b"\xff\xff"
    checksum = udp_checksum(SRC, DEST, 0, 0, payload)
    assert checksum == 0xFFFF
    udp = b"\x00\x00\x00\x00\x00\x0a" + checksum.to_bytes(2, "big") + payload
    assert udp_checksum_ok(SRC, DEST, udp)
    assert not udp_checksum_ok(SRC, DEST, udp[:6] + b"\x00\x00" + payload)
    assert not udp_checksum_ok(SRC, DEST, b"\x00")


def test_checksum_uses_the_final_destination() -> None:
    packet = parse_packet(EXAMPLE)
    udp = bytearray(EXAMPLE[UDP_AT:])
    udp[6:8] = b"\x00\x00"
    assert udp_checksum(SRC, DEST, 4500, 4500, packet.payload) == reference_udp_checksum(SRC, DEST, bytes(udp))
    assert udp_checksum(SRC, RELAY, 4500, 4500, packet.payload) != 0xE39B


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"hop_limit": 1, "traffic_class": 0xB8, "flow_label": 0xFFFFF},
        {"option": sample_option(share_len=7), "payload": b"odd len"},
        {"option": sample_option(share_len=1), "payload": b"\x00"},
        {"extra_options": (Tlv(0x1E, b"abc"), Tlv(0x3E))},
        {"srh": Srh.from_path([*PATH], flags=3, tag=9, tlvs=[Tlv(5, bytes(38)), Tlv(7, b"z")])},
        {"srh": Srh(PATH[::-1], 0)},
        {"srh": Srh.from_path([address(f"2001:db8:{i}::1") for i in range(1, 120)])},
        {"option": sample_option(share_len=60000), "payload": bytes(60000)},
    ],
)
def test_round_trip(changes: dict[str, object]) -> None:
    packet = sample_packet(**changes)
    encoded = encode_packet(packet)
    assert parse_packet(encoded) == packet
    assert parse_packet(bytearray(encoded)) == packet
    assert parse_packet(memoryview(encoded)) == packet
    assert len(encoded) == 40 + int.from_bytes(encoded[4:6], "big")


def test_encode_accepts_text_and_bytes_like() -> None:
    packet = sample_packet(src="2001:db8::1", payload=bytearray(b"\xde\xad\xbe\xef"))
    assert encode_packet(packet) == EXAMPLE


def test_constructor_normalises_and_type_errors() -> None:
    packet = sample_packet(extra_options=[Tlv(0x1E)], payload=memoryview(b"\xde\xad\xbe\xef"))
    assert packet.extra_options == (Tlv(0x1E),) and type(packet.payload) is bytes
    assert sample_packet(src="2001:db8::1").src == SRC
    with pytest.raises(InputTypeError):
        sample_packet(payload=1234)
    with pytest.raises(InputTypeError):
        sample_packet(src=1)
    for name in ("sport", "dport", "hop_limit", "traffic_class", "flow_label"):
        with pytest.raises(InputTypeError, match=name):
            encode_packet(sample_packet(**{name: 1.0}))


def test_option_type_parameter() -> None:
    encoded = encode_packet(sample_packet(), option_type=0xFE)
    assert encoded[42] == 0xFE
    assert parse_packet(encoded, option_type=0xFE) == sample_packet()
    with pytest.raises(UnknownOptionError):
        parse_packet(encoded)  # 0xFE has act 11
    with pytest.raises(BadFieldError):
        parse_packet(encoded, option_type=1)
    with pytest.raises(BadFieldError):
        encode_packet(sample_packet(), option_type=300)


def test_segment_endpoint_changes_hop_limit_segments_left_and_destination() -> None:
    out = segment_endpoint(EXAMPLE)
    diff = [i for i in range(len(EXAMPLE)) if out[i] != EXAMPLE[i]]
    assert all(i == 7 or 24 <= i < 40 or i == SRH_AT + 3 for i in diff)
    assert out[7] == 63 and out[SRH_AT + 3] == 0 and out[24:40] == DEST
    packet = parse_packet(out)  # the checksum still holds: it covers the final destination
    assert packet == advance_packet(parse_packet(EXAMPLE))
    assert packet.dst == DEST and packet.srh.segments_left == 0 and packet.hop_limit == 63
    with pytest.raises(SegmentsLeftError):
        segment_endpoint(out)
    with pytest.raises(SegmentsLeftError):
        advance_packet(packet)


def test_segment_endpoint_walks_a_long_path() -> None:
    hops = [address(f"2001:db8:{i}::1") for i in range(1, 6)]
    data = encode_packet(sample_packet(srh=Srh.from_path([*hops, DEST])))
    seen = [parse_packet(data).dst]
    for _ in range(5):
        data = segment_endpoint(bytearray(data))
        seen.append(parse_packet(data).dst)
    assert seen == [*hops, DEST]
    assert data[7] == 64 - 5


def test_hop_limit_expiry() -> None:
    data = encode_packet(sample_packet(hop_limit=1))
    with pytest.raises(HopLimitError):
        segment_endpoint(data)
    with pytest.raises(HopLimitError):
        advance_packet(parse_packet(data))
    kept = segment_endpoint(data, decrement_hop_limit=False)
    assert kept[7] == 1 and parse_packet(kept).srh.segments_left == 0
    assert advance_packet(parse_packet(data), decrement_hop_limit=False).hop_limit == 1


def test_segment_endpoint_checks_the_packet() -> None:
    bad = patch(EXAMPLE, UDP_AT + 6, b"\x00\x01")
    with pytest.raises(ChecksumError):
        segment_endpoint(bad)
    assert parse_packet(segment_endpoint(bad, verify_checksum=False), verify_checksum=False).dst == DEST


def test_forward_packet() -> None:
    packet = parse_packet(EXAMPLE)
    hopped = forward_packet(packet, hop_key_id=77, tag=b"\x11" * 16, payload=b"\x01\x02\x03\x04")
    assert hopped.option == sample_option(hop_key_id=77, tag=b"\x11" * 16)
    assert (hopped.dst, hopped.hop_limit, hopped.payload) == (DEST, 63, b"\x01\x02\x03\x04")
    assert parse_packet(encode_packet(hopped)) == hopped  # the checksum is recomputed
    assert forward_packet(packet, hop_key_id=1, tag=bytes(16), payload=bytearray(4)).payload == bytes(4)
    with pytest.raises(BadFieldError):
        forward_packet(packet, hop_key_id=1, tag=bytes(16), payload=b"12345")
    with pytest.raises(BadFieldError):
        forward_packet(packet, hop_key_id=-1, tag=bytes(16), payload=b"1234")


@pytest.mark.parametrize(
    "changes",
    [
        {"payload": b"12345"},
        {"sport": 65536},
        {"dport": -1},
        {"hop_limit": 256},
        {"traffic_class": 256},
        {"flow_label": 1 << 20},
        {"src": b"short"},
        {"src": "not an address"},
        {"option": sample_option(share_len=65500), "payload": bytes(65500)},  # Payload Length > 65535
        {"option": sample_option(share_len=65500), "payload": bytes(65500), "extra_options": (Tlv(0x1E),)},
        {"extra_options": (Tlv(0x5E),)},
    ],
)
def test_encode_rejects(changes: dict[str, object]) -> None:
    with pytest.raises(BadFieldError):
        encode_packet(sample_packet(**changes))


# --- the catalogue of bad packets -------------------------------------------------------

EXTRAS = encode_packet(
    sample_packet(extra_options=(Tlv(0x1E, b"abc"),), srh=Srh.from_path([*PATH], tlvs=[Tlv(9, b"xyz")]), hop_limit=9)
)


@pytest.mark.parametrize("data", [EXAMPLE, EXTRAS], ids=["usual", "extras"])
def test_truncated_at_every_offset(data: bytes) -> None:
    for cut in range(len(data)):
        with pytest.raises(TruncatedError):
            parse_packet(data[:cut])


@pytest.mark.parametrize("data", [EXAMPLE, EXTRAS], ids=["usual", "extras"])
def test_truncated_with_consistent_payload_length(data: bytes) -> None:
    """A shorter buffer whose IPv6 Payload Length was fixed up: the inner headers are cut short."""
    for cut in range(42, len(data)):
        short = data[:4] + (cut - 40).to_bytes(2, "big") + data[6:cut]
        with pytest.raises(WireError):
            parse_packet(short)


def test_doh_ext_len_beyond_the_buffer() -> None:
    with pytest.raises(TruncatedError):
        parse_packet(patch(EXAMPLE, 41, b"\xc8"))


def test_srh_ext_len_beyond_the_buffer() -> None:
    with pytest.raises(TruncatedError):
        parse_packet(patch(EXAMPLE, SRH_AT + 1, b"\x40"))


def test_udp_length() -> None:
    doh, srh, payload = example_parts()
    with pytest.raises(TruncatedError):
        parse_packet(assemble(doh, srh, payload, udp_len=13))
    with pytest.raises(BadHeaderError):
        parse_packet(assemble(doh, srh, payload, udp_len=11))


def test_ip_header_problems() -> None:
    with pytest.raises(BadHeaderError, match="version"):
        parse_packet(patch(EXAMPLE, 0, b"\x40"))
    with pytest.raises(BadHeaderError, match="after"):
        parse_packet(EXAMPLE + b"\x00")  # trailing bytes beyond Payload Length
    with pytest.raises(BadHeaderError, match="Destination Address"):
        parse_packet(assemble(*example_parts(), dst=DEST))


@pytest.mark.parametrize(
    ("offset", "value"),
    [(6, 17), (6, 43), (40, 17), (40, 60), (SRH_AT, 6), (SRH_AT, 59)],
    ids=["ipv6-udp", "ipv6-routing", "doh-udp", "doh-doh", "srh-tcp", "srh-none"],
)
@pytest.mark.parametrize("data", [EXAMPLE, EXTRAS], ids=["usual", "extras"])
def test_wrong_next_header_chain(data: bytes, offset: int, value: int) -> None:
    if offset == SRH_AT:
        offset = 40 + 8 * (data[41] + 1)
    with pytest.raises(NextHeaderError):
        parse_packet(patch(data, offset, bytes((value,))))


def test_segment_list_problems() -> None:
    doh, _, payload = example_parts()
    with pytest.raises(SegmentsLeftError):  # SL 2 > Last Entry 1
        parse_packet(assemble(doh, bytes.fromhex("1104040201000000") + DEST + RELAY, payload))
    with pytest.raises(BadHeaderError, match="empty"):  # zero-length segment list
        parse_packet(assemble(doh, bytes.fromhex("1100040000000000"), payload))
    with pytest.raises(BadHeaderError, match="Routing Type"):
        parse_packet(assemble(doh, bytes.fromhex("1104000101000000") + DEST + RELAY, payload))


def _with_option(data: bytes, offset: int, value: int) -> bytes:
    """EXAMPLE with one option octet (offset from the DOH start) changed and the packet still consistent."""
    doh, srh, payload = example_parts()
    return assemble(patch(doh, offset, bytes((value,))), srh, payload)


@pytest.mark.parametrize(
    ("offset", "value", "error"),
    [
        (7, 0, BadFieldError),  # share index 0
        (5, 4, BadFieldError),  # k > n
        (5, 1, BadFieldError),  # k < 2
        (4, 0x23, BadFieldError),  # unknown field polynomial
        (4, 0x31, UnsupportedVersionError),
        (4, 0x11, UnsupportedVersionError),  # version 1: its tag did not cover the route
        (4, 0x01, UnsupportedVersionError),
        (13, 5, BadFieldError),  # share length 5, payload 4
        (13, 3, BadFieldError),
        (15, 1, BadFieldError),  # reserved
        (3, 51, BadFieldError),  # option data length
    ],
)
def test_bad_option_fields(offset: int, value: int, error: type[WireError]) -> None:
    data = _with_option(EXAMPLE, offset, value)
    with pytest.raises(error):
        parse_packet(data)


def test_doh_option_catalogue() -> None:
    doh, srh, payload = example_parts()
    option = doh[2:]
    pad6 = b"\x01\x04\x00\x00\x00\x00"

    def doh_of(*parts: bytes) -> bytes:
        body = b"".join(parts)
        return bytes((43, (2 + len(body)) // 8 - 1)) + body

    ok = assemble(doh_of(pad6, option, b"\x00\x00"), srh, payload)
    assert parse_packet(ok) == sample_packet()
    kept = parse_packet(assemble(doh_of(b"\x1e\x04abcd", option, b"\x00\x00"), srh, payload))
    assert kept.extra_options == (Tlv(0x1E, b"abcd"),)
    for action in (0x40, 0x80, 0xC0):
        with pytest.raises(UnknownOptionError):
            parse_packet(assemble(doh_of(bytes((action | 0x1E, 4)) + b"abcd", option, b"\x00\x00"), srh, payload))
    with pytest.raises(DuplicateOptionError):
        parse_packet(assemble(doh_of(option, sample_option(x=2).encode(), b"\x01\x00"), srh, payload))
    with pytest.raises(MissingOptionError):
        parse_packet(assemble(doh_of(pad6), srh, payload))
    with pytest.raises(BadPaddingError):  # PadN with a non-zero octet
        parse_packet(assemble(doh_of(b"\x01\x04\x00\x00\x00\x01", option, b"\x00\x00"), srh, payload))
    with pytest.raises(BadPaddingError):  # padding that runs past the 8-octet boundary
        parse_packet(assemble(doh_of(option, b"\x1e\x04abcd", b"\x01\x07"), srh, payload))


def test_bad_checksum() -> None:
    for value in (b"\x00\x00", b"\xe3\x9c", b"\xff\xff"):
        with pytest.raises(ChecksumError):
            parse_packet(patch(EXAMPLE, UDP_AT + 6, value))
    flipped = patch(EXAMPLE, len(EXAMPLE) - 1, b"\xee")
    with pytest.raises(ChecksumError):
        parse_packet(flipped)
    assert parse_packet(flipped, verify_checksum=False).payload == b"\xde\xad\xbe\xee"


def test_checksum_over_the_current_destination_is_wrong() -> None:
    doh, srh, payload = example_parts()
    with pytest.raises(ChecksumError):
        parse_packet(assemble(doh, srh, payload, final=RELAY))


def test_not_a_buffer() -> None:
    with pytest.raises(InputTypeError):
        parse_packet("a string")  # type: ignore[arg-type]
    with pytest.raises(InputTypeError):
        segment_endpoint(12)  # type: ignore[arg-type]


def test_the_tag_input_of_the_worked_example() -> None:
    """docs/wire-format.md, "The per-hop tag": every byte of the tag input of EXAMPLE, and its tag."""
    from cryptography.hazmat.primitives.poly1305 import Poly1305

    from mpss_fast.relay import LinkKeyPool, message_of, open_into
    from mpss_fast.wire import route_bytes

    option_part = bytes.fromhex(
        "7e34" "21" "02" "03" "01" "00000007" "0004" "0000" "000102030405060708090a0b0c0d0e0f"
        "0102030405060708" "00000000000000000000000000000000"
    )  # fmt: skip
    route_part = bytes.fromhex(
        "20010db8000000000000000000000001"  # source
        "01" "01" "00" "0000"  # Segments Left, Last Entry, Flags, Tag
        "20010db8000000000000000000000002"  # Segment List[0]
        "20010db800000000000000000000000a"  # Segment List[1]
    )  # fmt: skip
    packet = parse_packet(EXAMPLE)
    assert packet.option.mac_bytes() == option_part
    assert route_bytes(packet.src, packet.srh) == route_part
    mac_key = bytes(range(32))
    tag = Poly1305.generate_tag(mac_key, option_part + route_part + bytes.fromhex("deadbeef"))
    assert tag == bytes.fromhex("13ee170ba9f139962f597fe4bef86dfd")
    docs = (Path(__file__).parent.parent / "docs" / "wire-format.md").read_text()
    assert "13ee170ba9f139962f597fe4bef86dfd" in docs and "20010db8000000000000000000000001  source" in docs
    # the relay code checks the same tag: with that MAC key and a pad of zeros, the example carrying this tag opens
    key_id = packet.option.hop_key_id
    tagged = message_of(dataclasses.replace(packet, option=packet.option.with_hop(key_id, tag)))
    assert tagged.route == route_part
    out = bytearray(4)
    open_into(tagged, LinkKeyPool("S>A", mac_key + bytes(4), position=key_id), out)
    assert bytes(out) == bytes.fromhex("deadbeef")
