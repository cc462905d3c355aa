"""Robust reconstruction (Berlekamp-Welch): correct up to (m-k)//2 corrupted shares, detect more.

Shares are made with ``galois`` (an independent GF(2^8) implementation) from a random
polynomial; the decoder's answer is checked against that polynomial and re-encoded with
galois.
"""

from __future__ import annotations

import functools
import time

import galois
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mpss_fast import robust, split_array
from mpss_fast.exceptions import InputTypeError, ParameterError, SessionError, ShareError, UncorrectableError

from .rng import seeded_rng

POLYS = (0x11B, 0x11D)


@functools.cache
def _field(poly: int) -> type:
    return galois.GF(2**8, irreducible_poly=poly)


def _encode(poly: int, coeffs: np.ndarray, xs: list[int]) -> np.ndarray:
    """Shares (m, L) of the polynomials whose coefficient j at byte t is ``coeffs[j, t]`` (galois arithmetic)."""
    gf = _field(poly)
    x = gf(np.array(xs, dtype=np.uint8))[:, None]
    acc = gf.Zeros((len(xs), coeffs.shape[1]))
    for row in gf(coeffs)[::-1]:  # Horner, highest coefficient first
        acc = acc * x + row[None, :]
    return np.asarray(acc, dtype=np.uint8)


@st.composite
def corrupted(draw: st.DrawFn, *, beyond: bool = False):
    """(poly, k, xs, shares, secret, bad_xs, max_errors): up to max_errors shares corrupted.

    With ``beyond``: more than max_errors, but few enough to be always detected.
    """
    poly = draw(st.sampled_from(POLYS))
    k = draw(st.integers(2, 7))
    extra = draw(st.integers(1 if beyond else 0, 9))
    m = k + extra
    most = robust.correctable(m, k)
    if beyond:
        # correcting up to c errors, m - k - c are always detected: draw c < errors <= m - k - c
        limit = draw(st.integers(0, (extra - 1) // 2))
        errors = draw(st.integers(limit + 1, extra - limit))
    else:
        limit = draw(st.integers(0, most))
        errors = draw(st.integers(0, limit))
    xs = draw(st.lists(st.integers(1, 255), min_size=m, max_size=m, unique=True))
    length = draw(st.integers(1, 40))
    coeffs = np.frombuffer(draw(st.binary(min_size=k * length, max_size=k * length)), dtype=np.uint8)
    coeffs = coeffs.reshape(k, length)
    shares = _encode(poly, coeffs, xs)
    bad = draw(st.lists(st.integers(0, m - 1), min_size=errors, max_size=errors, unique=True))
    for i in bad:
        delta = np.frombuffer(draw(st.binary(min_size=length, max_size=length)), dtype=np.uint8).copy()
        delta[draw(st.integers(0, length - 1))] = draw(st.integers(1, 255))  # differs in at least one byte
        shares[i] ^= delta
    return poly, k, xs, shares, coeffs[0].tobytes(), tuple(sorted(xs[i] for i in bad)), limit


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corrupted())
def test_corrects_up_to_the_limit_and_names_exactly_the_corrupted_shares(case) -> None:
    poly, k, xs, shares, secret, bad, limit = case
    before = shares.copy()
    got, bad_xs = robust.decode(xs, shares, k, poly=poly, max_errors=limit)
    assert got == secret
    assert bad_xs == bad
    assert np.array_equal(shares, before)  # the caller's array is left alone
    as_bytes = robust.decode(xs, [row.tobytes() for row in shares], k, poly=poly, max_errors=limit)
    assert as_bytes == (secret, bad)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corrupted(beyond=True))
def test_detects_more_errors_than_it_corrects_within_the_guaranteed_bound(case) -> None:
    poly, k, xs, shares, _, _, limit = case
    with pytest.raises(UncorrectableError):
        robust.decode(xs, shares, k, poly=poly, max_errors=limit)


