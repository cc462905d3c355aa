"""Split and combine throughput: 1 MiB secrets and 100,000 32-byte keys, native vs pure."""

from __future__ import annotations

import os

import numpy as np
import pytest

from mpss_fast import Engine

MIB = 1 << 20
KEYS = 100_000
KEY_BYTES = 32
SHAPES = [(3, 5), (5, 10)]
SHAPE_IDS = ["k3n5", "k5n10"]


@pytest.fixture(scope="module")
def secret_1mib() -> bytes:
    return os.urandom(MIB)


@pytest.fixture(scope="module")
def keys() -> np.ndarray:
    return np.frombuffer(os.urandom(KEYS * KEY_BYTES), dtype=np.uint8).reshape(KEYS, KEY_BYTES)


@pytest.mark.parametrize(("k", "n"), SHAPES, ids=SHAPE_IDS)
def bench_split_1mib(benchmark, record, engine: Engine, secret_1mib: bytes, k: int, n: int) -> None:
    """split() of one 1 MiB secret, randomness and result allocation included."""
    benchmark.group = f"split 1MiB {k}/{n}"
    shares = benchmark(engine.split, secret_1mib, k, n)
    assert engine.combine(shares[:k]) == secret_1mib
    record(f"split 1 MiB k={k} n={n}", MIB)


@pytest.mark.parametrize(("k", "n"), SHAPES, ids=SHAPE_IDS)
def bench_split_array_1mib_out(benchmark, record, engine: Engine, secret_1mib: bytes, k: int, n: int) -> None:
    """split_array() of a 1 MiB secret into a reused out= buffer, randomness included."""
    benchmark.group = f"split_array 1MiB out= {k}/{n}"
    secrets = np.frombuffer(secret_1mib, dtype=np.uint8).reshape(1, MIB)
    out = np.empty((n, 1, MIB), dtype=np.uint8)
    benchmark(engine.split_array, secrets, k, n, out=out)
    assert engine.combine_array(out[:k], list(range(1, k + 1))).tobytes() == secret_1mib
    record(f"split_array 1 MiB k={k} n={n} (out=)", MIB)


@pytest.mark.parametrize(("k", "n"), SHAPES, ids=SHAPE_IDS)
def bench_combine_1mib(benchmark, record, engine: Engine, secret_1mib: bytes, k: int, n: int) -> None:
    """combine() of k shares of a 1 MiB secret."""
    benchmark.group = f"combine 1MiB {k}/{n}"
    shares = engine.split(secret_1mib, k, n)[n - k :]
    assert benchmark(engine.combine, shares) == secret_1mib
    record(f"combine 1 MiB k={k}", MIB)


@pytest.mark.parametrize(("k", "n"), SHAPES, ids=SHAPE_IDS)
def bench_split_array_keys(benchmark, record, engine: Engine, keys: np.ndarray, k: int, n: int) -> None:
    """split_array() of 100,000 32-byte keys into a reused out= buffer, randomness included."""
    benchmark.group = f"split_array 100k keys {k}/{n}"
    out = np.empty((n, KEYS, KEY_BYTES), dtype=np.uint8)
    benchmark(engine.split_array, keys, k, n, out=out)
    np.testing.assert_array_equal(engine.combine_array(out[:k], list(range(1, k + 1))), keys)
    record(f"split_array 100k x 32 B k={k} n={n}", keys.nbytes, KEYS)


@pytest.mark.parametrize(("k", "n"), SHAPES, ids=SHAPE_IDS)
def bench_combine_array_keys(benchmark, record, engine: Engine, keys: np.ndarray, k: int, n: int) -> None:
    """combine_array() of 100,000 32-byte keys from k share rows into a reused out= buffer."""
    benchmark.group = f"combine_array 100k keys {k}/{n}"
    shares = np.ascontiguousarray(engine.split_array(keys, k, n)[:k])
    out = np.empty_like(keys)
    benchmark(engine.combine_array, shares, list(range(1, k + 1)), out=out)
    np.testing.assert_array_equal(out, keys)
    record(f"combine_array 100k x 32 B k={k}", keys.nbytes, KEYS)


def bench_xor_into_1mib(benchmark, record, engine: Engine, secret_1mib: bytes) -> None:
    """xor_into() of two 1 MiB buffers (one-time-pad relay step)."""
    benchmark.group = "xor_into 1MiB"
    pad = os.urandom(MIB)
    out = bytearray(MIB)
    benchmark(engine.xor_into, secret_1mib, pad, out)
    assert engine.xor(bytes(out), pad) == secret_1mib
    record("xor_into 1 MiB", MIB)
