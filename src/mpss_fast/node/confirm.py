"""End-to-end confirmation: the destination proves to the source that it rebuilt the same number.

A relayed number becomes key material only when both ends hold the same bytes. The
destination D cannot show the material itself, so it sends a proof: an HMAC-SHA256 under a
key derived from the material, over the unit's identity and both node names::

    proof key = HKDF-SHA256(IKM = material, info = "mpss confirm key" || unit_id, L = 32)
    proof     = HMAC-SHA256(proof key, "mpss confirm v1" || unit_id || len(S) || S || len(D) || D)

(``len`` one byte; node names are at most 255 bytes of UTF-8.) The source S computes the
same from its own copy and compares in constant time. The proof key is an HKDF output under
its own label, so the proof says nothing about the material beyond "equal or not", and a
proof for one unit or one pair of nodes never verifies for another. The proof travels over
the mutually authenticated TLS channel between the two nodes, which protects its integrity
(an attacker who could change it could make S discard a good unit, never accept a bad one).
"""

from __future__ import annotations

import uuid

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac

from ..e2e import derive_key
from ..exceptions import ParameterError

PROOF_BYTES = 32
_KEY_INFO = b"mpss confirm key"
_CONTEXT = b"mpss confirm v1"


def _context(unit_id: uuid.UUID, source: str, destination: str) -> bytes:
    parts = [_CONTEXT, unit_id.bytes]
    for name in (source, destination):
        raw = name.encode()
        if not 1 <= len(raw) <= 255:
            raise ParameterError(f"node names must be 1..255 bytes of UTF-8, not {len(raw)}")
        parts += [bytes([len(raw)]), raw]
    return b"".join(parts)


def _mac(material: bytes | bytearray, unit_id: uuid.UUID, source: str, destination: str) -> hmac.HMAC:
    key = derive_key(material, unit_id, length=32, info=_KEY_INFO)
    mac = hmac.HMAC(key, hashes.SHA256())
    mac.update(_context(unit_id, source, destination))
    return mac


def proof(material: bytes | bytearray, unit_id: uuid.UUID, source: str, destination: str) -> bytes:
    """D's proof that it holds ``material`` for ``unit_id`` relayed from ``source`` to ``destination``."""
    return _mac(material, unit_id, source, destination).finalize()


def verify(material: bytes | bytearray, unit_id: uuid.UUID, source: str, destination: str, claimed: bytes) -> bool:
    """S's check of D's proof against its own copy (constant-time comparison)."""
    if len(claimed) != PROOF_BYTES:
        return False
    try:
        _mac(material, unit_id, source, destination).verify(claimed)
    except InvalidSignature:
        return False
    return True


__all__ = ["PROOF_BYTES", "proof", "verify"]
