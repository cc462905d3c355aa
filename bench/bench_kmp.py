"""KMP path planning: n node-disjoint least-cost paths on a 1,000-node random mesh (degree 4).

``disjoint_paths`` for n = 3 (the figure to hold: under 1 s per source/destination
pair), the same with a key demand, ``max_disjoint_paths``, and ``plan`` on the backbone.
Each round plans for the next of a fixed list of source/destination pairs, so the median
is over pairs. Per-call medians in the summary; ``extra_info["plans_per_s"]`` in the JSON.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from mpss_fast.kmp import Topology, backbone, disjoint_paths, max_disjoint_paths, plan, random_mesh

Record = Callable[..., None]
NODES = 1000
PAIRS = [(f"n{i}", f"n{(i * 389 + 500) % NODES}") for i in range(0, NODES, 37)]


@pytest.fixture(scope="module")
def mesh() -> Topology:
    """The 1,000-node, degree-4 random mesh (seeded: the same network every run)."""
    return random_mesh(NODES, 4, seed=1)


def _record(benchmark: Any, record: Record) -> None:
    record("pure", 0, per_call=True)
    stats = getattr(benchmark, "stats", None)
    if stats is not None and not getattr(benchmark, "disabled", False):
        benchmark.extra_info["plans_per_s"] = 1 / stats.stats.median


def _cycling(call: Callable[[str, str], Any]) -> Callable[[], Any]:
    pairs = itertools.cycle(PAIRS)
    return lambda: call(*next(pairs))


def bench_kmp_disjoint_paths_1000(benchmark: Any, record: Record, mesh: Topology) -> None:
    """disjoint_paths(n=3) on 1,000 nodes: the figure to hold is under 1 s per pair."""
    benchmark.group = "kmp disjoint_paths n=3, 1,000-node mesh"
    paths = benchmark(_cycling(lambda a, b: disjoint_paths(mesh, a, b, 3)))
    _record(benchmark, record)
    assert len(paths) == 3


def bench_kmp_disjoint_paths_1000_demand(benchmark: Any, record: Record, mesh: Topology) -> None:
    """The same with a 64-byte demand per link (key-aware costs)."""
    benchmark.group = "kmp disjoint_paths n=3 demand 64 B, 1,000-node mesh"
    paths = benchmark(_cycling(lambda a, b: disjoint_paths(mesh, a, b, 3, demand_bytes=64)))
    _record(benchmark, record)
    assert len(paths) == 3


def bench_kmp_max_disjoint_paths_1000(benchmark: Any, record: Record, mesh: Topology) -> None:
    """max_disjoint_paths on 1,000 nodes (augments until the max flow, 4 on a 4-regular mesh)."""
    benchmark.group = "kmp max_disjoint_paths, 1,000-node mesh"
    count = benchmark(_cycling(lambda a, b: max_disjoint_paths(mesh, a, b)))
    _record(benchmark, record)
    assert 1 <= count <= 4


def bench_kmp_plan_backbone(benchmark: Any, record: Record) -> None:
    """plan(f=1, t=1) between two backbone hubs: max_disjoint_paths, choose_k_n, disjoint_paths."""
    benchmark.group = "kmp plan f=1 t=1, 36-node backbone"
    topology = backbone()
    result = benchmark(lambda: plan(topology, "Midvale", "Eastmere", failures=1, compromised=1))
    _record(benchmark, record)
    assert (result.k, result.n) == (2, 3)
