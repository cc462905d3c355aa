"""A whole MPSS packet: IPv6 | Destination Options (MPSS option) | SRH | UDP | share ciphertext.

``encode_packet`` and ``parse_packet`` convert between bytes and :class:`Packet`;
``segment_endpoint`` (bytes) and ``advance_packet`` (:class:`Packet`) perform the SRv6
``End`` step of a relay. See docs/wire-format.md.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..exceptions import (
    BadFieldError,
    BadHeaderError,
    ChecksumError,
    HopLimitError,
    InputTypeError,
    NextHeaderError,
    SegmentsLeftError,
    TruncatedError,
)
from ._buffer import as_bytes
from ._construct import trusted_constructor
from .address import address
from .doh import encode_options, parse_options
from .option import (
    CODE_FIELDS,
    FIELD_CODES,
    OPTION_DATA_LEN,
    OPTION_LEN,
    OPTION_TYPE,
    VERSION,
    MpssOption,
    check_option_type,
    trusted_option,
)
from .option import from_fields as option_from_fields
from .srh import (
    ROUTING_TYPE_SRH,
    SEGMENT_STRUCTS,
    Srh,
    advance,
    encode_srh,
    parse_srh_at,
    srh_from_fixed,
    trusted_srh,
)
from .tlv import Tlv

IPV6_HEADER_LEN = 40
NH_DEST_OPTS = 60
NH_ROUTING = 43
NH_UDP = 17
UDP_HEADER_LEN = 8

_IPV6 = struct.Struct("!IHBB16s16s")
_IPV6_DOH = struct.Struct("!IHBB16s16sBB")
"""The IPv6 header and the first two octets of the Destination Options header."""
_UDP = struct.Struct("!HHHH")
_HEAD = struct.Struct("!IHBB16s16s" + "BBBBBBBBIHH16sQ16s" + "BBBBBBH")
"""IPv6 header, a 56-octet Destination Options header holding only the MPSS option, the SRH's fixed part."""
_ROUTE_HEAD = struct.Struct("!16sBBBH")
"""What the hop tag covers before the segment list: Source Address, Segments Left, Last Entry, Flags, Tag."""
_DA_OFFSET = 24
_ODD_PAD = (b"", b"\x00")


@dataclass(frozen=True, slots=True)
class Packet:
    """One share on one hop. The Destination Address is not stored: it is ``srh.dst``.

    ``payload`` is the share ciphertext (``option.share_len`` bytes); ``extra_options``
    are act-00 options kept from the Destination Options header. ``src`` may also be
    given as text or ``IPv6Address``. Ranges are checked when the packet is encoded.
    """

    src: bytes
    srh: Srh
    option: MpssOption
    payload: bytes
    sport: int
    dport: int
    hop_limit: int = 64
    traffic_class: int = 0
    flow_label: int = 0
    extra_options: tuple[Tlv, ...] = ()

    def __post_init__(self) -> None:
        if type(self.src) is not bytes or len(self.src) != 16:
            object.__setattr__(self, "src", address(self.src))
        if type(self.payload) is not bytes:
            try:
                object.__setattr__(self, "payload", bytes(memoryview(self.payload)))
            except TypeError:
                raise InputTypeError(f"payload must be bytes-like, not {type(self.payload).__name__}") from None
        if type(self.extra_options) is not tuple:
            object.__setattr__(self, "extra_options", tuple(self.extra_options))

    @property
    def dst(self) -> bytes:
        """The IPv6 Destination Address: Segment List[Segments Left]."""
        return self.srh.segments[self.srh.segments_left]

    @property
    def final_dst(self) -> bytes:
        """The final destination, Segment List[0] (also the address in the UDP pseudo-header)."""
        return self.srh.segments[0]


_make = trusted_constructor(Packet)


def _check_fields(pkt: Packet) -> None:
    for name, value, top in (
        ("sport", pkt.sport, 0xFFFF),
        ("dport", pkt.dport, 0xFFFF),
        ("hop_limit", pkt.hop_limit, 0xFF),
        ("traffic_class", pkt.traffic_class, 0xFF),
        ("flow_label", pkt.flow_label, 0xFFFFF),
    ):
        if type(value) is not int:
            raise InputTypeError(f"{name} must be an int, not {type(value).__name__}")
        if not 0 <= value <= top:
            raise BadFieldError(f"{name} must be in 0..{top}, not {value}")


