"""Built-in QKD topologies: a metro mesh, a national backbone, and seeded random meshes.

The names and places are made up. Link attributes follow from fibre length ``L`` (km):
``latency_s = 1.2 * L / 200_000`` (routes run 20 % longer than the straight line, light
travels 200,000 km/s in fibre); ``rate_bps = 100_000 * 10 ** (-0.02 * L)`` (0.2 dB/km
loss, 100 kbit/s at 0 km); ``pool_bytes``: one hour of key at that rate. ``cost`` is
unset (1 per link: planning counts relays, the nodes that must be trusted).
"""

from __future__ import annotations

import math
import random
from typing import TypedDict

from ..exceptions import ParameterError
from ._checks import check_count
from ._nx import nx
from .topology import Topology

METRO_ENDPOINTS = ("alice", "bob")
"""The two metro nodes joined by five node-disjoint paths (two relays each)."""

_METRO_PLACES = {
    "alice": (0, 10),
    "bob": (30, 10),
    "harbor": (8, 0),
    "market": (8, 5),
    "campus": (8, 10),
    "airport": (8, 15),
    "oldtown": (8, 20),
    "museum": (22, 0),
    "station": (22, 5),
    "stadium": (22, 10),
    "hospital": (22, 15),
    "docks": (22, 20),
}
_METRO_LINKS = [
    *(("alice", w) for w in ("harbor", "market", "campus", "airport", "oldtown")),
    *(("bob", e) for e in ("museum", "station", "stadium", "hospital", "docks")),
    ("harbor", "museum"),
    ("market", "station"),
    ("campus", "stadium"),
    ("airport", "hospital"),
    ("oldtown", "docks"),
    ("harbor", "market"),
    ("market", "campus"),
    ("campus", "airport"),
    ("airport", "oldtown"),
    ("museum", "station"),
    ("station", "stadium"),
    ("stadium", "hospital"),
    ("hospital", "docks"),
    ("market", "stadium"),
    ("airport", "station"),
]

# Seven hubs (a ring with Midvale in the middle) and 29 regional nodes, each homed on two
# or three neighbours; coordinates in units of 0.5 km.
_BACKBONE_PLACES = {
    "Midvale": (300, 300),
    "Northgate": (300, 520),
    "Highcliff": (480, 440),
    "Eastmere": (520, 260),
    "Southport": (340, 80),
    "Westbrook": (110, 220),
    "Lakeford": (120, 430),
    "Pinecrest": (220, 580),
    "Ashby": (380, 590),
    "Corran": (300, 430),
    "Tarnwick": (560, 520),
    "Bellhaven": (600, 400),
    "Rookmoor": (420, 360),
    "Saltham": (620, 300),
    "Dunmore": (600, 160),
    "Orrin": (450, 220),
    "Kelby": (480, 100),
    "Fenwater": (240, 60),
    "Greystone": (380, 180),
    "Marlow": (160, 110),
    "Elmstead": (40, 300),
    "Quarry Hill": (200, 280),
    "Brackley": (40, 500),
    "Hollins": (200, 420),
    "Stonebridge": (240, 240),
    "Wexham": (360, 260),
    "Larkspur": (660, 470),
    "Oakridge": (520, 600),
    "Calder": (680, 220),
    "Yarrow": (560, 60),
    "Penhallow": (400, 20),
    "Thistledown": (120, 30),
    "Gorsefield": (20, 160),
    "Ivybridge": (100, 600),
    "Mossbank": (250, 360),
    "Redfern": (420, 500),
}
_BACKBONE_LINKS = [
    # the hub ring and the spokes to Midvale
    ("Northgate", "Highcliff"),
    ("Highcliff", "Eastmere"),
    ("Eastmere", "Southport"),
    ("Southport", "Westbrook"),
    ("Westbrook", "Lakeford"),
    ("Lakeford", "Northgate"),
    ("Midvale", "Northgate"),
    ("Midvale", "Eastmere"),
    ("Midvale", "Southport"),
    ("Midvale", "Westbrook"),
    # regional nodes
    ("Pinecrest", "Northgate"),
    ("Pinecrest", "Lakeford"),
    ("Ashby", "Northgate"),
    ("Ashby", "Highcliff"),
    ("Corran", "Northgate"),
    ("Corran", "Midvale"),
    ("Tarnwick", "Highcliff"),
    ("Tarnwick", "Ashby"),
    ("Bellhaven", "Highcliff"),
    ("Bellhaven", "Eastmere"),
    ("Rookmoor", "Highcliff"),
    ("Rookmoor", "Midvale"),
    ("Saltham", "Eastmere"),
    ("Saltham", "Bellhaven"),
    ("Dunmore", "Eastmere"),
    ("Dunmore", "Kelby"),
    ("Orrin", "Eastmere"),
    ("Orrin", "Midvale"),
    ("Kelby", "Southport"),
    ("Kelby", "Eastmere"),
    ("Fenwater", "Southport"),
    ("Fenwater", "Marlow"),
    ("Greystone", "Southport"),
    ("Greystone", "Orrin"),
    ("Marlow", "Westbrook"),
    ("Marlow", "Southport"),
    ("Elmstead", "Westbrook"),
    ("Elmstead", "Lakeford"),
    ("Quarry Hill", "Westbrook"),
    ("Quarry Hill", "Midvale"),
    ("Brackley", "Lakeford"),
    ("Brackley", "Pinecrest"),
    ("Hollins", "Lakeford"),
    ("Hollins", "Corran"),
    ("Stonebridge", "Midvale"),
    ("Stonebridge", "Quarry Hill"),
    ("Wexham", "Midvale"),
    ("Wexham", "Orrin"),
    ("Larkspur", "Tarnwick"),
    ("Larkspur", "Bellhaven"),
    ("Oakridge", "Tarnwick"),
    ("Oakridge", "Ashby"),
    ("Calder", "Saltham"),
    ("Calder", "Dunmore"),
    ("Yarrow", "Dunmore"),
    ("Yarrow", "Kelby"),
    ("Penhallow", "Southport"),
    ("Penhallow", "Kelby"),
    ("Thistledown", "Marlow"),
    ("Thistledown", "Fenwater"),
    ("Gorsefield", "Marlow"),
    ("Gorsefield", "Elmstead"),
    ("Ivybridge", "Brackley"),
    ("Ivybridge", "Pinecrest"),
    ("Mossbank", "Hollins"),
    ("Mossbank", "Quarry Hill"),
    ("Mossbank", "Midvale"),
    ("Redfern", "Corran"),
    ("Redfern", "Highcliff"),
    ("Redfern", "Ashby"),
]


