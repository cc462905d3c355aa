"""The QKD network model: named nodes with SRv6 SIDs, joined by undirected QKD links.

A :class:`Topology` wraps an ``nx.Graph``. Every change goes through validated methods,
so the graph always holds, per node, a ``sid`` (an IPv6 address string) and, per link,
``rate_bps`` (key generation rate, bits/s), ``pool_bytes`` (key now in the link's pool),
``latency_s`` and ``cost`` (``None``: the default cost of 1 per link).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

from ..exceptions import InputTypeError, TopologyError
from ._nx import nx
from .sid import MAX_AUTO_SID, auto_sid, normalize_sid

DEFAULT_COST = 1.0
"""The planning cost of a link without an explicit ``cost``: planning then minimises hops."""

LINK_FIELDS = ("rate_bps", "pool_bytes", "latency_s", "cost")
"""The attributes every link carries (``cost`` may be ``None``)."""


@dataclass(frozen=True)
class Link:
    """One QKD link as the topology holds it now (``a``/``b``: the order it was asked for)."""

    a: str
    b: str
    rate_bps: float
    pool_bytes: int
    latency_s: float
    cost: float | None = None

    @property
    def base_cost(self) -> float:
        """``cost``, or :data:`DEFAULT_COST` when the link has none."""
        return DEFAULT_COST if self.cost is None else self.cost


def _real(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise InputTypeError(f"{what} must be a number, not {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise TopologyError(f"{what} must be a finite number >= 0, not {value!r}")
    return number


def _count(value: object, what: str) -> int:
    if isinstance(value, Real) and not isinstance(value, (bool, Integral)):
        number = float(value)
        if not number.is_integer():
            raise TopologyError(f"{what} must be a whole number of bytes, not {value!r}")
        value = int(number)
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise InputTypeError(f"{what} must be an integer, not {type(value).__name__}")
    if value < 0:
        raise TopologyError(f"{what} must be >= 0, not {value!r}")
    return int(value)


def _name(name: object) -> str:
    if not isinstance(name, str):
        raise InputTypeError(f"a node name must be str, not {type(name).__name__}")
    if not name:
        raise TopologyError("a node name must not be empty")
    return name


class Topology:
    """A QKD network: nodes with SRv6 SIDs and undirected links with key rates and pools.

    Unknown nodes or links raise :class:`TopologyError` naming them; a wrong type raises
    :class:`InputTypeError`; a negative or non-finite number raises ``TopologyError``.
    """

    def __init__(self) -> None:
        self._graph = nx.Graph()
        self._by_sid: dict[str, str] = {}
        self._next_number = 1

    # -- building ---------------------------------------------------------------------------

    def add_node(self, name: str, *, sid: str | None = None) -> str:
        """Add a node; returns its SID (given, or the next automatic one: see ``kmp.sid``)."""
        name = _name(name)
        if name in self._graph:
            raise TopologyError(f"duplicate node {name!r}")
        if sid is None:
            sid = self._auto_sid()
        else:
            sid = normalize_sid(sid, node=name)
            if sid in self._by_sid:
                raise TopologyError(f"node {name!r}: SID {sid} already belongs to node {self._by_sid[sid]!r}")
        self._graph.add_node(name, sid=sid)
        self._by_sid[sid] = name
        return sid

    def _auto_sid(self) -> str:
        while self._next_number <= MAX_AUTO_SID:
            sid = auto_sid(self._next_number)
            self._next_number += 1
            if sid not in self._by_sid:
                return sid
        raise TopologyError("no automatic SID left")

    def add_link(
        self,
        a: str,
        b: str,
        *,
        rate_bps: float,
        pool_bytes: int,
        latency_s: float,
        cost: float | None = None,
    ) -> Link:
        """Add an undirected link between two existing nodes; returns it."""
        self._check_node(a)
        self._check_node(b)
        if a == b:
            raise TopologyError(f"a link must join two different nodes, not {a!r} to itself")
        if self._graph.has_edge(a, b):
            raise TopologyError(f"duplicate link {a!r}-{b!r}")
        attrs = self._attrs(a, b, rate_bps=rate_bps, pool_bytes=pool_bytes, latency_s=latency_s, cost=cost)
        self._graph.add_edge(a, b, **attrs)
        return self.link(a, b)

    def update_link(
        self,
        a: str,
        b: str,
        *,
        rate_bps: float | None = None,
        pool_bytes: int | None = None,
        latency_s: float | None = None,
        cost: float | None = None,
    ) -> Link:
        """Change some attributes of a link (``None`` keeps one as it is); returns the link."""
        current = self.link(a, b)
        attrs = self._attrs(
            a,
            b,
            rate_bps=current.rate_bps if rate_bps is None else rate_bps,
            pool_bytes=current.pool_bytes if pool_bytes is None else pool_bytes,
            latency_s=current.latency_s if latency_s is None else latency_s,
            cost=current.cost if cost is None else cost,
        )
        self._graph.edges[a, b].update(attrs)
        return self.link(a, b)

    @staticmethod
    def _attrs(
        a: str, b: str, *, rate_bps: object, pool_bytes: object, latency_s: object, cost: object
    ) -> dict[str, Any]:
        where = f"link {a!r}-{b!r}"
        return {
            "rate_bps": _real(rate_bps, f"{where}: rate_bps"),
            "pool_bytes": _count(pool_bytes, f"{where}: pool_bytes"),
            "latency_s": _real(latency_s, f"{where}: latency_s"),
            "cost": None if cost is None else _real(cost, f"{where}: cost"),
        }

    # -- reading ----------------------------------------------------------------------------

    def _check_node(self, name: object) -> str:
        if not isinstance(name, str):
            raise InputTypeError(f"a node name must be str, not {type(name).__name__}")
        if name not in self._graph:
            raise TopologyError(f"unknown node {name!r}")
        return name

    @property
    def nodes(self) -> tuple[str, ...]:
        """The node names, in the order they were added."""
        return tuple(self._graph)

    @property
    def links(self) -> tuple[Link, ...]:
        """Every link."""
        return tuple(_link(a, b, d) for a, b, d in self._graph.edges(data=True))

    @property
    def graph(self) -> Any:
        """A read-only view of the underlying ``nx.Graph`` (node attr ``sid``; link attrs :data:`LINK_FIELDS`)."""
        return self._graph.copy(as_view=True)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._graph

    def __len__(self) -> int:
        return int(self._graph.number_of_nodes())

    def sid(self, name: str) -> str:
        """The SRv6 SID of a node."""
        return str(self._graph.nodes[self._check_node(name)]["sid"])

    def node_of(self, sid: str) -> str:
        """The node that owns a SID."""
        key = normalize_sid(sid, node="?")
        if key not in self._by_sid:
            raise TopologyError(f"no node has SID {sid}")
        return self._by_sid[key]

    def neighbors(self, name: str) -> tuple[str, ...]:
        """The nodes linked to ``name``."""
        return tuple(self._graph.adj[self._check_node(name)])

    def has_link(self, a: str, b: str) -> bool:
        """Whether ``a`` and ``b`` are linked directly (both must exist)."""
        return bool(self._graph.has_edge(self._check_node(a), self._check_node(b)))

    def link(self, a: str, b: str) -> Link:
        """The link between ``a`` and ``b`` (either order)."""
        if not self.has_link(a, b):
            raise TopologyError(f"no link between {a!r} and {b!r}")
        return _link(a, b, self._graph.edges[a, b])

    def copy(self) -> Topology:
        """An independent copy."""
        other = Topology()
        other._graph = self._graph.copy()
        other._by_sid = dict(self._by_sid)
        other._next_number = self._next_number
        return other

    # -- whole-graph conversions ------------------------------------------------------------

    @classmethod
    def from_graph(cls, graph: Any) -> Topology:
        """A topology from an undirected ``nx.Graph`` carrying the attributes above.

        Nodes may carry ``sid`` (else one is assigned); links need ``rate_bps``,
        ``pool_bytes`` and ``latency_s`` and may carry ``cost``. Other attributes are
        ignored. Anything else wrong raises :class:`TopologyError`.
        """
        if not isinstance(graph, nx.Graph):
            raise InputTypeError(f"from_graph takes an nx.Graph, not {type(graph).__name__}")
        if graph.is_directed() or graph.is_multigraph():
            raise TopologyError("a QKD topology is an undirected graph without parallel links")
        topology = cls()
        try:
            for name, data in graph.nodes(data=True):
                topology.add_node(_file_name(name), sid=data.get("sid"))
            for a, b, data in graph.edges(data=True):
                missing = [k for k in ("rate_bps", "pool_bytes", "latency_s") if k not in data]
                if missing:
                    raise TopologyError(f"link {a!r}-{b!r} lacks {', '.join(missing)}")
                topology.add_link(
                    a,
                    b,
                    rate_bps=data["rate_bps"],
                    pool_bytes=data["pool_bytes"],
                    latency_s=data["latency_s"],
                    cost=data.get("cost"),
                )
        except InputTypeError as exc:
            raise TopologyError(str(exc)) from exc
        return topology

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Topology):
            return NotImplemented
        return _signature(self) == _signature(other)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Topology({len(self)} nodes, {self._graph.number_of_edges()} links)"


def _link(a: str, b: str, data: dict[str, Any]) -> Link:
    return Link(a, b, data["rate_bps"], data["pool_bytes"], data["latency_s"], data["cost"])


def _file_name(name: object) -> str:
    if not isinstance(name, str):
        raise TopologyError(f"a node name must be a string, not {name!r}")
    return name


def _signature(topology: Topology) -> tuple[dict[str, str], dict[frozenset[str], tuple[object, ...]]]:
    nodes = {name: topology.sid(name) for name in topology.nodes}
    links = {frozenset((l.a, l.b)): tuple(getattr(l, f) for f in LINK_FIELDS) for l in topology.links}  # noqa: E741
    return nodes, links
