"""The Segment Routing Header (RFC 8754): segment list in reverse order, Segments Left, TLVs.

``Srh.segments`` keeps the wire order: ``segments[0]`` is the final destination and
``segments[-1]`` (Segment List[Last Entry]) the first segment. The MPSS profile always
carries the full list, so ``segments_left <= last_entry``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv6Address

from ..exceptions import (
    BadFieldError,
    BadHeaderError,
    BadPaddingError,
    InputTypeError,
    SegmentsLeftError,
    TruncatedError,
)
from ._buffer import as_bytes
from ._construct import trusted_constructor
from .address import ADDRESS_LEN, address
from .tlv import Tlv, padding

ROUTING_TYPE_SRH = 4
PAD1 = 0
PADN = 4
MAX_SEGMENTS = 127
"""The most segments an SRH can hold (Hdr Ext Len is at most 255)."""

FIXED = struct.Struct("!BBBBBBH")
"""Next Header, Hdr Ext Len, Routing Type, Segments Left, Last Entry, Flags, Tag."""

SEGMENT_STRUCTS = tuple(struct.Struct(f"!{'16s' * (i + 1)}") for i in range(MAX_SEGMENTS))
"""By Last Entry: the segment list as a tuple of 16-byte addresses."""


@dataclass(frozen=True, slots=True)
class Srh:
    """An SRH: ``segments`` in wire order (16-byte addresses), ``segments_left``, flags, tag, kept TLVs."""

    segments: tuple[bytes, ...]
    segments_left: int
    flags: int = 0
    tag: int = 0
    tlvs: tuple[Tlv, ...] = ()

    def __post_init__(self) -> None:
        segments = self.segments
        if type(segments) is not tuple:
            segments = tuple(segments)
            object.__setattr__(self, "segments", segments)
        if type(self.tlvs) is not tuple:
            object.__setattr__(self, "tlvs", tuple(self.tlvs))
        for seg in segments:
            if type(seg) is not bytes or len(seg) != ADDRESS_LEN:
                object.__setattr__(self, "segments", tuple(address(s) for s in segments))
                break
        if not 1 <= len(segments) <= MAX_SEGMENTS:
            raise BadFieldError(f"an SRH holds 1..{MAX_SEGMENTS} segments, not {len(segments)}")
        if not (type(self.segments_left) is type(self.flags) is type(self.tag) is int):
            raise InputTypeError("segments_left, flags and tag must be ints")
        if not 0 <= self.segments_left < len(segments):
            raise SegmentsLeftError(f"segments_left={self.segments_left} with {len(segments)} segments")
        if not 0 <= self.flags <= 0xFF:
            raise BadFieldError(f"flags must be in 0..255, not {self.flags}")
        if not 0 <= self.tag <= 0xFFFF:
            raise BadFieldError(f"tag must be in 0..65535, not {self.tag}")
        for tlv in self.tlvs:
            if tlv.type in (PAD1, PADN):
                raise BadFieldError("padding TLVs are written by the encoder, not kept in tlvs")

    @classmethod
    def from_path(
        cls,
        path: Iterable[str | IPv6Address | bytes],
        *,
        flags: int = 0,
        tag: int = 0,
        tlvs: Iterable[Tlv] = (),
    ) -> Srh:
        """An SRH for ``path`` in travel order (first relay ... destination), at its first segment."""
        segments = tuple(address(a) for a in path)[::-1]
        return cls(segments, len(segments) - 1, flags, tag, tuple(tlvs))

    @property
    def last_entry(self) -> int:
        """Index of the first segment in the list (number of segments - 1)."""
        return len(self.segments) - 1

    @property
    def dst(self) -> bytes:
        """The current destination: Segment List[Segments Left]."""
        return self.segments[self.segments_left]

    @property
    def final_dst(self) -> bytes:
        """The final destination: Segment List[0]."""
        return self.segments[0]

    @property
    def path(self) -> tuple[bytes, ...]:
        """The segments in travel order."""
        return self.segments[::-1]


def advance(srh: Srh) -> Srh:
    """The SRH after one segment endpoint: Segments Left - 1 (its ``dst`` is the new Destination Address)."""
    if srh.segments_left == 0:
        raise SegmentsLeftError("Segments Left is 0: this is the final destination, there is no next segment")
    return Srh(srh.segments, srh.segments_left - 1, srh.flags, srh.tag, srh.tlvs)


def encode_srh(srh: Srh, next_header: int) -> bytes:
    """The whole header, padded to a multiple of 8 octets with Pad1/PadN TLVs."""
    if not 0 <= next_header <= 255:
        raise BadFieldError(f"next_header must be in 0..255, not {next_header}")
    segments = srh.segments
    if srh.tlvs:
        tail = b"".join(tlv.encode() for tlv in srh.tlvs)
        tail += padding(-len(tail) % 8, PADN)
    else:
        tail = b""
    ext_len = 2 * len(segments) + len(tail) // 8
    if ext_len > 255:
        raise BadFieldError(f"the SRH would be {8 * (ext_len + 1)} octets; at most 2048")
    fixed = FIXED.pack(next_header, ext_len, ROUTING_TYPE_SRH, srh.segments_left, len(segments) - 1, srh.flags, srh.tag)
    return b"".join((fixed, *segments, tail))


def parse_srh_at(buf: bytes, offset: int) -> tuple[Srh, int, int]:
    """Parse the SRH at ``buf[offset:]`` (``buf`` is bytes): ``(header, Next Header, offset after it)``."""
    if len(buf) < offset + 8:
        raise TruncatedError(f"the SRH at offset {offset} is cut short")
    next_header, ext_len, routing_type, segments_left, last_entry, flags, tag = FIXED.unpack_from(buf, offset)
    srh, end = srh_from_fixed(buf, offset, ext_len, routing_type, segments_left, last_entry, flags, tag)
    return srh, next_header, end


def srh_from_fixed(
    buf: bytes, offset: int, ext_len: int, routing_type: int, segments_left: int, last_entry: int, flags: int, tag: int
) -> tuple[Srh, int]:
    """The SRH at ``buf[offset:]`` given its unpacked fixed fields, and the offset after it."""
    end = offset + 8 * (ext_len + 1)
    if end > len(buf):
        raise TruncatedError(f"Hdr Ext Len of the SRH says {end - offset} octets")
    if routing_type != ROUTING_TYPE_SRH:
        raise BadHeaderError(f"Routing Type {routing_type} is not an SRH ({ROUTING_TYPE_SRH})")
    if ext_len < 2:
        raise BadHeaderError(f"the segment list is empty (Hdr Ext Len {ext_len})")
    if last_entry > ext_len // 2 - 1:
        raise BadHeaderError(f"Last Entry {last_entry} does not fit in Hdr Ext Len {ext_len}")
    if segments_left > last_entry:
        raise SegmentsLeftError(f"Segments Left {segments_left} exceeds Last Entry {last_entry}")
    segments = SEGMENT_STRUCTS[last_entry].unpack_from(buf, offset + 8)
    tlv_start = offset + 8 + ADDRESS_LEN * (last_entry + 1)
    tlvs = _parse_tlvs(buf, tlv_start, end) if tlv_start < end else ()
    return trusted_srh(segments, segments_left, flags, tag, tlvs), end


trusted_srh = trusted_constructor(Srh)
"""``Srh(...)`` without the checks, for fields already checked."""


def _parse_tlvs(buf: bytes, i: int, end: int) -> tuple[Tlv, ...]:
    kept = []
    while i < end:
        ttype = buf[i]
        if ttype == PAD1:
            i += 1
            continue
        if i + 2 > end or i + 2 + buf[i + 1] > end:
            if ttype == PADN:
                raise BadPaddingError(f"SRH PadN at offset {i} runs past the end of the header")
            raise BadHeaderError(f"SRH TLV {ttype} at offset {i} runs past the end of the header")
        data_end = i + 2 + buf[i + 1]
        if ttype != PADN:  # PadN content is ignored on receipt (RFC 8754 §2.1.1.2)
            kept.append(Tlv(ttype, buf[i + 2 : data_end]))
        i = data_end
    return tuple(kept)


def parse_srh(data: bytes | bytearray | memoryview, offset: int = 0) -> tuple[Srh, int, int]:
    """Parse the SRH at ``data[offset:]``: ``(header, its Next Header, offset after it)``."""
    if offset < 0:
        raise BadFieldError(f"offset must be >= 0, not {offset}")
    return parse_srh_at(as_bytes(data, "an SRH"), offset)
