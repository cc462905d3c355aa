"""A running MPSS network in namespaces: ``mpss node`` processes on real SRv6, a KME, applications.

Layout (``nodelab``: S and D joined by relays R1..R3 on three node-disjoint paths):

* one namespace per node, veth links ``S-Ri`` and ``Ri-D`` (``fd00:1:<link>::1/2``), and a
  route to each neighbour's SID over its link; each node routes its own SID into its tun;
* a direct veth between S and D (``fd00:2::1/2``), outside the topology: the classical IP
  network the two ends of the application pair talk over (proofs and ledger records of
  ``node.keyflow``, mutual TLS); shares never take it;
* a ``kme`` namespace joined to every node by a management veth (``fd00:ff:<node>::1/2``): it
  runs the link KME (an in-process ``KmeSimBackend`` that also records what it handed out, so
  the test can check the captured ciphertexts against the real link keys) and the
  applications' ETSI 014 clients, in one asyncio loop on a thread inside that namespace;
* every HTTP interface is mutual TLS, with one test CA per role (``pki.NodePki``): nodes and the
  operator (who reads the stats), applications, and the KME.

Nodes run as real processes (``python -m mpss_fast node --config ...``), so they can be
stopped, killed with SIGKILL and restarted.

S fills the pair's key store in the background (``node.keyflow``), so traffic flows whenever
the store is below its depth: :meth:`NodeNet.settle` waits until it is full and nothing is in
flight, the moment to read counters before and after an action (:data:`STORES`: one key per
unit by default, so N keys taken are N units relayed to refill it).
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from mpss_fast.etsi014 import kme_sim
from mpss_fast.etsi014.client import Etsi014Client
from mpss_fast.etsi014.model import KeyList
from mpss_fast.exceptions import Etsi014UnavailableError
from mpss_fast.https.server import RunningServer
from mpss_fast.https.tls import ssl_client_context

from . import nodelab
from .netns import Lab, in_netns, netns_available
from .pki import NodePki

T = TypeVar("T")

PATHS = 3
KME_PORT, PEER_PORT, API_PORT = 8443, 7443, 9443
NAMES = nodelab.node_names(PATHS)
OPERATOR = "noc"
"""The operator identity that reads the nodes' stats (``peer.operators``)."""
LINKS = nodelab.links(PATHS)
PAIR = f"{nodelab.MASTER}->{nodelab.SLAVE}"
"""The application pair as the nodes' stats name it (``keyflow.pairs``)."""

STORES: dict[str, Any] = {
    "unit_bytes": 32,
    "depth_bytes": 64 * 32,
    "window": 16,
    "pending_s": 1.0,
    "prepared_keys": 0,
}
"""The pair's key stores (``stores``) unless a test sets others: one 256-bit key per unit and no prepared keys,
so moving N keys of that size carves and refills exactly N units and the per-share counts stay exact; 64 keys
deep; a unit not confirmed within a second (its shares lost, or an end restarted) is wiped, so the flow settles
soon after a fault."""


def node_index(name: str) -> int:
    return NAMES.index(name) + 1


def link_addrs(a: str, b: str) -> tuple[str, str]:
    """The addresses of ``a`` and ``b`` on their link."""
    index = next(i for i, pair in enumerate(LINKS, 1) if set(pair) == {a, b})
    first, second = f"fd00:1:{index}::1", f"fd00:1:{index}::2"
    return (first, second) if (a, b) == LINKS[index - 1] else (second, first)


CONTROL_ADDRS = {"S": "fd00:2::1", "D": "fd00:2::2"}
"""S's and D's addresses on their direct link (the pair channel)."""


def peer_addr(me: str, other: str) -> str:
    """Where ``me`` reaches ``other``'s peer API: over their link, or S and D over their direct one."""
    if {me, other} == set(CONTROL_ADDRS):
        return CONTROL_ADDRS[other]
    return link_addrs(me, other)[1]


def mgmt_addr(name: str, *, kme_side: bool = False) -> str:
    return f"fd00:ff:{node_index(name)}::{1 if kme_side else 2}"