class FibreLink(TypedDict):
    """The attributes :func:`fibre_link` gives, ready for ``Topology.add_link(a, b, **attrs)``."""

    rate_bps: float
    pool_bytes: int
    latency_s: float


def fibre_link(km: float) -> FibreLink:
    """``rate_bps``, ``pool_bytes`` and ``latency_s`` of a QKD link over ``km`` of fibre (module docstring)."""
    rate = round(100_000 * 10 ** (-0.02 * km), 1)
    return {"rate_bps": rate, "pool_bytes": int(rate * 3600 / 8), "latency_s": 1.2 * km / 200_000}


def _from_places(places: dict[str, tuple[int, int]], links: list[tuple[str, str]], scale_km: float) -> Topology:
    topology = Topology()
    for name in places:
        topology.add_node(name)
    for a, b in links:
        (xa, ya), (xb, yb) = places[a], places[b]
        topology.add_link(a, b, **fibre_link(math.hypot(xa - xb, ya - yb) * scale_km))
    return topology


def metro() -> Topology:
    """A 12-node metro mesh; :data:`METRO_ENDPOINTS` are joined by five node-disjoint paths."""
    return _from_places(_METRO_PLACES, _METRO_LINKS, 1.0)


def backbone() -> Topology:
    """A 36-node national backbone (7 hubs, 29 regional nodes each homed on two or more)."""
    return _from_places(_BACKBONE_PLACES, _BACKBONE_LINKS, 0.5)


def random_mesh(nodes: int, degree: int = 4, *, seed: int = 0) -> Topology:
    """A connected random ``degree``-regular mesh of ``nodes`` nodes named ``n0``, ``n1``, ...

    The same ``seed`` gives the same topology (the randomness shapes a test network, it is
    not secret). Link attributes are drawn from the seed too: ``cost`` 1-10,
    ``latency_s`` 0.1-2 ms, ``rate_bps`` 1-100 kbit/s, ``pool_bytes`` 10 kB-1 MB.
    """
    nodes = check_count(nodes, "nodes", 2)
    degree = check_count(degree, "degree", 1)
    seed = check_count(seed, "seed", 0)
    if degree >= nodes or nodes * degree % 2:
        raise ParameterError(f"a {degree}-regular graph on {nodes} nodes needs degree < nodes and an even nodes*degree")
    if degree == 1 and nodes > 2:
        raise ParameterError("a 1-regular graph on more than 2 nodes is never connected")
    draw = random.Random(seed)  # noqa: S311 - a reproducible test network, not key material
    for _ in range(100):
        graph = nx.random_regular_graph(degree, nodes, seed=draw.randrange(1 << 32))
        if nx.is_connected(graph):
            break
    else:  # degree 2 (a union of cycles) on many nodes: rarely one cycle
        raise ParameterError(f"no connected {degree}-regular mesh on {nodes} nodes found for seed {seed}")
    topology = Topology()
    for i in range(nodes):
        topology.add_node(f"n{i}")
    for a, b in sorted((min(u, v), max(u, v)) for u, v in graph.edges()):
        topology.add_link(
            f"n{a}",
            f"n{b}",
            cost=float(draw.randint(1, 10)),
            latency_s=round(draw.uniform(1e-4, 2e-3), 6),
            rate_bps=round(draw.uniform(1e3, 1e5), 1),
            pool_bytes=draw.randint(10_000, 1_000_000),
        )
    return topology


_BUILTIN = {"metro": metro, "backbone": backbone}


def builtin(name: str) -> Topology:
    """A built-in topology by name: ``"metro"`` or ``"backbone"`` (a fresh copy each call)."""
    if not isinstance(name, str) or name not in _BUILTIN:
        raise ParameterError(f"unknown built-in topology {name!r}; known: {', '.join(sorted(_BUILTIN))}")
    return _BUILTIN[name]()
