"""The MPSS Destination Option (version 2): share metadata plus the per-hop key ID and tag.

Layout of the option TLV (54 octets, alignment 8n+2; see docs/wire-format.md)::

    type(1) len(1)=52 ver|field(1) k(1) n(1) x(1) path_id(4) share_len(2) reserved(2)
    session_id(16) hop_key_id(8) tag(16)
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass

from ..exceptions import BadFieldError, InputTypeError, TruncatedError, UnsupportedVersionError
from ._buffer import as_bytes
from ._construct import trusted_constructor

OPTION_TYPE = 0x7E
"""Default option type: RFC 4727 experimental, act=01 (discard if not understood), chg=1 (changes en route)."""

VERSION = 2
"""The option format version written and understood. Version 2 has version 1's layout; its hop tag also
covers the packet's routing fields (see docs/wire-format.md), so a version 1 peer cannot interoperate."""

OPTION_DATA_LEN = 52
"""Opt Data Len of a version 2 option."""

OPTION_LEN = 2 + OPTION_DATA_LEN
"""Octets of the whole option TLV (type, length, data)."""

TAG_LEN = 16
SESSION_ID_LEN = 16
TAG_OFFSET = OPTION_LEN - TAG_LEN
"""Offset of the tag within the option TLV."""

HOP_KEY_ID_OFFSET = TAG_OFFSET - 8
"""Offset of the hop key ID within the option TLV."""

FIELD_CODES: dict[int, int] = {0x11B: 1, 0x11D: 2}
"""Reduction polynomial -> the 4-bit Field code on the wire."""

CODE_FIELDS: dict[int, int] = {code: poly for poly, code in FIELD_CODES.items()}
"""The 4-bit Field code -> reduction polynomial."""
_TLV = struct.Struct("!BBBBBBIHH16sQ16s")
_DATA = struct.Struct("!BBBBIHH16sQ16s")
_ZERO_TAG = bytes(TAG_LEN)
_U32 = 0xFFFFFFFF
_U64 = 0xFFFFFFFFFFFFFFFF


def check_option_type(option_type: int) -> None:
    """Raise ``BadFieldError`` unless ``option_type`` can name the MPSS option (2..255, not a pad)."""
    if type(option_type) is not int or not 2 <= option_type <= 255:
        raise BadFieldError(f"option type must be in 2..255 (0 and 1 are Pad1 and PadN), not {option_type!r}")


def _as_16_bytes(value: object, name: str) -> bytes:
    if isinstance(value, uuid.UUID):
        value = value.bytes
    try:
        raw = bytes(memoryview(value))  # type: ignore[arg-type]
    except TypeError:
        raise InputTypeError(f"{name} must be 16 bytes, not {type(value).__name__}") from None
    if len(raw) != 16:
        raise BadFieldError(f"{name} must be 16 bytes, not {len(raw)}")
    return raw


