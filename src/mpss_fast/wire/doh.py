"""The Destination Options header carrying the MPSS option (RFC 8200 §4.6).

Options are processed in order: Pad1/PadN are checked (zero data, at most 7 octets in a
row, inside the header); the MPSS option must appear exactly once; other options follow
their action bits: 00 is skipped and kept, 01/10/11 raise ``UnknownOptionError``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..exceptions import (
    BadFieldError,
    BadHeaderError,
    BadPaddingError,
    DuplicateOptionError,
    MissingOptionError,
    TruncatedError,
    UnknownOptionError,
)
from ._buffer import as_bytes
from .option import OPTION_TYPE, MpssOption, check_option_type, decode_data
from .tlv import ZEROS, Tlv, padding

PAD1 = 0x00
PADN = 0x01
MAX_PAD_RUN = 7
"""The longest run of padding octets accepted (RFC 4942 covert-channel advice; Linux drops longer runs)."""


@dataclass(frozen=True, slots=True)
class Doh:
    """A Destination Options header: the MPSS option and the skipped (act 00) options, in order."""

    option: MpssOption
    extra: tuple[Tlv, ...] = ()

    def __post_init__(self) -> None:
        if type(self.extra) is not tuple:
            object.__setattr__(self, "extra", tuple(self.extra))


def encode_options(option: MpssOption, extra: tuple[Tlv, ...], option_type: int) -> bytes:
    """The option area and padding of a DOH, to follow its first two octets."""
    body = option.encode(option_type)
    if extra:
        for tlv in extra:
            if tlv.type in (PAD1, PADN) or tlv.type == option_type or tlv.type >> 6:
                raise BadFieldError(
                    f"extra option 0x{tlv.type:02X} must be an act-00 option other than padding and MPSS"
                )
        body += b"".join(tlv.encode() for tlv in extra)
    pad = -(2 + len(body)) % 8
    if 2 + len(body) + pad > 2048:
        raise BadFieldError(f"the Destination Options header would be {2 + len(body) + pad} octets; at most 2048")
    return body + padding(pad, PADN) if pad else body


def encode_doh(doh: Doh, next_header: int, *, option_type: int = OPTION_TYPE) -> bytes:
    """The whole header, a multiple of 8 octets, with the MPSS option first (8n+2 aligned)."""
    if not 0 <= next_header <= 255:
        raise BadFieldError(f"next_header must be in 0..255, not {next_header}")
    body = encode_options(doh.option, doh.extra, option_type)
    return bytes((next_header, (2 + len(body)) // 8 - 1)) + body


def parse_options(buf: bytes, start: int, end: int, option_type: int) -> tuple[MpssOption, tuple[Tlv, ...]]:
    """Process the options in ``buf[start:end]`` (inside ``buf``): the MPSS option and the skipped ones."""
    found: MpssOption | None = None
    extra: list[Tlv] = []
    run = 0
    i = start
    while i < end:
        otype = buf[i]
        if otype == PAD1:
            run += 1
            if run > MAX_PAD_RUN:
                raise BadPaddingError(f"more than {MAX_PAD_RUN} octets of padding at offset {i}")
            i += 1
            continue
        if i + 2 > end:
            if otype == PADN:
                raise BadPaddingError(f"PadN at offset {i} runs past the end of the header")
            raise BadHeaderError(f"option 0x{otype:02X} at offset {i} runs past the end of the header")
        length = buf[i + 1]
        data_end = i + 2 + length
        if data_end > end:
            if otype == PADN:
                raise BadPaddingError(f"PadN at offset {i} runs past the end of the header")
            raise BadHeaderError(f"option 0x{otype:02X} at offset {i} runs past the end of the header")
        if otype == PADN:
            run += 2 + length
            if run > MAX_PAD_RUN:
                raise BadPaddingError(f"more than {MAX_PAD_RUN} octets of padding at offset {i}")
            if buf[i + 2 : data_end] != ZEROS[:length]:
                raise BadPaddingError(f"PadN at offset {i} has non-zero data")
        elif otype == option_type:
            if found is not None:
                raise DuplicateOptionError(f"a second MPSS option at offset {i}")
            found = decode_data(buf, i + 2, length)
            run = 0
        elif otype >> 6:
            raise UnknownOptionError(
                f"unknown option 0x{otype:02X} at offset {i} with action {otype >> 6:02b}: discard", otype
            )
        else:
            extra.append(Tlv(otype, buf[i + 2 : data_end]))
            run = 0
        i = data_end
    if found is None:
        raise MissingOptionError("the Destination Options header has no MPSS option")
    return found, tuple(extra)


def parse_doh(
    data: bytes | bytearray | memoryview, offset: int = 0, *, option_type: int = OPTION_TYPE
) -> tuple[Doh, int, int]:
    """Parse the DOH at ``data[offset:]``: ``(header, its Next Header, offset after it)``."""
    if option_type != OPTION_TYPE:
        check_option_type(option_type)
    buf = as_bytes(data, "a Destination Options header")
    if offset < 0:
        raise BadFieldError(f"offset must be >= 0, not {offset}")
    if len(buf) < offset + 2:
        raise TruncatedError(f"the Destination Options header at offset {offset} is cut short")
    end = offset + 8 * (buf[offset + 1] + 1)
    if end > len(buf):
        raise TruncatedError(f"Hdr Ext Len of the Destination Options header says {end - offset} octets")
    option, extra = parse_options(buf, offset + 2, end, option_type)
    return Doh(option, extra), buf[offset], end
