"""The MPSS option: byte layout, field checks, MAC input, round trips."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpss_fast.exceptions import BadFieldError, InputTypeError, TruncatedError, UnsupportedVersionError, WireError
from mpss_fast.wire import OPTION_DATA_LEN, OPTION_LEN, OPTION_TYPE, VERSION, MpssOption
from tests.fuzz_wire import SESSION_ID, TAG, sample_option

# Written out by hand from the table in docs/wire-format.md.
EXAMPLE = bytes.fromhex(
    "7e"  # Option Type: act 01, chg 1, experimental 11110
    "34"  # Opt Data Len 52
    "21"  # Ver 2 | Field 1 (0x11B)
    "02" "03" "01"  # k=2, n=3, x=1
    "00000007"  # Path ID 7
    "0004" "0000"  # Share Length 4, Reserved
    "000102030405060708090a0b0c0d0e0f"  # Session ID
    "0102030405060708"  # Hop Key ID
    "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"  # Tag
)  # fmt: skip


def test_constants() -> None:
    assert OPTION_TYPE == 0x7E and OPTION_TYPE >> 6 == 0b01 and OPTION_TYPE & 0x20
    assert OPTION_TYPE & 0x1F == 0x1E  # the RFC 4727 experimental low bits
    assert (VERSION, OPTION_DATA_LEN, OPTION_LEN) == (2, 52, 54)


def test_encode_matches_hand_computed_bytes() -> None:
    assert sample_option().encode() == EXAMPLE
    assert len(EXAMPLE) == OPTION_LEN


def test_decode_hand_computed_bytes() -> None:
    option = MpssOption.decode(EXAMPLE)
    assert option == sample_option()
    assert option.session_uuid == uuid.UUID(bytes=SESSION_ID)


def test_gfshare_field_code() -> None:
    encoded = sample_option(poly=0x11D).encode()
    assert encoded[2] == 0x22
    assert MpssOption.decode(encoded).poly == 0x11D


def test_mac_bytes_zero_the_tag_only() -> None:
    option = sample_option()
    mac = option.mac_bytes()
    assert mac == EXAMPLE[:-16] + bytes(16)
    assert option.with_hop(option.hop_key_id).encode() == mac


def test_mac_bytes_follow_the_option_type() -> None:
    assert sample_option().mac_bytes(0x1E)[0] == 0x1E


def test_with_hop_replaces_per_hop_fields() -> None:
    option = sample_option()
    hopped = option.with_hop(99, b"\x55" * 16)
    assert (hopped.hop_key_id, hopped.tag) == (99, b"\x55" * 16)
    assert hopped == sample_option(hop_key_id=99, tag=b"\x55" * 16)
    assert option.with_hop(5).tag == bytes(16)
    with pytest.raises(BadFieldError):
        option.with_hop(-1)
    with pytest.raises(BadFieldError):
        option.with_hop(1 << 64)
    with pytest.raises(BadFieldError):
        option.with_hop(1, b"short")


def test_configurable_option_type() -> None:
    encoded = sample_option().encode(0xDE)
    assert encoded[0] == 0xDE
    assert MpssOption.decode(encoded, 0xDE) == sample_option()
    with pytest.raises(BadFieldError, match="option type"):
        MpssOption.decode(encoded)
    for bad in (0, 1, 256, -1):
        with pytest.raises(BadFieldError):
            sample_option().encode(bad)


def test_uuid_and_bytes_like_session_ids() -> None:
    sid = uuid.uuid4()
    assert sample_option(session_id=sid).session_id == sid.bytes
    assert sample_option(session_id=bytearray(SESSION_ID)).session_id == SESSION_ID
    assert type(sample_option(tag=memoryview(TAG)).tag) is bytes


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"x": 0}, "share index"),
        ({"x": 256}, "share index"),
        ({"k": 4, "n": 3}, "exceeds"),
        ({"k": 1}, "threshold"),
        ({"n": 256, "k": 2}, "total n"),
        ({"poly": 0x11C}, "polynomial"),
        ({"share_len": 0}, "share_len"),
        ({"share_len": 65536}, "share_len"),
        ({"path_id": 1 << 32}, "path_id"),
        ({"path_id": -1}, "path_id"),
        ({"hop_key_id": 1 << 64}, "hop_key_id"),
        ({"session_id": bytes(15)}, "session_id"),
        ({"tag": bytes(17)}, "tag"),
    ],
)
def test_constructor_rejects(changes: dict[str, object], match: str) -> None:
    with pytest.raises(BadFieldError, match=match):
        sample_option(**changes)


def test_constructor_type_errors() -> None:
    with pytest.raises(InputTypeError):
        sample_option(session_id=12)
    with pytest.raises(InputTypeError):
        sample_option(tag=None)
    for name in ("k", "n", "x", "path_id", "share_len", "hop_key_id"):
        with pytest.raises(InputTypeError, match=name):
            sample_option(**{name: 3.0})
    with pytest.raises(InputTypeError):
        sample_option().with_hop(1.0)  # type: ignore[arg-type]
    with pytest.raises(InputTypeError):
        sample_option().with_hop(1, 16)  # type: ignore[arg-type]


def _mutate(offset: int, value: int) -> bytes:
    data = bytearray(EXAMPLE)
    data[offset] = value
    return bytes(data)


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        (_mutate(2, 0x31), UnsupportedVersionError, "version 3"),
        (_mutate(2, 0x11), UnsupportedVersionError, "version 1"),
        (_mutate(2, 0x01), UnsupportedVersionError, "version 0"),
        (_mutate(2, 0xF1), UnsupportedVersionError, "version 15"),
        (_mutate(2, 0x20), BadFieldError, "Field code 0"),
        (_mutate(2, 0x23), BadFieldError, "Field code 3"),
        (_mutate(3, 0x04), BadFieldError, "exceeds"),  # k > n
        (_mutate(3, 0x01), BadFieldError, "threshold"),  # k < 2
        (_mutate(5, 0x00), BadFieldError, "share index"),
        (_mutate(11, 0x00), BadFieldError, "share_len"),
        (_mutate(13, 0x01), BadFieldError, "Reserved"),
        (b"\x7e\x01\x31", UnsupportedVersionError, "version 3"),  # the version is checked before the length
        (b"\x7e\x00", BadFieldError, "no data"),
        (b"\x7e\x01\x20", BadFieldError, "52"),
        (EXAMPLE[:-1], TruncatedError, "54"),
        (EXAMPLE + b"\x00", BadFieldError, "after the option"),
        (b"\x7e", TruncatedError, "2 bytes"),
        (b"", TruncatedError, "2 bytes"),
    ],
)
def test_decode_rejects(data: bytes, error: type[WireError], match: str) -> None:
    with pytest.raises(error, match=match):
        MpssOption.decode(data)


def test_unsupported_version_with_other_length() -> None:
    future = bytes([0x7E, 60, 0x31]) + bytes(59)
    with pytest.raises(UnsupportedVersionError):
        MpssOption.decode(future)


def test_decode_type_error() -> None:
    with pytest.raises(InputTypeError):
        MpssOption.decode(123)  # type: ignore[arg-type]


options = st.builds(
    MpssOption,
    poly=st.sampled_from([0x11B, 0x11D]),
    k=st.integers(2, 255),
    n=st.just(255),
    x=st.integers(1, 255),
    path_id=st.integers(0, (1 << 32) - 1),
    share_len=st.integers(1, 0xFFFF),
    session_id=st.binary(min_size=16, max_size=16),
    hop_key_id=st.integers(0, (1 << 64) - 1),
    tag=st.binary(min_size=16, max_size=16),
)


@settings(max_examples=300, deadline=None)
@given(option=options, n_extra=st.integers(0, 253))
def test_round_trip(option: MpssOption, n_extra: int) -> None:
    option = MpssOption(
        option.poly,
        option.k,
        min(255, option.k + n_extra),
        option.x,
        option.path_id,
        option.share_len,
        option.session_id,
        option.hop_key_id,
        option.tag,
    )
    encoded = option.encode()
    assert len(encoded) == OPTION_LEN
    assert MpssOption.decode(encoded) == option
    assert MpssOption.decode(bytearray(encoded)) == option
    assert option.mac_bytes()[:-16] == encoded[:-16]
