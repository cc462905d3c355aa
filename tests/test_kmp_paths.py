"""KMP path planning: node-disjoint paths of least cost, checked against networkx and brute force."""

from __future__ import annotations

import itertools
import re
import time

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from networkx.algorithms.connectivity import local_node_connectivity

from mpss_fast import InputTypeError, ParameterError
from mpss_fast.exceptions import PathError, TopologyError
from mpss_fast.kmp import (
    METRO_ENDPOINTS,
    Path,
    Topology,
    backbone,
    disjoint_paths,
    key_aware_cost,
    link_cost,
    max_disjoint_paths,
    metro,
    min_vertex_cut,
    random_mesh,
)


def build(edges: list[tuple[int, int, int]], nodes: int, pool: int = 1000) -> Topology:
    """Nodes "0".."nodes-1"; links (a, b, cost)."""
    topology = Topology()
    for i in range(nodes):
        topology.add_node(str(i))
    for a, b, cost in edges:
        topology.add_link(str(a), str(b), rate_bps=1, pool_bytes=pool, latency_s=0.001 * cost, cost=cost)
    return topology


def check(topology: Topology, src: str, dst: str, paths: list[Path], demand: int = 0) -> None:
    """Each path is a simple walk src..dst over usable links; no relay is shared; the fields add up."""
    graph = topology.graph
    relays: set[str] = set()
    for path in paths:
        assert path.nodes[0] == src and path.nodes[-1] == dst
        assert len(set(path.nodes)) == len(path.nodes)
        assert path.relays == path.nodes[1:-1] and path.hops == len(path.nodes) - 1
        assert not relays & set(path.relays), "a relay carries two shares"
        relays |= set(path.relays)
        links = [topology.link(a, b) for a, b in itertools.pairwise(path.nodes)]  # raises if not a walk
        assert all(graph.has_edge(a, b) for a, b in itertools.pairwise(path.nodes))
        assert all(link.pool_bytes >= demand for link in links)
        assert path.segments == tuple(topology.sid(name) for name in path.nodes[1:])
        assert path.cost == pytest.approx(sum(link_cost(link, demand) or 0 for link in links))
        assert path.latency_s == pytest.approx(sum(link.latency_s for link in links))
        assert path.min_pool_bytes == min(link.pool_bytes for link in links)
    assert len({path.nodes for path in paths}) == len(paths)  # the direct link serves one path at most
    assert [p.cost for p in paths] == sorted(p.cost for p in paths)


def brute_force(topology: Topology, src: str, dst: str, n: int) -> float | None:
    """The least total cost of n node-disjoint simple paths, by enumeration (None: there are none)."""
    simple = [tuple(p) for p in nx.all_simple_paths(topology.graph, src, dst)]
    costs = [sum(topology.link(a, b).base_cost for a, b in itertools.pairwise(p)) for p in simple]
    best: list[float] = []

    def extend(start: int, used: frozenset[str], left: int, total: float) -> None:
        if left == 0:
            best.append(total)
            return
        for i in range(start, len(simple)):
            inner = set(simple[i][1:-1])
            if not inner & used:
                extend(i + 1, used | inner, left - 1, total + costs[i])

    extend(0, frozenset(), n, 0.0)
    return min(best, default=None)


def random_topology(seed: int, nodes: int = 7, p: float = 0.5) -> Topology:
    graph = nx.gnp_random_graph(nodes, p, seed=seed)
    edges = [(a, b, 1 + (a * 7 + b * 13 + seed) % 9) for a, b in graph.edges()]
    return build(edges, nodes)


# -- basic shapes ---------------------------------------------------------------------------


def test_metro_five_paths() -> None:
    topology = metro()
    a, b = METRO_ENDPOINTS
    assert max_disjoint_paths(topology, a, b) == 5
    paths = disjoint_paths(topology, a, b, 5)
    check(topology, a, b, paths)
    assert all(path.hops == 3 for path in paths)
    assert disjoint_paths(topology, a, b, 1)[0].cost == 3.0


