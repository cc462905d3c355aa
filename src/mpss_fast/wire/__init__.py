"""The MPSS wire format: IPv6 | Destination Options (MPSS option) | SRH | UDP | share ciphertext.

Pure Python encoders and parsers; addresses are 16-byte ``bytes``. Every malformed
input raises a subclass of :class:`mpss_fast.exceptions.WireError`. See
docs/wire-format.md for the byte layout.
"""

from ..exceptions import (
    BadFieldError,
    BadHeaderError,
    BadPaddingError,
    ChecksumError,
    DuplicateOptionError,
    HopLimitError,
    MissingOptionError,
    NextHeaderError,
    SegmentsLeftError,
    TruncatedError,
    UnknownOptionError,
    UnsupportedVersionError,
    WireError,
)
from .address import address
from .checksum import udp_checksum, udp_checksum_ok
from .doh import Doh, encode_doh, parse_doh
from .option import FIELD_CODES, OPTION_DATA_LEN, OPTION_LEN, OPTION_TYPE, VERSION, MpssOption
from .packet import (
    Packet,
    advance_packet,
    encode_packet,
    forward_packet,
    parse_packet,
    route_bytes,
    segment_endpoint,
)
from .srh import Srh, advance, encode_srh, parse_srh
from .tlv import Tlv

__all__ = [
    "FIELD_CODES",
    "OPTION_DATA_LEN",
    "OPTION_LEN",
    "OPTION_TYPE",
    "VERSION",
    "BadFieldError",
    "BadHeaderError",
    "BadPaddingError",
    "ChecksumError",
    "Doh",
    "DuplicateOptionError",
    "HopLimitError",
    "MissingOptionError",
    "MpssOption",
    "NextHeaderError",
    "Packet",
    "SegmentsLeftError",
    "Srh",
    "Tlv",
    "TruncatedError",
    "UnknownOptionError",
    "UnsupportedVersionError",
    "WireError",
    "address",
    "advance",
    "advance_packet",
    "encode_doh",
    "encode_packet",
    "encode_srh",
    "forward_packet",
    "parse_doh",
    "parse_packet",
    "parse_srh",
    "route_bytes",
    "segment_endpoint",
    "udp_checksum",
    "udp_checksum_ok",
]
