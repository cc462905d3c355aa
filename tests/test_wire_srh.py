"""The Segment Routing Header: reverse segment list, Segments Left, TLVs, the End step."""

from __future__ import annotations

from ipaddress import IPv6Address

import pytest

from mpss_fast.exceptions import (
    BadFieldError,
    BadHeaderError,
    BadPaddingError,
    InputTypeError,
    SegmentsLeftError,
    TruncatedError,
)
from mpss_fast.wire import Srh, Tlv, address, advance, encode_srh, parse_srh

A, B, C = (address(f"2001:db8::{i}") for i in "abc")
DEST = address("2001:db8::2")


def test_from_path_reverses_the_segment_list() -> None:
    srh = Srh.from_path([A, "2001:db8::b", IPv6Address("2001:db8::c"), DEST])
    assert srh.segments == (DEST, C, B, A)
    assert srh.path == (A, B, C, DEST)
    assert (srh.segments_left, srh.last_entry) == (3, 3)
    assert srh.dst == A and srh.final_dst == DEST


def test_hand_computed_bytes() -> None:
    srh = Srh.from_path([A, DEST], flags=0x80, tag=0x1234)
    assert encode_srh(srh, 17) == bytes.fromhex("11 04 04 01 01 80 1234") + DEST + A
    assert parse_srh(encode_srh(srh, 17)) == (srh, 17, 40)


def test_advance_walks_the_path_to_the_destination() -> None:
    srh = Srh.from_path([A, B, DEST])
    seen = [srh.dst]
    while srh.segments_left:
        srh = advance(srh)
        seen.append(srh.dst)
    assert seen == [A, B, DEST]
    with pytest.raises(SegmentsLeftError):
        advance(srh)


@pytest.mark.parametrize(
    ("tlvs", "tail"),
    [
        ((Tlv(5, bytes(38)),), b"\x05\x26" + bytes(38)),  # 40 octets: no padding
        ((Tlv(6, b"ab"),), b"\x06\x02ab" + b"\x04\x02\x00\x00"),  # PadN 4
        ((Tlv(6, b"abcde"),), b"\x06\x05abcde" + b"\x00"),  # Pad1
        ((Tlv(6), Tlv(7, b"x")), b"\x06\x00\x07\x01x" + b"\x04\x01\x00"),
    ],
)
def test_tlvs_are_kept_and_padded(tlvs: tuple[Tlv, ...], tail: bytes) -> None:
    srh = Srh.from_path([A, DEST], tlvs=tlvs)
    encoded = encode_srh(srh, 17)
    assert encoded[8 + 32 :] == tail
    assert encoded[1] == (len(encoded) - 8) // 8
    assert parse_srh(encoded)[0] == srh


def test_padding_tlvs_content_is_ignored_on_receipt() -> None:
    fixed = bytes.fromhex("11 03 04 00 00 00 0000") + DEST
    assert parse_srh(fixed + b"\x04\x06abcdef")[0].tlvs == ()  # RFC 8754 2.1.1.2: ignored
    assert parse_srh(fixed + b"\x00" * 8)[0].tlvs == ()
    assert parse_srh(fixed + b"\x00\x09\x01z\x04\x02\x00\x00")[0].tlvs == (Tlv(9, b"z"),)


def test_parse_from_other_buffers_and_offsets() -> None:
    encoded = b"xyz" + encode_srh(Srh.from_path([A, DEST]), 6)
    assert parse_srh(bytearray(encoded), 3)[1:] == (6, 43)
    assert parse_srh(memoryview(encoded), 3)[0].segments == (DEST, A)


