"""Node configurations for tests: source S, destination D, relays R1..Rm on m node-disjoint paths.

``diamond(...)`` returns one config dict per node (for ``mpss_fast.node.config.parse_config``
or a JSON file), all sharing one topology. Addresses and URLs are supplied by the caller
through small functions, so the same layout serves the loopback (UDP, plain HTTP) tests and
the namespace (SRv6, mutual TLS) ones.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable, Iterable
from typing import Any

MASTER, SLAVE = "app-S", "app-D"
"""The application pair: master SAE at S, slave SAE at D."""


def free_ports(count: int, kind: int = socket.SOCK_STREAM) -> list[int]:
    """``count`` TCP (or, with ``kind=SOCK_DGRAM``, UDP) ports on 127.0.0.1 that were free a moment ago
    (all held at once, so distinct)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, kind)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def stop_processes(procs: Iterable[subprocess.Popen[Any]], grace_s: float) -> None:
    """SIGTERM every process still running, wait up to ``grace_s`` for each, then SIGKILL what is left."""
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def node_names(paths: int) -> list[str]:
    return ["S", "D", *[f"R{i}" for i in range(1, paths + 1)]]


def links(paths: int) -> list[tuple[str, str]]:
    """Each path S - Ri - D."""
    out = []
    for i in range(1, paths + 1):
        out += [("S", f"R{i}"), (f"R{i}", "D")]
    return out


def sid(name: str) -> str:
    """Each node's SID: fd00:5::<n> (S=1, D=2, Ri=10+i)."""
    number = {"S": 1, "D": 2}.get(name) or 10 + int(name[1:])
    return f"fd00:5::{number:x}"


def topology(paths: int) -> dict[str, Any]:
    return {
        "nodes": [{"name": n, "sid": sid(n)} for n in node_names(paths)],
        "links": [
            {"a": a, "b": b, "rate_bps": 1e6, "pool_bytes": 1 << 20, "latency_s": 0.001} for a, b in links(paths)
        ],
    }


def diamond(
    paths: int,
    *,
    db: Callable[[str], str],
    peer_url: Callable[[str, str], str],
    kme_url: Callable[[str, str], str],
    peer_listen: Callable[[str], str],
    api_listen: Callable[[str], str],
    transport: str = "udp",
    udp: dict[str, str] | None = None,
    tls: Callable[[str], dict[str, str]] | None = None,
    operators: list[str] | None = None,
    k: int = 2,
    n: int | None = None,
    extra: Callable[[str], dict[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Configs for every node. ``peer_url(me, neighbour)``: where ``me`` reaches the neighbour's peer API;
    ``kme_url(me, neighbour)``: the KME of that link as ``me`` reaches it; ``tls(node)``: its ``tls``
    section (``tests.pki.NodePki.tls_section``), else plain HTTP; ``operators``: ``peer.operators``."""
    topo = topology(paths)
    configs = {}
    for name in node_names(paths):
        neighbours = [b if a == name else a for a, b in links(paths) if name in (a, b)]
        cfg: dict[str, Any] = {
            "node": name,
            "db": db(name),
            "topology": topo,
            "k": k,
            "n": n if n is not None else paths,
            "transport": transport,
            "links": [
                {"neighbour": nb, "peer_url": peer_url(name, nb), "kme_url": kme_url(name, nb)} for nb in neighbours
            ],
            "peer": {"listen": peer_listen(name)},
        }
        if operators is not None:
            cfg["peer"]["operators"] = operators
        if name in ("S", "D"):
            other = "D" if name == "S" else "S"
            pairs = [
                {"master": MASTER, "slave": SLAVE, "master_node": "S", "slave_node": "D",
                 "peer_url": peer_url(name, other)}
            ]  # fmt: skip
            cfg["api"] = {"listen": api_listen(name), "pairs": pairs}
        if transport == "udp":
            cfg["udp"] = udp
        if tls is None:
            cfg["plain_http"] = True
        else:
            cfg["tls"] = tls(name)
        if extra is not None:
            cfg.update(extra(name))
        configs[name] = cfg
    return configs


def loopback(
    paths: int,
    db_dir: Any,
    kme_port: int,
    peer: dict[str, int],
    api: dict[str, int],
    udp: dict[str, int],
    **kw: Any,
) -> dict[str, dict[str, Any]]:
    """``diamond`` on 127.0.0.1 with plain HTTP: each node's store in ``db_dir``, its peer API, ETSI 014 API
    and UDP endpoint on the given ports, one KME for every link; ``kw`` goes to ``diamond``."""
    return diamond(
        paths,
        db=lambda n: str(db_dir / f"{n}.db"),
        peer_url=lambda me, nb: f"http://127.0.0.1:{peer[nb]}",
        kme_url=lambda me, nb: f"http://127.0.0.1:{kme_port}",
        peer_listen=lambda n: f"127.0.0.1:{peer[n]}",
        api_listen=lambda n: f"127.0.0.1:{api[n]}",
        udp={n: f"127.0.0.1:{port}" for n, port in udp.items()},
        **kw,
    )


def kme_pairs(paths: int) -> list[tuple[str, str]]:
    """The SAE pairs the link KME serves: one per link (the nodes' names are their SAE IDs there)."""
    return links(paths)
