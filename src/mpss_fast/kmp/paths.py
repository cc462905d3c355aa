"""Node-disjoint relay paths of minimum total cost (Suurballe-style min-cost flow on a node-split graph).

Every node ``v`` other than the source and destination becomes ``v_in -> v_out`` with
capacity 1, so at most one path crosses it; each usable link ``u - w`` becomes the arcs
``u_out -> w_in`` and ``w_out -> u_in`` at its key-aware cost (``kmp.cost``). A direct
source-destination link carries at most one path. ``n`` units of min-cost flow from the
source to the destination are ``n`` node-disjoint paths of least total cost; they are
found by ``n`` Dijkstra searches with potentials (successive shortest paths) and then
read off the arcs that carry flow. See docs/kmp.md.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from ..exceptions import InputTypeError, ParameterError, PathError
from ._checks import check_count
from ._flow import UnitFlow
from .cost import key_aware_cost
from .topology import DEFAULT_COST, Topology

_MANY = 1 << 30  # "no limit" for link arcs: the node arcs (capacity 1) do the limiting
_LISTED = 5  # short-of-key links named in an error message


@dataclass(frozen=True)
class Path:
    """One relay path: ``nodes`` from source to destination and what it costs."""

    nodes: tuple[str, ...]
    """Node names, source first, destination last."""
    segments: tuple[str, ...]
    """The SRv6 segment list in travel order: the SID of every node after the source, the destination's last."""
    cost: float
    """The sum of the links' key-aware planning costs (``kmp.cost``)."""
    latency_s: float
    """The sum of the links' latencies."""
    min_pool_bytes: int
    """The smallest key pool along the path (its bottleneck)."""

    @property
    def relays(self) -> tuple[str, ...]:
        """The intermediate nodes: every node that sees the share (one-time padded per link)."""
        return self.nodes[1:-1]

    @property
    def hops(self) -> int:
        """The number of links."""
        return len(self.nodes) - 1


@dataclass
class _Network:
    """The split graph of one (topology, source, destination, demand) and its flow."""

    names: list[str]
    flow: UnitFlow
    source: int
    sink: int
    direct: int  # the arc of the direct source-destination link, or -1
    short: list[tuple[str, str, int]]  # links excluded for lack of key: (a, b, pool_bytes)
    demand: int
    count: int = 0

    def push(self, limit: int | None) -> int:
        """Augment until ``limit`` paths (None: as many as exist); returns the flow value."""
        while (limit is None or self.count < limit) and self.flow.augment():
            self.count += 1
        return self.count

    def cut(self) -> tuple[list[str], bool]:
        """After a failed augmentation: the relays of a minimum vertex cut, and whether the direct link is in it."""
        reached = self.flow.reached
        relays = [
            name
            for i, name in enumerate(self.names)
            if i not in (self.source, self.sink) and reached[2 * i] and not reached[2 * i + 1]
        ]
        return relays, self.direct >= 0 and self.flow.cap[self.direct] == 0


def _network(topology: Topology, src: str, dst: str, demand_bytes: object) -> _Network:
    if not isinstance(topology, Topology):
        raise InputTypeError(f"topology must be a kmp.Topology, not {type(topology).__name__}")
    topology.sid(src)  # TopologyError / InputTypeError for an unknown node or a non-str name
    topology.sid(dst)
    if src == dst:
        raise ParameterError(f"source and destination are the same node {src!r}")
    demand = check_count(demand_bytes, "demand_bytes", 0)
    graph = topology.graph
    names = list(graph)
    index = {name: i for i, name in enumerate(names)}
    s, t = index[src], index[dst]
    flow = UnitFlow(2 * len(names), 2 * s + 1, 2 * t)
    for i in range(len(names)):
        if i not in (s, t):
            flow.add_arc(2 * i, 2 * i + 1, 1, 0.0)
    direct = -1
    short: list[tuple[str, str, int]] = []
    for a, b, data in graph.edges(data=True):
        base = DEFAULT_COST if data["cost"] is None else data["cost"]
        cost = key_aware_cost(base, data["pool_bytes"], demand)
        if cost is None:
            short.append((a, b, data["pool_bytes"]))
            continue
        i, j = index[a], index[b]
        for u, w in ((i, j), (j, i)):
            if u == t or w == s:
                continue  # never useful: paths leave the source and end at the destination
            if u == s and w == t:
                direct = flow.add_arc(2 * u + 1, 2 * w, 1, cost)
            else:
                flow.add_arc(2 * u + 1, 2 * w, _MANY, cost)
    return _Network(names, flow, s, t, direct, short, demand)