def route_bytes(src: bytes, srh: Srh) -> bytes:
    """The routing fields a hop tag covers (option version 2), in this order: the IPv6 Source Address
    (16 octets), the SRH's Segments Left, Last Entry, Flags (1 octet each) and Tag (2 octets), then the
    segment list in wire order (16 octets each). See docs/wire-format.md.

    A relay acts on exactly these: the previous and next segments, the source the key is
    filed under, the path the destination checks. SRH TLVs, Hop Limit, Traffic Class and
    Flow Label are not covered and not acted on.
    """
    segments = srh.segments
    return _ROUTE_HEAD.pack(src, srh.segments_left, len(segments) - 1, srh.flags, srh.tag) + b"".join(segments)


def encode_packet(pkt: Packet, *, option_type: int = OPTION_TYPE) -> bytes:
    """The packet's bytes, with lengths, padding and the UDP checksum (over the final destination)."""
    src, payload, srh, option = pkt.src, pkt.payload, pkt.srh, pkt.option
    sport, dport = pkt.sport, pkt.dport
    if len(payload) != option.share_len:
        raise BadFieldError(f"the payload is {len(payload)} bytes but the option says share_len={option.share_len}")
    if not (
        type(sport) is type(dport) is type(pkt.hop_limit) is type(pkt.traffic_class) is type(pkt.flow_label) is int
        and 0 <= sport <= 0xFFFF
        and 0 <= dport <= 0xFFFF
        and 0 <= pkt.hop_limit <= 0xFF
        and 0 <= pkt.traffic_class <= 0xFF
        and 0 <= pkt.flow_label <= 0xFFFFF
    ):
        _check_fields(pkt)
    if option_type != OPTION_TYPE:
        check_option_type(option_type)
    segments = srh.segments
    udp_len = UDP_HEADER_LEN + len(payload)
    # udp_checksum(), inlined: the one's complement sum is the big-endian integer mod 0xFFFF
    rem = (
        int.from_bytes(src + segments[0] + payload + _ODD_PAD[udp_len & 1], "big")
        + 2 * udp_len
        + sport
        + dport
        + NH_UDP
    ) % 0xFFFF
    udp = _UDP.pack(sport, dport, udp_len, 0xFFFF - rem if rem else 0xFFFF)
    vtf = 0x60000000 | (pkt.traffic_class << 20) | pkt.flow_label
    if not pkt.extra_options and not srh.tlvs:  # the usual packet: one struct for all fixed fields
        count = len(segments)
        payload_len = 56 + 8 + 16 * count + udp_len
        if payload_len > 0xFFFF:
            raise BadFieldError(f"the IPv6 payload would be {payload_len} octets; at most 65535 (no jumbograms)")
        head = _HEAD.pack(
            vtf,
            payload_len,
            NH_DEST_OPTS,
            pkt.hop_limit,
            src,
            segments[srh.segments_left],
            NH_ROUTING,
            (2 + OPTION_LEN) // 8 - 1,
            option_type,
            OPTION_DATA_LEN,
            (VERSION << 4) | FIELD_CODES[option.poly],
            option.k,
            option.n,
            option.x,
            option.path_id,
            option.share_len,
            0,
            option.session_id,
            option.hop_key_id,
            option.tag,
            NH_UDP,
            2 * count,
            ROUTING_TYPE_SRH,
            srh.segments_left,
            count - 1,
            srh.flags,
            srh.tag,
        )
        return b"".join((head, *segments, udp, payload))
    options = encode_options(option, pkt.extra_options, option_type)
    routing = encode_srh(srh, NH_UDP)
    payload_len = 2 + len(options) + len(routing) + udp_len
    if payload_len > 0xFFFF:
        raise BadFieldError(f"the IPv6 payload would be {payload_len} octets; at most 65535 (no jumbograms)")
    head = _IPV6_DOH.pack(
        vtf,
        payload_len,
        NH_DEST_OPTS,
        pkt.hop_limit,
        src,
        segments[srh.segments_left],
        NH_ROUTING,
        (2 + len(options)) // 8 - 1,
    )
    return b"".join((head, options, routing, udp, payload))


