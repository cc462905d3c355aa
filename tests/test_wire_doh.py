"""The Destination Options header: padding, alignment, other options, one MPSS option."""

from __future__ import annotations

import pytest

from mpss_fast.exceptions import (
    BadFieldError,
    BadHeaderError,
    BadPaddingError,
    DuplicateOptionError,
    InputTypeError,
    MissingOptionError,
    TruncatedError,
    UnknownOptionError,
    UnsupportedVersionError,
)
from mpss_fast.wire import Doh, Tlv, encode_doh, parse_doh
from tests.fuzz_wire import sample_option

OPTION = sample_option().encode()  # 54 octets


def header(*parts: bytes, next_header: int = 43) -> bytes:
    """A DOH from raw option bytes; Hdr Ext Len from their length (which must make a multiple of 8)."""
    body = b"".join(parts)
    assert (2 + len(body)) % 8 == 0
    return bytes((next_header, (2 + len(body)) // 8 - 1)) + body


def test_only_the_mpss_option_needs_no_padding() -> None:
    encoded = encode_doh(Doh(sample_option()), 43)
    assert encoded == b"\x2b\x06" + OPTION
    assert len(encoded) == 56
    assert parse_doh(encoded) == (Doh(sample_option()), 43, 56)


@pytest.mark.parametrize(
    ("data", "padding"),
    [
        (b"", b""),
        (b"\x01", b"\x01\x03\x00\x00\x00"),  # a 3-octet option: 5 octets of PadN
        (b"\x01\x02\x03", b"\x01\x01\x00"),
        (b"\x01\x02\x03\x04", b"\x01\x00"),  # two octets: PadN with no data
        (b"\x01\x02\x03\x04\x05", b"\x00"),  # one octet: Pad1
        (b"\x01\x02\x03\x04\x05\x06", b""),
    ],
)
def test_extra_options_follow_and_are_padded(data: bytes, padding: bytes) -> None:
    doh = Doh(sample_option(), (Tlv(0x1E, data),))
    encoded = encode_doh(doh, 43)
    if data:
        assert encoded == header(OPTION, bytes((0x1E, len(data))) + data, padding)
    assert len(encoded) % 8 == 0
    assert parse_doh(encoded) == (doh, 43, len(encoded))


def test_parse_at_an_offset_and_from_other_buffers() -> None:
    encoded = b"junk" + encode_doh(Doh(sample_option()), 17) + b"tail"
    assert parse_doh(encoded, 4) == (Doh(sample_option()), 17, 60)
    assert parse_doh(bytearray(encoded), 4)[2] == 60
    assert parse_doh(memoryview(encoded), 4)[1] == 17


def test_option_at_any_alignment_is_accepted() -> None:
    data = header(b"\x01\x04\x00\x00\x00\x00", OPTION, b"\x00\x00")  # option at offset 8
    assert parse_doh(data)[0].option == sample_option()
    data = header(b"\x00", OPTION, b"\x01\x05" + bytes(5))
    assert parse_doh(data)[0].option == sample_option()


def test_act_00_options_are_skipped_and_kept_in_order() -> None:
    data = header(b"\x1e\x00", OPTION, b"\x3e\x02ab", b"\x00\x00")
    doh = parse_doh(data)[0]
    assert doh.extra == (Tlv(0x1E), Tlv(0x3E, b"ab"))


@pytest.mark.parametrize("option_type", [0x5E, 0x9E, 0xDE, 0x40, 0x80, 0xC0, 0xFF])
def test_unknown_options_with_discard_actions_raise(option_type: int) -> None:
    data = header(OPTION, bytes((option_type, 4)), b"\x00" * 4, b"\x00\x00")
    with pytest.raises(UnknownOptionError) as info:
        parse_doh(data)
    assert info.value.option_type == option_type


def test_option_type_parameter() -> None:
    option = sample_option().encode(0x1E)
    data = header(option)
    assert parse_doh(data, option_type=0x1E)[0].option == sample_option()
    with pytest.raises(MissingOptionError):
        parse_doh(data)  # 0x1E is act 00: skipped, and then no MPSS option
    with pytest.raises(UnknownOptionError):
        parse_doh(header(OPTION), option_type=0x1E)  # 0x7E is act 01
    assert encode_doh(Doh(sample_option()), 43, option_type=0x1E)[2] == 0x1E


def test_duplicate_mpss_option() -> None:
    second = sample_option(x=2).encode()
    with pytest.raises(DuplicateOptionError):
        parse_doh(header(OPTION, second, b"\x01\x00"))


def test_missing_mpss_option() -> None:
    with pytest.raises(MissingOptionError):
        parse_doh(header(b"\x01\x04\x00\x00\x00\x00"))
    with pytest.raises(MissingOptionError):
        parse_doh(header(b"\x1e\x04abcd"))


@pytest.mark.parametrize(
    "parts",
    [
        (b"\x01\x04\x00\x00\x01\x00", OPTION, b"\x00\x00"),  # PadN with a non-zero octet
        (OPTION, b"\x01\x00", b"\x01\x02\x00\x00", b"\x00\x00"),  # 8 octets of padding in a row
        (b"\x00" * 8, OPTION),  # 8 Pad1
        (b"\x01\x06" + bytes(6), OPTION),  # one PadN of 8 octets
        (OPTION, b"\x1e\x05abcde", b"\x01"),  # PadN cut by the end of the header: no length octet
        (OPTION, b"\x1e\x04abcd", b"\x01\x07"),  # PadN claiming 7 octets where none remain
    ],
    ids=["non-zero", "run-of-8", "8-pad1", "padn-8", "padn-no-length", "padn-past-end"],
)
def test_bad_padding(parts: tuple[bytes, ...]) -> None:
    with pytest.raises(BadPaddingError):
        parse_doh(header(*parts))


@pytest.mark.parametrize(
    "parts",
    [
        (OPTION, b"\x00\x00\x00\x00", b"\x1e\x05ab"),  # says 5 octets, 2 remain
        (OPTION, b"\x00" * 7, b"\x1e"),  # a type octet and no length
        (b"\x00\x00", OPTION[:-2]),  # the MPSS option itself runs past the end
    ],
    ids=["length", "no-length", "mpss"],
)
def test_option_past_the_end_of_the_header(parts: tuple[bytes, ...]) -> None:
    with pytest.raises(BadHeaderError):
        parse_doh(header(*parts))


def test_mpss_option_problems_inside_the_header() -> None:
    bad_version = bytearray(OPTION)
    bad_version[2] = 0x31
    with pytest.raises(UnsupportedVersionError):
        parse_doh(header(bytes(bad_version)))
    zero_x = bytearray(OPTION)
    zero_x[5] = 0
    with pytest.raises(BadFieldError):
        parse_doh(header(bytes(zero_x)))


def test_truncated() -> None:
    data = encode_doh(Doh(sample_option()), 43)
    for cut in range(len(data)):
        with pytest.raises(TruncatedError):
            parse_doh(data[:cut])
    with pytest.raises(TruncatedError):
        parse_doh(data, 1)


def test_encode_rejects_bad_extras() -> None:
    for bad in (Tlv(0x00), Tlv(0x01), Tlv(0x7E, bytes(52)), Tlv(0x5E), Tlv(0x80)):
        with pytest.raises(BadFieldError):
            encode_doh(Doh(sample_option(), (bad,)), 43)
    with pytest.raises(BadFieldError):
        encode_doh(Doh(sample_option(), tuple(Tlv(0x1E, bytes(255)) for _ in range(8))), 43)
    with pytest.raises(BadFieldError):
        encode_doh(Doh(sample_option()), 256)
    with pytest.raises(BadFieldError):
        parse_doh(b"", -1)


def test_not_a_buffer() -> None:
    with pytest.raises(InputTypeError):
        parse_doh("text")  # type: ignore[arg-type]


def test_doh_takes_a_list_of_extras() -> None:
    assert Doh(sample_option(), [Tlv(0x1E)]).extra == (Tlv(0x1E),)  # type: ignore[arg-type]