class RecordingKme(kme_sim.KmeSimBackend):
    """The link KME, remembering each key it issued and the order each slave fetched them in.

    :meth:`withhold` makes it stop serving one link direction's key (every ``enc_keys`` of that sender for
    that receiver answered 503, as a QKD link whose key ran out), :meth:`release` serves it again; by default
    every link is served.
    """

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.issued: dict[uuid.UUID, bytes] = {}
        self.fetched: dict[tuple[str, str], list[list[uuid.UUID]]] = collections.defaultdict(list)
        self.withheld: set[tuple[str, str]] = set()
        """Link directions (sender, receiver) whose key is not served now."""
        self.refused: collections.Counter[tuple[str, str]] = collections.Counter()
        """Per link direction, the ``enc_keys`` answered 503 because it was withheld."""

    def withhold(self, sender: str, receiver: str) -> None:
        """Serve no more key for ``sender>receiver`` (``enc_keys`` answers 503) until :meth:`release`."""
        self.withheld.add((sender, receiver))

    def release(self, sender: str, receiver: str) -> None:
        self.withheld.discard((sender, receiver))

    async def enc_keys(self, master: str, slave: str, number: int, size_bits: int) -> KeyList:
        if (master, slave) in self.withheld:
            self.refused[(master, slave)] += 1
            raise Etsi014UnavailableError(f"no key for SAE {slave} now: the link's key supply is withheld")
        keys = await super().enc_keys(master, slave, number, size_bits)
        self.issued.update(keys)
        return keys

    async def dec_keys(self, slave: str, master: str, key_ids: list[uuid.UUID]) -> KeyList:
        keys = await super().dec_keys(slave, master, key_ids)
        self.fetched[(master, slave)].append(list(key_ids))
        return keys

    def stream(self, sender: str, receiver: str) -> bytes:
        """The key stream of the direction ``sender>receiver``, as the receiver built it."""
        return b"".join(self.issued[kid] for batch in self.fetched[(sender, receiver)] for kid in batch)


