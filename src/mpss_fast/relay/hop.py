"""One hop of a share: seal at the sender, verify + re-encrypt + re-tag at a relay, open at the destination.

On every link a share travels as ``ciphertext = y XOR pad`` with a Poly1305 tag, and the
key material of one message is taken from the link's pool in one piece at one key ID:

    material = mac_key (32 bytes) || pad (share_len bytes);  option.hop_key_id = its key ID

The tag is Poly1305 under ``mac_key`` over ``option.mac_bytes() || ciphertext`` (the
option TLV with its tag zeroed, then the ciphertext): a one-time key per message makes
this a Wegman-Carter authenticator, secure against an unbounded forger. The material is
consumed whether or not the tag verifies, and wiped after use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.poly1305 import Poly1305

from ..engine import Engine
from ..exceptions import BadFieldError, TagError
from ..wire import MpssOption
from .pool import LinkKeyPool, wipe

MAC_KEY_BYTES = 32
"""Poly1305 one-time key bytes at the start of each message's key material."""


def hop_key_bytes(share_len: int) -> int:
    """Key material one message consumes on one link: the MAC key and the pad."""
    return MAC_KEY_BYTES + share_len


@dataclass(frozen=True, slots=True)
class ShareMessage:
    """One share on one link: its MPSS option (metadata, key ID, tag) and the encrypted share."""

    option: MpssOption
    ciphertext: bytes

    def __post_init__(self) -> None:
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


def _tag(material: bytearray, option: MpssOption, key_id: int, ciphertext: bytes) -> bytes:
    """The tag for ``option`` sent under ``key_id``: Poly1305 over its MAC bytes and the ciphertext."""
    return Poly1305.generate_tag(memoryview(material)[:MAC_KEY_BYTES], option.mac_bytes(hop_key_id=key_id) + ciphertext)


def _verify(material: bytearray, message: ShareMessage, link: str) -> None:
    data = message.option.mac_bytes() + message.ciphertext
    try:
        Poly1305.verify_tag(memoryview(material)[:MAC_KEY_BYTES], data, message.option.tag)
    except InvalidSignature:
        option = message.option
        raise TagError(
            f"bad tag on link {link}: share x={option.x} of session {option.session_uuid} "
            f"(path {option.path_id}) dropped",
            link=link,
            session_id=option.session_id,
            path_id=option.path_id,
            x=option.x,
        ) from None


def seal(option: MpssOption, share: Any, pool: LinkKeyPool, *, engine: Engine | None = None) -> ShareMessage:
    """First hop: encrypt the share value ``y`` (``option.share_len`` bytes) and tag it for ``pool``'s link.

    ``option``'s hop key ID and tag are replaced.
    """
    eng = _engine(engine)
    size = option.share_len
    key_id, material = pool.take(hop_key_bytes(size))
    try:
        pad = memoryview(material)[MAC_KEY_BYTES:]
        ciphertext = eng.xor(share, pad)  # validates share: bytes-like of share_len bytes
        return ShareMessage(option.with_hop(key_id, _tag(material, option, key_id, ciphertext)), ciphertext)
    finally:
        wipe(material)


def relay(
    message: ShareMessage,
    pool_in: LinkKeyPool,
    pool_out: LinkKeyPool,
    *,
    engine: Engine | None = None,
) -> ShareMessage:
    """A relay hop: verify the incoming tag, re-encrypt from ``pool_in``'s pad to ``pool_out``'s, tag anew.

    The plaintext share is never stored: one fused pass computes
    ``ciphertext XOR pad_in XOR pad_out``. A bad tag raises ``TagError`` (naming the
    link and session) after the incoming material is consumed; nothing is taken from
    ``pool_out`` then.
    """
    eng = _engine(engine)
    option = message.option
    size = option.share_len
    material_in = pool_in.take_at(option.hop_key_id, hop_key_bytes(size))
    try:
        _verify(material_in, message, pool_in.link)
        key_id, material_out = pool_out.take(hop_key_bytes(size))
        try:
            ciphertext = eng.reencrypt(
                message.ciphertext, memoryview(material_in)[MAC_KEY_BYTES:], memoryview(material_out)[MAC_KEY_BYTES:]
            )
            return ShareMessage(option.with_hop(key_id, _tag(material_out, option, key_id, ciphertext)), ciphertext)
        finally:
            wipe(material_out)
    finally:
        wipe(material_in)


def open_into(message: ShareMessage, pool_in: LinkKeyPool, out: Any, *, engine: Engine | None = None) -> None:
    """Last hop: verify and decrypt the share value ``y`` into the writable buffer ``out``."""
    eng = _engine(engine)
    option = message.option
    material = pool_in.take_at(option.hop_key_id, hop_key_bytes(option.share_len))
    try:
        _verify(material, message, pool_in.link)
        eng.xor_into(message.ciphertext, memoryview(material)[MAC_KEY_BYTES:], out)
    finally:
        wipe(material)
