"""The end-to-end key: HKDF-SHA256 of the relayed number, bound to its session ID.

The number rebuilt at the destination is uniformly random key material, but it is not
used as the key directly: ``derive_key`` expands it with HKDF-SHA256 (RFC 5869) so that

- the key is bound to its session ID (the session UUID both ends know; a node's unit ID),
  placed in HKDF's ``info`` after the caller's label: ``info || session_id.bytes``. The
  session ID is public context, not extraction randomness, so it belongs in ``info`` (RFC
  5869 section 3.2); the salt is left empty (HashLen zero bytes), which RFC 5869 allows
  since the input is already uniformly random. The session ID has a fixed 16 bytes at the
  end, so distinct (label, session ID) pairs never give the same ``info``;
- keys of any length (1 .. 8160 bytes) and for several purposes (distinct ``info``
  labels) come from one number, independent of each other and of the number itself.
"""

from __future__ import annotations

import uuid
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from . import _validate
from .exceptions import InputTypeError, ParameterError

DEFAULT_INFO = b"mpss e2e key"
"""The default HKDF label; the session ID follows it in ``info``."""

MAX_KEY_BYTES = 255 * 32
"""The longest HKDF-SHA256 output (255 hash blocks)."""


def _session_id_bytes(session_id: Any) -> bytes:
    if isinstance(session_id, uuid.UUID):
        return session_id.bytes
    if type(session_id) is bytes and len(session_id) == 16:
        return session_id
    raise InputTypeError(f"session_id must be a uuid.UUID or 16 bytes, not {type(session_id).__name__}")


def derive_key(number: Any, session_id: uuid.UUID | bytes, *, length: int = 32, info: Any = DEFAULT_INFO) -> bytes:
    """``HKDF-SHA256(salt = none, IKM = number, info = info || session_id.bytes, L = length)``.

    ``number``: the relayed number (bytes-like, not empty); ``session_id``: the session
    UUID (or its 16 bytes); ``length``: 1 .. 8160 bytes; ``info``: a bytes-like label.
    """
    view = _validate.as_bytes_view(number, "number")
    if view.nbytes == 0:
        raise ParameterError("number must not be empty")
    sid = _session_id_bytes(session_id)
    length = _validate.check_int(length, "length")
    if not 1 <= length <= MAX_KEY_BYTES:
        raise ParameterError(f"length must be in 1..{MAX_KEY_BYTES}, not {length}")
    label = bytes(_validate.as_bytes_view(info, "info"))
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=label + sid).derive(view)


__all__ = ["DEFAULT_INFO", "MAX_KEY_BYTES", "derive_key"]
