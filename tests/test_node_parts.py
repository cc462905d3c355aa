"""The node daemon's parts one by one: configuration, the link key exchange, the peer API,
the application backend and the UDP transport's handling of bad packets.

Everything runs on 127.0.0.1 with ephemeral ports (plain HTTP, or mutual TLS from a
throwaway CA); no root, no namespaces. The whole network is in test_node_daemon.py.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import os
import re
import socket
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

aiohttp = pytest.importorskip("aiohttp")

from mpss_fast.etsi014 import kme_sim  # noqa: E402
from mpss_fast.etsi014.client import Etsi014Client  # noqa: E402
from mpss_fast.etsi014.model import KeyList  # noqa: E402
from mpss_fast.exceptions import (  # noqa: E402
    Etsi014BadRequestError,
    Etsi014ConnectionError,
    Etsi014UnauthorizedError,
    Etsi014UnavailableError,
    NodeConfigError,
    PeerApiError,
    PeerUnreachableError,
    StoreError,
)
from mpss_fast.https.server import start_server  # noqa: E402
from mpss_fast.https.tls import ssl_client_context, ssl_server_context  # noqa: E402
from mpss_fast.node.app_backend import FlowBackend  # noqa: E402
from mpss_fast.node.config import AppPair, NodeConfig, StoreSettings, load_config, parse_config  # noqa: E402
from mpss_fast.node.daemon import Node  # noqa: E402
from mpss_fast.node.linkkeys import LinkKeyFeeder, LinkKeyReceiver  # noqa: E402
from mpss_fast.node.peer_api import NODE_HEADER, PEER_PREFIX, PeerClient, make_peer_app  # noqa: E402
from mpss_fast.node.store import LinkStore  # noqa: E402
from mpss_fast.relay import LinkKeyPool, first_hop_packet, first_hop_route, relay_packet, seal_shares  # noqa: E402

from . import nodelab  # noqa: E402
from .pki import Ca  # noqa: E402


def accept(material: memoryview) -> None:
    """A tag check that passes: these tests are about key positions, not tags."""


NODES = nodelab.node_names(3)
OPERATOR = "noc"
"""An operator's identity: may read a node's stats (``peer.operators``)."""


def _closed_port() -> int:
    """A loopback TCP port nothing listens on (connections to it are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# =======================================================================================
# 1. Configuration
# =======================================================================================


def _lab(transport: str = "udp", **kw: Any) -> dict[str, dict[str, Any]]:
    """The diamond's configs (3 relays), plain HTTP, with fixed fake addresses (nothing is started)."""
    return nodelab.diamond(
        3,
        db=lambda n: f"/var/lib/mpss/{n}.db",
        peer_url=lambda me, nb: f"http://127.0.0.1:{7000 + NODES.index(nb)}",
        kme_url=lambda me, nb: "http://127.0.0.1:8443",
        peer_listen=lambda n: f"127.0.0.1:{7000 + NODES.index(n)}",
        api_listen=lambda n: f"127.0.0.1:{9000 + NODES.index(n)}",
        transport=transport,
        udp={n: f"127.0.0.1:{6000 + i}" for i, n in enumerate(NODES)} if transport == "udp" else None,
        **kw,
    )


def _summary(cfg: NodeConfig) -> dict[str, Any]:
    """Every field of a NodeConfig, the topology as its nodes, SIDs and links (Topology has no ==)."""
    out = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name != "topology"}
    topo = cfg.topology
    out["topology"] = (
        [(n, topo.sid(n)) for n in topo.nodes],
        sorted(tuple(sorted((link.a, link.b))) for link in topo.links),
    )
    return out


@pytest.mark.parametrize("transport", ["udp", "srv6"])
def test_the_nodelab_configs_are_accepted(transport: str) -> None:
    configs = _lab(transport)
    for name, raw in configs.items():
        cfg = parse_config(raw)
        assert cfg.node == name and cfg.sid == nodelab.sid(name)
        assert cfg.transport == transport and cfg.plain_http and cfg.tls is None
        assert (cfg.k, cfg.n) == (2, 3)
        assert cfg.db == Path(f"/var/lib/mpss/{name}.db")
        neighbours = {link.neighbour for link in cfg.links}
        assert neighbours == ({"R1", "R2", "R3"} if name in ("S", "D") else {"S", "D"})
        for link in cfg.links:  # SAE IDs default to the node names
            assert (link.sae_id, link.neighbour_sae_id) == (name, link.neighbour)
            assert cfg.link(link.neighbour) is link
        assert cfg.peer_listen == ("127.0.0.1", 7000 + NODES.index(name))
        if transport == "udp":
            assert cfg.udp == {n: ("127.0.0.1", 6000 + i) for i, n in enumerate(NODES)}
            assert cfg.udp_rcvbuf_bytes == 4 << 20  # the default of docs/node.md
        else:
            assert cfg.udp == {} and cfg.tun == "mpss0"
        if name in ("S", "D"):
            assert cfg.api_listen == ("127.0.0.1", 9000 + NODES.index(name))
            other = 7000 + NODES.index("D" if name == "S" else "S")
            assert cfg.pairs == (AppPair(nodelab.MASTER, nodelab.SLAVE, "S", "D", f"http://127.0.0.1:{other}"),)
        else:
            assert cfg.api_listen is None and cfg.pairs == ()
        # the defaults of docs/node.md
        assert (cfg.lease_bytes, cfg.key_batch, cfg.key_bits, cfg.low_water_bytes) == (65536, 32, 8192, 262144)
        assert (cfg.refill_interval_s, cfg.collect_s, cfg.tamper) == (0.05, 0.25, False)
        assert cfg.stores == StoreSettings(unit_bytes=1024, depth_bytes=1 << 20, window=64, pending_s=5.0)
    with pytest.raises(NodeConfigError, match="node S has no link to D"):
        parse_config(configs["S"]).link("D")


def test_optional_sections_are_read() -> None:
    raw = _lab()["R1"]
    raw.update(
        keys={"lease_bytes": 0, "batch": 7, "key_bits": 512, "low_water_bytes": 1, "refill_interval_s": 1},
        destination={"collect_s": 0.5},
        stores={"unit_bytes": 64, "depth_bytes": 4096, "window": 3, "pending_s": 0.5},
        testing={"tamper": True},
        tun="mpss-test",
    )
    raw["links"][0].update(sae_id="sae.R1@x", neighbour_sae_id="sae-S")
    cfg = parse_config(raw)
    assert (cfg.lease_bytes, cfg.key_batch, cfg.key_bits, cfg.low_water_bytes) == (0, 7, 512, 1)
    assert cfg.refill_interval_s == 1.0 and isinstance(cfg.refill_interval_s, float)
    assert (cfg.collect_s, cfg.tamper, cfg.tun) == (0.5, True, "mpss-test")
    assert cfg.stores == StoreSettings(unit_bytes=64, depth_bytes=4096, window=3, pending_s=0.5)
    assert (cfg.links[0].sae_id, cfg.links[0].neighbour_sae_id) == ("sae.R1@x", "sae-S")


def test_the_udp_receive_buffer_is_read() -> None:
    for size in (65536, 8 << 20, 1 << 30):
        assert parse_config({**_lab()["R1"], "udp_rcvbuf_bytes": size}).udp_rcvbuf_bytes == size


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string for ASCII text
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def _to_toml(data: dict[str, Any]) -> str:
    """A TOML document for ``data`` (every nested value as an inline table or array)."""
    return "".join(f"{json.dumps(key)} = {_toml_value(value)}\n" for key, value in data.items())


