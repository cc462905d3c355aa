"""mpss_fast next to other Shamir implementations, on the same work (``pip install mpss-fast[bench]``).

Peers (defined in ``mpss_fast.benchmark``, each checked to round-trip before it is timed):
``galois`` (GF(2^8) field arrays, vectorized over all bytes; same field and x as mpss_fast),
PyPI ``tss`` (pure Python, one secret per call) and pycryptodome's ``Shamir`` (16-byte
secrets only, GF(2^128)). Only installed peers are parametrized, so a missing one is
absent from the report rather than a skipped test. Two kinds of case:

- one secret of 64 KiB (full grid: also 1 MiB), k=3 n=5: every tier, pure and galois;
- 200 16-byte keys, k=3 n=5: everyone, in keys/s (tss and pycryptodome need ~0.1-1.5 ms a key).
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from typing import Any

import pytest

from bench.grid import ENGINES, FULL, engine, size_id
from mpss_fast.benchmark import (
    KIB,
    MIB,
    PEER_KEY_BYTES,
    PEER_KEYS,
    PEER_TYPES,
    CombineArray,
    Peer,
    SplitArray,
    Workload,
    format_size,
    load_peers,
)

Record = Callable[..., None]
K, N = 3, 5
SIZES = (64 * KIB, *((MIB,) if FULL else ()))
_MODULES = {"galois": "galois", "tss": "tss", "pycryptodome": "Crypto"}
INSTALLED = tuple(name for name in PEER_TYPES if importlib.util.find_spec(_MODULES[name]) is not None)
"""The peers whose package is installed (whether they work is checked when first used)."""
BULK_PEERS = tuple(name for name in INSTALLED if not PEER_TYPES[name].per_key)


@functools.cache
def peer(name: str) -> Peer:
    """The peer ``name``, verified; a peer that is installed but broken fails the benchmark."""
    found, status = load_peers([name])
    if not found:
        pytest.fail(f"peer {name} is installed but unusable: {status[name]}")
    return found[0]


def _call(work: Workload, contender: str) -> Callable[[], object]:
    """The call of ``work`` for an engine label or a peer name."""
    if contender in ENGINES:
        return work.engine_call(engine(contender))
    call = work.peer_call(peer(contender))
    assert call is not None, f"{contender} cannot run this case"
    return call


BULK_PARAMS = [
    pytest.param(contender, size, id=f"{contender}-{size_id(size)}")
    for size in SIZES
    for contender in (*ENGINES, *BULK_PEERS)
]
KEY_PARAMS = [pytest.param(contender, id=contender) for contender in (*ENGINES, *INSTALLED)]


@pytest.mark.parametrize(("contender", "size"), BULK_PARAMS)
def bench_peer_split(benchmark: Any, record: Record, contender: str, size: int) -> None:
    """Split one secret of ``size`` bytes, k=3 n=5, randomness included."""
    benchmark.group = f"peers: split {format_size(size)} k={K} n={N}"
    benchmark(_call(SplitArray(1, size, K, N), contender))
    record(contender, size)


@pytest.mark.parametrize(("contender", "size"), BULK_PARAMS)
def bench_peer_combine(benchmark: Any, record: Record, contender: str, size: int) -> None:
    """Combine one secret of ``size`` bytes from 3 shares."""
    benchmark.group = f"peers: combine {format_size(size)} k={K}"
    benchmark(_call(CombineArray(1, size, K, N), contender))
    record(contender, size)


@pytest.mark.parametrize("contender", KEY_PARAMS)
def bench_peer_split_keys(benchmark: Any, record: Record, contender: str) -> None:
    """Split 200 16-byte keys, k=3 n=5 (mpss_fast: one split_array call; tss, pycryptodome: one call a key)."""
    benchmark.group = f"peers: split {PEER_KEYS} x {PEER_KEY_BYTES} B keys k={K} n={N}"
    benchmark(_call(SplitArray(PEER_KEYS, PEER_KEY_BYTES, K, N), contender))
    record(contender, PEER_KEYS * PEER_KEY_BYTES, PEER_KEYS)


@pytest.mark.parametrize("contender", KEY_PARAMS)
def bench_peer_combine_keys(benchmark: Any, record: Record, contender: str) -> None:
    """Combine 200 16-byte keys from 3 shares each."""
    benchmark.group = f"peers: combine {PEER_KEYS} x {PEER_KEY_BYTES} B keys k={K}"
    benchmark(_call(CombineArray(PEER_KEYS, PEER_KEY_BYTES, K, N), contender))
    record(contender, PEER_KEYS * PEER_KEY_BYTES, PEER_KEYS)
