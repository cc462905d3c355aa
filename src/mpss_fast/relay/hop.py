"""One hop of a share: seal at the sender, verify + re-encrypt + re-tag at a relay, open at the destination.

On every link a share travels as ``ciphertext = y XOR pad`` with a Poly1305 tag, and the
key material of one message is taken from the link's pool in one piece at one offset:

    material = mac_key (32 bytes) || pad (share_len bytes);  option.hop_key_id = its offset

The tag is Poly1305 under ``mac_key`` over ``option.mac_bytes() || route || ciphertext``
(the option TLV with its tag zeroed, the packet's routing fields as
:func:`mpss_fast.wire.route_bytes` lays them out, then the ciphertext): a one-time key per
message makes this a Wegman-Carter authenticator, secure against an unbounded forger,
and a rewritten segment list, Segments Left or source fails the next hop's check.
The receiver verifies the tag on the material at the claimed offset *before* the pool
consumes anything (:meth:`LinkKeyPool.take_at`): a forged message costs no key material.
Material is wiped after use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.poly1305 import Poly1305

from ..engine import Engine
from ..exceptions import BadFieldError, InputTypeError, TagError
from ..wire import MpssOption
from .pool import LinkKeyPool, wipe

MAC_KEY_BYTES = 32
"""Poly1305 one-time key bytes at the start of each message's key material."""


def hop_key_bytes(share_len: int) -> int:
    """Key material one message consumes on one link: the MAC key and the pad."""
    return MAC_KEY_BYTES + share_len


@dataclass(frozen=True, slots=True)
class ShareMessage:
    """One share on one link: its MPSS option (metadata, pad offset, tag), the encrypted share, and the
    routing fields it travels under (``route_bytes`` of its packet; empty where no packet carries it)."""

    option: MpssOption
    ciphertext: bytes
    route: bytes = b""

    def __post_init__(self) -> None:
        if type(self.route) is not bytes:
            raise InputTypeError(f"route must be bytes, not {type(self.route).__name__}")
        if len(self.ciphertext) != self.option.share_len:
            raise BadFieldError(
                f"ciphertext is {len(self.ciphertext)} bytes but the option says share_len={self.option.share_len}"
            )


_default_engine: Engine | None = None


def _engine(engine: Engine | None) -> Engine:
    global _default_engine
    if engine is not None:
        return engine
    if _default_engine is None:
        _default_engine = Engine()
    return _default_engine


def _tag(material: bytearray, option: MpssOption, offset: int, route: bytes, ciphertext: bytes) -> bytes:
    """The tag for ``option`` sent under ``offset`` along ``route``: Poly1305 over MAC bytes, route, ciphertext."""
    data = b"".join((option.mac_bytes(hop_key_id=offset), route, ciphertext))
    return Poly1305.generate_tag(memoryview(material)[:MAC_KEY_BYTES], data)


def _verifier(message: ShareMessage, link: str) -> Callable[[memoryview], None]:
    """The check ``LinkKeyPool.take_at`` runs on the material at the message's offset before consuming it."""

    def verify(material: memoryview) -> None:
        option = message.option
        data = b"".join((option.mac_bytes(), message.route, message.ciphertext))
        try:
            Poly1305.verify_tag(material[:MAC_KEY_BYTES], data, option.tag)
        except InvalidSignature:
            raise TagError(
                f"bad tag on link {link}: share x={option.x} of session {option.session_uuid} "
                f"(path {option.path_id}) dropped",
                link=link,
                session_id=option.session_id,
                path_id=option.path_id,
                x=option.x,
            ) from None

    return verify


def seal(
    option: MpssOption, share: Any, pool: LinkKeyPool, *, route: bytes = b"", engine: Engine | None = None
) -> ShareMessage:
    """First hop: encrypt the share value ``y`` (``option.share_len`` bytes) and tag it for ``pool``'s link.

    ``option``'s hop key ID and tag are replaced; ``route`` is the routing fields of the
    packet that will carry it (``route_bytes``), covered by the tag.
    """
    eng = _engine(engine)
    size = option.share_len
    offset, material = pool.take(hop_key_bytes(size))
    try:
        pad = memoryview(material)[MAC_KEY_BYTES:]
        ciphertext = eng.xor(share, pad)  # validates share: bytes-like of share_len bytes
        tag = _tag(material, option, offset, route, ciphertext)
        return ShareMessage(option.with_hop(offset, tag), ciphertext, route)
    finally:
        wipe(material)


def relay(
    message: ShareMessage,
    pool_in: LinkKeyPool,
    pool_out: LinkKeyPool,
    *,
    route_out: bytes = b"",
    engine: Engine | None = None,
) -> ShareMessage:
    """A relay hop: verify the incoming tag, re-encrypt from ``pool_in``'s pad to ``pool_out``'s, tag anew.

    The plaintext share is never stored: one fused pass computes
    ``ciphertext XOR pad_in XOR pad_out``. The incoming tag covers ``message.route``; the
    new one covers ``route_out`` (the routing fields as forwarded). A bad tag raises
    ``TagError`` (naming the link and session) and consumes nothing from either pool.
    """
    eng = _engine(engine)
    option = message.option
    size = option.share_len
    material_in = pool_in.take_at(option.hop_key_id, hop_key_bytes(size), _verifier(message, pool_in.link))
    try:
        offset, material_out = pool_out.take(hop_key_bytes(size))
        try:
            ciphertext = eng.reencrypt(
                message.ciphertext, memoryview(material_in)[MAC_KEY_BYTES:], memoryview(material_out)[MAC_KEY_BYTES:]
            )
            tag = _tag(material_out, option, offset, route_out, ciphertext)
            return ShareMessage(option.with_hop(offset, tag), ciphertext, route_out)
        finally:
            wipe(material_out)
    finally:
        wipe(material_in)


def open_into(message: ShareMessage, pool_in: LinkKeyPool, out: Any, *, engine: Engine | None = None) -> None:
    """Last hop: verify and decrypt the share value ``y`` into the writable buffer ``out``.

    A bad tag raises ``TagError`` and consumes nothing."""
    eng = _engine(engine)
    option = message.option
    material = pool_in.take_at(option.hop_key_id, hop_key_bytes(option.share_len), _verifier(message, pool_in.link))
    try:
        eng.xor_into(message.ciphertext, memoryview(material)[MAC_KEY_BYTES:], out)
    finally:
        wipe(material)
