"""This machine's floor for each workload of ``bench_sharing.py``, in the same benchmark groups.

The floor loops of ``mpss_fast._floor`` (``csrc/mpss_floor.c``) do only the memory work a
workload cannot avoid: a split reads the secret once and writes ``n`` shares of its size
(``Store``); a combine reads ``k`` shares and writes one secret (``Xor`` of ``k``
inputs); ``xor_into`` and ``reencrypt_into`` are the XOR of 2 and 3 inputs. Each runs
with ordinary stores and, where the CPU has them, non-temporal ones, on the two widest
instruction sets this CPU runs (contenders such as ``floor:avx512`` and
``floor:avx2-nt``), into buffers allocated and touched once. The group names are those
of ``bench_sharing.py``, so the summary table shows the floor loops as more columns next
to the tiers. Every benchmark checks the bytes
its loop wrote (``FloorWork.check``), so a floor cannot be a no-op.

The split groups also get the keystream loops (``bound:keystream-vaes512``,
``bound:keystream-aesni``): the k - 1 rows of AES-256-CTR keystream a keyed split makes
for its coefficients, in registers, folded into 64 bytes and checked against
``cryptography``. Not a floor but a bound: a split can be no faster than its keystream.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import pytest

from bench.grid import BULK_KEYS, KEY_BYTES, KEY_SHAPE_PARAMS, SHAPE_PARAMS, SIZES, size_id
from mpss_fast.benchmark import KEYSTREAM, FloorWork, floor_variants, format_size, keystream_variants, load_floor

Record = Callable[..., None]
FLOOR_MODULE, FLOOR_STATUS = load_floor()
SIZE_PARAMS = [pytest.param(size, id=size_id(size)) for size in SIZES]
STORES = [pytest.param(label, id=label) for label, _, _ in floor_variants(FLOOR_MODULE)] if FLOOR_MODULE else ["floor"]
"""The floor loops: the two widest instruction sets, ordinary and (on x86) non-temporal stores."""
BOUNDS = [pytest.param(label, id=label) for label, _, _ in keystream_variants(FLOOR_MODULE)] if FLOOR_MODULE else []
BOUNDS = BOUNDS or [KEYSTREAM]  # no AES instructions here: one placeholder that skips (a failure under NO_SKIPS)
"""The keystream loops of keyed splits: one per AES implementation this CPU runs (VAES, AES-NI)."""


def _run(
    benchmark: Any, record: Record, label: str, kind: Literal["store", "xor"], streams: int, nbytes: int, keys: int = 1
) -> None:
    if FLOOR_MODULE is None:  # an extension-less build: MPSS_FAST_NO_SKIPS=1 (CI) makes this a failure
        pytest.skip(f"mpss_fast._floor: {FLOOR_STATUS}")
    work = FloorWork(FLOOR_MODULE, kind, streams, nbytes)
    work.check()
    benchmark(work.calls[label])
    record(label, nbytes, keys)
    work.check()


@pytest.mark.parametrize("label", STORES)
@pytest.mark.parametrize(("k", "n"), SHAPE_PARAMS)
@pytest.mark.parametrize("size", SIZE_PARAMS)
def bench_split_floor(benchmark: Any, record: Record, label: str, size: int, k: int, n: int) -> None:
    """Read one secret once, write it to n outputs: the floor of split_array."""
    benchmark.group = f"split {format_size(size)} k={k} n={n}"
    _run(benchmark, record, label, "store", n, size)


def _run_bound(benchmark: Any, record: Record, label: str, k: int, n: int, nbytes: int, keys: int = 1) -> None:
    if FLOOR_MODULE is None:
        pytest.skip(f"mpss_fast._floor: {FLOOR_STATUS}")
    work = FloorWork(FLOOR_MODULE, "store", n, nbytes, rows=k - 1)
    if label not in work.bounds:
        pytest.skip(f"no keystream loop {label} here: this CPU has no AES instructions")
    work.check()
    benchmark(work.bounds[label])
    record(label, nbytes, keys)
    work.check()


@pytest.mark.parametrize("label", BOUNDS)
@pytest.mark.parametrize(("k", "n"), SHAPE_PARAMS)
@pytest.mark.parametrize("size", SIZE_PARAMS)
def bench_split_keystream(benchmark: Any, record: Record, label: str, size: int, k: int, n: int) -> None:
    """The k - 1 AES-256-CTR coefficient rows of a keyed split alone, in registers: a bound of split_array."""
    benchmark.group = f"split {format_size(size)} k={k} n={n}"
    _run_bound(benchmark, record, label, k, n, size)


@pytest.mark.parametrize("label", STORES)
@pytest.mark.parametrize(("k", "n"), SHAPE_PARAMS)
@pytest.mark.parametrize("size", SIZE_PARAMS)
def bench_combine_floor(benchmark: Any, record: Record, label: str, size: int, k: int, n: int) -> None:
    """XOR of k share rows into one output: the floor of combine_array."""
    benchmark.group = f"combine {format_size(size)} k={k} n={n}"
    _run(benchmark, record, label, "xor", k, size)


@pytest.mark.parametrize("label", STORES)
@pytest.mark.parametrize("size", SIZE_PARAMS)
def bench_xor_into_floor(benchmark: Any, record: Record, label: str, size: int) -> None:
    """XOR of two buffers into a third: the floor of xor_into."""
    benchmark.group = f"xor_into {format_size(size)}"
    _run(benchmark, record, label, "xor", 2, size)


@pytest.mark.parametrize("label", STORES)
@pytest.mark.parametrize("size", SIZE_PARAMS)
def bench_reencrypt_into_floor(benchmark: Any, record: Record, label: str, size: int) -> None:
    """XOR of three buffers into a fourth: the floor of reencrypt_into."""
    benchmark.group = f"reencrypt_into {format_size(size)}"
    _run(benchmark, record, label, "xor", 3, size)


@pytest.mark.parametrize("label", STORES)
@pytest.mark.parametrize(("k", "n"), KEY_SHAPE_PARAMS)
def bench_split_keys_floor(benchmark: Any, record: Record, label: str, k: int, n: int) -> None:
    """The split floor at the shape of 100,000 32-byte keys: read 3.2 MB once, write n rows of it."""
    benchmark.group = f"split {BULK_KEYS:,} x {KEY_BYTES} B keys k={k} n={n}"
    _run(benchmark, record, label, "store", n, BULK_KEYS * KEY_BYTES, BULK_KEYS)


@pytest.mark.parametrize("label", BOUNDS)
@pytest.mark.parametrize(("k", "n"), KEY_SHAPE_PARAMS)
def bench_split_keys_keystream(benchmark: Any, record: Record, label: str, k: int, n: int) -> None:
    """The keystream bound at the shape of 100,000 32-byte keys: k - 1 rows of 3.2 MB, as split_array makes them."""
    benchmark.group = f"split {BULK_KEYS:,} x {KEY_BYTES} B keys k={k} n={n}"
    _run_bound(benchmark, record, label, k, n, BULK_KEYS * KEY_BYTES, BULK_KEYS)


@pytest.mark.parametrize("label", STORES)
@pytest.mark.parametrize(("k", "n"), KEY_SHAPE_PARAMS)
def bench_combine_keys_floor(benchmark: Any, record: Record, label: str, k: int, n: int) -> None:
    """The combine floor at the shape of 100,000 32-byte keys: XOR of k rows of 3.2 MB."""
    benchmark.group = f"combine {BULK_KEYS:,} x {KEY_BYTES} B keys k={k} n={n}"
    _run(benchmark, record, label, "xor", k, BULK_KEYS * KEY_BYTES, BULK_KEYS)
