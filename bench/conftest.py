"""Benchmark fixtures and a side-by-side throughput table (native vs pure, medians).

Run: ``pytest bench --benchmark-enable`` (the default test run executes each benchmark
once, untimed, as a smoke test).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import pytest

from mpss_fast import BackendError, Engine

BACKENDS = ("native", "pure")


@dataclass
class Result:
    case: str
    backend: str
    median_s: float
    nbytes: int
    keys: int


RESULTS: list[Result] = []


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest) -> Engine:
    try:
        return Engine(request.param)
    except BackendError as exc:
        pytest.fail(f"{request.param} backend unavailable: {exc}")


@pytest.fixture
def record(benchmark, engine: Engine):
    """Call ``record(case, nbytes, keys)`` after ``benchmark(...)`` to add a row to the summary."""

    def _record(case: str, nbytes: int, keys: int = 1) -> None:
        stats = getattr(benchmark, "stats", None)
        if stats is None or getattr(benchmark, "disabled", False):
            return
        RESULTS.append(Result(case, engine.backend, stats.stats.median, nbytes, keys))

    return _record


def pytest_terminal_summary(terminalreporter) -> None:
    if not RESULTS:
        return
    by_case: dict[str, dict[str, Result]] = defaultdict(dict)
    for r in RESULTS:
        by_case[r.case][r.backend] = r
    tr = terminalreporter
    tr.write_sep("-", "throughput (medians of this run; GB/s of secret, keys/s where keys > 1)")
    tr.write_line(f"{'case':42} {'native':>14} {'pure':>14} {'native/pure':>12}")
    for case, rows in by_case.items():
        cells = []
        for backend in BACKENDS:
            r = rows.get(backend)
            if r is None:
                cells.append("-")
            elif r.keys > 1:
                cells.append(f"{r.keys / r.median_s / 1e6:.2f} Mkeys/s")
            else:
                cells.append(f"{r.nbytes / r.median_s / 1e9:.3f} GB/s")
        ratio = "-"
        if len(rows) == 2:
            ratio = f"{rows['pure'].median_s / rows['native'].median_s:.1f}x"
        tr.write_line(f"{case:42} {cells[0]:>14} {cells[1]:>14} {ratio:>12}")
