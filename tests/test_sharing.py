"""Split and combine on every backend: published vectors, an independent oracle, round trips."""

from __future__ import annotations

import itertools
import os

import galois
import numpy as np
import pytest

from mpss_fast import POLY_AES, POLY_GFSHARE, Engine
from mpss_fast.engine import chunk_length
from tests.rng import seeded_rng

# draft-mcgrew-tss-03, section 9 test case (AES field 0x11B)
TSS_SECRET = bytes.fromhex("7465737400")
TSS_SHARES = [bytes.fromhex("01B9FA07E185"), bytes.fromhex("02F5409B4511")]


def test_tss_vector_combines(engine: Engine) -> None:
    assert engine.combine(TSS_SHARES) == TSS_SECRET
    assert engine.combine(TSS_SHARES[::-1]) == TSS_SECRET


def test_tss_vector_splits(engine: Engine) -> None:
    """With the vector's coefficients injected, split reproduces its shares exactly."""
    coefficients = bytes(a ^ b for a, b in zip(TSS_SHARES[0][1:], TSS_SECRET, strict=True))  # y(1) = s + c
    shares = engine.split(TSS_SECRET, 2, 2, rng=lambda nbytes: coefficients[:nbytes])
    assert shares == TSS_SHARES


@pytest.mark.parametrize("poly", [POLY_AES, POLY_GFSHARE], ids=["0x11b", "0x11d"])
@pytest.mark.parametrize(("k", "n"), [(2, 3), (3, 5), (4, 4), (7, 12)])
def test_split_matches_galois_polynomial_evaluation(engine: Engine, poly: int, k: int, n: int) -> None:
    """Share bytes equal an independent evaluation of s + c_1 x + ... + c_{k-1} x^{k-1} in galois."""
    gf = galois.GF(2**8, irreducible_poly=poly)
    secret = os.urandom(37)
    rng = seeded_rng(b"oracle")
    coefficients = seeded_rng(b"oracle")((k - 1) * len(secret))
    xs = [9, 200, 1, 77, 3, 150, 255, 31, 64, 128, 2, 5][:n]
    shares = engine.split(secret, k, n, poly=poly, xs=xs, rng=rng)
    length = len(secret)
    rows = [gf(np.frombuffer(coefficients[j * length : (j + 1) * length], np.uint8)) for j in range(k - 1)]
    for share, x in zip(shares, xs, strict=True):
        assert share[0] == x
        value = gf(np.frombuffer(secret, np.uint8))
        for j, row in enumerate(rows):
            value = value + row * gf(x) ** (j + 1)
        assert np.asarray(value, dtype=np.uint8).tobytes() == share[1:]


@pytest.mark.parametrize("poly", [POLY_AES, POLY_GFSHARE], ids=["0x11b", "0x11d"])
@pytest.mark.parametrize(("k", "n"), [(2, 2), (2, 3), (3, 5), (5, 8)])
@pytest.mark.parametrize("length", [1, 2, 31, 4097])
def test_every_k_subset_combines(engine: Engine, poly: int, k: int, n: int, length: int) -> None:
    secret = os.urandom(length)
    shares = engine.split(secret, k, n, poly=poly)
    assert [s[0] for s in shares] == list(range(1, n + 1))
    assert all(len(s) == length + 1 for s in shares)
    for subset in itertools.combinations(shares, k):
        assert engine.combine(subset, poly=poly) == secret
    # More than k shares lie on the same polynomial too.
    assert engine.combine(shares, poly=poly) == secret


def test_large_threshold_and_custom_xs(engine: Engine) -> None:
    secret = os.urandom(100)
    xs = list(range(255, 0, -1))
    shares = engine.split(secret, 255, 255, xs=xs)
    assert engine.combine(shares) == secret
    assert engine.combine(shares[:254]) != secret


def test_fewer_than_k_shares_do_not_rebuild(engine: Engine) -> None:
    secret = os.urandom(32)
    shares = engine.split(secret, 3, 5)
    for subset in itertools.combinations(shares, 2):
        assert engine.combine(subset) != secret