def test_segments_end_at_the_destination_sid() -> None:
    topology = metro()
    path = disjoint_paths(topology, "alice", "bob", 1)[0]
    assert path.segments[-1] == topology.sid("bob") and topology.sid("alice") not in path.segments
    from mpss_fast.wire import Srh, address

    srh = Srh.from_path(path.segments)
    assert srh.final_dst == address(topology.sid("bob")) and srh.dst == address(path.segments[0])


def test_direct_link_counts_once() -> None:
    # 0-3 directly, plus 0-1-3 and 0-2-3
    topology = build([(0, 3, 1), (0, 1, 1), (1, 3, 1), (0, 2, 1), (2, 3, 1)], 4)
    assert max_disjoint_paths(topology, "0", "3") == 3
    paths = disjoint_paths(topology, "0", "3", 3)
    check(topology, "0", "3", paths)
    assert paths[0].nodes == ("0", "3")
    assert min_vertex_cut(topology, "0", "3") == {"1", "2"}
    with pytest.raises(PathError, match="only 3 exist: besides the direct link '0'-'3', every path runs through"):
        disjoint_paths(topology, "0", "3", 4)
    only_direct = build([(0, 1, 1)], 2)
    with pytest.raises(PathError, match="the direct link '0'-'1' is the only path"):
        disjoint_paths(only_direct, "0", "1", 2)


def test_trap_topology_needs_rerouting() -> None:
    # The classic trap: the cheapest single path 0-1-2-5 blocks any second disjoint path;
    # the best pair is 0-1-3-5 and 0-4-2-5 (Suurballe's example shape).
    edges = [(0, 1, 1), (1, 2, 1), (2, 5, 1), (1, 3, 2), (3, 5, 2), (0, 4, 2), (4, 2, 2)]
    topology = build(edges, 6)
    assert disjoint_paths(topology, "0", "5", 1)[0].nodes == ("0", "1", "2", "5")
    pair = disjoint_paths(topology, "0", "5", 2)
    check(topology, "0", "5", pair)
    assert {p.nodes for p in pair} == {("0", "1", "3", "5"), ("0", "4", "2", "5")}
    assert sum(p.cost for p in pair) == brute_force(topology, "0", "5", 2) == 10


def test_deterministic() -> None:
    topology = backbone()
    first = disjoint_paths(topology, "Midvale", "Eastmere", 4)
    assert first == disjoint_paths(topology, "Midvale", "Eastmere", 4)
    assert first == disjoint_paths(topology.copy(), "Midvale", "Eastmere", 4)


# -- optimality and counts against independent answers ------------------------------------


@pytest.mark.parametrize("seed", range(40))
def test_least_cost_matches_brute_force(seed: int) -> None:
    topology = random_topology(seed)
    src, dst = "0", "6"
    most = max_disjoint_paths(topology, src, dst)
    assert most == (local_node_connectivity(topology.graph, src, dst) if nx.has_path(topology.graph, src, dst) else 0)
    for n in range(1, most + 1):
        paths = disjoint_paths(topology, src, dst, n)
        check(topology, src, dst, paths)
        assert len(paths) == n
        assert sum(p.cost for p in paths) == pytest.approx(brute_force(topology, src, dst, n))
    assert brute_force(topology, src, dst, most + 1) is None


@pytest.mark.parametrize("seed", range(15))
def test_counts_and_cuts_match_networkx(seed: int) -> None:
    topology = random_topology(seed, nodes=12, p=0.3)
    graph = topology.graph
    for src, dst in [("0", "11"), ("1", "5"), ("2", "3")]:
        expected = local_node_connectivity(graph, src, dst) if nx.has_path(graph, src, dst) else 0
        count = max_disjoint_paths(topology, src, dst)
        assert count == expected
        if count:
            assert count == len(list(nx.node_disjoint_paths(graph, src, dst)))
        cut = min_vertex_cut(topology, src, dst)
        assert src not in cut and dst not in cut
        assert len(cut) + graph.has_edge(src, dst) == count
        rest = nx.restricted_view(graph, cut, [(src, dst)])
        assert not nx.has_path(rest, src, dst)
        with pytest.raises(PathError) as caught:
            disjoint_paths(topology, src, dst, count + 1)
        if count:
            assert re.search(rf"but only {count} exists?\b", str(caught.value))
            for relay in cut:
                assert repr(relay) in str(caught.value)
        else:
            assert "no path joins them" in str(caught.value)


