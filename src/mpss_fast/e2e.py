"""The end-to-end key: HKDF-SHA256 of the relayed number, bound to its key ID.

The number rebuilt at the destination is uniformly random key material, but it is not
used as the key directly: ``derive_key`` expands it with HKDF-SHA256 (RFC 5869) so that

- the key is bound to its key ID (the session UUID both ends know), placed in HKDF's
  ``info`` after the caller's label: ``info || key_id.bytes``. The key ID is public
  context, not extraction randomness, so it belongs in ``info`` (RFC 5869 section 3.2);
  the salt is left empty (HashLen zero bytes), which RFC 5869 allows since the input is
  already uniformly random. The key ID has a fixed 16 bytes at the end, so distinct
  (label, key ID) pairs never give the same ``info``;
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
"""The default HKDF label; the key ID follows it in ``info``."""

MAX_KEY_BYTES = 255 * 32
"""The longest HKDF-SHA256 output (255 hash blocks)."""


def _key_id_bytes(key_id: Any) -> bytes:
    if isinstance(key_id, uuid.UUID):
        return key_id.bytes
    if type(key_id) is bytes and len(key_id) == 16:
        return key_id
    raise InputTypeError(f"key_id must be a uuid.UUID or 16 bytes, not {type(key_id).__name__}")


def derive_key(number: Any, key_id: uuid.UUID | bytes, *, length: int = 32, info: Any = DEFAULT_INFO) -> bytes:
    """``HKDF-SHA256(salt = none, IKM = number, info = info || key_id.bytes, L = length)``.

    ``number``: the relayed number (bytes-like, not empty); ``key_id``: the session
    UUID (or its 16 bytes); ``length``: 1 .. 8160 bytes; ``info``: a bytes-like label.
    """
    view = _validate.as_bytes_view(number, "number")
    if view.nbytes == 0:
        raise ParameterError("number must not be empty")
    kid = _key_id_bytes(key_id)
    length = _validate.check_int(length, "length")
    if not 1 <= length <= MAX_KEY_BYTES:
        raise ParameterError(f"length must be in 1..{MAX_KEY_BYTES}, not {length}")
    label = bytes(_validate.as_bytes_view(info, "info"))
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=label + kid).derive(view)


__all__ = ["DEFAULT_INFO", "MAX_KEY_BYTES", "derive_key"]
