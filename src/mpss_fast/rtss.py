"""RTSS shares: the "Robust Threshold Secret Sharing" format of draft-mcgrew-tss-03.

One RTSS share is a 20-octet header followed by a TSS share::

    Identifier (16) | Hash Algorithm Identifier (1) | Threshold (1) | Share Length (2, big-endian) | index (1) | value

Share Length counts the index octet and the value. The data shared is ``secret ||
H(secret)`` (H: none, SHA-1 or SHA-256) over GF(2^8) with the AES polynomial 0x11B, one
value octet per data octet; :func:`rtss_combine` rebuilds it, splits off the hash and
checks it. With more shares than the threshold, a failed check makes it try other
subsets of threshold size (at most :data:`MAX_SUBSETS`), so a corrupt share can be
routed around. With hash identifier 0 ("none") nothing can be checked: a wrong share
gives a wrong secret, silently.

Shares interoperate with other implementations of the draft (PyPI ``tss``, Botan).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import math
import os
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import _validate
from ._gf256 import POLY_AES
from .engine import Engine
from .exceptions import InputTypeError, IntegrityError, MalformedShareError, ParameterError, ShareError

HASH_NONE = 0
HASH_SHA1 = 1
HASH_SHA256 = 2
HASH_IDS = {"none": HASH_NONE, "sha1": HASH_SHA1, "sha256": HASH_SHA256}
"""Hash names accepted by :func:`rtss_split` and their Hash Algorithm Identifiers."""

_HASHES: dict[int, tuple[str, Callable[[Any], Any] | None, int]] = {
    HASH_NONE: ("none", None, 0),
    HASH_SHA1: ("SHA-1", hashlib.sha1, 20),
    HASH_SHA256: ("SHA-256", hashlib.sha256, 32),
}

IDENTIFIER_BYTES = 16
HEADER_BYTES = 20
MAX_DATA_BYTES = 0xFFFF - 1
"""Secret plus hash bytes: the 16-bit Share Length also counts the index octet."""

MAX_SUBSETS = 4096
"""The most threshold-sized subsets :func:`rtss_combine` interpolates before giving up."""

_HEADER = struct.Struct(">16sBBH")
_DEFAULT_ENGINE = Engine()


@dataclass(frozen=True)
class RtssShare:
    """One decoded RTSS share; ``encode()`` gives its wire bytes, ``RtssShare.decode()`` reads them."""

    identifier: bytes
    hash_id: int
    threshold: int
    index: int
    value: bytes = field(repr=False)

    def __post_init__(self) -> None:
        identifier = bytes(_validate.as_bytes_view(self.identifier, "identifier"))
        value = bytes(_validate.as_bytes_view(self.value, "value"))
        hash_id = _validate.check_int(self.hash_id, "hash_id")
        threshold = _validate.check_int(self.threshold, "threshold")
        index = _validate.check_int(self.index, "index")
        if len(identifier) != IDENTIFIER_BYTES:
            raise MalformedShareError(f"the identifier must be {IDENTIFIER_BYTES} bytes, not {len(identifier)}")
        if hash_id not in _HASHES:
            raise MalformedShareError(
                f"unknown hash algorithm identifier {hash_id}; known: 0 (none), 1 (SHA-1), 2 (SHA-256)"
            )
        if not 2 <= threshold <= 255:
            raise MalformedShareError(f"threshold must be in 2..255, not {threshold}")
        if not 1 <= index <= 255:
            raise MalformedShareError(f"share index must be in 1..255, not {index}")
        name, _, digest_size = _HASHES[hash_id]
        if not max(1, digest_size) <= len(value) <= MAX_DATA_BYTES:
            raise MalformedShareError(
                f"share value is {len(value)} bytes; with hash {name} it must be "
                f"{max(1, digest_size)}..{MAX_DATA_BYTES} bytes"
            )
        for attr, normalised in (("identifier", identifier), ("value", value)):
            object.__setattr__(self, attr, normalised)
        for attr, number in (("hash_id", hash_id), ("threshold", threshold), ("index", index)):
            object.__setattr__(self, attr, number)

    def encode(self) -> bytes:
        """The share on the wire: the 20-byte header, the index, the value."""
        return _HEADER.pack(self.identifier, self.hash_id, self.threshold, 1 + len(self.value)) + (
            bytes([self.index]) + self.value
        )

    @classmethod
    def decode(cls, data: Any) -> RtssShare:
        """Parse one RTSS share; anything malformed raises :class:`MalformedShareError`."""
        view = _validate.as_bytes_view(data, "share")
        if view.nbytes < HEADER_BYTES + 2:
            raise MalformedShareError(
                f"an RTSS share is at least {HEADER_BYTES + 2} bytes (header, index, 1 value byte), not {view.nbytes}"
            )
        identifier, hash_id, threshold, length = _HEADER.unpack_from(view)
        if length != view.nbytes - HEADER_BYTES:
            raise MalformedShareError(
                f"the Share Length field says {length} bytes but {view.nbytes - HEADER_BYTES} follow the header"
            )
        return cls(identifier, hash_id, threshold, view[HEADER_BYTES], bytes(view[HEADER_BYTES + 1 :]))


def _engine(engine: Any) -> Engine:
    if engine is None:
        return _DEFAULT_ENGINE
    if not isinstance(engine, Engine):
        raise InputTypeError(f"engine must be an mpss_fast.Engine, not {type(engine).__name__}")
    return engine


def _identifier(identifier: Any) -> bytes:
    if identifier is None:
        return os.urandom(IDENTIFIER_BYTES)
    value = bytes(_validate.as_bytes_view(identifier, "identifier"))
    if len(value) > IDENTIFIER_BYTES:
        raise ParameterError(f"identifier must be at most {IDENTIFIER_BYTES} bytes, not {len(value)}")
    return value.ljust(IDENTIFIER_BYTES, b"\0")


def rtss_split(
    secret: Any,
    k: int,
    n: int,
    *,
    identifier: Any = None,
    hash: str = "sha256",
    engine: Engine | None = None,
) -> list[bytes]:
    """Split ``secret`` into ``n`` encoded RTSS shares, any ``k`` of which rebuild it.

    ``identifier``: up to 16 bytes naming the secret, zero-padded to 16 (default: 16
    random bytes). ``hash``: ``"sha256"`` (default), ``"sha1"`` or ``"none"`` (no
    integrity check at combine). The secret is 1 .. 65534 bytes minus the hash length.
    """
    k, n = _validate.check_k_n(k, n)
    if not isinstance(hash, str):
        raise InputTypeError(f"hash must be a str, not {type(hash).__name__}")
    if hash not in HASH_IDS:
        raise ParameterError(f"hash must be one of {', '.join(HASH_IDS)}, not {hash!r}")
    hash_id = HASH_IDS[hash]
    _, hasher, digest_size = _HASHES[hash_id]
    ident = _identifier(identifier)
    view = _validate.as_bytes_view(secret, "secret")
    limit = MAX_DATA_BYTES - digest_size
    if not 1 <= view.nbytes <= limit:
        raise ParameterError(f"secret is {view.nbytes} bytes; RTSS with hash {hash} takes 1..{limit}")
    engine = _engine(engine)
    data = bytearray(view)
    try:
        if hasher is not None:
            data += hasher(view).digest()
        shares = engine.split(data, k, n, poly=POLY_AES)
    finally:
        data[:] = bytes(len(data))
    header = _HEADER.pack(ident, hash_id, k, 1 + len(data))
    return [header + share for share in shares]


def rtss_combine(shares: Iterable[Any], *, engine: Engine | None = None) -> bytes:
    """Rebuild and verify the secret from encoded RTSS shares (bytes-like or :class:`RtssShare`).

    Raises :class:`ShareError` for fewer than ``threshold`` distinct shares or shares of
    different secrets, :class:`MalformedShareError` for bytes that are not an RTSS share,
    and :class:`IntegrityError` when no subset tried verifies (see :data:`MAX_SUBSETS`).
    With hash "none" the first ``threshold`` shares are used, unchecked.
    """
    if isinstance(shares, (str, bytes, bytearray, memoryview)) or not isinstance(shares, Iterable):
        raise InputTypeError(f"shares must be a sequence of RTSS shares, not {type(shares).__name__}")
    decoded = []
    for i, share in enumerate(shares):
        if isinstance(share, RtssShare):
            decoded.append(share)
            continue
        try:
            decoded.append(RtssShare.decode(share))
        except MalformedShareError as exc:
            raise MalformedShareError(f"shares[{i}]: {exc}") from None
    return _combine(decoded, [f"shares[{i}]" for i in range(len(decoded))], _engine(engine))


def _combine(
    shares: Sequence[RtssShare], labels: Sequence[str], engine: Engine, *, used: list[int] | None = None
) -> bytes:
    """:func:`rtss_combine` of decoded shares; ``labels`` name them in error messages.

    ``used``, when given, receives the positions in ``shares`` of the subset that rebuilt the secret.
    """
    if not shares:
        raise ShareError("no shares given")
    first = shares[0]
    fields = (
        ("identifier", lambda s: s.identifier),
        ("hash algorithm", lambda s: s.hash_id),
        ("threshold", lambda s: s.threshold),
        ("Share Length", lambda s: len(s.value)),
    )
    for share, label in zip(shares[1:], labels[1:], strict=True):
        for what, get in fields:
            if get(share) != get(first):
                raise ShareError(f"{label} has a different {what} than {labels[0]}: not shares of the same secret")
    by_index: dict[int, RtssShare] = {}
    for share, label in zip(shares, labels, strict=True):
        seen = by_index.setdefault(share.index, share)
        if seen is not share and not hmac.compare_digest(seen.value, share.value):
            raise ShareError(f"{label} has index {share.index} like another share, but a different value")
    distinct = list(by_index.values())
    k = first.threshold
    if len(distinct) < k:
        duplicates = " distinct" if len(distinct) < len(shares) else ""
        raise ShareError(f"need at least {k} shares (the threshold), got {len(distinct)}{duplicates}")
    name, hasher, digest_size = _HASHES[first.hash_id]
    if hasher is None:
        if used is not None:
            used.extend(_positions(shares, distinct[:k]))
        return _interpolate(engine, distinct[:k])
    tried = 0
    for subset in itertools.islice(itertools.combinations(distinct, k), MAX_SUBSETS):
        tried += 1
        data = _interpolate(engine, subset)
        secret, digest = data[: len(data) - digest_size], data[len(data) - digest_size :]
        if hmac.compare_digest(hasher(secret).digest(), digest):
            if used is not None:
                used.extend(_positions(shares, subset))
            return secret
    total = math.comb(len(distinct), k)
    if total == 1:
        scope = f"the {k} shares"
    else:
        scope = f"{'all' if tried == total else f'{tried} of'} {total} subsets of {k} of the {len(distinct)} shares"
    raise IntegrityError(
        f"the {name} check fails for {scope}: a share is corrupt, or shares of different secrets carry the same "
        "identifier"
    )


def _positions(shares: Sequence[RtssShare], subset: Sequence[RtssShare]) -> list[int]:
    return [i for i, share in enumerate(shares) if any(share is chosen for chosen in subset)]


def _inconsistent_shares(shares: Sequence[RtssShare], used: Sequence[int], secret: bytes) -> list[int]:
    """Positions of the shares not in ``used`` that disagree with the verified ``secret``.

    Each one is interpolated with ``threshold - 1`` shares of the verified subset; it is
    consistent iff that rebuilds ``secret`` and its hash. Without a hash nothing was
    verified, so nothing is reported.
    """
    if not used:
        return []
    first = shares[used[0]]
    _, hasher, _ = _HASHES[first.hash_id]
    if hasher is None:
        return []
    data = secret + hasher(secret).digest()
    base = [shares[i] for i in used[: first.threshold - 1]]
    used_indices = {shares[i].index for i in used}
    bad = []
    for i, share in enumerate(shares):
        if i in used or share.index in used_indices:  # same index as a used share: checked equal already
            continue
        if not hmac.compare_digest(_interpolate(_DEFAULT_ENGINE, [*base, share]), data):
            bad.append(i)
    return bad


def _interpolate(engine: Engine, subset: Sequence[RtssShare]) -> bytes:
    return engine.combine([bytes([s.index]) + s.value for s in subset], poly=POLY_AES)


__all__ = [
    "HASH_IDS",
    "HASH_NONE",
    "HASH_SHA1",
    "HASH_SHA256",
    "MAX_SUBSETS",
    "RtssShare",
    "rtss_combine",
    "rtss_split",
]