def _check_ipv6(vtf: int, payload_len: int, next_header: int, size: int) -> None:
    if vtf >> 28 != 6:
        raise BadHeaderError(f"IP version {vtf >> 28}, not 6")
    if IPV6_HEADER_LEN + payload_len != size:
        if IPV6_HEADER_LEN + payload_len > size:
            raise TruncatedError(f"Payload Length says {payload_len} octets; the buffer holds {size - 40}")
        raise BadHeaderError(f"{size - 40 - payload_len} octets after the {payload_len} of Payload Length")
    if next_header != NH_DEST_OPTS:
        raise NextHeaderError(f"the IPv6 Next Header is {next_header}, not Destination Options ({NH_DEST_OPTS})")


def _parse(data: object, verify_checksum: bool, option_type: int) -> tuple[Packet, int]:
    """The packet and the offset of its SRH. Checks run in header order in both branches."""
    buf = as_bytes(data, "a packet")
    size = len(buf)
    if (
        size >= _HEAD.size
        and buf[41] == (2 + OPTION_LEN) // 8 - 1
        and buf[42] == option_type
        and buf[43] == OPTION_DATA_LEN
        and buf[44] >> 4 == VERSION
    ):
        # the usual packet: a 56-octet DOH holding only the MPSS option; one unpack up to the segment list
        (vtf, payload_len, next_header, hop_limit, src, dst, doh_next, _, _, _,
         vf, k, n, x, path_id, share_len, reserved, session_id, hop_key_id, tag,
         next_header2, ext_len, routing_type, left, last, flags, srh_tag) = _HEAD.unpack_from(buf)  # fmt: skip
        if vtf >> 28 != 6 or IPV6_HEADER_LEN + payload_len != size or next_header != NH_DEST_OPTS:
            _check_ipv6(vtf, payload_len, next_header, size)
        if doh_next != NH_ROUTING:
            raise NextHeaderError(f"the Destination Options Next Header is {doh_next}, not Routing ({NH_ROUTING})")
        poly = CODE_FIELDS.get(vf & 0x0F)
        if poly is not None and not reserved and 2 <= k <= n and x and share_len:
            option = trusted_option(poly, k, n, x, path_id, share_len, session_id, hop_key_id, tag)
        else:
            option = option_from_fields(vf, k, n, x, path_id, share_len, reserved, session_id, hop_key_id, tag)
        extra: tuple[Tlv, ...] = ()
        srh_at = _HEAD.size - 8
        udp_at = _HEAD.size + 16 * (last + 1)
        if routing_type == ROUTING_TYPE_SRH and ext_len == 2 * last + 2 and left <= last and udp_at <= size:
            srh = trusted_srh(SEGMENT_STRUCTS[last].unpack_from(buf, _HEAD.size), left, flags, srh_tag, ())
        else:
            srh, udp_at = srh_from_fixed(buf, srh_at, ext_len, routing_type, left, last, flags, srh_tag)
        next_header = next_header2
    else:
        if size < IPV6_HEADER_LEN:
            raise TruncatedError(f"an IPv6 header is 40 octets; the buffer has {size}")
        vtf, payload_len, next_header, hop_limit, src, dst = _IPV6.unpack_from(buf)
        _check_ipv6(vtf, payload_len, next_header, size)
        if size < IPV6_HEADER_LEN + 2:
            raise TruncatedError("the Destination Options header is cut short")
        srh_at = IPV6_HEADER_LEN + 8 * (buf[41] + 1)
        if srh_at > size:
            raise TruncatedError(f"Hdr Ext Len of the Destination Options header says {srh_at - 40} octets")
        if buf[40] != NH_ROUTING:
            raise NextHeaderError(f"the Destination Options Next Header is {buf[40]}, not Routing ({NH_ROUTING})")
        option, extra = parse_options(buf, IPV6_HEADER_LEN + 2, srh_at, option_type)
        srh, next_header, udp_at = parse_srh_at(buf, srh_at)
    if next_header != NH_UDP:
        raise NextHeaderError(f"the SRH Next Header is {next_header}, not UDP ({NH_UDP})")
    segments = srh.segments
    if dst != segments[srh.segments_left]:
        raise BadHeaderError("the Destination Address is not Segment List[Segments Left]")
    if size - udp_at < UDP_HEADER_LEN:
        raise TruncatedError("the UDP header is cut short")
    sport, dport, udp_len, checksum = _UDP.unpack_from(buf, udp_at)
    if udp_len != size - udp_at:
        if udp_len > size - udp_at:
            raise TruncatedError(f"UDP Length says {udp_len} octets; {size - udp_at} remain")
        raise BadHeaderError(f"UDP Length {udp_len} does not cover the {size - udp_at} octets that remain")
    payload = buf[udp_at + UDP_HEADER_LEN :]
    if len(payload) != option.share_len:
        raise BadFieldError(f"Share Length is {option.share_len} but the UDP payload is {len(payload)} octets")
    if verify_checksum:
        words = src + segments[0] + buf[udp_at:] + _ODD_PAD[udp_len & 1]
        if not checksum or (int.from_bytes(words, "big") + udp_len + NH_UDP) % 0xFFFF:  # see checksum.py
            raise ChecksumError("bad or zero UDP checksum (pseudo-header: source and Segment List[0])")
    packet = _make(src, srh, option, payload, sport, dport, hop_limit, (vtf >> 20) & 0xFF, vtf & 0xFFFFF, extra)
    return packet, srh_at