@dataclass(frozen=True, slots=True)
class MpssOption:
    """The metadata of one share on one hop; every field is validated on construction.

    ``session_id`` also accepts a ``uuid.UUID`` (stored as its 16 bytes); ``poly`` is
    ``0x11B`` or ``0x11D``. Out-of-range values raise ``BadFieldError``.
    """

    poly: int
    k: int
    n: int
    x: int
    path_id: int
    share_len: int
    session_id: bytes
    hop_key_id: int = 0
    tag: bytes = _ZERO_TAG

    def __post_init__(self) -> None:
        if not (
            type(self.k) is type(self.n) is type(self.x) is type(self.path_id) is type(self.share_len) is int
            and type(self.hop_key_id) is int
            and self.poly in FIELD_CODES
            and 2 <= self.k <= self.n <= 255
            and 0 < self.x <= 255
            and 0 <= self.path_id <= _U32
            and 0 < self.share_len <= 0xFFFF
            and 0 <= self.hop_key_id <= _U64
            and type(self.session_id) is bytes
            and len(self.session_id) == SESSION_ID_LEN
            and type(self.tag) is bytes
            and len(self.tag) == TAG_LEN
        ):
            self._check()

    def _check(self) -> None:
        """The slow path of validation: normalise bytes-like fields, or say what is wrong."""
        for name in ("k", "n", "x", "path_id", "share_len", "hop_key_id"):
            if type(getattr(self, name)) is not int:
                raise InputTypeError(f"{name} must be an int, not {type(getattr(self, name)).__name__}")
        object.__setattr__(self, "session_id", _as_16_bytes(self.session_id, "session_id"))
        object.__setattr__(self, "tag", _as_16_bytes(self.tag, "tag"))
        if self.poly not in FIELD_CODES:
            raise BadFieldError(f"unknown field polynomial {self.poly!r}; known: 0x11B, 0x11D")
        if not 2 <= self.k <= 255:
            raise BadFieldError(f"threshold k must be in 2..255, not {self.k}")
        if not 2 <= self.n <= 255:
            raise BadFieldError(f"total n must be in 2..255, not {self.n}")
        if self.k > self.n:
            raise BadFieldError(f"threshold k={self.k} exceeds total n={self.n}")
        if not 0 < self.x <= 255:
            raise BadFieldError(f"share index x must be in 1..255, not {self.x}")
        if not 0 <= self.path_id <= _U32:
            raise BadFieldError(f"path_id must be in 0..2^32-1, not {self.path_id}")
        if not 0 < self.share_len <= 0xFFFF:
            raise BadFieldError(f"share_len must be in 1..65535, not {self.share_len}")
        if not 0 <= self.hop_key_id <= _U64:
            raise BadFieldError(f"hop_key_id must be in 0..2^64-1, not {self.hop_key_id}")

    @property
    def session_uuid(self) -> uuid.UUID:
        """``session_id`` as a ``uuid.UUID``."""
        return uuid.UUID(bytes=self.session_id)

    def with_hop(self, hop_key_id: int, tag: bytes = _ZERO_TAG) -> MpssOption:
        """A copy with a new hop key ID and tag (the fields a relay rewrites); the tag defaults to zeros."""
        if type(tag) is not bytes or len(tag) != TAG_LEN:
            tag = _as_16_bytes(tag, "tag")
        if type(hop_key_id) is not int:
            raise InputTypeError(f"hop_key_id must be an int, not {type(hop_key_id).__name__}")
        if not 0 <= hop_key_id <= _U64:
            raise BadFieldError(f"hop_key_id must be in 0..2^64-1, not {hop_key_id}")
        return trusted_option(
            self.poly, self.k, self.n, self.x, self.path_id, self.share_len, self.session_id, hop_key_id, tag
        )

    def encode(self, option_type: int = OPTION_TYPE) -> bytes:
        """The option TLV: type, length 52, data (54 octets)."""
        if option_type != OPTION_TYPE:
            check_option_type(option_type)
        return self._pack(option_type, self.tag)

    def mac_bytes(self, option_type: int = OPTION_TYPE, *, hop_key_id: int | None = None) -> bytes:
        """The option TLV with the tag zeroed: what the per-hop Poly1305 tag covers, before the ciphertext.

        With ``hop_key_id``, the bytes of ``self.with_hop(hop_key_id)`` without building it.
        """
        if option_type != OPTION_TYPE:
            check_option_type(option_type)
        if hop_key_id is None:
            return self._pack(option_type, _ZERO_TAG)
        if type(hop_key_id) is not int or not 0 <= hop_key_id <= _U64:
            raise BadFieldError(f"hop_key_id must be an int in 0..2^64-1, not {hop_key_id!r}")
        return self._pack(option_type, _ZERO_TAG, hop_key_id)

    def _pack(self, option_type: int, tag: bytes, hop_key_id: int | None = None) -> bytes:
        return _TLV.pack(
            option_type,
            OPTION_DATA_LEN,
            (VERSION << 4) | FIELD_CODES[self.poly],
            self.k,
            self.n,
            self.x,
            self.path_id,
            self.share_len,
            0,
            self.session_id,
            self.hop_key_id if hop_key_id is None else hop_key_id,
            tag,
        )

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview, option_type: int = OPTION_TYPE) -> MpssOption:
        """Decode one whole option TLV (exactly its octets)."""
        if option_type != OPTION_TYPE:
            check_option_type(option_type)
        buf = as_bytes(data, "an option")
        if len(buf) < 2:
            raise TruncatedError(f"an option needs 2 bytes, the buffer has {len(buf)}")
        if buf[0] != option_type:
            raise BadFieldError(f"option type is 0x{buf[0]:02X}, not the MPSS type 0x{option_type:02X}")
        if 2 + buf[1] > len(buf):
            raise TruncatedError(f"the option needs {2 + buf[1]} bytes, the buffer has {len(buf)}")
        if 2 + buf[1] < len(buf):
            raise BadFieldError(f"{len(buf) - 2 - buf[1]} bytes after the option")
        return decode_data(buf, 2, buf[1])


def decode_data(buf: bytes, start: int, length: int) -> MpssOption:
    """Decode the option data at ``buf[start:start+length]`` (the caller checked it is inside ``buf``)."""
    if length == 0:
        raise BadFieldError("the MPSS option has no data")
    version = buf[start] >> 4
    if version != VERSION:
        raise UnsupportedVersionError(f"MPSS option version {version} is not supported (only {VERSION})")
    if length != OPTION_DATA_LEN:
        raise BadFieldError(f"MPSS option data is {length} octets; version {VERSION} has {OPTION_DATA_LEN}")
    return from_fields(*_DATA.unpack_from(buf, start))


def from_fields(
    vf: int, k: int, n: int, x: int, path_id: int, share_len: int, reserved: int, sid: bytes, hop: int, tag: bytes
) -> MpssOption:
    """The option from its unpacked data fields (Ver already checked)."""
    poly = CODE_FIELDS.get(vf & 0x0F)
    if poly is not None and not reserved and 2 <= k <= n and x and share_len:
        # the other fields cannot be out of range: their sizes on the wire bound them
        return trusted_option(poly, k, n, x, path_id, share_len, sid, hop, tag)
    if poly is None:
        raise BadFieldError(f"unknown Field code {vf & 0x0F} (1: 0x11B, 2: 0x11D)")
    if reserved:
        raise BadFieldError(f"the Reserved field is 0x{reserved:04X}; version {VERSION} requires zero")
    return MpssOption(poly, k, n, x, path_id, share_len, sid, hop, tag)  # raises the precise BadFieldError


trusted_option = trusted_constructor(MpssOption)
"""``MpssOption(...)`` without the checks, for fields already checked."""
