"""Side-by-side throughput of the backends, measured in one run (``mpss bench``).

Each case is timed on every backend in turn, round after round, so both see the same
machine conditions; the figure reported is the median round. The machine may be shared
and noisy: compare ratios from one run, not figures from different runs. The
pytest-benchmark suite in ``bench/`` measures the same operations in more detail.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import numpy as np

from ._backend import available
from .engine import Engine

MIB = 1 << 20


@dataclass(frozen=True)
class Case:
    """One operation to time: ``prepare(engine)`` returns the zero-argument call to time."""

    name: str
    nbytes: int
    keys: int
    prepare: Callable[[Engine], Callable[[], object]]


@dataclass(frozen=True)
class Result:
    """The median time of one case on one backend, with its throughput."""

    case: str
    backend: str
    median_s: float
    rounds: int
    gb_per_s: float
    keys_per_s: float | None


def _split_array(secrets: np.ndarray, k: int, n: int) -> Callable[[Engine], Callable[[], object]]:
    def prepare(engine: Engine) -> Callable[[], object]:
        out = np.empty((n, *secrets.shape), dtype=np.uint8)
        return lambda: engine.split_array(secrets, k, n, out=out)

    return prepare


def _combine_array(secrets: np.ndarray, k: int) -> Callable[[Engine], Callable[[], object]]:
    def prepare(engine: Engine) -> Callable[[], object]:
        shares = np.ascontiguousarray(engine.split_array(secrets, k, k))
        xs = list(range(1, k + 1))
        out = np.empty_like(secrets)
        return lambda: engine.combine_array(shares, xs, out=out)

    return prepare


def _xor_into(nbytes: int) -> Callable[[Engine], Callable[[], object]]:
    def prepare(engine: Engine) -> Callable[[], object]:
        a, b, out = os.urandom(nbytes), os.urandom(nbytes), bytearray(nbytes)
        return lambda: engine.xor_into(a, b, out)

    return prepare


def default_cases() -> list[Case]:
    """1 MiB secrets and 100,000 32-byte keys, k=3 n=5, randomness included in splits."""
    one = np.frombuffer(os.urandom(MIB), dtype=np.uint8).reshape(1, MIB)
    keys = np.frombuffer(os.urandom(100_000 * 32), dtype=np.uint8).reshape(100_000, 32)
    return [
        Case("split 1 MiB, k=3 n=5", MIB, 1, _split_array(one, 3, 5)),
        Case("combine 1 MiB, k=3", MIB, 1, _combine_array(one, 3)),
        Case("split 100k x 32 B keys, k=3 n=5", keys.nbytes, 100_000, _split_array(keys, 3, 5)),
        Case("combine 100k x 32 B keys, k=3", keys.nbytes, 100_000, _combine_array(keys, 3)),
        Case("xor 1 MiB", MIB, 1, _xor_into(MIB)),
    ]


def run(
    cases: Iterable[Case] | None = None,
    backends: Iterable[str] | None = None,
    rounds: int = 15,
    progress: Callable[[str], None] | None = None,
) -> list[Result]:
    """Time every case on every backend, interleaved round by round; medians of ``rounds``."""
    engines = [Engine(name) for name in (backends or available())]
    results = []
    for case in cases if cases is not None else default_cases():
        if progress:
            progress(case.name)
        calls = [case.prepare(engine) for engine in engines]
        for call in calls:
            call()  # warm up: first-touch page faults, lazily built tables
        times: list[list[float]] = [[] for _ in engines]
        for _ in range(rounds):
            for call, series in zip(calls, times, strict=True):
                start = time.perf_counter()
                call()
                series.append(time.perf_counter() - start)
        for engine, series in zip(engines, times, strict=True):
            median = statistics.median(series)
            results.append(
                Result(
                    case=case.name,
                    backend=engine.backend,
                    median_s=median,
                    rounds=rounds,
                    gb_per_s=case.nbytes / median / 1e9,
                    keys_per_s=case.keys / median if case.keys > 1 else None,
                )
            )
    return results


def format_table(results: list[Result]) -> str:
    """A text table: one row per case, one column per backend, and the native/pure ratio."""
    backends = list(dict.fromkeys(r.backend for r in results))
    by_case: dict[str, dict[str, Result]] = {}
    for r in results:
        by_case.setdefault(r.case, {})[r.backend] = r
    header = f"{'case':34}" + "".join(f"{b:>28}" for b in backends)
    if {"native", "pure"} <= set(backends):
        header += f"{'native/pure':>13}"
    lines = [header]
    for case, rows in by_case.items():
        line = f"{case:34}"
        for b in backends:
            r = rows[b]
            keys = f" {r.keys_per_s / 1e6:5.2f} Mkeys/s" if r.keys_per_s else ""
            line += f"{f'{r.gb_per_s:.3f} GB/s{keys}':>28}"
        if {"native", "pure"} <= rows.keys():
            line += f"{rows['pure'].median_s / rows['native'].median_s:>12.1f}x"
        lines.append(line)
    return "\n".join(lines)


def as_dicts(results: list[Result]) -> list[dict[str, object]]:
    """The results as plain dictionaries (for JSON)."""
    return [asdict(r) for r in results]