def parse_packet(
    data: bytes | bytearray | memoryview, *, verify_checksum: bool = True, option_type: int = OPTION_TYPE
) -> Packet:
    """Parse and check a whole packet; anything malformed raises a ``WireError`` subclass."""
    if option_type != OPTION_TYPE:
        check_option_type(option_type)
    return _parse(data, verify_checksum, option_type)[0]


def segment_endpoint(
    data: bytes | bytearray | memoryview,
    *,
    verify_checksum: bool = True,
    decrement_hop_limit: bool = True,
    option_type: int = OPTION_TYPE,
) -> bytes:
    """The SRv6 ``End`` step on a packet's bytes: check it, then Hop Limit - 1, Segments Left - 1 and
    Destination Address = Segment List[Segments Left]. Every other byte is kept."""
    if option_type != OPTION_TYPE:
        check_option_type(option_type)
    packet, srh_at = _parse(data, verify_checksum, option_type)
    hop_limit, left = packet.hop_limit, packet.srh.segments_left
    if left == 0:
        raise SegmentsLeftError("Segments Left is 0: this is the final destination, there is no next segment")
    out = bytearray(as_bytes(data, "a packet"))
    if decrement_hop_limit:
        if hop_limit <= 1:
            raise HopLimitError(f"Hop Limit {hop_limit} expires here")
        out[7] = hop_limit - 1
    out[srh_at + 3] = left - 1
    out[_DA_OFFSET : _DA_OFFSET + 16] = packet.srh.segments[left - 1]
    return bytes(out)


def advance_packet(packet: Packet, *, decrement_hop_limit: bool = True) -> Packet:
    """The :class:`Packet` after the SRv6 ``End`` step (see :func:`segment_endpoint`)."""
    srh = advance(packet.srh)
    hop_limit = packet.hop_limit
    if decrement_hop_limit:
        if hop_limit <= 1:
            raise HopLimitError(f"Hop Limit {hop_limit} expires here")
        hop_limit -= 1
    return Packet(
        packet.src,
        srh,
        packet.option,
        packet.payload,
        packet.sport,
        packet.dport,
        hop_limit,
        packet.traffic_class,
        packet.flow_label,
        packet.extra_options,
    )


def forward_packet(
    packet: Packet,
    *,
    hop_key_id: int,
    tag: bytes,
    payload: bytes | bytearray | memoryview,
    decrement_hop_limit: bool = True,
) -> Packet:
    """What a relay sends on: the SRv6 ``End`` step plus the new hop key ID, tag and ciphertext."""
    if type(payload) is not bytes:
        payload = bytes(memoryview(payload))
    if len(payload) != packet.option.share_len:
        raise BadFieldError(f"the payload is {len(payload)} bytes; share_len is {packet.option.share_len}")
    hopped = advance_packet(packet, decrement_hop_limit=decrement_hop_limit)
    return _make(
        hopped.src,
        hopped.srh,
        packet.option.with_hop(hop_key_id, tag),
        payload,
        hopped.sport,
        hopped.dport,
        hopped.hop_limit,
        hopped.traffic_class,
        hopped.flow_label,
        hopped.extra_options,
    )
