"""Coefficient randomness: the OS CSPRNG, stretched with AES-256-CTR.

``os.urandom`` runs at about 0.6 GB/s here, far below the kernels, so large draws use
an AES-256-CTR keystream (``cryptography``) under a fresh 256-bit key taken from
``os.urandom`` for every draw. No generator state outlives a call, so a forked child
can never replay its parent's stream. AES-CTR output is uniform over all 256 byte
values, 0 included (a source that never yields 0 would leak the secret).
"""

from __future__ import annotations

import os
import threading

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

# Below this size one getrandom() call is cheaper than setting up a cipher.
_URANDOM_MAX = 4096
_ZERO_IV = bytes(16)
# The CTR plaintext. Shared and never written; allocated lazily, grown on demand.
_zeros = b""
_local = threading.local()


SLACK = 15
"""Extra bytes a buffer passed to :func:`fill_random` must have (AES-CTR ``update_into`` needs a block of room)."""


def fill_random(buf: memoryview, nbytes: int) -> None:
    """Write ``nbytes`` of CSPRNG output at the start of the writable view ``buf``.

    ``buf`` must be at least ``nbytes + SLACK`` bytes long.
    """
    if nbytes <= _URANDOM_MAX:
        buf[:nbytes] = os.urandom(nbytes)
        return
    # A key is used for exactly one keystream, so a fixed IV never repeats a (key, IV) pair.
    encryptor = Cipher(algorithms.AES256(os.urandom(32)), modes.CTR(_ZERO_IV)).encryptor()
    encryptor.update_into(_zero_view(nbytes), buf)


def _zero_view(nbytes: int) -> memoryview:
    global _zeros
    if len(_zeros) < nbytes:
        _zeros = bytes(nbytes)
    return memoryview(_zeros)[:nbytes]


def wipe(buf: memoryview, nbytes: int) -> None:
    """Overwrite the first ``nbytes`` of ``buf`` with zeros."""
    buf[:nbytes] = _zero_view(nbytes)


def scratch(nbytes: int) -> memoryview:
    """This thread's reusable buffer for coefficient draws: at least ``nbytes + SLACK`` bytes.

    Reuse avoids paying page faults for fresh memory on every call. Callers wipe what
    they wrote before returning; the buffer holds no generator state, so a fork copies
    nothing that matters.
    """
    buf = getattr(_local, "buf", None)
    if buf is None or len(buf) < nbytes + SLACK:
        buf = bytearray(nbytes + SLACK)
        _local.buf = buf
    return memoryview(buf)
