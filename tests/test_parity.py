"""Native and pure backends give byte-identical results and identical errors (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpss_fast import POLY_AES, POLY_GFSHARE, Engine, MpssError
from tests.rng import seeded_rng

polys = st.sampled_from([POLY_AES, POLY_GFSHARE])


@st.composite
def split_args(draw: st.DrawFn) -> tuple[bytes, int, int, int, list[int], bytes]:
    n = draw(st.integers(2, 20))
    k = draw(st.integers(2, n))
    xs = draw(st.lists(st.integers(1, 255), min_size=n, max_size=n, unique=True))
    secret = draw(st.binary(min_size=1, max_size=300))
    return secret, k, n, draw(polys), xs, draw(st.binary(min_size=1, max_size=8))


@settings(max_examples=150, deadline=None)
@given(args=split_args())
def test_split_and_combine_identical(both_engines: tuple[Engine, Engine], args) -> None:
    native, pure = both_engines
    secret, k, n, poly, xs, seed = args
    a = native.split(secret, k, n, poly=poly, xs=xs, rng=seeded_rng(seed))
    b = pure.split(secret, k, n, poly=poly, xs=xs, rng=seeded_rng(seed))
    assert a == b
    subset = a[n - k :]
    assert native.combine(subset, poly=poly) == pure.combine(subset, poly=poly) == secret


@settings(max_examples=100, deadline=None)
@given(
    shares=st.lists(st.binary(min_size=2, max_size=64), min_size=2, max_size=12),
    poly=polys,
)
def test_combine_identical_on_arbitrary_shares(both_engines: tuple[Engine, Engine], shares, poly) -> None:
    """Any byte strings: both backends return the same bytes or raise the same error."""
    native, pure = both_engines
    outcomes = []
    for engine in (native, pure):
        try:
            outcomes.append(engine.combine(shares, poly=poly))
        except MpssError as exc:
            outcomes.append((type(exc), str(exc)))
    assert outcomes[0] == outcomes[1]


@settings(max_examples=60, deadline=None)
@given(
    m=st.integers(1, 40),
    length=st.integers(1, 40),
    k=st.integers(2, 6),
    extra=st.integers(0, 4),
    poly=polys,
    seed=st.binary(min_size=1, max_size=8),
)
def test_array_api_identical(both_engines: tuple[Engine, Engine], m, length, k, extra, poly, seed) -> None:
    native, pure = both_engines
    n = k + extra
    secrets = np.frombuffer(seeded_rng(seed + b"s")(m * length), dtype=np.uint8).reshape(m, length)
    a = native.split_array(secrets, k, n, poly=poly, rng=seeded_rng(seed))
    b = pure.split_array(secrets, k, n, poly=poly, rng=seeded_rng(seed))
    np.testing.assert_array_equal(a, b)
    xs = list(range(n - k + 1, n + 1))
    np.testing.assert_array_equal(native.combine_array(a[n - k :], xs, poly=poly), secrets)
    np.testing.assert_array_equal(pure.combine_array(a[n - k :], xs, poly=poly), secrets)


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=200), pad=st.binary(max_size=200))
def test_xor_identical(both_engines: tuple[Engine, Engine], data: bytes, pad: bytes) -> None:
    native, pure = both_engines
    pad = (pad * (len(data) // max(len(pad), 1) + 1))[: len(data)] if pad else bytes(len(data))
    assert native.xor(data, pad) == pure.xor(data, pad) == bytes(a ^ b for a, b in zip(data, pad, strict=True))


@pytest.mark.parametrize("poly", [POLY_AES, POLY_GFSHARE])
def test_kernels_identical_at_block_and_group_edges(both_engines: tuple[Engine, Engine], poly: int) -> None:
    """Lengths around the native 4 KiB block and share counts around its groups of 4."""
    native, pure = both_engines
    for length in (4095, 4096, 4097, 8193):
        for k, n in ((2, 4), (3, 7), (4, 9), (9, 9), (3, 70)):
            secret = seeded_rng(b"edge")(length)
            a = native.split(secret, k, n, poly=poly, rng=seeded_rng(b"c"))
            assert a == pure.split(secret, k, n, poly=poly, rng=seeded_rng(b"c"))
            assert native.combine(a[:k], poly=poly) == pure.combine(a[:k], poly=poly) == secret
            assert native.combine(a[-k - 2 :], poly=poly) == secret


# Output sizes around the thresholds where combine, xor and reencrypt switch to streaming
# (non-temporal) stores: 1 MiB for a combine of three inputs or more, above 8 MiB for the rest.
STREAM_EDGES = ((1 << 20) - 1, 1 << 20, (1 << 20) + 37, (8 << 20) + 65)


@pytest.mark.parametrize("length", STREAM_EDGES)
@pytest.mark.parametrize("offset", [0, 5, 32])
def test_streamed_stores_match_the_oracle(both_engines: tuple[Engine, Engine], length: int, offset: int) -> None:
    """Combine, xor_into and reencrypt_into on both sides of the streaming thresholds, outputs misaligned too.

    The oracle is numpy for the XORs and the pure backend for the combine, whose weights
    for x = 1, 2, 3 are not 1, so a store path that skipped or repeated a vector shows.
    """
    native, pure = both_engines
    rng = np.random.default_rng(length + offset)
    ins = rng.integers(0, 256, size=(3, length), dtype=np.uint8)
    backing = np.zeros(length + 64, dtype=np.uint8)
    out = backing[offset : offset + length]
    assert native.xor_into(ins[0], ins[1], out) == length
    assert np.array_equal(out, ins[0] ^ ins[1])
    assert native.reencrypt_into(ins[0], ins[1], ins[2], out) == length
    assert np.array_equal(out, ins[0] ^ ins[1] ^ ins[2])
    assert not backing[:offset].any() and not backing[offset + length :].any()
    if length > (2 << 20):
        return  # the pure combine of 8 MiB takes seconds; the XORs above cover that threshold
    shares = ins.reshape(3, 1, length)
    expected = pure.combine_array(shares, [1, 2, 3])
    native.combine_array(shares, [1, 2, 3], out=out.reshape(1, length))
    assert np.array_equal(out, expected[0])
    assert not backing[:offset].any() and not backing[offset + length :].any()
    inplace = ins[0].copy()
    native.reencrypt_into(inplace, ins[1], ins[2], inplace)
    assert np.array_equal(inplace, ins[0] ^ ins[1] ^ ins[2])