def _fixed(ext_len: int, routing_type: int = 4, left: int = 0, last: int = 0) -> bytes:
    return bytes((17, ext_len, routing_type, left, last, 0, 0, 0))


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (_fixed(2, routing_type=0) + DEST, BadHeaderError),
        (_fixed(2, routing_type=3) + DEST, BadHeaderError),
        (_fixed(0), BadHeaderError),  # zero-length segment list
        (_fixed(1) + bytes(8), BadHeaderError),  # 8 octets: no room for a segment
        (_fixed(2, last=1) + DEST, BadHeaderError),  # Last Entry beyond Hdr Ext Len
        (_fixed(3, last=1) + DEST + bytes(8), BadHeaderError),
        (_fixed(2, left=1) + DEST, SegmentsLeftError),  # Segments Left > Last Entry
        (_fixed(4, left=2, last=1) + DEST + A, SegmentsLeftError),
        (_fixed(3) + DEST + b"\x06\x07abc\x00\x00\x00", BadHeaderError),  # TLV past the end
        (_fixed(3) + DEST + b"\x00" * 7 + b"\x06", BadHeaderError),  # TLV with no length octet
        (_fixed(3) + DEST + b"\x04\x07" + bytes(6), BadPaddingError),  # PadN past the end
        (_fixed(3) + DEST + b"\x00" * 7 + b"\x04", BadPaddingError),
        (_fixed(2), TruncatedError),  # Hdr Ext Len beyond the buffer
        (_fixed(255) + DEST, TruncatedError),
        (b"\x11\x02\x04", TruncatedError),
    ],
)
def test_bad_headers(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_srh(data)


def test_truncated_at_every_offset() -> None:
    encoded = encode_srh(Srh.from_path([A, B, DEST], tlvs=[Tlv(9, b"abc")]), 17)
    for cut in range(len(encoded)):
        with pytest.raises(TruncatedError):
            parse_srh(encoded[:cut])


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"segments": (), "segments_left": 0}, BadFieldError),
        ({"segments": (DEST,) * 128, "segments_left": 0}, BadFieldError),
        ({"segments": (DEST,), "segments_left": 1}, SegmentsLeftError),
        ({"segments": (DEST,), "segments_left": -1}, SegmentsLeftError),
        ({"segments": (DEST,), "segments_left": 0, "flags": 256}, BadFieldError),
        ({"segments": (DEST,), "segments_left": 0, "tag": 1 << 16}, BadFieldError),
        ({"segments": (DEST,), "segments_left": 0, "tlvs": (Tlv(4, b"\x00"),)}, BadFieldError),
        ({"segments": (DEST,), "segments_left": 0, "tlvs": (Tlv(0),)}, BadFieldError),
        ({"segments": (b"short",), "segments_left": 0}, BadFieldError),
        ({"segments": ("not an address",), "segments_left": 0}, BadFieldError),
    ],
)
def test_constructor_rejects(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        Srh(**kwargs)  # type: ignore[arg-type]


def test_type_errors() -> None:
    with pytest.raises(InputTypeError):
        parse_srh(5)  # type: ignore[arg-type]
    with pytest.raises(InputTypeError):
        Srh((DEST,), 0, flags=1.0)  # type: ignore[arg-type]
    with pytest.raises(InputTypeError):
        Srh((DEST,), 0.0)  # type: ignore[arg-type]
    with pytest.raises(InputTypeError):
        Srh((1,), 0)  # type: ignore[arg-type]
    with pytest.raises(InputTypeError):
        Tlv("a")  # type: ignore[arg-type]
    with pytest.raises(InputTypeError):
        Tlv(9, 5)  # type: ignore[arg-type]


def test_constructor_normalises_addresses_and_sequences() -> None:
    srh = Srh([str(IPv6Address(DEST)), IPv6Address(A)], 1, tlvs=[Tlv(9)])  # type: ignore[arg-type]
    assert srh.segments == (DEST, A) and srh.tlvs == (Tlv(9),)


def test_encode_rejects_what_does_not_fit() -> None:
    with pytest.raises(BadFieldError):
        encode_srh(Srh((DEST,) * 127, 0, tlvs=(Tlv(9, bytes(30)),)), 17)
    assert len(encode_srh(Srh((DEST,) * 127, 0), 17)) == 8 + 127 * 16
    with pytest.raises(BadFieldError):
        encode_srh(Srh((DEST,), 0), 300)
    with pytest.raises(BadFieldError):
        parse_srh(b"", -1)
