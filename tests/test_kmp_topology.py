"""The KMP topology model (mpss_fast.kmp): nodes and SIDs, links, files, built-ins, the networkx boundary."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

from mpss_fast import InputTypeError, ParameterError
from mpss_fast.exceptions import TopologyError
from mpss_fast.kmp import (
    METRO_ENDPOINTS,
    Link,
    Topology,
    auto_sid,
    backbone,
    builtin,
    fibre_link,
    from_dict,
    from_json,
    load,
    metro,
    random_mesh,
    read_graphml,
    save,
    to_dict,
    to_json,
    write_graphml,
)

LINK = {"rate_bps": 1000.0, "pool_bytes": 4096, "latency_s": 0.001}


def triangle() -> Topology:
    topology = Topology()
    for name in ("a", "b", "c"):
        topology.add_node(name)
    topology.add_link("a", "b", **LINK)
    topology.add_link("b", "c", **LINK, cost=2.5)
    topology.add_link("c", "a", rate_bps=10, pool_bytes=0, latency_s=0)
    return topology


# -- networkx is optional -------------------------------------------------------------------


def test_import_mpss_fast_leaves_networkx_alone() -> None:
    code = "import sys, mpss_fast, mpss_fast.wire; assert 'networkx' not in sys.modules, 'networkx imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_kmp_without_networkx_says_what_to_install() -> None:
    code = (
        "import sys\n"
        "sys.modules['networkx'] = None  # makes 'import networkx' fail\n"
        "try:\n"
        "    import mpss_fast.kmp\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert "pip install 'mpss-fast[sim]'" in out


# -- nodes and SIDs -------------------------------------------------------------------------


def test_automatic_sids_follow_the_documented_scheme() -> None:
    assert auto_sid(1) == "2001:db8:0:1::1"
    assert auto_sid(0xFFFF) == "2001:db8:0:ffff::1"
    assert auto_sid(70000) == "2001:db8:1:1170::1"
    topology = Topology()
    assert [topology.add_node(name) for name in "xyz"] == [auto_sid(1), auto_sid(2), auto_sid(3)]
    with pytest.raises(TopologyError):
        auto_sid(0)
    with pytest.raises(TopologyError):
        auto_sid(1 << 32)


def test_given_sids_are_normalised_and_skipped_by_the_numbering() -> None:
    topology = Topology()
    assert topology.add_node("x", sid="2001:DB8:0:2:0:0:0:1") == auto_sid(2)
    assert topology.add_node("y") == auto_sid(1)
    assert topology.add_node("z") == auto_sid(3)  # 2 is taken by x
    assert topology.sid("x") == "2001:db8:0:2::1"
    assert topology.node_of("2001:db8:0:2:0::1") == "x"
    with pytest.raises(TopologyError, match="no node has SID"):
        topology.node_of("2001:db8::99")


@pytest.mark.parametrize(
    ("sid", "error", "match"),
    [
        ("not-an-address", TopologyError, "not an IPv6 address"),
        ("10.0.0.1", TopologyError, "not an IPv6 address"),
        ("fe80::1%eth0", TopologyError, "unicast address without a scope"),
        ("::", TopologyError, "unicast"),
        ("ff02::1", TopologyError, "unicast"),
        (b"2001:db8::1", InputTypeError, "IPv6 address string"),
    ],
)
def test_bad_sids(sid: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        Topology().add_node("x", sid=sid)  # type: ignore[arg-type]


def test_duplicate_sid_names_its_owner() -> None:
    topology = Topology()
    topology.add_node("x", sid="2001:db8::5")
    with pytest.raises(TopologyError, match="already belongs to node 'x'"):
        topology.add_node("y", sid="2001:db8:0::5")


def test_node_errors() -> None:
    topology = triangle()
    with pytest.raises(TopologyError, match="duplicate node 'a'"):
        topology.add_node("a")
    with pytest.raises(TopologyError, match="empty"):
        topology.add_node("")
    with pytest.raises(InputTypeError, match="str"):
        topology.add_node(5)  # type: ignore[arg-type]
    with pytest.raises(TopologyError, match="unknown node 'nowhere'"):
        topology.sid("nowhere")
    with pytest.raises(TopologyError, match="unknown node 'nowhere'"):
        topology.neighbors("nowhere")
    with pytest.raises(InputTypeError):
        topology.sid(None)  # type: ignore[arg-type]


# -- links ----------------------------------------------------------------------------------


def test_accessors() -> None:
    topology = triangle()
    assert topology.nodes == ("a", "b", "c")
    assert len(topology) == 3 and "a" in topology and "q" not in topology and 1 not in topology
    assert set(topology.neighbors("b")) == {"a", "c"}
    assert topology.has_link("a", "b") and topology.has_link("b", "a")
    assert topology.link("c", "b") == Link("c", "b", 1000.0, 4096, 0.001, 2.5)
    assert topology.link("b", "c").base_cost == 2.5 and topology.link("a", "b").base_cost == 1.0
    assert len(topology.links) == 3
    assert repr(topology) == "Topology(3 nodes, 3 links)"
    assert isinstance(topology.link("a", "c").rate_bps, float) and topology.link("a", "c").pool_bytes == 0


def test_graph_is_a_read_only_view() -> None:
    topology = triangle()
    view = topology.graph
    assert view.nodes["a"]["sid"] == topology.sid("a")
    assert view.edges["a", "b"]["pool_bytes"] == 4096
    with pytest.raises(nx.NetworkXError):
        view.add_node("d")


def test_update_link_and_copy() -> None:
    topology = triangle()
    other = topology.copy()
    assert topology.update_link("b", "a", pool_bytes=10).pool_bytes == 10
    assert topology.link("a", "b").rate_bps == 1000.0  # unchanged
    assert other.link("a", "b").pool_bytes == 4096
    assert topology != other
    with pytest.raises(TopologyError, match="pool_bytes must be >= 0"):
        topology.update_link("a", "b", pool_bytes=-1)
    assert topology.link("a", "b").pool_bytes == 10  # a refused update changes nothing
    with pytest.raises(TopologyError, match="unknown node 'z'"):
        topology.update_link("a", "z", pool_bytes=1)
    topology.add_node("d")
    with pytest.raises(TopologyError, match="no link between 'a' and 'd'"):
        topology.update_link("a", "d", pool_bytes=1)
    with pytest.raises(TopologyError, match="no link between 'd' and 'a'"):
        topology.link("d", "a")


@pytest.mark.parametrize(
    ("a", "b", "attrs", "error", "match"),
    [
        ("a", "b", LINK, TopologyError, "duplicate link 'a'-'b'"),
        ("b", "a", LINK, TopologyError, "duplicate link"),
        ("a", "a", LINK, TopologyError, "itself"),
        ("a", "zz", LINK, TopologyError, "unknown node 'zz'"),
        ("zz", "a", LINK, TopologyError, "unknown node 'zz'"),
        ("c", "d", {**LINK, "rate_bps": -1}, TopologyError, "rate_bps must be a finite number >= 0"),
        ("c", "d", {**LINK, "rate_bps": math.inf}, TopologyError, "rate_bps"),
        ("c", "d", {**LINK, "latency_s": math.nan}, TopologyError, "latency_s"),
        ("c", "d", {**LINK, "latency_s": -0.5}, TopologyError, "latency_s"),
        ("c", "d", {**LINK, "cost": -2}, TopologyError, "cost"),
        ("c", "d", {**LINK, "pool_bytes": -5}, TopologyError, "pool_bytes must be >= 0"),
        ("c", "d", {**LINK, "pool_bytes": 1.5}, TopologyError, "whole number"),
        ("c", "d", {**LINK, "pool_bytes": math.inf}, TopologyError, "whole number"),
        ("c", "d", {**LINK, "pool_bytes": "100"}, InputTypeError, "pool_bytes must be an integer"),
        ("c", "d", {**LINK, "rate_bps": "fast"}, InputTypeError, "rate_bps must be a number"),
        ("c", "d", {**LINK, "rate_bps": True}, InputTypeError, "rate_bps must be a number"),
        ("c", "d", {**LINK, "cost": None}, None, ""),
        ("c", "d", {**LINK, "pool_bytes": 7.0}, None, ""),
    ],
)
def test_add_link_checks(a: str, b: str, attrs: dict, error: type[Exception] | None, match: str) -> None:
    topology = triangle()
    topology.add_node("d")
    if error is None:
        link = topology.add_link(a, b, **attrs)
        assert type(link.pool_bytes) is int
        return
    before = to_dict(topology)
    with pytest.raises(error, match=match):
        topology.add_link(a, b, **attrs)
    assert to_dict(topology) == before


def test_from_graph() -> None:
    graph = nx.Graph()
    graph.add_node("p", sid="2001:db8::1", label="ignored")
    graph.add_edge("p", "q", rate_bps=5, pool_bytes=6, latency_s=0.5, colour="ignored")
    topology = Topology.from_graph(graph)
    assert topology.sid("p") == "2001:db8::1" and topology.sid("q") == auto_sid(1)
    assert topology.link("p", "q") == Link("p", "q", 5.0, 6, 0.5, None)
    with pytest.raises(TopologyError, match="undirected"):
        Topology.from_graph(nx.DiGraph(graph))
    with pytest.raises(TopologyError, match="undirected"):
        Topology.from_graph(nx.MultiGraph(graph))
    with pytest.raises(InputTypeError):
        Topology.from_graph({"p": "q"})
    bad = nx.Graph([(1, 2)])
    with pytest.raises(TopologyError, match="must be a string"):
        Topology.from_graph(bad)
    lacking = nx.Graph()
    lacking.add_edge("p", "q", rate_bps=1)
    with pytest.raises(TopologyError, match="lacks pool_bytes, latency_s"):
        Topology.from_graph(lacking)


# -- files ----------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [triangle, metro, backbone, lambda: random_mesh(60, 3, seed=9)])
def test_json_round_trip(make: object, tmp_path: Path) -> None:
    topology = make()  # type: ignore[operator]
    again = from_json(to_json(topology))
    assert again == topology
    assert to_dict(again) == to_dict(topology)
    save(topology, tmp_path / "t.json")
    assert load(tmp_path / "t.json") == topology
    assert from_dict(json.loads((tmp_path / "t.json").read_text())) == topology


@pytest.mark.parametrize("make", [triangle, metro, backbone, lambda: random_mesh(60, 3, seed=9)])
def test_graphml_round_trip(make: object, tmp_path: Path) -> None:
    topology = make()  # type: ignore[operator]
    write_graphml(topology, tmp_path / "t.graphml")
    assert read_graphml(tmp_path / "t.graphml") == topology
    save(topology, str(tmp_path / "u.graphml"))
    again = load(tmp_path / "u.graphml")
    assert again == topology
    assert [again.sid(n) for n in again.nodes] == [topology.sid(n) for n in topology.nodes]


def test_json_schema() -> None:
    data = to_dict(triangle())
    assert data["nodes"][0] == {"name": "a", "sid": auto_sid(1)}
    link = next(entry for entry in data["links"] if {entry["a"], entry["b"]} == {"b", "c"})
    assert {k: v for k, v in link.items() if k not in "ab"} == {
        "rate_bps": 1000.0,
        "pool_bytes": 4096,
        "latency_s": 0.001,
        "cost": 2.5,
    }
    plain = next(entry for entry in data["links"] if {entry["a"], entry["b"]} == {"a", "b"})
    assert "cost" not in plain
    minimal = from_json('{"nodes": [{"name": "x"}, {"name": "y", "sid": "2001:db8::9"}], "links": []}')
    assert minimal.nodes == ("x", "y") and minimal.sid("x") == auto_sid(1)
    assert from_json(b'{"nodes": []}').nodes == ()


GOOD_LINK = '{"a": "x", "b": "y", "rate_bps": 1, "pool_bytes": 2, "latency_s": 0.1}'


def with_links(*links: str) -> str:
    """A document with nodes x and y and the given link objects."""
    return '{"nodes": [{"name": "x"}, {"name": "y"}], "links": [' + ", ".join(links) + "]}"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "not valid JSON"),
        ("{", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        ("[1, 2]", "JSON object with 'nodes' and 'links', not list"),
        ('{"links": []}', "'nodes' must be a list"),
        ('{"nodes": {}, "links": []}', "'nodes' must be a list"),
        ('{"nodes": [], "links": {}}', "'links' must be a list"),
        ('{"nodes": [], "edges": []}', "unknown top-level key"),
        ('{"nodes": ["x"]}', r"nodes\[0\] must be an object"),
        ('{"nodes": [{"sid": "2001:db8::1"}]}', r"nodes\[0\]: missing 'name'"),
        ('{"nodes": [{"name": "x", "label": "X"}]}', r"nodes\[0\]: unknown key\(s\) 'label'"),
        ('{"nodes": [{"name": 7}]}', r"nodes\[0\]: a node name must be str"),
        ('{"nodes": [{"name": ""}]}', r"nodes\[0\]: a node name must not be empty"),
        ('{"nodes": [{"name": "x"}, {"name": "x"}]}', r"nodes\[1\]: duplicate node 'x'"),
        ('{"nodes": [{"name": "x", "sid": "nope"}]}', r"nodes\[0\]: the SID of node 'x' is not an IPv6 address"),
        ('{"nodes": [{"name": "x", "sid": 5}]}', r"nodes\[0\]: the SID of node 'x' must be an IPv6 address string"),
        (
            '{"nodes": [{"name": "x", "sid": "2001:db8::1"}, {"name": "y", "sid": "2001:db8::1"}]}',
            r"nodes\[1\].*already belongs",
        ),
        (with_links("[1, 2]"), r"links\[0\] must be an object"),
        (with_links('{"a": "x", "b": "y"}'), r"links\[0\]: missing 'rate_bps', 'pool_bytes'"),
        (with_links(GOOD_LINK[:-1] + ', "rate": 5}'), r"links\[0\]: unknown key\(s\) 'rate'"),
        (with_links(GOOD_LINK.replace('"y"', '"q"')), "unknown node 'q'"),
        (with_links(GOOD_LINK, GOOD_LINK), r"links\[1\]: duplicate link"),
        (with_links(GOOD_LINK.replace(": 1,", ": -1,")), r"links\[0\].*rate_bps"),
        (with_links(GOOD_LINK.replace(": 1,", ": null,")), r"links\[0\].*rate_bps"),
        (with_links(GOOD_LINK.replace(": 2,", ": 2.5,")), r"links\[0\].*whole number"),
        (with_links(GOOD_LINK.replace(": 2,", ': "2",')), r"links\[0\].*pool_bytes"),
        (with_links(GOOD_LINK.replace(": 0.1", ": NaN")), r"links\[0\].*latency_s"),
        (with_links(GOOD_LINK.replace(": 0.1", ": 1e999")), r"links\[0\].*latency_s"),
        (with_links(GOOD_LINK.replace('"y"', '"x"')), "itself"),
        ("[" * 100_000, "not valid JSON"),
    ],
)
def test_malformed_json(text: str | bytes, match: str) -> None:
    with pytest.raises(TopologyError, match=match):
        from_json(text)


def test_load_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"nodes": 3}')
    with pytest.raises(TopologyError, match=r"bad\.json: 'nodes' must be a list"):
        load(bad)
    with pytest.raises(TopologyError, match="unknown topology file type"):
        load(tmp_path / "t.yaml")
    with pytest.raises(TopologyError, match="unknown topology file type"):
        save(triangle(), tmp_path / "t.yaml")
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.json")
    with pytest.raises(InputTypeError):
        from_json(None)  # type: ignore[arg-type]


HEAD = (
    '<?xml version="1.0" encoding="utf-8"?>\n'
    '<graphml xmlns="http://graphml.graphdrawing.org/xmlns">\n'
    '<key id="sid" for="node" attr.name="sid" attr.type="string"/>\n'
    '<key id="r" for="edge" attr.name="rate_bps" attr.type="double"/>\n'
    '<key id="p" for="edge" attr.name="pool_bytes" attr.type="long"/>\n'
    '<key id="l" for="edge" attr.name="latency_s" attr.type="double"/>\n'
    '<key id="c" for="edge" attr.name="cost" attr.type="string"/>\n'
)
EDGE = '<edge source="x" target="y"><data key="r">1</data><data key="p">2</data><data key="l">0.5</data></edge>'


def graphml(body: str, directed: str = "undirected") -> str:
    nodes = '<node id="x"/><node id="y"/>'
    return f'{HEAD}<graph edgedefault="{directed}">{nodes}{body}</graph></graphml>'


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("not xml at all", "not a readable GraphML graph"),
        ("<graphml><graph>", "not a readable GraphML graph"),
        (graphml(EDGE, "directed"), "directed"),
        (graphml(EDGE + EDGE), "more than one link between 'x' and 'y'"),
        (graphml(EDGE.replace('<data key="p">2</data>', "")), "lacks pool_bytes"),
        (graphml(EDGE.replace(">1<", ">fast<")), "not a readable GraphML graph"),
        (graphml(EDGE.replace(">2<", ">-2<")), "pool_bytes must be >= 0"),
        (graphml(EDGE.replace(">0.5<", ">-0.5<")), "latency_s"),
        (graphml(EDGE.replace("</edge>", '<data key="c">cheap</data></edge>')), "cost must be a number"),
        (graphml(EDGE.replace('target="y"', 'target="x"')), "itself"),
        (graphml('<node id="z"><data key="sid">nope</data></node>'), "not an IPv6 address"),
    ],
)
def test_malformed_graphml(text: str, match: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.graphml"
    path.write_text(text)
    with pytest.raises(TopologyError, match=match):
        read_graphml(path)


def test_graphml_good_minimal(tmp_path: Path) -> None:
    path = tmp_path / "ok.graphml"
    path.write_text(graphml(EDGE))
    topology = read_graphml(path)
    assert topology.link("x", "y") == Link("x", "y", 1.0, 2, 0.5, None)


# -- built-ins ------------------------------------------------------------------------------


def test_metro() -> None:
    topology = metro()
    assert 8 <= len(topology) <= 12
    a, b = METRO_ENDPOINTS
    assert nx.connectivity.local_node_connectivity(topology.graph, a, b) >= 4
    assert nx.is_connected(topology.graph)
    assert builtin("metro") == topology and builtin("metro") is not builtin("metro")


def test_backbone() -> None:
    topology = backbone()
    assert 30 <= len(topology) <= 40
    assert nx.node_connectivity(topology.graph) >= 2  # no single relay cuts the network
    assert all(link.rate_bps > 0 and link.pool_bytes > 0 for link in topology.links)
    assert builtin("backbone") == topology
    with pytest.raises(ParameterError, match="known: backbone, metro"):
        builtin("ring")


def test_fibre_link() -> None:
    assert fibre_link(0) == {"rate_bps": 100_000.0, "pool_bytes": 45_000_000, "latency_s": 0.0}
    link = fibre_link(50)
    assert link["rate_bps"] == 10_000.0 and link["latency_s"] == pytest.approx(3e-4)


def test_random_mesh_is_deterministic_connected_and_regular() -> None:
    one, two, other = random_mesh(200, 4, seed=7), random_mesh(200, 4, seed=7), random_mesh(200, 4, seed=8)
    assert one == two and one != other
    graph = one.graph
    assert nx.is_connected(graph) and {d for _, d in graph.degree()} == {4}
    assert len(one) == 200 and one.nodes[0] == "n0"
    costs = {link.cost for link in one.links}
    assert costs <= {float(c) for c in range(1, 11)} and len(costs) > 1


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((1, 4), ParameterError),
        ((5, 5), ParameterError),
        ((5, 3), ParameterError),  # odd nodes * degree
        ((4, 0), ParameterError),
        ((6, 1), ParameterError),
        ((4.0, 2), InputTypeError),
        ((4, True), InputTypeError),
    ],
)
def test_random_mesh_bad_parameters(args: tuple[object, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        random_mesh(*args)  # type: ignore[arg-type]
    with pytest.raises(ParameterError):
        random_mesh(10, 2, seed=-1)
