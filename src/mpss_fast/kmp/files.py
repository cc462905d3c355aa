"""Topology files: JSON (the schema in docs/kmp.md) and GraphML, loaded and saved.

Every malformed file raises :class:`TopologyError` saying where; a missing or unreadable
file raises the ``OSError`` that ``open`` gave.
"""

from __future__ import annotations

import json
import os
from typing import Any
from xml.etree.ElementTree import ParseError

from ..exceptions import InputTypeError, TopologyError
from ._nx import nx
from .topology import LINK_FIELDS, Topology

_NODE_KEYS = frozenset(("name", "sid"))
_LINK_KEYS = frozenset(("a", "b", *LINK_FIELDS))
_LINK_REQUIRED = ("a", "b", "rate_bps", "pool_bytes", "latency_s")


def to_dict(topology: Topology) -> dict[str, Any]:
    """The JSON schema as Python objects: ``{"nodes": [...], "links": [...]}``."""
    nodes = [{"name": name, "sid": topology.sid(name)} for name in topology.nodes]
    links = []
    for link in topology.links:
        entry: dict[str, Any] = {
            "a": link.a,
            "b": link.b,
            "rate_bps": link.rate_bps,
            "pool_bytes": link.pool_bytes,
            "latency_s": link.latency_s,
        }
        if link.cost is not None:
            entry["cost"] = link.cost
        links.append(entry)
    return {"nodes": nodes, "links": links}


def from_dict(data: object) -> Topology:
    """A topology from the JSON schema as Python objects; unknown keys are refused (typos)."""
    if not isinstance(data, dict):
        raise TopologyError(f"a topology is a JSON object with 'nodes' and 'links', not {type(data).__name__}")
    unknown = sorted(set(data) - {"nodes", "links"})
    if unknown:
        raise TopologyError(f"unknown top-level key(s) {', '.join(map(repr, unknown))}: expected 'nodes' and 'links'")
    nodes, links = data.get("nodes"), data.get("links", [])
    if not isinstance(nodes, list):
        raise TopologyError('\'nodes\' must be a list of {"name": ..., "sid": ...} objects')
    if not isinstance(links, list):
        raise TopologyError('\'links\' must be a list of {"a": ..., "b": ..., ...} objects')
    topology = Topology()
    for i, node in enumerate(nodes):
        where = f"nodes[{i}]"
        _check_keys(node, _NODE_KEYS, ("name",), where)
        _guard(where, lambda node=node: topology.add_node(node["name"], sid=node.get("sid")))
    for i, link in enumerate(links):
        where = f"links[{i}]"
        _check_keys(link, _LINK_KEYS, _LINK_REQUIRED, where)
        _guard(where, lambda link=link: topology.add_link(**link))
    return topology


def _check_keys(entry: object, allowed: frozenset[str], required: tuple[str, ...], where: str) -> None:
    if not isinstance(entry, dict):
        raise TopologyError(f"{where} must be an object, not {type(entry).__name__}")
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise TopologyError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}")
    missing = [key for key in required if key not in entry]
    if missing:
        raise TopologyError(f"{where}: missing {', '.join(map(repr, missing))}")


def _guard(where: str, step: Any) -> None:
    try:
        step()
    except (TopologyError, InputTypeError) as exc:
        raise TopologyError(f"{where}: {exc}") from exc


def to_json(topology: Topology, *, indent: int | None = 2) -> str:
    """The topology as JSON text."""
    return json.dumps(to_dict(topology), indent=indent)


def from_json(text: str | bytes) -> Topology:
    """A topology from JSON text."""
    if not isinstance(text, (str, bytes)):
        raise InputTypeError(f"from_json takes str or bytes, not {type(text).__name__}")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise TopologyError(f"not valid JSON: {exc}") from exc
    return from_dict(data)


def write_graphml(topology: Topology, path: str | os.PathLike[str]) -> None:
    """Save as GraphML: node attribute ``sid``; link attributes as in JSON (``cost`` only where set)."""
    graph = nx.Graph()
    for name in topology.nodes:
        graph.add_node(name, sid=topology.sid(name))
    for link in topology.links:
        attrs: dict[str, Any] = {
            "rate_bps": link.rate_bps,
            "pool_bytes": link.pool_bytes,
            "latency_s": link.latency_s,
        }
        if link.cost is not None:
            attrs["cost"] = link.cost
        graph.add_edge(link.a, link.b, **attrs)
    nx.write_graphml(graph, os.fspath(path))


def read_graphml(path: str | os.PathLike[str]) -> Topology:
    """Load GraphML: an undirected graph with the attributes :func:`write_graphml` writes.

    Attributes other tools add (labels, coordinates) are ignored; parallel links,
    directed graphs and missing link attributes are refused.
    """
    with open(path, "rb") as file:
        data = file.read()
    try:
        graph = nx.parse_graphml(data, node_type=str, force_multigraph=True)
    except (ParseError, nx.NetworkXError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise TopologyError(f"{os.fspath(path)}: not a readable GraphML graph: {exc}") from exc
    if graph.is_directed():
        raise TopologyError(f"{os.fspath(path)}: the graph is directed; QKD links are undirected")
    simple = nx.Graph()
    simple.add_nodes_from(graph.nodes(data=True))
    for a, b, attrs in graph.edges(data=True):
        if simple.has_edge(a, b):
            raise TopologyError(f"{os.fspath(path)}: more than one link between {a!r} and {b!r}")
        simple.add_edge(a, b, **attrs)
    try:
        return Topology.from_graph(simple)
    except TopologyError as exc:
        raise TopologyError(f"{os.fspath(path)}: {exc}") from exc


def load(path: str | os.PathLike[str]) -> Topology:
    """Load a ``.json`` or ``.graphml`` file (chosen by the suffix)."""
    name = os.fspath(path)
    if name.endswith(".json"):
        with open(name, "rb") as file:
            data = file.read()
        try:
            return from_json(data)
        except TopologyError as exc:
            raise TopologyError(f"{name}: {exc}") from exc
    if name.endswith((".graphml", ".xml")):
        return read_graphml(name)
    raise TopologyError(f"{name}: unknown topology file type (use .json or .graphml)")


def save(topology: Topology, path: str | os.PathLike[str]) -> None:
    """Save as ``.json`` or ``.graphml`` (chosen by the suffix)."""
    name = os.fspath(path)
    if name.endswith(".json"):
        with open(name, "w", encoding="utf-8") as file:
            file.write(to_json(topology) + "\n")
    elif name.endswith((".graphml", ".xml")):
        write_graphml(topology, name)
    else:
        raise TopologyError(f"{name}: unknown topology file type (use .json or .graphml)")