@settings(max_examples=150, deadline=None)
@given(
    nodes=st.integers(2, 9),
    data=st.data(),
)
def test_property_disjoint_valid_and_maximal(nodes: int, data: st.DataObject) -> None:
    pairs = list(itertools.combinations(range(nodes), 2))
    chosen = data.draw(st.lists(st.sampled_from(pairs), unique=True, max_size=len(pairs)), label="links")
    costs = data.draw(st.lists(st.integers(0, 20), min_size=len(chosen), max_size=len(chosen)), label="costs")
    topology = build([(a, b, c) for (a, b), c in zip(chosen, costs, strict=True)], nodes)
    src, dst = "0", str(nodes - 1)
    graph = topology.graph
    count = max_disjoint_paths(topology, src, dst)
    assert count == (local_node_connectivity(graph, src, dst) if nx.has_path(graph, src, dst) else 0)
    if count:
        paths = disjoint_paths(topology, src, dst, count)
        check(topology, src, dst, paths)
        assert sum(p.cost for p in paths) == pytest.approx(flow_oracle(topology, src, dst, count))
    with pytest.raises(PathError):
        disjoint_paths(topology, src, dst, count + 1)


def flow_oracle(topology: Topology, src: str, dst: str, n: int) -> float:
    """The least cost of n node-disjoint paths by networkx's network simplex on its own split graph."""
    graph, split = topology.graph, nx.DiGraph()
    for v in graph:
        split.add_edge((v, "in"), (v, "out"), capacity=1 if v not in (src, dst) else n, weight=0)
    for a, b in graph.edges():
        for u, w in ((a, b), (b, a)):
            split.add_edge((u, "out"), (w, "in"), capacity=1, weight=int(topology.link(u, w).base_cost))
    split.nodes[(src, "in")]["demand"] = -n
    split.nodes[(dst, "out")]["demand"] = n
    return float(nx.network_simplex(split)[0])


# -- key awareness --------------------------------------------------------------------------


def test_cost_function() -> None:
    assert key_aware_cost(2.0, 1000, 0) == 2.0
    assert key_aware_cost(2.0, 1000, 1000) == 4.0
    assert key_aware_cost(2.0, 1000, 10) == pytest.approx(2.02)
    assert key_aware_cost(1.0, 999, 1000) is None
    assert key_aware_cost(1.0, 0, 0) == 1.0


def test_a_cheap_path_short_of_key_is_avoided() -> None:
    # 0-1-3 is cheap but 1-3 holds 100 bytes; 0-2-3 costs more but has plenty of key.
    topology = build([(0, 1, 1), (1, 3, 1), (0, 2, 5), (2, 3, 5)], 4, pool=10_000)
    topology.update_link("1", "3", pool_bytes=100)
    assert disjoint_paths(topology, "0", "3", 1)[0].nodes == ("0", "1", "3")
    assert disjoint_paths(topology, "0", "3", 1, demand_bytes=100)[0].nodes == ("0", "1", "3")
    short = disjoint_paths(topology, "0", "3", 1, demand_bytes=101)
    assert short[0].nodes == ("0", "2", "3")
    check(topology, "0", "3", short, demand=101)
    assert max_disjoint_paths(topology, "0", "3") == 2
    assert max_disjoint_paths(topology, "0", "3", demand_bytes=101) == 1
    with pytest.raises(PathError, match=r"only 1 exists.*enough would exist without the 1 link short of the 101 bytes"):
        disjoint_paths(topology, "0", "3", 2, demand_bytes=101)
    with pytest.raises(PathError, match=r"'1'-'3' \(100 bytes\)"):
        disjoint_paths(topology, "0", "3", 2, demand_bytes=101)