def _paths(topology: Topology, net: _Network) -> list[Path]:
    flow, names, graph = net.flow, net.names, topology.graph
    adj, to, cap = flow.adj, flow.to, flow.cap
    found = []
    for first in adj[flow.source]:
        if first & 1 or not cap[first ^ 1]:
            continue  # a residual twin, or an arc without flow
        walk = [net.source]
        e = first
        while True:
            node = to[e] // 2
            walk.append(node)
            if node == net.sink:
                break
            e = next(a for a in adj[2 * node + 1] if not a & 1 and cap[a ^ 1])
        found.append(_path(topology, graph, [names[i] for i in walk], net.demand))
    found.sort(key=lambda p: (p.cost, p.latency_s, p.nodes))
    return found


def _path(topology: Topology, graph: Any, nodes: list[str], demand: int) -> Path:
    cost = latency = 0.0
    pools = []
    for a, b in itertools.pairwise(nodes):
        data = graph.adj[a][b]
        link_cost = key_aware_cost(DEFAULT_COST if data["cost"] is None else data["cost"], data["pool_bytes"], demand)
        assert link_cost is not None  # the flow only uses links with enough key
        cost += link_cost
        latency += data["latency_s"]
        pools.append(data["pool_bytes"])
    return Path(
        nodes=tuple(nodes),
        segments=tuple(topology.sid(name) for name in nodes[1:]),
        cost=cost,
        latency_s=latency,
        min_pool_bytes=min(pools),
    )


def disjoint_paths(topology: Topology, src: str, dst: str, n: int, *, demand_bytes: int = 0) -> list[Path]:
    """``n`` node-disjoint paths from ``src`` to ``dst`` of least total key-aware cost, cheapest first.

    No two paths share an intermediate node; a direct ``src``-``dst`` link serves at most
    one. Links holding fewer than ``demand_bytes`` of key are left out. Raises
    :class:`PathError` (how many paths exist and what blocks more) when fewer than ``n``
    exist, ``TopologyError`` for an unknown node, ``ParameterError`` for ``src == dst``,
    ``n < 1`` or a negative demand.
    """
    n = check_count(n, "n", 1)
    net = _network(topology, src, dst, demand_bytes)
    if net.push(n) < n:
        raise PathError(_shortfall(topology, net, src, dst, n, int(demand_bytes)))
    return _paths(topology, net)


def max_disjoint_paths(topology: Topology, src: str, dst: str, *, demand_bytes: int = 0) -> int:
    """How many node-disjoint paths join ``src`` and ``dst`` over links holding ``demand_bytes`` of key."""
    return _network(topology, src, dst, demand_bytes).push(None)


def min_vertex_cut(topology: Topology, src: str, dst: str, *, demand_bytes: int = 0) -> frozenset[str]:
    """A smallest set of relays whose removal leaves no ``src``-``dst`` path but the direct link, if any.

    Its size plus one for a usable direct link equals :func:`max_disjoint_paths` (Menger).
    """
    net = _network(topology, src, dst, demand_bytes)
    net.push(None)
    return frozenset(net.cut()[0])


def _shortfall(topology: Topology, net: _Network, src: str, dst: str, n: int, demand: int) -> str:
    count = net.count
    relays, direct = net.cut()
    head = f"{n} node-disjoint path{'s' if n != 1 else ''} asked between {src!r} and {dst!r}, "
    if count == 0:
        reason = f"but no path joins them{' over links with enough key' if net.short else ''}"
    else:
        exist = f"but only {count} exist{'s' if count == 1 else ''}"
        names = ", ".join(repr(name) for name in relays)
        through = f"every path runs through one of the relays {names} (a minimum vertex cut)"
        if not direct:
            reason = f"{exist}: {through}"
        elif relays:
            reason = f"{exist}: besides the direct link {src!r}-{dst!r}, {through}"
        else:
            reason = f"{exist}: the direct link {src!r}-{dst!r} is the only path"
    if net.short and demand:
        ignoring = _network(topology, src, dst, 0).push(n)
        if ignoring > count:
            short = sorted(net.short, key=lambda link: (link[2], link[0], link[1]))
            named = ", ".join(f"{a!r}-{b!r} ({pool} bytes)" for a, b, pool in short[:_LISTED])
            more = f" and {len(short) - _LISTED} more" if len(short) > _LISTED else ""
            plural = "s" if len(short) != 1 else ""
            reason += (
                f"; {'enough' if ignoring >= n else ignoring} would exist without the {len(short)} link{plural} "
                f"short of the {demand} bytes of key each share needs: {named}{more}"
            )
    return head + reason
