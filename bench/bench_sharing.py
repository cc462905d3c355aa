"""Every native tier and the pure backend, side by side: split, combine, xor_into, reencrypt_into.

Grid (``bench/grid.py``): sizes 64 B and 64 KiB (``MPSS_BENCH_FULL=1``: also 1, 16 and
64 MiB; pure up to 1 MiB) x (k, n) in (2, 3), (3, 5), (5, 10); 100,000 32-byte keys at
k=3 n=5 (full: every (k, n)); one ``split()`` of a 32-byte key. Each benchmark group holds
one case on every contender. Splits include drawing the coefficients and write into a
reused ``out=`` array.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from bench.grid import (
    BULK_KEYS,
    KEY_BYTES,
    KEY_SHAPE_PARAMS,
    SHAPE_PARAMS,
    engine,
    engine_params,
    engine_size_params,
)
from mpss_fast.benchmark import format_size

Record = Callable[..., None]


def _secrets(rows: int, length: int) -> np.ndarray:
    return np.frombuffer(os.urandom(rows * length), dtype=np.uint8).reshape(rows, length)


@pytest.fixture(scope="module")
def keys() -> np.ndarray:
    """100,000 random 32-byte keys."""
    return _secrets(BULK_KEYS, KEY_BYTES)


@pytest.mark.parametrize(("k", "n"), SHAPE_PARAMS)
@pytest.mark.parametrize(("label", "size"), engine_size_params())
def bench_split(benchmark: Any, record: Record, label: str, size: int, k: int, n: int) -> None:
    """split_array() of one secret into a reused out= array, randomness included."""
    benchmark.group = f"split {format_size(size)} k={k} n={n}"
    eng, secrets = engine(label), _secrets(1, size)
    out = np.empty((n, 1, size), dtype=np.uint8)
    benchmark(eng.split_array, secrets, k, n, out=out)
    record(label, size)
    np.testing.assert_array_equal(eng.combine_array(out[n - k :], list(range(n - k + 1, n + 1))), secrets)


@pytest.mark.parametrize(("k", "n"), SHAPE_PARAMS)
@pytest.mark.parametrize(("label", "size"), engine_size_params())
def bench_combine(benchmark: Any, record: Record, label: str, size: int, k: int, n: int) -> None:
    """combine_array() of k share rows of one secret into a reused out= array."""
    benchmark.group = f"combine {format_size(size)} k={k} n={n}"
    eng, secrets = engine(label), _secrets(1, size)
    shares = np.ascontiguousarray(eng.split_array(secrets, k, n)[:k])
    out = np.empty_like(secrets)
    benchmark(eng.combine_array, shares, list(range(1, k + 1)), out=out)
    record(label, size)
    np.testing.assert_array_equal(out, secrets)


@pytest.mark.parametrize(("label", "size"), engine_size_params())
def bench_xor_into(benchmark: Any, record: Record, label: str, size: int) -> None:
    """xor_into() of two buffers (one-time-pad step)."""
    benchmark.group = f"xor_into {format_size(size)}"
    eng, a, b, out = engine(label), os.urandom(size), os.urandom(size), bytearray(size)
    benchmark(eng.xor_into, a, b, out)
    record(label, size)
    assert eng.xor(bytes(out), b) == a


@pytest.mark.parametrize(("label", "size"), engine_size_params())
def bench_reencrypt_into(benchmark: Any, record: Record, label: str, size: int) -> None:
    """reencrypt_into(): a relay's one-pass data ^ key_in ^ key_out into a reused buffer."""
    benchmark.group = f"reencrypt_into {format_size(size)}"
    eng = engine(label)
    data, key_in, key_out, out = os.urandom(size), os.urandom(size), os.urandom(size), bytearray(size)
    benchmark(eng.reencrypt_into, data, key_in, key_out, out)
    record(label, size)
    assert eng.reencrypt(bytes(out), key_out, key_in) == data


@pytest.mark.parametrize(("k", "n"), KEY_SHAPE_PARAMS)
@pytest.mark.parametrize("label", engine_params())
def bench_split_keys(benchmark: Any, record: Record, keys: np.ndarray, label: str, k: int, n: int) -> None:
    """split_array() of 100,000 32-byte keys into a reused out= array, randomness included."""
    benchmark.group = f"split {BULK_KEYS:,} x {KEY_BYTES} B keys k={k} n={n}"
    eng = engine(label)
    out = np.empty((n, *keys.shape), dtype=np.uint8)
    benchmark(eng.split_array, keys, k, n, out=out)
    record(label, keys.nbytes, BULK_KEYS)
    np.testing.assert_array_equal(eng.combine_array(out[:k], list(range(1, k + 1))), keys)


@pytest.mark.parametrize(("k", "n"), KEY_SHAPE_PARAMS)
@pytest.mark.parametrize("label", engine_params())
def bench_combine_keys(benchmark: Any, record: Record, keys: np.ndarray, label: str, k: int, n: int) -> None:
    """combine_array() of 100,000 32-byte keys from k share rows into a reused out= array."""
    benchmark.group = f"combine {BULK_KEYS:,} x {KEY_BYTES} B keys k={k} n={n}"
    eng = engine(label)
    shares = np.ascontiguousarray(eng.split_array(keys, k, n)[:k])
    out = np.empty_like(keys)
    benchmark(eng.combine_array, shares, list(range(1, k + 1)), out=out)
    record(label, keys.nbytes, BULK_KEYS)
    np.testing.assert_array_equal(out, keys)


@pytest.mark.parametrize("label", engine_params())
def bench_split_one_key(benchmark: Any, record: Record, label: str) -> None:
    """One split() of a 32-byte key, k=3 n=5: the per-call cost (checks, randomness, result bytes)."""
    benchmark.group = f"split() one {KEY_BYTES} B key k=3 n=5"
    eng, key = engine(label), os.urandom(KEY_BYTES)
    shares = benchmark(eng.split, key, 3, 5)
    record(label, KEY_BYTES, per_call=True)
    assert eng.combine(shares[2:]) == key
