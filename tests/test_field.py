"""GF(2^8) arithmetic of every backend against the independent ``galois`` library."""

from __future__ import annotations

import galois
import numpy as np
import pytest

from mpss_fast import POLY_AES, POLY_GFSHARE, _gf256

POLYS = [POLY_AES, POLY_GFSHARE]


@pytest.fixture(scope="module", params=POLYS, ids=["0x11b", "0x11d"])
def field(request: pytest.FixtureRequest) -> tuple[int, type]:
    return request.param, galois.GF(2**8, irreducible_poly=request.param)


def _galois_products(gf: type) -> np.ndarray:
    a = gf(np.repeat(np.arange(256), 256))
    b = gf(np.tile(np.arange(256), 256))
    return np.asarray(a * b, dtype=np.uint8).reshape(256, 256)


def test_scalar_mul_exhaustive(kernels, field) -> None:
    poly, gf = field
    expected = _galois_products(gf)
    got = np.array([[kernels.gf_mul(poly, a, b) for b in range(256)] for a in range(256)], dtype=np.uint8)
    np.testing.assert_array_equal(got, expected)


def test_inverses_exhaustive(kernels, field) -> None:
    poly, gf = field
    expected = np.asarray(gf(np.arange(1, 256)) ** -1, dtype=np.uint8)
    got = np.array([kernels.gf_inv(poly, a) for a in range(1, 256)], dtype=np.uint8)
    np.testing.assert_array_equal(got, expected)
    with pytest.raises(ZeroDivisionError):
        kernels.gf_inv(poly, 0)


@pytest.mark.parametrize("group", [1, 4, 5, 255], ids=lambda g: f"{g}xs")
def test_bulk_kernel_mul_exhaustive(kernels, field, group: int) -> None:
    """The split kernel with a zero secret and one coefficient computes c*x for every c and x.

    Groups of 1, 4 and 5 x coordinates go through the fused product-row paths, 255 at
    once through the Horner path.
    """
    poly, gf = field
    expected = _galois_products(gf)
    zero = memoryview(bytes(256))
    coeff = memoryview(bytes(range(256)))
    for first in range(1, 256, group):
        xs = bytes(range(first, min(first + group, 256)))
        outs = [memoryview(bytearray(256)) for _ in xs]
        kernels.eval_shares(poly, zero, [coeff], xs, outs)
        for x, out in zip(xs, outs, strict=True):
            np.testing.assert_array_equal(np.frombuffer(out, dtype=np.uint8), expected[x])


def test_python_tables_match_galois(field) -> None:
    """The shared pure-Python field module (public constants) agrees with galois too."""
    poly, gf = field
    exp, log = _gf256.tables(poly)
    generator = 3 if poly == POLY_AES else 2
    assert sorted(exp[:255]) == list(range(1, 256)), "generator must be primitive"
    assert np.asarray(gf(generator) ** 7, dtype=np.uint8) == exp[7]
    for a in range(1, 256):
        assert exp[log[a]] == a
    np.testing.assert_array_equal(
        np.frombuffer(_gf256.mul_row(poly, 0x53), dtype=np.uint8),
        np.asarray(gf(0x53) * gf(np.arange(256)), dtype=np.uint8),
    )


def test_lagrange_weights_interpolate(field) -> None:
    """sum w_i * f(x_i) == f(0) for a random polynomial, checked with galois arithmetic."""
    poly, gf = field
    xs = bytes([7, 19, 200, 3, 255])
    coeffs = gf([0x11, 0xFE, 0x80, 0x01, 0x5A])  # f(0) = 0x5A (galois: highest degree first)
    f = galois.Poly(coeffs)
    values = f(gf(list(xs)))
    weights = gf(list(_gf256.lagrange_weights(poly, xs)))
    assert int(np.sum(weights * values)) == 0x5A
