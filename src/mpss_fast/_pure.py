"""Pure-Python kernels: the reference backend, same contract as ``_native``.

Whole-buffer operations only: a multiply by a public constant is one
``bytes.translate`` with that constant's product row, additions are numpy XORs.
``translate`` indexes a table with secret bytes, so this backend is NOT constant
time (docs/security.md).

Inputs have been validated by ``_validate``: 1-D ``'B'`` views of equal length.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from . import _gf256, _random

NAME = "pure"
tier = "pure"
combine_tier = "pure"
constant_time = False
keystream = "cryptography"


def gf_mul(poly: int, a: int, b: int) -> int:
    """a * b in GF(2^8) modulo ``poly``."""
    return _gf256.mul(poly, a, b)


def gf_inv(poly: int, a: int) -> int:
    """Inverse of the non-zero ``a``."""
    return _gf256.inv(poly, a)


def _as_bytes(view: memoryview) -> bytes | bytearray:
    obj = view.obj
    if isinstance(obj, (bytes, bytearray)) and len(obj) == view.nbytes:
        return obj
    return view.tobytes()


def new_bytes(length: int) -> tuple[bytearray, memoryview]:
    """(obj, view): a zeroed buffer of ``length`` and a writable view of it."""
    obj = bytearray(length)
    return obj, memoryview(obj)


def eval_shares(
    poly: int,
    secret: memoryview,
    coeffs: Sequence[memoryview],
    xs: bytes,
    outs: Sequence[memoryview],
) -> None:
    """outs[i] = secret + sum_j coeffs[j] * xs[i]^(j+1), byte by byte."""
    secret_arr = np.frombuffer(secret, dtype=np.uint8)
    coeff_bytes = [_as_bytes(c) for c in coeffs]
    for x, out in zip(xs, outs, strict=True):
        acc = np.frombuffer(out, dtype=np.uint8)
        acc[:] = secret_arr
        for c, p in zip(coeff_bytes, _gf256.powers(poly, x, len(coeff_bytes)), strict=True):
            term = np.frombuffer(c.translate(_gf256.mul_row(poly, p)), dtype=np.uint8)
            np.bitwise_xor(acc, term, out=acc)


def split_keyed(
    poly: int,
    secret: memoryview,
    m: int,
    xs: bytes,
    outs: Sequence[memoryview],
    key: bytes | None = None,
) -> None:
    """eval_shares with coefficient row j = AES-256-CTR keystream of row j under ``key`` (None: a fresh one)."""
    _random.keyed_split(eval_shares, poly, secret, m, xs, outs, key)


SMALL_SPLIT_BYTES = 4096
"""The most coefficient bytes :func:`split_small` draws straight from the OS (as the native backend does)."""


def split_small(poly: int, secret: memoryview, m: int, xs: bytes) -> list[bytes] | None:
    """Split a short secret with coefficients from ``os.urandom``; None when ``m * len(secret)`` is larger.

    Two AES-CTR cipher set-ups cost more than one getrandom() call for a few KiB.
    """
    length = secret.nbytes
    if m * length > SMALL_SPLIT_BYTES:
        return None
    coeff = bytearray(os.urandom(m * length))
    try:
        view = memoryview(coeff)
        shares = [bytearray(length + 1) for _ in xs]
        for share, x in zip(shares, xs, strict=True):
            share[0] = x
        eval_shares(
            poly,
            secret,
            [view[j * length : (j + 1) * length] for j in range(m)],
            xs,
            [memoryview(s)[1:] for s in shares],
        )
        return [bytes(s) for s in shares]
    finally:
        coeff[:] = bytes(len(coeff))


def interpolate(poly: int, xs: bytes, ys: Sequence[memoryview], out: memoryview) -> None:
    """out = sum_i w_i * ys[i], the Lagrange interpolation of the points at x = 0."""
    acc = np.frombuffer(out, dtype=np.uint8)
    for i, (y, w) in enumerate(zip(ys, _gf256.lagrange_weights(poly, bytes(xs)), strict=True)):
        term = np.frombuffer(_as_bytes(y).translate(_gf256.mul_row(poly, w)), dtype=np.uint8)
        if i == 0:
            acc[:] = term
        else:
            np.bitwise_xor(acc, term, out=acc)


def xor(a: memoryview, b: memoryview, out: memoryview) -> None:
    """out = a ^ b; out may be a or b itself."""
    np.bitwise_xor(
        np.frombuffer(a, dtype=np.uint8),
        np.frombuffer(b, dtype=np.uint8),
        out=np.frombuffer(out, dtype=np.uint8),
    )


def xor3(a: memoryview, b: memoryview, c: memoryview, out: memoryview) -> None:
    """out = a ^ b ^ c; out may be one of the inputs itself."""
    acc = np.frombuffer(out, dtype=np.uint8)
    a_, b_, c_ = (np.frombuffer(v, dtype=np.uint8) for v in (a, b, c))
    if np.may_share_memory(acc, c_):  # out is c itself: consume c first
        a_, c_ = c_, a_
    np.bitwise_xor(a_, b_, out=acc)
    np.bitwise_xor(acc, c_, out=acc)
