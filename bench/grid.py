"""The benchmark grid: contenders (every native tier this CPU runs, then pure), sizes and (k, n).

The default grid is small, because a plain ``pytest`` run executes every benchmark once,
untimed: 64 B and 64 KiB. ``MPSS_BENCH_FULL=1`` adds 1 MiB, 16 MiB and 64 MiB; the pure
backend only gets sizes up to 1 MiB (larger ones are not generated: they would take
minutes and say nothing new). The 100,000-key cases run at (3, 5) only, unless full.
"""

from __future__ import annotations

import functools
import os

import pytest

import mpss_fast
from mpss_fast import Engine
from mpss_fast.benchmark import KIB, MIB, format_size

FULL = os.environ.get("MPSS_BENCH_FULL") == "1"
"""Whether to run the full grid (``MPSS_BENCH_FULL=1``)."""

ENGINES: tuple[str, ...] = (*mpss_fast.KERNELS, "pure")
"""Contender labels: the native tiers, fastest first, then the pure backend."""

SIZES: tuple[int, ...] = (64, 64 * KIB, *((MIB, 16 * MIB, 64 * MIB) if FULL else ()))
PURE_MAX_SIZE = MIB
SHAPES = ((2, 3), (3, 5), (5, 10))
SHAPE_PARAMS = [pytest.param(k, n, id=f"k{k}n{n}") for k, n in SHAPES]
KEY_SHAPE_PARAMS = SHAPE_PARAMS if FULL else [pytest.param(3, 5, id="k3n5")]
"""(k, n) of the 100,000-key cases: only (3, 5) in the default run (they take 10-200 ms a call)."""

BULK_KEYS = 100_000
KEY_BYTES = 32


@functools.cache
def engine(label: str) -> Engine:
    """The engine of a contender label: ``pure`` or a native tier name."""
    return Engine("pure") if label == "pure" else Engine("native", kernel=label)


def size_id(size: int) -> str:
    """``65536`` -> ``64KiB`` (for test ids)."""
    return format_size(size).replace(" ", "")


def engine_size_params() -> list[object]:
    """(engine label, size) for every contender and size, pure only up to ``PURE_MAX_SIZE``."""
    return [
        pytest.param(label, size, id=f"{label}-{size_id(size)}")
        for size in SIZES
        for label in ENGINES
        if label != "pure" or size <= PURE_MAX_SIZE
    ]


def engine_params() -> list[object]:
    """Every contender label."""
    return [pytest.param(label, id=label) for label in ENGINES]