def test_wrong_polynomial_gives_garbage(engine: Engine) -> None:
    secret = os.urandom(64)
    shares = engine.split(secret, 3, 5, poly=POLY_GFSHARE)
    assert engine.combine(shares[:3], poly=POLY_GFSHARE) == secret
    # x = {1, 2, 3} has all Lagrange weights 1 in any field of characteristic 2, so
    # the polynomial cannot matter there; {1, 2, 4} shows that it does.
    assert engine.combine(shares[:3], poly=POLY_AES) == secret
    assert engine.combine([shares[0], shares[1], shares[3]], poly=POLY_AES) != secret


def test_secret_larger_than_a_chunk(engine: Engine) -> None:
    """Secrets span several randomness draws; each draw covers one chunk, as documented."""
    k = 200
    step = chunk_length(k)
    secret = os.urandom(2 * step + 1234)
    calls: list[int] = []
    inner = seeded_rng(b"chunks")

    def rng(nbytes: int) -> bytes:
        calls.append(nbytes)
        return inner(nbytes)

    shares = engine.split(secret, k, 201, rng=rng)
    assert calls == [(k - 1) * step, (k - 1) * step, (k - 1) * 1234]
    assert engine.combine(shares[1:201]) == secret


def test_array_api_agrees_with_single_key_api(engine: Engine) -> None:
    secrets = np.frombuffer(os.urandom(50 * 32), dtype=np.uint8).reshape(50, 32)
    shares = engine.split_array(secrets, 3, 5, xs=[4, 8, 15, 16, 23], rng=seeded_rng(b"bulk"))
    assert shares.shape == (5, 50, 32) and shares.dtype == np.uint8
    single = engine.split(secrets.tobytes(), 3, 5, xs=[4, 8, 15, 16, 23], rng=seeded_rng(b"bulk"))
    for i, share in enumerate(single):
        assert shares[i].tobytes() == share[1:]
    rebuilt = engine.combine_array(shares[[0, 2, 4]], [4, 15, 23])
    np.testing.assert_array_equal(rebuilt, secrets)
    # Each row is a valid single-key share too.
    assert (
        engine.combine(
            [
                bytes([4]) + shares[0, 7].tobytes(),
                bytes([8]) + shares[1, 7].tobytes(),
                bytes([16]) + shares[3, 7].tobytes(),
            ]
        )
        == secrets[7].tobytes()
    )


def test_array_out_buffers_filled_in_place(engine: Engine) -> None:
    secrets = np.frombuffer(os.urandom(10 * 16), dtype=np.uint8).reshape(10, 16)
    out = np.zeros((4, 10, 16), dtype=np.uint8)
    result = engine.split_array(secrets, 2, 4, out=out)
    assert result is out
    back = np.zeros((10, 16), dtype=np.uint8)
    assert engine.combine_array(out[2:], [3, 4], out=back) is back
    np.testing.assert_array_equal(back, secrets)


def test_default_randomness_differs_between_calls(engine: Engine) -> None:
    secret = bytes(64)
    assert engine.split(secret, 2, 2) != engine.split(secret, 2, 2)


def test_bytes_like_inputs(engine: Engine) -> None:
    import array

    raw = os.urandom(40)
    for secret in (
        raw,
        bytearray(raw),
        memoryview(raw),
        array.array("B", raw),
        np.frombuffer(raw, np.uint8),
        np.frombuffer(raw, np.int8),
        memoryview(raw).cast("c"),
    ):
        shares = engine.split(secret, 2, 3)
        assert all(type(s) is bytes for s in shares)
        assert engine.combine([bytearray(shares[0]), memoryview(shares[2])]) == raw
    # A 2-D C-contiguous buffer is taken as its bytes in order.
    grid = np.frombuffer(raw, np.uint8).reshape(5, 8)
    assert engine.combine(engine.split(grid, 2, 2)) == raw


def test_result_types(engine: Engine) -> None:
    shares = engine.split(b"abc", 2, 3)
    assert type(shares) is list and all(type(s) is bytes for s in shares)
    assert type(engine.combine(shares)) is bytes
    assert type(engine.xor(b"ab", b"cd")) is bytes


@pytest.mark.parametrize("length", [2047, 2048, 2049])
def test_short_and_general_paths_meet(engine: Engine, length: int) -> None:
    """k=3 draws 2 coefficient bytes per secret byte: 2048 bytes is the last one-call split."""
    secret = os.urandom(length)
    shares = engine.split(secret, 3, 4)
    assert engine.combine(shares[1:]) == secret
    assert engine.combine([shares[0], shares[3], shares[2]]) == secret
