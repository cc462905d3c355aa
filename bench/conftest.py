"""Benchmark fixtures and a side-by-side summary table (every tier, pure and peers; medians).

Run: ``pytest bench --benchmark-enable`` (``MPSS_BENCH_FULL=1`` for the full size grid;
``--benchmark-json FILE`` saves everything, with the throughput in each benchmark's
``extra_info``). The default test run executes each benchmark once, untimed, as a test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from bench.grid import ENGINES
from mpss_fast.benchmark import short_number


@dataclass(frozen=True)
class Row:
    """One benchmark's median, for the summary table."""

    group: str
    contender: str
    median_s: float
    nbytes: int
    keys: int
    per_call: bool

    def figure(self) -> str:
        """GB/s of secret, keys/s for key batches, or µs per call."""
        if self.per_call:
            return f"{short_number(self.median_s * 1e6)} us"
        if self.keys > 1:
            return f"{short_number(self.keys / self.median_s)}/s"
        return short_number(self.nbytes / self.median_s / 1e9)


ROWS: list[Row] = []


@pytest.fixture
def record(benchmark: Any) -> Callable[..., None]:
    """Call ``record(contender, nbytes, keys=1, per_call=False)`` after ``benchmark(...)``.

    Puts the throughput (``bytes``, ``gb_per_s``, ``keys_per_s`` for key batches,
    ``us_per_call`` for per-call cases) into ``benchmark.extra_info``, which
    ``--benchmark-json`` saves, and a row into the summary table.
    """

    def _record(contender: str, nbytes: int, keys: int = 1, per_call: bool = False) -> None:
        info = benchmark.extra_info
        info.update(contender=contender, bytes=nbytes)
        if keys > 1:
            info["keys"] = keys
        stats = getattr(benchmark, "stats", None)
        if stats is None or getattr(benchmark, "disabled", False):
            return
        median = stats.stats.median
        info["gb_per_s"] = nbytes / median / 1e9
        if keys > 1:
            info["keys_per_s"] = keys / median
        if per_call:
            info["us_per_call"] = median * 1e6
        ROWS.append(Row(benchmark.group, contender, median, nbytes, keys, per_call))

    return _record


def _columns() -> list[str]:
    """Contenders in table order: tiers fastest first, pure, then peers as they came."""
    seen = list(dict.fromkeys(r.contender for r in ROWS))
    return [c for c in ENGINES if c in seen] + [c for c in seen if c not in ENGINES]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """A matrix of medians: one row per benchmark group, one column per contender, and best/pure."""
    if not ROWS:
        return
    by_group: dict[str, dict[str, Row]] = {}
    for r in ROWS:
        by_group.setdefault(r.group, {})[r.contender] = r
    columns = _columns()
    width = max(len(g) for g in by_group) + 1
    widths = [max(10, len(c) + 2) for c in columns]
    tr = terminalreporter
    tr.write_sep("-", "throughput: medians of this run; GB/s of secret, keys/s, or us per call")
    tr.write_line(
        f"{'group':{width}}" + "".join(f"{c:>{w}}" for c, w in zip(columns, widths, strict=True)) + "  best/pure"
    )
    for group, rows in by_group.items():
        cells = "".join(f"{rows[c].figure() if c in rows else '-':>{w}}" for c, w in zip(columns, widths, strict=True))
        tiers = [rows[c].median_s for c in ENGINES if c in rows and c != "pure"]
        ratio = f"{rows['pure'].median_s / min(tiers):.1f}x" if tiers and "pure" in rows else "-"
        tr.write_line(f"{group:{width}}{cells}{ratio:>11}")
