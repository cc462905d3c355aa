"""Coefficient randomness: AES-256-CTR keystream under a fresh key from the OS per split.

``os.urandom`` runs at about 0.6 GB/s here, far below the kernels, so a split's
coefficients are AES-256-CTR keystream under a 256-bit key drawn from the OS for that
call alone: coefficient row j (the x^(j+1) coefficients of every secret byte) is the
keystream from the initial counter block ``BE64(j) || BE64(0)``, so coefficient j of
secret byte t is byte t of row j. The native extension makes the same rows with
AES-NI/VAES inside the split kernel; this module makes them with ``cryptography``, and
the two are byte-identical for the same key (tested). No generator state outlives a
call, so a forked child can never replay its parent's stream. AES-CTR output is uniform
over all 256 byte values, 0 included (a source that never yields 0 would leak the secret).
"""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Callable, Sequence
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

KEY_BYTES = 32
"""Length of a split key (AES-256)."""

KEYED_CHUNK_BYTES = 4 << 20
"""Coefficient bytes made per chunk by :func:`keyed_split`, which bounds its memory."""

SLACK = 15
"""Extra room ``cryptography``'s ``update_into`` needs after the bytes it writes."""

_COUNTER = struct.Struct(">QQ")
# The CTR plaintext. Shared and never written; allocated lazily, grown on demand.
_zeros = b""
_local = threading.local()


def row_counter(row: int, block: int) -> bytes:
    """The 16-byte AES-CTR counter block of block ``block`` of coefficient row ``row``."""
    return _COUNTER.pack(row, block)


def new_key() -> bytes:
    """A fresh split key from the OS CSPRNG."""
    return os.urandom(KEY_BYTES)


def keyed_chunk_length(m: int) -> int:
    """Secret bytes per chunk for ``m`` coefficient rows: a multiple of the 16-byte AES block."""
    return max(16, KEYED_CHUNK_BYTES // m // 16 * 16)


def keyed_split(
    eval_shares: Callable[..., None],
    poly: int,
    secret: memoryview,
    m: int,
    xs: bytes,
    outs: Sequence[memoryview],
    key: Any = None,
) -> None:
    """Shares of ``secret`` with ``m`` coefficient rows of AES-256-CTR keystream under ``key``.

    ``eval_shares`` is a kernel's evaluation (``_kernels.pyi``); ``key`` (32 bytes) is
    drawn from the OS when None. Chunk by chunk: each row's keystream for the chunk is
    made into a reused per-thread buffer, consumed, and wiped at the end.
    """
    algorithm = algorithms.AES256(new_key() if key is None else bytes(key))
    length = secret.nbytes
    step = keyed_chunk_length(m)
    stride = min(step, length) + SLACK
    store = scratch(m * stride)
    try:
        for start in range(0, length, step):
            size = min(step, length - start)
            zeros = _zero_view(size)
            coeffs = []
            for j in range(m):
                row = store[j * stride : j * stride + size + SLACK]
                encryptor = Cipher(algorithm, modes.CTR(_COUNTER.pack(j, start // 16))).encryptor()
                encryptor.update_into(zeros, row)
                coeffs.append(row[:size])
            chunk_outs = [o[start : start + size] for o in outs]
            eval_shares(poly, secret[start : start + size], coeffs, xs, chunk_outs)
    finally:
        # The coefficients are as secret as the secret itself.
        wipe(store, m * stride)


def _zero_view(nbytes: int) -> memoryview:
    global _zeros
    if len(_zeros) < nbytes:
        _zeros = bytes(nbytes)
    return memoryview(_zeros)[:nbytes]


def wipe(buf: memoryview, nbytes: int) -> None:
    """Overwrite the first ``nbytes`` of ``buf`` with zeros."""
    buf[:nbytes] = _zero_view(nbytes)


def scratch(nbytes: int) -> memoryview:
    """This thread's reusable buffer for coefficient rows: at least ``nbytes`` bytes.

    Reuse avoids paying page faults for fresh memory on every call. Callers wipe what
    they wrote before returning; the buffer holds no generator state, so a fork copies
    nothing that matters.
    """
    buf = getattr(_local, "buf", None)
    if buf is None or len(buf) < nbytes:
        buf = bytearray(nbytes)
        _local.buf = buf
    return memoryview(buf)