def test_load_config_reads_json_and_the_same_config_as_toml(tmp_path: Path) -> None:
    raw = _lab()["S"]
    raw["db"] = "state/S.db"  # relative: taken from the configuration file's directory
    raw["keys"] = {"batch": 8, "refill_interval_s": 0.5}
    raw["testing"] = {"tamper": False}
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "S.json").write_text(json.dumps(raw))
    (conf / "S.toml").write_text(_to_toml(raw))
    from_json = load_config(conf / "S.json")
    assert from_json.db == conf / "state" / "S.db"
    assert from_json.key_batch == 8 and from_json.refill_interval_s == 0.5
    assert _summary(load_config(conf / "S.toml")) == _summary(from_json)
    assert _summary(from_json) == _summary(parse_config(raw, base=conf))


def test_relative_paths_are_taken_from_the_config_files_directory(tmp_path: Path) -> None:
    raw = _lab()["R2"]
    del raw["plain_http"]
    raw["tls"] = {"cert": "pki/R2.crt", "key": "../keys/R2.key", "node_ca": "/etc/mpss/node-ca.pem"}
    for link in raw["links"]:  # with TLS every URL is https
        link["peer_url"] = link["peer_url"].replace("http://", "https://")
        link["kme_url"] = link["kme_url"].replace("http://", "https://")
    raw["db"] = "R2.db"
    conf = tmp_path / "etc"
    conf.mkdir()
    (conf / "topology.json").write_text(json.dumps(raw["topology"]))
    raw["topology"] = "topology.json"
    (conf / "R2.json").write_text(json.dumps(raw))
    cfg = load_config(conf / "R2.json")
    assert cfg.db == conf / "R2.db"
    assert cfg.tls is not None and not cfg.plain_http
    assert (cfg.tls.cert, cfg.tls.key, cfg.tls.node_ca, cfg.tls.app_ca, cfg.tls.kme_ca) == (
        conf / "pki" / "R2.crt",
        conf / "../keys/R2.key",
        Path("/etc/mpss/node-ca.pem"),
        None,  # a relay serves no applications
        Path("/etc/mpss/node-ca.pem"),  # the KMEs' CA defaults to the node CA
    )
    assert cfg.sid == nodelab.sid("R2") and set(cfg.topology.nodes) == set(NODES)
    # the topology file is looked for next to the configuration, not in the working directory
    os.remove(conf / "topology.json")
    with pytest.raises(NodeConfigError, match=r"^topology: .*topology\.json"):
        load_config(conf / "R2.json")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("node.json", b'{"node": ', r"node\.json: not valid JSON"),
        ("node.json", b"\xff\xfe{}", r"node\.json: not valid JSON"),
        ("node.toml", b"node = [", r"node\.toml: not valid TOML"),
        ("node.toml", b'node = "\xff"', r"node\.toml: not valid TOML"),
        ("node.json", b"[1, 2]", r"^config must be a table/object, not list"),
    ],
)
def test_invalid_files_are_refused_naming_the_file(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(NodeConfigError, match=message):
        load_config(path)


def test_unreadable_files_are_refused_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    with pytest.raises(
        NodeConfigError, match=rf"cannot read the node configuration {re.escape(str(missing))}: No such"
    ):
        load_config(missing)
    with pytest.raises(NodeConfigError, match=rf"cannot read the node configuration {re.escape(str(tmp_path))}: Is a"):
        load_config(tmp_path)  # a directory


def _tls(cfg: dict[str, Any]) -> None:
    del cfg["plain_http"]
    cfg["tls"] = {"cert": "S.crt", "key": "S.key", "node_ca": "node-ca.pem", "app_ca": "app-ca.pem"}


def _pair(**kw: str) -> dict[str, str]:
    return {
        "master": nodelab.MASTER, "slave": nodelab.SLAVE, "master_node": "S", "slave_node": "D",
        "peer_url": "http://127.0.0.1:7001", **kw,
    }  # fmt: skip


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation setting ``path`` ("a.b.0.c": dict keys and list indices) to ``value``."""

    def mutate(cfg: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = cfg
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target.setdefault(part, {})
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return mutate


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(cfg: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = cfg
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        del target[last]

    return mutate


def _both(*mutations: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def mutate(cfg: dict[str, Any]) -> None:
        for m in mutations:
            m(cfg)

    return mutate


_BAD: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    # unknown keys, in every section
    ("top", _set("colour", "blue"), r"^config: unknown key\(s\) colour \(allowed: api, db, destination"),
    ("links", _set("links.0.kme", "x"), r"^links\[0\]: unknown key\(s\) kme \(allowed: kme_url, neighbour,"),
    ("peer", _set("peer.port", 1), r"^peer: unknown key\(s\) port \(allowed: listen, operators\)"),
    ("api", _set("api.pair", []), r"^api: unknown key\(s\) pair \(allowed: listen, pairs\)"),
    ("api.pairs", _set("api.pairs.0.key", 1), r"^api\.pairs\[0\]: unknown key\(s\) key \(allowed: master,"),
    ("keys", _set("keys.lease", 1), r"^keys: unknown key\(s\) lease \(allowed: batch, key_bits, lease_bytes,"),
    ("destination", _set("destination.wait_s", 1), r"^destination: unknown key\(s\) wait_s \(allowed: collect_s"),
    ("testing", _set("testing.evil", True), r"^testing: unknown key\(s\) evil \(allowed: tamper\)"),
    ("udp", _set("udp.R9", "127.0.0.1:1"), r"^udp: unknown key\(s\) R9 \(allowed: D, R1, R2, R3, S\)"),
    ("tls", _both(_tls, _set("tls.pass", "x")), r"^tls: unknown key\(s\) pass \(allowed: app_ca, cert, key, kme_ca,"),
    ("tls.ca of old", _both(_tls, _set("tls.ca", "ca.pem")), r"^tls\.ca is no longer accepted: .* tls\.node_ca "),
    ("topology", _set("topology.extra", 1), r"^topology: unknown top-level key\(s\) 'extra'"),
    # missing keys
    *[
        (f"missing {key}", _drop(key), rf"^config: missing key\(s\) {key}$")
        for key in ("node", "db", "topology", "k", "n", "links", "peer")
    ],
    *[
        (f"missing links[0].{key}", _drop(f"links.0.{key}"), rf"^links\[0\]: missing key\(s\) {key}$")
        for key in ("neighbour", "peer_url", "kme_url")
    ],
    ("missing peer.listen", _set("peer", {}), r"^peer: missing key\(s\) listen$"),
    ("missing tls.node_ca", _both(_tls, _drop("tls.node_ca")), r"^tls: missing key\(s\) node_ca$"),
    ("missing tls.app_ca", _both(_tls, _drop("tls.app_ca")), r"^tls\.app_ca is required at a node serving appl"),
    ("missing pair end", _drop("api.pairs.0.slave_node"), r"^api\.pairs\[0\]: missing key\(s\) slave_node$"),
    ("missing pair peer", _drop("api.pairs.0.peer_url"), r"^api\.pairs\[0\]: missing key\(s\) peer_url$"),
    (
        "pair peer scheme",
        _set("api.pairs.0.peer_url", "https://x"),
        r"^api\.pairs\[0\]\.peer_url must start with http://",
    ),
    # sections of the wrong type
    ("config list", lambda cfg: cfg.clear(), r"^config: missing key\(s\) node, db"),
    ("links empty", _set("links", []), r"^links must be a non-empty list"),
    ("links object", _set("links", {"neighbour": "R1"}), r"^links must be a non-empty list"),
    ("link string", _set("links.0", "R1"), r"^links\[0\] must be a table/object, not str"),
    ("peer string", _set("peer", "127.0.0.1:1"), r"^peer must be a table/object, not str"),
    ("keys list", _set("keys", [1]), r"^keys must be a table/object, not list"),
    # node, k, n
    ("node empty", _set("node", ""), r"^node must be a non-empty string, not ''"),
    ("node unknown", _set("node", "X"), r"^node 'X' is not in the topology"),
    ("k float", _set("k", 2.0), r"^k must be an integer >= 2 and <= 255, not 2\.0"),
    ("k string", _set("k", "2"), r"^k must be an integer >= 2 and <= 255, not '2'"),
    ("k bool", _set("k", True), r"^k must be an integer >= 2 and <= 255, not True"),
    ("k 1", _set("k", 1), r"^k must be an integer >= 2 and <= 255, not 1"),
    ("n 256", _set("n", 256), r"^n must be an integer >= 2 and <= 255, not 256"),
    ("n null", _set("n", None), r"^n must be an integer >= 2 and <= 255, not None"),
    ("k > n", _both(_set("k", 3), _set("n", 2)), r"^k=3 exceeds n=2$"),
    # transport, udp, tun
    ("transport", _set("transport", "carrier-pigeon"), r"^transport must be one of srv6, udp, not 'carrier-pigeon'"),
    ("udp missing", _drop("udp.R3"), r"^udp: transport 'udp' needs an endpoint for every node; 'R3' has none"),
    ("udp absent", _drop("udp"), r"^udp: transport 'udp' needs an endpoint for every node; 'S' has none"),
    ("udp bad endpoint", _set("udp.D", "127.0.0.1"), r"^udp\.D must be HOST:PORT or \[IPv6\]:PORT, not '127\.0\.0\.1'"),
    ("udp bad port", _set("udp.D", "127.0.0.1:65536"), r"^udp\.D must be HOST:PORT .*65536"),
    ("udp with srv6", _set("transport", "srv6"), r"^udp: endpoints are only used with transport 'udp'"),
    ("tun 16 chars", _set("tun", "a" * 16), r"^tun: interface names have at most 15 characters, not 'a{16}'"),
    ("tun empty", _set("tun", ""), r"^tun must be a non-empty string"),
    *[
        (
            f"udp_rcvbuf_bytes {value!r}",
            _set("udp_rcvbuf_bytes", value),
            rf"^udp_rcvbuf_bytes must be an integer >= 65536 and <= 1073741824, not {re.escape(repr(value))}$",
        )
        for value in (0, -1, 65535, 1 << 30 | 1, 1.5, 4194304.0, "4194304", True, None)
    ],
    (
        "udp_rcvbuf_bytes with srv6",
        _both(_set("transport", "srv6"), _drop("udp"), _set("udp_rcvbuf_bytes", 65536)),
        r"^udp_rcvbuf_bytes: only used with transport 'udp'$",
    ),
    # TLS
    ("tls and plain", _both(_tls, _set("plain_http", True)), r"^plain_http = true and a tls section exclude"),
    ("neither", _drop("plain_http"), r"^a tls section \(cert, key, node_ca, app_ca\) is required; plain_http = "),
    ("plain false", _set("plain_http", False), r"^a tls section \(cert, key, node_ca, app_ca\) is required"),
    ("plain string", _set("plain_http", "yes"), r"^plain_http must be true or false, not 'yes'"),
    ("tls.cert empty", _both(_tls, _set("tls.cert", "")), r"^tls\.cert must be a non-empty string"),
    # links
    ("non-neighbour", _set("links.0.neighbour", "D"), r"^links\[0\]: the topology has no link S-D$"),
    ("unknown neighbour", _set("links.0.neighbour", "Q"), r"^links\[0\]: node 'Q' is not in the topology$"),
    ("self link", _set("links.0.neighbour", "S"), r"^links\[0\]: the topology has no link S-S$"),
    ("duplicate link", _set("links.1.neighbour", "R1"), r"^links\[1\]: a second link to R1$"),
    ("peer_url empty", _set("links.2.peer_url", ""), r"^links\[2\]\.peer_url must be a non-empty string"),
    ("kme_url number", _set("links.2.kme_url", 8443), r"^links\[2\]\.kme_url must be a non-empty string"),
    ("bad sae_id", _set("links.0.sae_id", "no spaces"), r"^links\[0\]\.sae_id: SAE ID must be 1\.\.128 char"),
    ("bad neighbour sae", _set("links.1.neighbour_sae_id", "a/b"), r"^links\[1\]\.neighbour_sae_id: SAE ID"),
    ("peer.listen", _set("peer.listen", "nowhere"), r"^peer\.listen must be HOST:PORT or \[IPv6\]:PORT, not 'nowhere'"),
    ("api.listen", _set("api.listen", 9443), r"^api\.listen must be a non-empty string, not 9443"),
    # application pairs
    (
        "pair unknown node",
        _set("api.pairs.0.slave_node", "Z"),
        r"^api\.pairs\[0\] \(app-S at S -> app-D at Z\): node 'Z' is not in the topology$",
    ),
    (
        "pair unknown master node",
        _set("api.pairs.0", _pair(master="app-Y", master_node="Y", slave="app-S", slave_node="S")),
        r"^api\.pairs\[0\] \(app-Y at Y -> app-S at S\): node 'Y' is not in the topology$",
    ),
    (
        "n above the node-disjoint paths",
        _set("n", 4),
        r"^api\.pairs\[0\] \(app-S at S -> app-D at D\): k=2, n=4 asks for 4 node-disjoint paths from S to D, "
        r"but the topology has 3; set n to at most 3$",
    ),
    (
        "fewer node-disjoint paths than k",
        _both(
            _set("k", 2),
            _set("n", 2),
            _set("topology", nodelab.topology(1)),
            _drop("udp.R2"),
            _drop("udp.R3"),
            _set(
                "links", [{"neighbour": "R1", "peer_url": "http://127.0.0.1:7002", "kme_url": "http://127.0.0.1:8443"}]
            ),
        ),
        r"^api\.pairs\[0\] \(app-S at S -> app-D at D\): k=2, n=2 asks for 2 node-disjoint paths from S to D, "
        r"but the topology has 1; k-of-n sharing needs at least 2$",
    ),
    ("pair same node", _set("api.pairs.0.slave_node", "S"), r"^api\.pairs\[0\]: master and slave are at the same"),
    (
        "pair not here",
        _set("api.pairs.0", _pair(master_node="R1", slave_node="D")),
        r"^api\.pairs\[0\]: neither end of the pair is at this node \(S\)",
    ),
    (
        "pair direction twice",
        _set("api.pairs", [_pair(), _pair(master="app-S2", slave="app-D2")]),
        r"^api\.pairs\[1\]: one SAE pair per \(master node, slave node\) direction",
    ),
    ("pair bad sae", _set("api.pairs.0.master", "app S"), r"^api\.pairs\[0\]\.master: SAE ID must be"),
    ("pair string", _set("api.pairs.0", "app-S"), r"^api\.pairs\[0\] must be a table/object, not str"),
    # keys.* and destination.*
    (
        "lease negative",
        _set("keys.lease_bytes", -1),
        r"^keys\.lease_bytes must be an integer >= 0 and <= \d+, not -1",
    ),
    (
        "lease float",
        _set("keys.lease_bytes", 1.5),
        r"^keys\.lease_bytes must be an integer >= 0 and <= \d+, not 1\.5",
    ),
    ("batch 0", _set("keys.batch", 0), r"^keys\.batch must be an integer >= 1 and <= 1024, not 0"),
    ("batch 1025", _set("keys.batch", 1025), r"^keys\.batch must be an integer >= 1 and <= 1024, not 1025"),
    ("batch bool", _set("keys.batch", True), r"^keys\.batch must be an integer >= 1 and <= 1024, not True"),
    ("key_bits 0", _set("keys.key_bits", 0), r"^keys\.key_bits must be an integer >= 64 and <= 65536, not 0"),
    ("key_bits odd", _set("keys.key_bits", 100), r"^keys\.key_bits must be a multiple of 8"),
    ("key_bits str", _set("keys.key_bits", "256"), r"^keys\.key_bits must be an integer >= 64"),
    ("low water 0", _set("keys.low_water_bytes", 0), r"^keys\.low_water_bytes must be an integer >= 1, not 0"),
    (
        "refill 0",
        _set("keys.refill_interval_s", 0),
        r"^keys\.refill_interval_s must be a number of seconds in \(0, .*\], not 0",
    ),
    (
        "refill -1",
        _set("keys.refill_interval_s", -1),
        r"^keys\.refill_interval_s must be .* not -1",
    ),
    ("refill bool", _set("keys.refill_interval_s", True), r"^keys\.refill_interval_s must be a number of seconds"),
    ("refill str", _set("keys.refill_interval_s", "1"), r"^keys\.refill_interval_s must be a number of seconds"),
    (
        "collect 0",
        _set("destination.collect_s", 0),
        r"^destination\.collect_s must be a number of seconds in",
    ),
    ("collect nan", _set("destination.collect_s", float("nan")), r"^destination\.collect_s must be a number of"),
    (
        "dec_wait gone",
        _set("destination.dec_wait_s", 2.0),
        r"^destination\.dec_wait_s is gone: dec_keys answers at once",
    ),
    # stores
    ("unit 16", _set("stores.unit_bytes", 16), r"^stores\.unit_bytes must be an integer >= 32"),
    ("unit 8 KiB", _set("stores.unit_bytes", 8192), r"^stores\.unit_bytes must be an integer .*<= 4096"),
    ("depth below a unit", _set("stores.depth_bytes", 512), r"^stores\.depth_bytes must be an integer >= 1024"),
    ("window 0", _set("stores.window", 0), r"^stores\.window must be an integer >= 1"),
    ("pending 0", _set("stores.pending_s", 0), r"^stores\.pending_s must be a number of seconds"),
    ("stores typo", _set("stores.depth", 1), r"^stores: unknown key"),
    # testing
    ("tamper int", _set("testing.tamper", 1), r"^testing\.tamper must be true or false, not 1"),
    ("tamper string", _set("testing.tamper", "true"), r"^testing\.tamper must be true or false, not 'true'"),
]


@pytest.mark.parametrize(("mutate", "message"), [pytest.param(m, msg, id=i) for i, m, msg in _BAD])
def test_bad_configs_are_refused_naming_the_key(mutate: Callable[[dict[str, Any]], None], message: str) -> None:
    raw = copy.deepcopy(_lab()["S"])
    mutate(raw)
    with pytest.raises(NodeConfigError, match=message):
        parse_config(raw)


def test_n_is_checked_against_the_paths_only_for_keys_this_node_sources() -> None:
    # n is the number of node-disjoint paths for keys this node sources: a relay sources none, and the
    # slave's end of a pair none for it (the master's node plans the paths).
    for name in ("R1", "D"):
        assert parse_config({**_lab()[name], "n": 4, "k": 2}).n == 4
    raw = _lab()["D"]
    raw["n"] = 4
    raw["api"]["pairs"].append(_pair(master="app-D", slave="app-S", master_node="D", slave_node="S"))
    with pytest.raises(NodeConfigError, match=r"^api\.pairs\[1\] \(app-D at D -> app-S at S\): k=2, n=4 asks for 4 "):
        parse_config(raw)
    raw["n"] = 3
    assert len(parse_config(raw).pairs) == 2  # as many paths as the topology has: accepted


def test_a_relay_without_pairs_may_have_no_api_but_pairs_need_their_listen_address() -> None:
    relay = parse_config(_lab()["R1"])
    assert relay.api_listen is None and relay.pairs == ()
    listen_only = _lab()["R1"]
    listen_only["api"] = {"listen": "127.0.0.1:9999"}
    assert parse_config(listen_only).api_listen == ("127.0.0.1", 9999)


def test_pairs_without_api_listen_are_refused() -> None:
    raw = _lab()["S"]
    del raw["api"]["listen"]
    with pytest.raises(NodeConfigError, match=r"api"):
        parse_config(raw)


@pytest.mark.parametrize("pairs", [5, None])
def test_pairs_that_are_not_a_list_are_refused(pairs: Any) -> None:
    raw = _lab()["S"]
    raw["api"]["pairs"] = pairs
    with pytest.raises(NodeConfigError, match=r"api\.pairs"):
        parse_config(raw)


def test_one_sae_pair_at_two_node_pairs_is_refused() -> None:
    raw = _lab()["S"]
    raw["api"]["pairs"].append(_pair(master_node="D", slave_node="S"))  # app-S cannot be at S and at D
    with pytest.raises(NodeConfigError, match=r"api\.pairs\[1\]"):
        parse_config(raw)


# =======================================================================================
# 2. The link key exchange, without the peer API: feeder.announce -> receiver.receive
# =======================================================================================

LINK = "A>B"
BATCH, KEY_BITS = 4, 256
BATCH_BYTES = BATCH * KEY_BITS // 8


class Kme(kme_sim.KmeSimBackend):
    """The link's KME simulator, counting ``enc_keys`` and able to be 'down' (503) for some SAEs."""

    def __init__(self) -> None:
        super().__init__([("A", "B")])
        self.enc_calls = 0
        self.down: set[str] = set()

    async def enc_keys(self, master: str, slave: str, number: int, size_bits: int) -> KeyList:
        if master in self.down:
            raise Etsi014UnavailableError("KME under maintenance")
        self.enc_calls += 1
        return await super().enc_keys(master, slave, number, size_bits)

    async def dec_keys(self, slave: str, master: str, key_ids: list[uuid.UUID]) -> KeyList:
        if slave in self.down:
            raise Etsi014UnavailableError("KME under maintenance")
        return await super().dec_keys(slave, master, key_ids)


@dataclass
class Link:
    """Both ends of the direction A>B: A's store and feeder, B's store and receiver, one KME over HTTP."""

    tmp: Path
    kme: Kme
    kme_url: str
    a: LinkStore
    b: LinkStore
    receiver: LinkKeyReceiver
    answers: list[str]
    clients: list[Etsi014Client]

    def client(self, sae: str, url: str | None = None) -> Etsi014Client:
        client = Etsi014Client(url or self.kme_url, sae_id=sae, timeout=5)
        self.clients.append(client)
        return client

    async def announce(self, start: int, key_ids: list[uuid.UUID], size: int) -> str:
        answer = await self.receiver.receive(start, key_ids, size)
        status: str = answer["status"]
        self.answers.append(status)
        return status

    def feeder(
        self,
        store: LinkStore | None = None,
        announce: Callable[[int, list[uuid.UUID], int], Awaitable[str]] | None = None,
        *,
        low_water: int = BATCH_BYTES,
        kme: Etsi014Client | None = None,
    ) -> LinkKeyFeeder:
        return LinkKeyFeeder(
            store or self.a,
            LINK,
            kme or self.client("A"),
            "B",
            announce or self.announce,
            batch=BATCH,
            key_bits=KEY_BITS,
            low_water=low_water,
            interval=0.01,
        )

    def reopen_a(self) -> LinkStore:
        """A restarts: its store is closed and opened again."""
        self.a.close()
        self.a = LinkStore(self.tmp / "A.db")
        return self.a

    def ends(self) -> tuple[int, int]:
        return self.a.stream_end(LINK), self.b.stream_end(LINK)

    def assert_same_streams(self) -> int:
        """Both streams hold the same bytes at the same offsets; returns the common length."""
        end_a, end_b = self.ends()
        assert end_a == end_b
        if end_a == 0:
            return 0
        sender, receiver = self.a.pool(LINK), self.b.pool(LINK)
        assert (sender.position, sender.available) == (receiver.position, receiver.available)
        while sender.available:
            key_id, mine = sender.take(min(100, sender.available))
            theirs = receiver.take_at(key_id, len(mine), accept)
            assert mine == theirs and any(mine)
        return end_a


@asynccontextmanager
async def _link(tmp_path: Path) -> AsyncIterator[Link]:
    kme = Kme()
    server = await kme_sim.start(kme, "127.0.0.1", 0, plain_http=True)
    url = f"http://127.0.0.1:{server.port}"
    a, b = LinkStore(tmp_path / "A.db"), LinkStore(tmp_path / "B.db")
    clients: list[Etsi014Client] = []
    link = Link(tmp_path, kme, url, a, b, LinkKeyReceiver(b, LINK, Etsi014Client(url, sae_id="B"), "A"), [], clients)
    clients.append(link.receiver.kme)
    try:
        yield link
    finally:
        for client in clients:
            await client.close()
        link.a.close()
        link.b.close()
        await server.close()


def test_both_ends_build_the_same_stream(tmp_path: Path) -> None:
    async def main() -> None:
        async with _link(tmp_path) as link:
            feeder = link.feeder(low_water=1 << 20)  # always short: every step fetches one batch
            for _ in range(5):
                await feeder.step()
            assert link.answers == ["added"] * 5 and feeder.committed_batches == 5
            assert link.kme.enc_calls == 5 and link.ends() == (5 * BATCH_BYTES, 5 * BATCH_BYTES)
            assert link.a.staged_batches(LINK) == []
            assert link.assert_same_streams() == 5 * BATCH_BYTES
            # the live pools keep following the streams
            await feeder.step()
            sender, receiver = link.a.pool(LINK), link.b.pool(LINK)
            key_id, mine = sender.take(BATCH_BYTES)
            assert key_id == 5 * BATCH_BYTES and receiver.take_at(key_id, BATCH_BYTES, accept) == mine

    asyncio.run(main())


def test_a_full_stream_fetches_nothing(tmp_path: Path) -> None:
    async def main() -> None:
        async with _link(tmp_path) as link:
            feeder = link.feeder(low_water=BATCH_BYTES + 1)
            await feeder.step()
            await feeder.step()  # 2 batches > low water now
            await feeder.step()
            assert link.kme.enc_calls == 2 and link.answers == ["added", "added"]
            assert link.assert_same_streams() == 2 * BATCH_BYTES

    asyncio.run(main())


def test_a_batch_announced_again_after_a_sender_crash_is_have_and_committed_not_fetched_twice(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with _link(tmp_path) as link:

            async def added_then_killed(start: int, key_ids: list[uuid.UUID], size: int) -> str:
                assert await link.announce(start, key_ids, size) == "added"
                raise OSError("killed before the commit")

            with pytest.raises(OSError, match="killed"):
                await link.feeder(announce=added_then_killed).step()
            assert link.ends() == (0, BATCH_BYTES)  # B has it, A only staged it
            assert [size for _, _, size in link.a.staged_batches(LINK)] == [BATCH_BYTES]

            store = link.reopen_a()
            feeder = link.feeder(store)
            await feeder.step()
            assert link.answers == ["added", "have"]
            assert link.kme.enc_calls == 1  # the staged batch was committed, not fetched again
            assert feeder.committed_batches == 1 and store.staged_batches(LINK) == []
            assert link.assert_same_streams() == BATCH_BYTES

    asyncio.run(main())


def test_a_batch_the_receiver_cannot_fetch_is_lost_and_dropped_on_both_sides(tmp_path: Path) -> None:
    async def main() -> None:
        async with _link(tmp_path) as link:
            stolen: list[uuid.UUID] = []

            async def fetched_by_someone_else(start: int, key_ids: list[uuid.UUID], size: int) -> str:
                await link.client("B").dec_keys("A", key_ids)  # B's keys are gone from the KME
                stolen.extend(key_ids)
                return await link.announce(start, key_ids, size)

            feeder = link.feeder(announce=fetched_by_someone_else)
            await feeder.step()
            assert link.answers == ["lost"] and len(stolen) == BATCH
            assert (feeder.dropped_batches, feeder.committed_batches) == (1, 0)
            assert link.ends() == (0, 0) and link.a.staged_batches(LINK) == []

            feeder.announce = link.announce
            await feeder.step()
            assert link.answers == ["lost", "added"] and link.kme.enc_calls == 2
            assert link.assert_same_streams() == BATCH_BYTES

    asyncio.run(main())


def test_an_announcement_beyond_the_receivers_end_is_a_gap_and_nothing_is_committed(tmp_path: Path) -> None:
    async def main() -> None:
        async with _link(tmp_path) as link:
            link.a.add_key(LINK, os.urandom(64))  # A's stream is ahead of B's (say, B lost its database)
            feeder = link.feeder(low_water=1 << 20)
            for _ in range(2):  # and again: the staged batch is re-announced, nothing more is fetched
                with pytest.raises(StoreError, match=r"link A>B: the neighbour answered 'gap'"):
                    await feeder.step()
            assert link.answers == ["gap", "gap"] and link.kme.enc_calls == 1
            assert feeder.committed_batches == 0 and feeder.dropped_batches == 0
            assert link.ends() == (64, 0)
            assert len(link.a.staged_batches(LINK)) == 1

    asyncio.run(main())


def test_the_receiver_answers_gap_with_its_end(tmp_path: Path) -> None:
    async def main() -> None:
        async with _link(tmp_path) as link:
            assert await link.receiver.receive(10, [uuid.uuid4()], KEY_BITS) == {"status": "gap", "end": 0}
            link.b.add_key(LINK, bytes(range(1, 33)))
            assert await link.receiver.receive(0, [uuid.uuid4()], KEY_BITS) == {"status": "have"}
            assert await link.receiver.receive(33, [uuid.uuid4()], KEY_BITS) == {"status": "gap", "end": 32}
            assert link.b.stream_end(LINK) == 32

    asyncio.run(main())


@pytest.mark.parametrize("side", ["sender", "receiver"])
@pytest.mark.parametrize("outage", ["503", "refused"])
def test_a_kme_outage_commits_nothing_and_the_next_step_recovers(tmp_path: Path, side: str, outage: str) -> None:
    async def main() -> None:
        async with _link(tmp_path) as link:
            sae = "A" if side == "sender" else "B"
            dead = link.client(sae, f"http://127.0.0.1:{_closed_port()}")
            feeder = link.feeder()
            good_receiver_kme = link.receiver.kme
            if outage == "503":
                link.kme.down.add(sae)
                expected: tuple[type[Exception], str] = (Etsi014UnavailableError, "KME under maintenance")
            else:
                expected = (Etsi014ConnectionError, "no answer from http://127.0.0.1")
                if side == "sender":
                    good_sender_kme, feeder.kme = feeder.kme, dead
                else:
                    link.receiver.kme = dead
            for _ in range(2):
                with pytest.raises(expected[0], match=expected[1]):
                    await feeder.step()
            assert link.ends() == (0, 0) and feeder.committed_batches == 0
            staged = link.a.staged_batches(LINK)
            if side == "sender":
                assert staged == [] and link.answers == []
            else:  # fetched once and kept, announced again at every step
                assert len(staged) == 1 and link.kme.enc_calls == 1

            link.kme.down.clear()
            if outage == "refused":
                if side == "sender":
                    feeder.kme = good_sender_kme
                else:
                    link.receiver.kme = good_receiver_kme
            await feeder.step()
            assert link.answers == ["added"] and link.kme.enc_calls == 1 and feeder.committed_batches == 1
            assert link.a.staged_batches(LINK) == []
            assert link.assert_same_streams() == BATCH_BYTES

    asyncio.run(main())


# =======================================================================================
# 3. The peer API over HTTP: node B, whose neighbour A announces key on A>B
# =======================================================================================


@dataclass
class PeerPki:
    ca: Path
    server: tuple[Path, Path]
    nodes: dict[str, tuple[Path, Path]]

    def ctx(self, cn: str | None) -> ssl.SSLContext:
        if cn is None:  # trusts the server, presents no certificate
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.load_verify_locations(cafile=self.ca)
            return ctx
        cert, key = self.nodes[cn]
        return ssl_client_context(cert, key, self.ca)


@pytest.fixture(scope="module")
def peer_pki(tmp_path_factory: pytest.TempPathFactory) -> PeerPki:
    directory = tmp_path_factory.mktemp("peer-pki")
    ca = Ca(directory, "ca")
    return PeerPki(
        ca=ca.path,
        server=ca.issue("B", server=True, client=True),
        nodes={cn: ca.issue(cn) for cn in ("A", "C", OPERATOR)},  # A: B's neighbour; C: not one
    )


@dataclass
class PeerB:
    url: str
    kme: Kme
    store: LinkStore
    tls: bool

    @property
    def outgoing(self) -> LinkKeyPool:
        """B's pool of B>A (what the position report skips)."""
        return self.store.pool("B>A")

    async def keys(self, number: int = 2) -> list[uuid.UUID]:
        """Key IDs A got from the link's KME for B (A's enc_keys)."""
        return [kid for kid, _ in await self.kme.enc_keys("A", "B", number, KEY_BITS)]


@asynccontextmanager
async def _peer_b(tmp_path: Path, pki: PeerPki | None) -> AsyncIterator[PeerB]:
    kme = Kme()
    kme_server = await kme_sim.start(kme, "127.0.0.1", 0, plain_http=True)
    store = LinkStore(tmp_path / "B.db")
    store.add_key("B>A", os.urandom(1000))
    kme_client = Etsi014Client(f"http://127.0.0.1:{kme_server.port}", sae_id="B")

    async def skip(receiver: str, position: int) -> int:
        assert receiver == "A"
        return store.pool("B>A").skip_to(position)

    def stats() -> dict[str, Any]:
        return {"node": "B", "links": store.links()}

    receivers = {"A": LinkKeyReceiver(store, "A>B", kme_client, "A")}
    app = make_peer_app(receivers, stats, skip, plain_http=pki is None, operators=[OPERATOR])
    ctx = None if pki is None else ssl_server_context(pki.server[0], pki.server[1], pki.ca)
    server = await start_server(app, "127.0.0.1", 0, ssl_context=ctx)
    scheme = "http" if pki is None else "https"
    try:
        yield PeerB(f"{scheme}://127.0.0.1:{server.port}", kme, store, pki is not None)
    finally:
        await server.close()
        await kme_client.close()
        store.close()
        await kme_server.close()


async def _raw(
    method: str,
    url: str,
    *,
    body: Any = None,
    data: bytes | None = None,
    node: str | None = None,
    ctx: ssl.SSLContext | None = None,
) -> tuple[int, Any]:
    """One request: (status, parsed JSON). ``node``: the X-MPSS-Node header."""
    headers = {NODE_HEADER: node} if node is not None else {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        async with session.request(
            method, url, json=body, data=data, headers=headers, ssl=ctx if ctx is not None else False
        ) as response:
            return response.status, await response.json(content_type=None)


def _peer(b: PeerB, me: str, pki: PeerPki | None, cert: str | None = None) -> PeerClient:
    return PeerClient(b.url, me, ssl_context=None if pki is None else pki.ctx(cert or me), timeout=5)


@pytest.fixture(params=["plain", "tls"])
def tls_mode(request: pytest.FixtureRequest, peer_pki: PeerPki) -> PeerPki | None:
    return None if request.param == "plain" else peer_pki


def test_the_neighbour_announces_and_reports_its_position(tmp_path: Path, tls_mode: PeerPki | None) -> None:
    async def main() -> None:
        async with _peer_b(tmp_path, tls_mode) as b:
            a = _peer(b, "A", tls_mode)
            try:
                ids = await b.keys(2)
                assert await a.announce(0, ids, KEY_BITS) == "added"
                assert await a.announce(0, ids, KEY_BITS) == "have"
                assert b.store.stream_end("A>B") == 2 * KEY_BITS // 8
                more = await b.keys(1)
                assert await a.announce(999, more, KEY_BITS) == "gap"  # answered; the feeder treats it as an error
                assert b.store.stream_end("A>B") == 2 * KEY_BITS // 8

                assert await a.report_position(300) == 300
                assert (b.outgoing.position, b.outgoing.available) == (300, 700)
                assert await a.report_position(300) == 0
                assert await a.report_position(10) == 0  # behind: nothing happens
                assert b.outgoing.position == 300
                assert b.store.links()["B>A"][0] >= 300  # the skip is recorded in the store too
            finally:
                await a.close()

    asyncio.run(main())


def test_announcements_from_anyone_but_the_neighbour_are_refused(tmp_path: Path, tls_mode: PeerPki | None) -> None:
    async def main() -> None:
        async with _peer_b(tmp_path, tls_mode) as b:
            ids = [str(kid) for kid in await b.keys(2)]
            body = {"start": 0, "key_IDs": ids}
            url = f"{b.url}{PEER_PREFIX}/links/A/keys"
            as_c: dict[str, Any] = {"node": "C"} if tls_mode is None else {"ctx": tls_mode.ctx("C"), "node": "A"}
            status, answer = await _raw("POST", url, body=body, **as_c)  # with TLS the header counts for nothing
            assert (status, answer) == (403, {"message": "node C is not a neighbour of this node"})
            if tls_mode is None:
                status, answer = await _raw("POST", url, body=body)  # no X-MPSS-Node header
                assert status == 401
            else:  # a client certificate whose CN is C, in a client that claims to be A
                c_as_a = _peer(b, "A", tls_mode, cert="C")
                try:
                    with pytest.raises(PeerApiError, match=r"refused keys: HTTP 403: node C is not a neighbour"):
                        await c_as_a.announce(0, [uuid.UUID(i) for i in ids], KEY_BITS)
                finally:
                    await c_as_a.close()
            status, answer = await _raw("POST", f"{b.url}{PEER_PREFIX}/links/C/keys", body=body, **as_c)
            assert (status, answer) == (403, {"message": "node C is not a neighbour of this node"})
            assert b.store.stream_end("A>B") == 0  # nothing was fetched for B
            assert len(await b.kme.dec_keys("B", "A", [uuid.UUID(i) for i in ids])) == 2

    asyncio.run(main())


_ID = str(uuid.uuid4())
_MALFORMED: list[tuple[str, Any, bytes | None, str]] = [
    ("not JSON", None, b"{start: 0", "Expecting property name"),
    ("not UTF-8", None, b"\xff\xfe", ""),
    ("a list", [0, []], None, "list indices"),
    ("negative start", {"start": -1, "key_IDs": [_ID]}, None, "start must be an int >= 0 and key_IDs non-empty"),
    ("float start", {"start": 1.0, "key_IDs": [_ID]}, None, "start must be an int >= 0"),
    ("bool start", {"start": True, "key_IDs": [_ID]}, None, "start must be an int >= 0"),
    ("string start", {"start": "0", "key_IDs": [_ID]}, None, "start must be an int >= 0"),
    ("no start", {"key_IDs": [_ID]}, None, "'start'"),
    ("empty key_IDs", {"start": 0, "key_IDs": []}, None, "key_IDs non-empty"),
    ("no key_IDs", {"start": 0}, None, "'key_IDs'"),
    ("bad UUID", {"start": 0, "key_IDs": ["not-a-uuid"]}, None, "badly formed hexadecimal UUID string"),
    ("number as UUID", {"start": 0, "key_IDs": [5]}, None, ""),
    ("key_IDs string", {"start": 0, "key_IDs": "abc"}, None, "badly formed"),
]


@pytest.mark.parametrize(("body", "data", "why"), [pytest.param(b, d, w, id=i) for i, b, d, w in _MALFORMED])
def test_malformed_announcements_are_400_with_a_message(
    tmp_path: Path, body: Any, data: bytes | None, why: str
) -> None:
    async def main() -> None:
        async with _peer_b(tmp_path, None) as b:
            status, answer = await _raw("POST", f"{b.url}{PEER_PREFIX}/links/A/keys", body=body, data=data, node="A")
            assert status == 400
            assert isinstance(answer, dict) and answer["message"].startswith("malformed announcement: ")
            assert why in answer["message"]
            assert b.store.stream_end("A>B") == 0

    asyncio.run(main())


@pytest.mark.parametrize(
    ("body", "data"),
    [
        (None, b"position=5"),
        ({"position": -1}, None),
        ({"position": "5"}, None),
        ({"position": True}, None),
        ({"where": 5}, None),
        ([5], None),
    ],
)
def test_malformed_position_reports_are_400(tmp_path: Path, body: Any, data: bytes | None) -> None:
    async def main() -> None:
        async with _peer_b(tmp_path, None) as b:
            status, answer = await _raw(
                "POST", f"{b.url}{PEER_PREFIX}/links/A/position", body=body, data=data, node="A"
            )
            assert status == 400 and answer["message"].startswith("malformed position report: ")
            assert b.outgoing.position == 0

    asyncio.run(main())


def test_position_reports_by_others_or_beyond_the_pool_are_refused(tmp_path: Path, tls_mode: PeerPki | None) -> None:
    async def main() -> None:
        async with _peer_b(tmp_path, tls_mode) as b:
            url = f"{b.url}{PEER_PREFIX}/links/A/position"
            as_c: dict[str, Any] = {"node": "C"} if tls_mode is None else {"ctx": tls_mode.ctx("C"), "node": "A"}
            status, answer = await _raw("POST", url, body={"position": 500}, **as_c)
            assert (status, answer) == (403, {"message": "node C is not a neighbour of this node"})
            status, answer = await _raw("POST", f"{b.url}{PEER_PREFIX}/links/C/position", body={"position": 5}, **as_c)
            assert (status, answer) == (403, {"message": "node C is not a neighbour of this node"})
            assert b.outgoing.position == 0

            a = _peer(b, "A", tls_mode)
            try:
                with pytest.raises(PeerApiError, match=r"refused position: HTTP 503: .*cannot skip to offset 1001"):
                    await a.report_position(1001)
                assert (b.outgoing.position, b.outgoing.available) == (0, 1000)
                assert await a.report_position(1000) == 1000
            finally:
                await a.close()

    asyncio.run(main())


def test_stats_are_for_operators_only(tmp_path: Path, tls_mode: PeerPki | None) -> None:
    async def main() -> None:
        async with _peer_b(tmp_path, tls_mode) as b:
            url = f"{b.url}{PEER_PREFIX}/node/stats"

            def who(name: str) -> dict[str, Any]:
                return {"node": name} if tls_mode is None else {"ctx": tls_mode.ctx(name)}

            status, answer = await _raw("GET", url, **who(OPERATOR))
            assert status == 200 and answer["node"] == "B" and answer["links"]["B>A"] == [0, 1000]
            for name in ("A", "C"):  # the neighbour, and a node that is not one
                refused = {"message": f"{name} is not an operator of this node (peer.operators)"}
                assert await _raw("GET", url, **who(name)) == (403, refused)
            if tls_mode is None:
                assert await _raw("GET", url) == (401, {"message": "no client certificate (mutual TLS is required)"})
                return
            try:  # no client certificate: the handshake refuses it (TLS 1.3: on the first read)
                status, answer = await _raw("GET", url, ctx=tls_mode.ctx(None), node="A")
            except (aiohttp.ClientError, ssl.SSLError, OSError):
                return
            assert status == 401

    asyncio.run(main())


def test_peer_client_errors_say_what_happened(tmp_path: Path) -> None:
    async def main() -> None:
        async with _peer_b(tmp_path, None) as b:
            c = PeerClient(b.url, "C", ssl_context=None, timeout=5)
            nowhere = PeerClient(f"http://127.0.0.1:{_closed_port()}/", "A", ssl_context=None, timeout=5)
            try:
                with pytest.raises(
                    PeerApiError, match=r"refused keys: HTTP 403: node C is not a neighbour of this"
                ) as refused:
                    await c.announce(0, [uuid.uuid4()], KEY_BITS)
                assert refused.value.status == 403
                with pytest.raises(PeerApiError, match=r"refused position: HTTP 403: node C is not a neighbour of"):
                    await c.report_position(1)
                with pytest.raises(
                    PeerUnreachableError, match=r"neighbour http://127\.0\.0\.1:\d+ did not answer: "
                ) as gone:
                    await nowhere.announce(0, [uuid.uuid4()], KEY_BITS)
                assert gone.value.status is None  # no HTTP answer came
                with pytest.raises(PeerApiError, match=r"did not answer: ClientConnectorError"):
                    await nowhere.report_position(1)
            finally:
                await c.close()
                await nowhere.close()
                await nowhere.close()  # idempotent

    asyncio.run(main())


def test_peer_client_reports_a_refusal_without_json_as_a_refusal(tmp_path: Path) -> None:
    async def main() -> None:
        async with _peer_b(tmp_path, None) as b:
            wrong = PeerClient(b.url + "/wrong", "A", ssl_context=None, timeout=5)  # a wrong peer_url: aiohttp's 404
            try:
                with pytest.raises(PeerApiError, match=r"HTTP 404"):
                    await wrong.announce(0, [uuid.uuid4()], KEY_BITS)
            finally:
                await wrong.close()

    asyncio.run(main())


def test_an_announcement_b_cannot_fetch_now_is_503(tmp_path: Path) -> None:
    async def main() -> None:
        async with _peer_b(tmp_path, None) as b:
            ids = await b.keys(1)
            b.kme.down.add("B")
            body = {"start": 0, "key_IDs": [str(ids[0])], "size": KEY_BITS}
            status, answer = await _raw("POST", f"{b.url}{PEER_PREFIX}/links/A/keys", body=body, node="A")
            assert status == 503
            assert answer["message"] == "cannot fetch the announced key from the KME now: KME under maintenance"
            b.kme.down.clear()
            a = _peer(b, "A", None)
            try:
                assert await a.announce(0, ids, KEY_BITS) == "added"
            finally:
                await a.close()

    asyncio.run(main())


# =======================================================================================
# 5. FlowBackend: which SAE may call what at which node; ETSI 014 answers on the key stores
# =======================================================================================


def test_only_the_master_at_its_node_gets_enc_keys_and_only_the_slave_at_its_node_dec_keys(tmp_path: Path) -> None:
    from .test_node_keyflow import APP, Ends, full

    async def body(ends: Ends) -> None:
        await _until(lambda: full(ends))
        at_s, at_d = FlowBackend(ends.s, "S", (APP,)), FlowBackend(ends.d, "D", (APP,))
        status = await at_s.status(nodelab.MASTER, nodelab.SLAVE)
        assert (status.source_KME_ID, status.target_KME_ID) == ("S", "D")
        assert status.stored_key_count == 2048 // 32 and status.max_key_count == 2048 // 32  # 256-bit keys
        keys = await at_s.enc_keys(nodelab.MASTER, nodelab.SLAVE, 2, 256)
        assert len(keys) == 2 and all(len(key) == 32 for _, key in keys)
        assert 2048 // 32 - 2 <= (await at_s.status(nodelab.MASTER, nodelab.SLAVE)).stored_key_count  # refilling
        with pytest.raises(Etsi014UnauthorizedError, match=r"SAE app-D is not paired with SAE app-S"):
            await at_s.enc_keys(nodelab.SLAVE, nodelab.MASTER, 1, 256)  # the slave as master
        with pytest.raises(Etsi014UnauthorizedError, match=r"^SAE app-S is not at node D$"):
            await at_d.enc_keys(nodelab.MASTER, nodelab.SLAVE, 1, 256)  # the right SAE, the wrong node
        with pytest.raises(Etsi014UnauthorizedError, match=r"^SAE app-S is not at node D$"):
            await at_d.status(nodelab.MASTER, nodelab.SLAVE)
        with pytest.raises(Etsi014UnauthorizedError, match=r"^SAE app-D is not at node S$"):
            await at_s.dec_keys(nodelab.SLAVE, nodelab.MASTER, [keys[0][0]])
        with pytest.raises(Etsi014UnauthorizedError, match=r"SAE app-S is not paired with SAE app-S"):
            await at_d.dec_keys(nodelab.MASTER, nodelab.MASTER, [keys[0][0]])
        started = time.monotonic()
        assert await at_d.dec_keys(nodelab.SLAVE, nodelab.MASTER, [kid for kid, _ in keys]) == keys
        assert time.monotonic() - started < 0.5  # from the store at once: nothing to wait for
        with pytest.raises(Etsi014BadRequestError, match=rf"^key_ID {keys[0][0]} was already delivered$"):
            await at_d.dec_keys(nodelab.SLAVE, nodelab.MASTER, [keys[0][0]])
        never = uuid.uuid4()
        with pytest.raises(Etsi014BadRequestError, match=rf"^key_ID {never} is unknown$"):
            await at_d.dec_keys(nodelab.SLAVE, nodelab.MASTER, [never])

    asyncio.run(Ends(tmp_path).run(body))


def test_enc_keys_beyond_the_store_is_503_with_retry_after_and_takes_nothing(tmp_path: Path) -> None:
    from .test_node_keyflow import APP, Ends, full

    async def body(ends: Ends) -> None:
        await _until(lambda: full(ends))
        at_s = FlowBackend(ends.s, "S", (APP,))
        with pytest.raises(Etsi014UnavailableError) as info:
            await at_s.enc_keys(nodelab.MASTER, nodelab.SLAVE, 9, 2048)  # 2304 bytes, 2048 confirmed
        assert info.value.status == 503 and info.value.retry_after is not None and info.value.retry_after >= 1
        assert (await at_s.status(nodelab.MASTER, nodelab.SLAVE)).stored_key_count == 2048 // 32

    asyncio.run(Ends(tmp_path).run(body))


async def _until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


# =======================================================================================
# 6. A node on the UDP transport: bad packets are counted by reason and dropped
# =======================================================================================


def _share_for_d(pool_r1_d: LinkKeyPool, *, src: str = "S") -> tuple[bytes, bytes]:
    """One share of a new key from ``src`` on the path S-R1-D: (its packet on S>R1, the packet R1 sends to D)."""
    material = os.urandom(2048)
    pools = [LinkKeyPool("S>R1", material), LinkKeyPool("S>R2", os.urandom(256)), LinkKeyPool("S>R3", os.urandom(256))]
    path = [nodelab.sid("R1"), nodelab.sid("D")]
    message = seal_shares(os.urandom(32), 2, pools, routes=[first_hop_route(nodelab.sid(src), path)] * 3)[0]
    first = first_hop_packet(message, nodelab.sid(src), path)
    return first, relay_packet(first, LinkKeyPool("S>R1", material), pool_r1_d)


def test_bad_packets_are_dropped_by_reason_and_the_node_keeps_working(tmp_path: Path) -> None:
    material = os.urandom(4096)  # the stream of R1>D both ends hold
    udp = {n: f"127.0.0.1:{_free_udp_port()}" for n in NODES}
    dead = _closed_port()  # no KME, no neighbours: D's refills and position reports fail and are retried
    raw = nodelab.diamond(
        3,
        db=lambda n: str(tmp_path / f"{n}.db"),
        peer_url=lambda me, nb: f"http://127.0.0.1:{dead}",
        kme_url=lambda me, nb: f"http://127.0.0.1:{dead}",
        peer_listen=lambda n: "127.0.0.1:0",
        api_listen=lambda n: "127.0.0.1:0",
        udp=udp,
        extra=lambda n: {"keys": {"refill_interval_s": 0.5}},
    )["D"]
    with LinkStore(tmp_path / "D.db") as store:
        store.add_key("R1>D", material)
    host, port = raw["udp"]["D"].split(":")
    to_d = (host, int(port))

    async def main() -> None:
        node = Node(parse_config(raw))
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            await node.start()

            async def send(data: bytes) -> dict[str, Any]:
                def seen(stats: dict[str, Any]) -> int:
                    return int(stats["shares_received"]) + int(sum(stats["dropped"].values()))

                before = seen(node.stats())
                sock.sendto(data, to_d)
                deadline = time.monotonic() + 5
                while seen(stats := node.stats()) == before:
                    assert time.monotonic() < deadline, "the node did not handle the packet"
                    await asyncio.sleep(0.01)
                return stats

            first_hop, _ = _share_for_d(LinkKeyPool("R1>D", material))
            stats = await send(b"\x60" + bytes(60))
            assert stats["dropped"] == {"malformed": 1}
            stats = await send(first_hop)  # addressed to R1's SID, sent to D
            assert stats["dropped"] == {"malformed": 1, "not for this node": 1}
            _, forged = _share_for_d(LinkKeyPool("R1>D", os.urandom(4096)))  # tagged under other key
            stats = await send(forged)
            assert stats["dropped"]["bad tag"] == 1
            stranger_route = first_hop_route("fd00:9::1", [nodelab.sid("D")])  # no node has this SID
            stranger_first = first_hop_packet(
                seal_shares(
                    os.urandom(32),
                    2,
                    [LinkKeyPool("x", os.urandom(256)) for _ in range(3)],
                    routes=[stranger_route] * 3,
                )[0],
                "fd00:9::1",
                [nodelab.sid("D")],
            )
            stats = await send(stranger_first)
            assert stats["dropped"]["unknown SID"] == 1

            _, good = _share_for_d(LinkKeyPool("R1>D", material[1024:], position=1024))
            stats = await send(good)
            assert stats["shares_received"] == 1
            stats = await send(good)  # a replay: its offset is behind D's pool now
            assert stats["dropped"] == {
                "malformed": 1,
                "not for this node": 1,
                "bad tag": 1,
                "unknown SID": 1,
                "offset behind the pool (replay or restart)": 1,
            }
            assert stats["shares_received"] == 1 and stats["keys_delivered"] == 0 and stats["tampered"] == []
            assert node.stats()["links"]["R1>D"]["position"] >= 1024 + 32 + 48
        finally:
            sock.close()
            await node.close()

    asyncio.run(main())


def test_urls_must_match_the_tls_setting() -> None:
    raw = _lab()["R2"]
    raw["links"][0]["kme_url"] = "https://127.0.0.1:1"
    with pytest.raises(NodeConfigError, match=r"^links\[0\]\.kme_url must start with http:// \(plain_http is set\)"):
        parse_config(raw)
    raw = _lab()["R2"]
    raw["links"][1]["peer_url"] = "ftp://x"
    with pytest.raises(NodeConfigError, match=r"^links\[1\]\.peer_url must start with http://"):
        parse_config(raw)


def test_a_pair_of_one_sae_with_itself_is_refused() -> None:
    raw = _lab()["S"]
    raw["api"]["pairs"][0]["slave"] = raw["api"]["pairs"][0]["master"]
    with pytest.raises(NodeConfigError, match=r"^api\.pairs\[0\]: master and slave must be different SAEs"):
        parse_config(raw)