class NodeNet:
    """Build with ``NodeNet(lab, directory)``, then ``start()``; ``close()`` stops the loop thread."""

    def __init__(
        self,
        lab: Lab,
        directory: Path,
        *,
        keys: dict[str, Any] | None = None,
        stores: dict[str, Any] | None = None,
        k: int = 2,
    ) -> None:
        self.lab = lab
        self.dir = directory
        self.k = k
        """The threshold S splits each unit with (``k`` of the configs; n is always :data:`PATHS`)."""
        self.keys = keys or {"batch": 32, "key_bits": 8192, "low_water_bytes": 196608, "refill_interval_s": 0.02}
        self.stores = dict(stores if stores is not None else STORES)
        self.tamper: str | None = None
        """The relay that alters shares (``testing.tamper``), if any."""
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.starts: collections.Counter[str] = collections.Counter()
        self.ifaces: dict[tuple[str, str], str] = {}  # (node, neighbour) -> interface in node
        self.kme = RecordingKme(LINKS)
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._server: RunningServer | None = None
        self.pki = NodePki(directory)

    # -- building -----------------------------------------------------------------------

    def build(self) -> None:
        lab = self.lab
        for name in [*NAMES, "kme"]:
            lab.add_node(name)
        for a, b in LINKS:
            addr_a, addr_b = link_addrs(a, b)
            self.ifaces[(a, b)], self.ifaces[(b, a)] = lab.link(a, b, addr_a, addr_b)
        self.control_ifaces = lab.link("S", "D", CONTROL_ADDRS["S"], CONTROL_ADDRS["D"])
        """S's and D's interfaces on their direct link (the pair channel)."""
        for name in NAMES:
            lab.link(name, "kme", mgmt_addr(name), mgmt_addr(name, kme_side=True))
        for a, b in LINKS:
            for me, other in ((a, b), (b, a)):
                lab.route(me, f"{nodelab.sid(other)}/128", via=link_addrs(me, other)[1], dev=self.ifaces[(me, other)])
        self._certificates()
        self._configs()

    def _certificates(self) -> None:
        self.tls: dict[str, tuple[Path, Path]] = {}
        for name in NAMES:
            ips = [mgmt_addr(name)] + [
                link_addrs(name, other)[0] for a, b in LINKS for other in (a, b) if name in (a, b) and other != name
            ]
            if name in CONTROL_ADDRS:
                ips.append(CONTROL_ADDRS[name])
            self.tls[name] = self.pki.node(name, ips=tuple(ips))
        self.tls["kme"] = self.pki.kme(ips=tuple(mgmt_addr(n, kme_side=True) for n in NAMES))
        for app in (nodelab.MASTER, nodelab.SLAVE):
            self.tls[app] = self.pki.app(app)
        self.tls[OPERATOR] = self.pki.operator(OPERATOR)

    def config_path(self, name: str) -> Path:
        return self.dir / f"{name}.json"

    def _configs(self) -> None:
        configs = nodelab.diamond(
            PATHS,
            k=self.k,
            db=lambda n: str(self.dir / f"{n}.db"),
            peer_url=lambda me, nb: f"https://[{peer_addr(me, nb)}]:{PEER_PORT}",
            kme_url=lambda me, nb: f"https://[{mgmt_addr(me, kme_side=True)}]:{KME_PORT}",
            peer_listen=lambda n: f"[::]:{PEER_PORT}",
            api_listen=lambda n: f"[{mgmt_addr(n)}]:{API_PORT}",
            transport="srv6",
            tls=self.pki.tls_section,  # the node certificates are issued already
            operators=[OPERATOR],
            extra=lambda n: {"keys": self.keys, "stores": self.stores, "testing": {"tamper": n == self.tamper}},
        )
        for name, cfg in configs.items():
            self.config_path(name).write_text(json.dumps(cfg, indent=1))

    def set_tamper(self, relay: str | None) -> None:
        """Rewrite the configs so ``relay`` (or none) alters shares; takes effect when it restarts."""
        self.tamper = relay
        self._configs()

    def set_k(self, k: int) -> None:
        """Rewrite the configs with threshold ``k`` (of n = :data:`PATHS`); takes effect when S restarts."""
        self.k = k
        self._configs()

    def set_stores(self, stores: dict[str, Any]) -> None:
        """Rewrite the configs with these ``stores``; takes effect when S and D restart."""
        self.stores = dict(stores)
        self._configs()

    def restart_ends(self, stores: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """S and D stopped, restarted with these ``stores`` and settled; returns the stats then (S and D may
        disagree on ready units: D may hold some S lost in a kill before, so no match is asked)."""
        self.set_stores(stores)
        for name in ("S", "D"):
            self.stop_node(name)
        for name in ("S", "D"):
            self.start_node(name)
        for name in ("S", "D"):
            self.wait_up(name)
        return self.settle(60, match=False)

    # -- the KME and application loop (inside the kme namespace) -------------------------

    def start(self) -> None:
        ready = threading.Event()

        def run() -> None:
            with in_netns(self.lab.ns("kme")):
                asyncio.set_event_loop(self._loop)
                self._loop.run_until_complete(self._start_kme())
                ready.set()
                self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="kme+apps", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the KME did not start")
        for name in NAMES:
            self.start_node(name)
        for name in NAMES:
            self.wait_up(name)
        self.wait_link_keys()

    async def _start_kme(self) -> None:
        cert, key = self.tls["kme"]
        # the KME's SAEs are the nodes: it trusts the node CA
        self._server = await kme_sim.start(
            self.kme, "::", KME_PORT, cert=str(cert), key=str(key), ca=str(self.pki.nodes.path)
        )

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        """Run a coroutine on the loop inside the kme namespace and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def app(self, node: str, sae: str, *, timeout: float = 10) -> Etsi014Client:
        """An ETSI 014 client of ``node``'s API for application ``sae`` (use inside :meth:`call`)."""
        cert, key = self.tls[sae]
        ctx = ssl_client_context(cert, key, self.pki.nodes.path)  # the node's server certificate
        return Etsi014Client(f"https://[{mgmt_addr(node)}]:{API_PORT}", ssl_context=ctx, timeout=timeout)

    async def stats(self, node: str) -> dict[str, Any]:
        """The node's counters from its peer API (over the management link), read as the operator."""
        cert, key = self.tls[OPERATOR]
        ctx = ssl_client_context(cert, key, self.pki.nodes.path)
        ctx.check_hostname = False  # the peer API listens on every address; the CA is ours
        async with aiohttp.ClientSession() as session:
            url = f"https://[{mgmt_addr(node)}]:{PEER_PORT}/mpss/v1/node/stats"
            async with session.get(url, ssl=ctx) as response:
                data: dict[str, Any] = await response.json()
                return data

    def wait_link_keys(self, timeout: float = 30) -> None:
        """Until every link direction used by shares (S>Ri, Ri>D) holds key at its sender."""
        deadline = time.monotonic() + timeout
        while True:
            missing = []
            for a, b in LINKS:
                links = self.call(self.stats(a))["links"]
                if links.get(f"{a}>{b}", {}).get("end", 0) == 0:
                    missing.append(f"{a}>{b}")
            if not missing:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"no link key on {missing} after {timeout} s")
            time.sleep(0.05)

    def settle(self, timeout: float = 30, *, match: bool = True) -> dict[str, dict[str, Any]]:
        """Until the pair's key flow is quiet; then the stats of S and D (``{"S": ..., "D": ...}``).

        Quiet: S's store is full (its ready bytes at ``stores.depth_bytes`` or above, so it wants no
        more), no unit is in flight or pending at S, none is pending at D, and (with ``match``) D holds
        as many ready bytes as S; seen twice in a row with no unit sent or rebuilt in between. Counters
        read then do not move until the applications take keys: take "before" and "after" figures with it.
        """
        depth = int(self.stores.get("depth_bytes", 1 << 20))
        deadline = time.monotonic() + timeout
        last: tuple[int, int] | None = None
        moved: tuple[int, int] | None
        while True:
            try:
                stats = {name: self.call(self.stats(name)) for name in ("S", "D")}
            except (OSError, aiohttp.ClientError) as exc:  # a node (re)starting
                waiting, moved = [f"stats unreadable: {exc}"], None
            else:
                s, d = stats["S"]["keyflow"], stats["D"]["keyflow"]
                ready, flight = s["pairs"][PAIR]["ready_bytes"], s["pairs"][PAIR]["in_flight"]
                d_ready = d["pairs"][PAIR]["ready_bytes"]
                waiting = [
                    f"S holds {ready} of {depth} ready bytes" if ready < depth else "",
                    f"{flight} units in flight at S" if flight else "",
                    f"{s['pending']} units pending at S" if s["pending"] else "",
                    f"{d['pending']} units pending at D" if d["pending"] else "",
                    f"D holds {d_ready} ready bytes, S {ready}" if match and d_ready != ready else "",
                ]
                waiting = [w for w in waiting if w]
                moved = (s["units_sent"], stats["D"]["keys_delivered"])
            if not waiting and moved == last:
                return stats
            last = moved if not waiting else None
            if time.monotonic() > deadline:
                raise RuntimeError(f"the key flow did not settle in {timeout} s: {'; '.join(waiting) or 'moving'}")
            time.sleep(0.05)

    def close(self) -> None:
        for name in list(self.procs):
            self.stop_node(name)
        if self._thread is not None:
            if self._server is not None:
                self.call(self._server.close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    # -- node processes -----------------------------------------------------------------

    def log_path(self, name: str) -> Path:
        return self.dir / f"{name}.log"

    def start_node(self, name: str) -> None:
        log = open(self.log_path(name), "ab")
        try:
            argv = [sys.executable, "-m", "mpss_fast", "node", "--config", str(self.config_path(name))]
            self.starts[name] += 1
            self.procs[name] = self.lab.exec(
                name, argv, stdout=log, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"}
            )
        finally:
            log.close()

    def wait_up(self, name: str, timeout: float = 30) -> None:
        """Until the node's log says, as often as it was started, that it is up and that every neighbour
        resumes sending where it resumed (so no share is refused for a stale key ID after a restart)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path(name).read_text(errors="replace")
            up = text.count(f"node {name}: up")
            resumed = text.count(f"node {name}: every neighbour resumes sending")
            if min(up, resumed) >= self.starts[name]:
                return
            proc = self.procs[name]
            if proc.poll() is not None:
                raise RuntimeError(f"node {name} exited with {proc.returncode}:\n{text[-3000:]}")
            time.sleep(0.02)
        raise RuntimeError(f"node {name} did not come up:\n{self.log_path(name).read_text(errors='replace')[-3000:]}")

    def stop_node(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def restart_node(self, name: str) -> None:
        self.start_node(name)
        self.wait_up(name)


def running(directory: Path, **kw: Any) -> Iterator[NodeNet]:
    """A built and started :class:`NodeNet` in a fresh lab for a module's tests (skipped where namespaces
    are not available: not root, no ``ip netns``); stopped and removed afterwards."""
    import pytest

    reason = netns_available()
    if reason is not None:
        pytest.skip(reason)
    with Lab() as lab:
        network = NodeNet(lab, directory, **kw)
        try:
            network.build()
            network.start()
            yield network
        finally:
            network.close()