def test_a_nearly_drained_link_costs_more() -> None:
    # Two equal-cost routes; one crosses a link the share would drain by 90 %.
    topology = build([(0, 1, 1), (1, 3, 1), (0, 2, 1), (2, 3, 1)], 4, pool=1_000_000)
    topology.update_link("1", "3", pool_bytes=1_100)
    path = disjoint_paths(topology, "0", "3", 1, demand_bytes=1_000)[0]
    assert path.nodes == ("0", "2", "3")
    assert path.cost == pytest.approx(2 * (1 + 1_000 / 1_000_000))


def test_no_path_with_enough_key() -> None:
    topology = build([(0, 1, 1), (1, 2, 1)], 3, pool=50)
    with pytest.raises(PathError, match=r"no path joins them over links with enough key.*enough would exist"):
        disjoint_paths(topology, "0", "2", 1, demand_bytes=51)
    assert max_disjoint_paths(topology, "0", "2", demand_bytes=51) == 0


def test_many_short_links_are_summarised() -> None:
    topology = random_mesh(40, 4, seed=3)
    for link in topology.links:
        topology.update_link(link.a, link.b, pool_bytes=10)
    with pytest.raises(PathError, match=r"the 80 links short of the 11 bytes.*and 75 more"):
        disjoint_paths(topology, "n0", "n1", 1, demand_bytes=11)


# -- bad arguments ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        (("alice", "alice", 1), {}, ParameterError, "same node 'alice'"),
        (("alice", "carol", 1), {}, TopologyError, "unknown node 'carol'"),
        (("mallory", "bob", 1), {}, TopologyError, "unknown node 'mallory'"),
        (("alice", "bob", 0), {}, ParameterError, "n must be >= 1"),
        (("alice", "bob", -3), {}, ParameterError, "n must be >= 1"),
        (("alice", "bob", True), {}, InputTypeError, "n must be an int"),
        (("alice", "bob", 2.0), {}, InputTypeError, "n must be an int"),
        (("alice", "bob", 1), {"demand_bytes": -1}, ParameterError, "demand_bytes must be >= 0"),
        (("alice", "bob", 1), {"demand_bytes": 1.5}, InputTypeError, "demand_bytes"),
        ((1, "bob", 1), {}, InputTypeError, "node name must be str"),
        (("alice", "bob", 6), {}, PathError, "but only 5 exist"),
    ],
)
def test_bad_arguments(args: tuple, kwargs: dict, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        disjoint_paths(metro(), *args, **kwargs)


def test_bad_topology_and_isolated_nodes() -> None:
    with pytest.raises(InputTypeError, match=r"kmp\.Topology"):
        disjoint_paths(nx.path_graph(3), "0", "2", 1)  # type: ignore[arg-type]
    with pytest.raises(TopologyError, match="unknown node 'x'"):
        max_disjoint_paths(metro(), "x", "bob")
    topology = build([(0, 1, 1)], 3)
    assert max_disjoint_paths(topology, "0", "2") == 0 and min_vertex_cut(topology, "0", "2") == frozenset()
    with pytest.raises(PathError, match=r"but no path joins them$"):
        disjoint_paths(topology, "0", "2", 1)


# -- scale ----------------------------------------------------------------------------------


def test_thousand_node_mesh_is_fast() -> None:
    topology = random_mesh(1000, 4, seed=1)
    start = time.perf_counter()
    paths = disjoint_paths(topology, "n0", "n999", 3)
    elapsed = time.perf_counter() - start
    check(topology, "n0", "n999", paths)
    assert elapsed < 1.0, f"{elapsed:.3f} s for 3 paths on 1,000 nodes"
    assert sum(p.cost for p in paths) == pytest.approx(flow_oracle(topology, "n0", "n999", 3))