def _galois_at(poly: int, xs: list[int], ys: np.ndarray, z: int) -> np.ndarray:
    """The polynomial of degree < len(xs) through (xs, ys) at z, per byte: Lagrange's formula in galois arithmetic."""
    gf = _field(poly)
    x = gf(np.array(xs, dtype=np.uint8))
    total = gf.Zeros(ys.shape[1])
    for i in range(len(xs)):
        others = np.delete(x, i)
        weight = np.prod(gf(z) - others) / np.prod(x[i] - others)
        total += weight * gf(ys[i])
    return np.asarray(total, dtype=np.uint8)


@pytest.mark.parametrize("poly", POLYS)
def test_decoded_polynomial_re_encoded_with_galois(poly: int) -> None:
    """Through k kept shares (galois): the secret at 0, every kept share on it, every bad share off it."""
    k, xs, length = 4, [3, 9, 27, 81, 200, 201, 254, 255, 17], 24
    coeffs = np.frombuffer(seeded_rng(b"galois")(k * length), dtype=np.uint8).reshape(k, length)
    shares = _encode(poly, coeffs, xs)
    shares[[1, 6]] ^= np.frombuffer(seeded_rng(b"noise")(2 * length), dtype=np.uint8).reshape(2, length) | 1
    secret, bad = robust.decode(xs, shares, k, poly=poly)
    assert bad == (9, 254)
    good = [i for i, x in enumerate(xs) if x not in bad]
    basis = ([xs[i] for i in good[:k]], shares[good[:k]])
    assert _galois_at(poly, *basis, 0).tobytes() == secret
    for i in range(len(xs)):
        on_it = np.array_equal(_galois_at(poly, *basis, xs[i]), shares[i])
        assert on_it == (i in good)


@pytest.mark.parametrize("poly", POLYS)
def test_reencode_matches_galois(poly: int) -> None:
    xs, length = [5, 6, 7], 10
    ys = np.frombuffer(seeded_rng(b"re")(3 * length), dtype=np.uint8).reshape(3, length)
    points = [0, 1, 5, 77, 255]
    got = robust.reencode(xs, ys, points, poly=poly)
    assert all(np.array_equal(got[p], _galois_at(poly, xs, ys, z)) for p, z in enumerate(points))


def test_agrees_with_the_engine_split() -> None:
    """Shares from the library's own split, one corrupted, both fields."""
    secret = seeded_rng(b"engine")(32)
    for poly in POLYS:
        shares = split_array(np.frombuffer(secret, dtype=np.uint8).reshape(1, -1), 3, 5, poly=poly)[:, 0, :].copy()
        shares[3, 7] ^= 0x40
        assert robust.decode([1, 2, 3, 4, 5], shares, 3, poly=poly) == (secret, (4,))


def test_exactly_k_shares_are_combined_without_any_check() -> None:
    shares = split_array(np.arange(16, dtype=np.uint8).reshape(1, -1), 3, 3)[:, 0, :].copy()
    assert robust.decode([1, 2, 3], shares, 3) == (bytes(range(16)), ())
    shares[0, 0] ^= 1
    got, bad = robust.decode([1, 2, 3], shares, 3)  # nothing to compare with: a wrong secret, no error
    assert got != bytes(range(16)) and bad == ()
    shares = split_array(np.arange(16, dtype=np.uint8).reshape(1, -1), 3, 4)[:, 0, :].copy()
    shares[0, 0] ^= 1
    with pytest.raises(UncorrectableError, match="4 shares of threshold 3 can correct none"):
        robust.decode([1, 2, 3, 4], shares, 3)  # one spare share: detected, not corrected


def test_max_errors_trades_correction_for_detection() -> None:
    shares = split_array(np.zeros((1, 8), dtype=np.uint8), 2, 6)[:, 0, :].copy()
    shares[0] ^= 1
    assert robust.decode(range(1, 7), shares, 2) == (bytes(8), (1,))
    with pytest.raises(UncorrectableError, match=r"correction is off"):
        robust.decode(range(1, 7), shares, 2, max_errors=0)


def test_union_over_bytes_above_the_limit_is_uncorrectable() -> None:
    """Each byte alone has one error, but two shares are corrupt in all: more than (5-3)//2 = 1."""
    shares = split_array(np.zeros((1, 2), dtype=np.uint8), 3, 5)[:, 0, :].copy()
    shares[0, 0] ^= 1
    shares[1, 1] ^= 1
    with pytest.raises(UncorrectableError, match="2 of the 5"):
        robust.decode(range(1, 6), shares, 3)
    assert issubclass(UncorrectableError, SessionError)


