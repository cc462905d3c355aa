"""GF(2^8) arithmetic on public values, in plain Python.

Used by the pure backend and by tests; the native backend has its own tables in
``csrc/mpss_gf256.c``. Everything here is table-driven and therefore only fit for
public operands (x coordinates, Lagrange weights) or for the non-constant-time pure
backend.
"""

from __future__ import annotations

from functools import cache, lru_cache

POLY_AES = 0x11B
"""x^8+x^4+x^3+x+1: the AES field (draft-mcgrew-tss, Vault, SLIP-39). Generator 0x03."""

POLY_GFSHARE = 0x11D
"""x^8+x^4+x^3+x^2+1: the libgfshare / ISA-L field. Generator 0x02."""

POLYS = (POLY_AES, POLY_GFSHARE)
_GENERATOR = {POLY_AES: 0x03, POLY_GFSHARE: 0x02}


def _times_generator(a: int, poly: int) -> int:
    doubled = a << 1
    if doubled & 0x100:
        doubled ^= poly
    return doubled if _GENERATOR[poly] == 2 else doubled ^ a


@cache
def tables(poly: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(exp, log) for ``poly``; exp has 510 entries so exp[log a + log b] needs no reduction."""
    exp = [0] * 510
    log = [0] * 256
    a = 1
    for i in range(255):
        exp[i] = a
        log[a] = i
        a = _times_generator(a, poly)
    for i in range(255, 510):
        exp[i] = exp[i - 255]
    return tuple(exp), tuple(log)


def mul(poly: int, a: int, b: int) -> int:
    """a * b in GF(2^8) modulo ``poly``."""
    if a == 0 or b == 0:
        return 0
    exp, log = tables(poly)
    return exp[log[a] + log[b]]


def inv(poly: int, a: int) -> int:
    """Multiplicative inverse of a non-zero ``a``."""
    if a == 0:
        raise ZeroDivisionError("0 has no inverse in GF(2^8)")
    exp, log = tables(poly)
    return exp[255 - log[a]]


@lru_cache(maxsize=4096)
def mul_row(poly: int, c: int) -> bytes:
    """The 256-byte table v -> c*v, usable with ``bytes.translate``."""
    return bytes(mul(poly, c, v) for v in range(256))


@lru_cache(maxsize=1024)
def powers(poly: int, x: int, count: int) -> tuple[int, ...]:
    """(x^1, x^2, ..., x^count)."""
    out = []
    p = 1
    for _ in range(count):
        p = mul(poly, p, x)
        out.append(p)
    return tuple(out)


@lru_cache(maxsize=1024)
def lagrange_weights(poly: int, xs: bytes) -> tuple[int, ...]:
    """Weights w_i with f(0) = sum w_i * f(x_i) for distinct non-zero ``xs``.

    w_i = prod_{m != i} x_m / (x_m - x_i); subtraction is XOR in GF(2^8).
    """
    weights = []
    for i, xi in enumerate(xs):
        num = 1
        den = 1
        for m, xm in enumerate(xs):
            if m != i:
                num = mul(poly, num, xm)
                den = mul(poly, den, xm ^ xi)
        weights.append(mul(poly, num, inv(poly, den)))
    return tuple(weights)