@pytest.mark.parametrize(("k", "errors"), [(3, 126), (128, 63), (200, 27)])
def test_all_255_shares(k: int, errors: int) -> None:
    length = 32
    coeffs = np.frombuffer(seeded_rng(f"big{k}".encode())(k * length), dtype=np.uint8).reshape(k, length)
    xs = list(range(1, 256))
    shares = _encode(0x11B, coeffs, xs)
    bad = sorted(range(0, 255, 255 // errors)[:errors])
    shares[bad] ^= np.frombuffer(seeded_rng(b"e")(errors * length), dtype=np.uint8).reshape(errors, length) | 0x80
    start = time.perf_counter()
    secret, bad_xs = robust.decode(xs, shares, k)
    assert time.perf_counter() - start < 30
    assert secret == coeffs[0].tobytes() and bad_xs == tuple(i + 1 for i in bad)
    shares[bad[0] + 1] ^= 1  # one share more than can be corrected: detected when e + 1 <= m - k - e
    if errors + 1 <= 255 - k - errors:
        with pytest.raises(UncorrectableError):
            robust.decode(xs, shares, k)


def test_long_shares_are_decoded_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(robust, "_BIT_CHUNK", 8 * 5 * 7)  # 7 byte positions per chunk
    monkeypatch.setattr(robust, "_SOLVE_CHUNK", 10)
    monkeypatch.setattr(robust, "_LOCATE_BATCH", 3)
    secret = seeded_rng(b"long")(100)
    shares = split_array(np.frombuffer(secret, dtype=np.uint8).reshape(1, -1), 2, 5)[:, 0, :].copy()
    shares[4, ::3] ^= 0x11
    assert robust.decode(range(1, 6), shares, 2) == (secret, (5,))


def test_messages_carry_no_share_bytes() -> None:
    shares = split_array(np.frombuffer(b"\xab" * 32, dtype=np.uint8).reshape(1, -1), 2, 4)[:, 0, :].copy()
    shares[:2] ^= 0x5A
    with pytest.raises(UncorrectableError) as info:
        robust.decode(range(1, 5), shares, 2)
    text = str(info.value)
    for row in shares:
        assert row.tobytes().hex()[:8] not in text
    assert "abab" not in text


def test_argument_errors() -> None:
    ys = np.zeros((3, 4), dtype=np.uint8)
    with pytest.raises(ShareError, match="at least 3"):
        robust.decode([1, 2], ys[:2], 3)
    with pytest.raises(ShareError, match="distinct"):
        robust.decode([1, 1, 2], ys, 2)
    with pytest.raises(ShareError, match=r"1\.\.255"):
        robust.decode([0, 1, 2], ys, 2)
    with pytest.raises(ShareError, match="3 entries"):
        robust.decode([1, 2], ys, 2)
    with pytest.raises(ShareError, match="same length"):
        robust.decode([1, 2], [b"ab", b"abc"], 2)
    with pytest.raises(ShareError, match="no shares"):
        robust.decode([], [], 2)
    with pytest.raises(ParameterError, match="max_errors"):
        robust.decode([1, 2, 3], ys, 2, max_errors=1)
    with pytest.raises(ParameterError, match="k must"):
        robust.decode([1, 2, 3], ys, 1)
    with pytest.raises(ParameterError, match="poly"):
        robust.decode([1, 2, 3], ys, 2, poly=0x100)
    with pytest.raises(InputTypeError):
        robust.decode([1, 2, 3], b"abc", 2)
    with pytest.raises(InputTypeError):
        robust.decode([1, 2, 3], ys.astype(np.int16), 2)
    with pytest.raises(ParameterError, match="points"):
        robust.reencode([1, 2], ys[:2], [256])
    assert robust.correctable(5, 3) == 1 and robust.correctable(3, 3) == 0 and robust.correctable(10, 3) == 3
