"""On-link attacks against real ``mpss node`` processes (a slice of tests/test_attacks.py, end to end).

The nodes are ``python -m mpss_fast node`` processes in the ``nodelab`` diamond (S and D joined
by relays R1..R3, k = 2, n = 3); the applications call ETSI 014 (``enc_keys`` at S, ``dec_keys``
at D) and the nodes' counters are read from their peer API as an operator.

* UDP on loopback: every link direction a share uses (S>Ri, Ri>D) runs through a small UDP
  relay in the test (:class:`Tap`): the sender's ``udp`` map names the tap instead of the
  receiver, so every packet passes the attacker, who passes, drops, rewrites (re-encoded with
  ``mpss_fast.wire``, so the UDP checksum is valid), replays or injects. A segment list
  rewritten to steer R1's share through D to R2 (attack 1), forged shares with random hop key
  IDs and replays (attack 2), and a spoofed IPv6 source on every link into D, where D also
  serves an application pair whose master is at R2 (attack 4).
* SRv6 through tun devices in network namespaces (``tests/nodenet.py``, root): an attacker
  in S's namespace holds back S's packets to R1 (a blackhole route for R1's SID), reads them
  on S's tun, and puts them onto the S-R1 link (``AF_PACKET``) with their segment list
  rewritten, together with forged shares.

The next honest node must drop every packet the attacker made or changed (a bad tag, counted
against the link the packet names in ``link_drops``; a replay or a key ID beyond its pool as
such) without moving its pool; keys must keep flowing on the other paths, the key the slave
application collects must be the master's, and no key may be filed under another SAE pair.
Each test fails on the code before option version 2 (7b23109).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

pytest.importorskip("aiohttp")

from mpss_fast.etsi014 import kme_sim
from mpss_fast.etsi014.client import Etsi014Client
from mpss_fast.exceptions import Etsi014BadRequestError
from mpss_fast.wire import Srh, address, encode_packet, parse_packet

from . import nodelab
from .capture import Capture
from .netns import Lab, in_netns, netns_available
from .nodenet import NodeNet, link_addrs

T = TypeVar("T")

KEY_BITS = 256
MATERIAL = 32 + KEY_BITS // 8 + 16
"""Key material one share takes on a link: the MAC key and the pad of a 48-byte share."""
UNIT_BYTES = KEY_BITS // 8
"""One key is one unit of key material (``stores.unit_bytes``), so "move 5 keys" means 5 units refilled after."""
DEPTH_UNITS = 8
KEYS = {"batch": 8, "key_bits": 4096, "low_water_bytes": 8192, "refill_interval_s": 0.02, "lease_bytes": 0}
"""Link keys in small batches, and positions committed exactly (no lease): the bytes past a pool's committed
position are held and never handed out, which the forgeries aim at."""

STORES = {
    "unit_bytes": UNIT_BYTES,
    "depth_bytes": DEPTH_UNITS * UNIT_BYTES,
    "window": DEPTH_UNITS,
    "pending_s": 1.0,
    "prepared_keys": 0,
}
"""Small key stores: the flow is quiet (full store, nothing in flight) between the tests' steps; no prepared
keys, so every key moved is one unit carved and one unit refilled, and the share counts are exact."""
OPERATOR = "noc"
OTHER_MASTER, OTHER_SLAVE = "app-R2", "app-D2"
"""A second application pair at D, whose master is at R2: what a spoofed source would pick."""
SHARE_LINKS = nodelab.links(3)


def sid(name: str) -> bytes:
    return address(nodelab.sid(name))


def _rewrite(data: bytes, **changes: Any) -> bytes:
    """The packet with some fields changed, re-encoded (a valid UDP checksum): what an on-link attacker sends."""
    return encode_packet(dataclasses.replace(parse_packet(data), **changes))


def _steer_to_r2(data: bytes) -> bytes:
    """S>R1's share steered on through D to R2 (segments R1, D, R2): R2 would hold two shares of the key."""
    return _rewrite(data, srh=Srh((sid("R2"), sid("D"), sid("R1")), 2))


def _forgeries(template: bytes, inside: tuple[int, int], count: int, seed: int) -> tuple[list[bytes], list[bytes]]:
    """``count`` shares like ``template`` with random hop key IDs, tags and payloads: those inside the key IDs
    ``inside`` (held by the receiver's pool) and as many beyond anything it holds."""
    draw = random.Random(seed)
    packet = parse_packet(template)
    held, beyond = [], []
    for i in range(2 * count):
        key_id = draw.randrange(*inside) if i % 2 == 0 else draw.randrange(inside[1] + MATERIAL, 1 << 64)
        option = packet.option.with_hop(key_id, draw.randbytes(16))
        forged = encode_packet(dataclasses.replace(packet, option=option, payload=draw.randbytes(len(packet.payload))))
        (held if i % 2 == 0 else beyond).append(forged)
    return held, beyond


def _count(stats: dict[str, Any], why: str, link: str | None = None) -> int:
    """A drop counter of a node's stats: all of them, or those counted against ``link``."""
    if link is None:
        return int(stats.get("dropped", {}).get(why, 0))
    return int(stats.get("link_drops", {}).get(link, {}).get(why, 0))


def _position(stats: dict[str, Any], link: str) -> int:
    return int(stats["links"][link]["position"])


def _handled(stats: dict[str, Any]) -> int:
    """Packets a node took a decision on as a relay: relayed, or dropped for any reason."""
    return int(stats["shares_relayed"]) + sum(stats.get("dropped", {}).values())


def _until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


class Tap(asyncio.DatagramProtocol):
    """The attacker on one link direction: every datagram its sender sends to the receiver comes here first.

    ``act(packet)`` says what the receiver gets instead (default: the packet itself); ``seen``
    keeps everything the sender sent, ``passed`` what the receiver was sent; :meth:`inject` sends
    packets of the attacker's own.
    """

    def __init__(self, link: str, target: tuple[str, int]) -> None:
        self.link = link
        self.target = target
        self.act: Callable[[bytes], list[bytes]] | None = None
        self.seen: list[bytes] = []
        self.passed: list[bytes] = []
        """What the receiver was sent (after ``act``), injections left out."""
        self.errors: list[str] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.seen.append(data)
        act = self.act
        try:
            out = [data] if act is None else act(data)
        except Exception as exc:  # an attack that cannot be built is a test error, not a quiet drop
            self.errors.append(repr(exc))
            return
        assert self.transport is not None
        for packet in out:
            self.passed.append(packet)
            self.transport.sendto(packet, self.target)

    async def inject(self, packets: list[bytes]) -> None:
        """Send ``packets`` to the receiver, a few at a time (no loss in its socket buffer)."""
        assert self.transport is not None
        for i, packet in enumerate(packets, 1):
            self.transport.sendto(packet, self.target)
            if i % 16 == 0:
                await asyncio.sleep(0.01)


class UdpNet:
    """The diamond as ``mpss node`` processes on 127.0.0.1 (UDP transport, plain HTTP) with a :class:`Tap` on
    every share link; the KME simulator and the taps run on an asyncio loop in a thread of the test."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.names = nodelab.node_names(3)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.taps: dict[str, Tap] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="kme+taps", daemon=True)
        self._thread.start()
        self._kme: Any = None
        ports = nodelab.free_ports(2 * len(self.names))
        self.peer = dict(zip(self.names, ports[0::2], strict=True))
        self.api = dict(zip(self.names, ports[1::2], strict=True))

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self) -> None:
        self.call(self._start())
        for name in self.names:
            log = open(self.dir / f"{name}.log", "ab")
            try:
                argv = [sys.executable, "-m", "mpss_fast", "node", "--config", str(self.dir / f"{name}.json")]
                self.procs[name] = subprocess.Popen(
                    argv, stdout=log, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"}
                )
            finally:
                log.close()
        for name in self.names:
            self._wait_up(name)
        _until(self._keyed, 60, "link keys on every share link")
        self.settle(60)

    async def _start(self) -> None:
        self._kme = await kme_sim.start(kme_sim.KmeSimBackend(nodelab.kme_pairs(3)), "127.0.0.1", 0, plain_http=True)
        # each node's share socket: a free UDP port, taken by the node itself
        ports = dict(zip(self.names, nodelab.free_ports(len(self.names), socket.SOCK_DGRAM), strict=True))
        udp = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
        loop = asyncio.get_running_loop()
        tapped: dict[tuple[str, str], str] = {}  # (sender, receiver) -> where the sender sends: the tap
        for a, b in SHARE_LINKS:
            host, port = udp[b].rsplit(":", 1)
            tap = Tap(f"{a}>{b}", (host, int(port)))
            transport, _ = await loop.create_datagram_endpoint(lambda tap=tap: tap, local_addr=("127.0.0.1", 0))
            self.taps[tap.link] = tap
            tapped[(a, b)] = "127.0.0.1:{}".format(transport.get_extra_info("sockname")[1])
        configs = nodelab.loopback(
            3,
            self.dir,
            self._kme.port,
            self.peer,
            self.api,
            ports,
            operators=[OPERATOR],
            extra=lambda n: {
                "keys": {
                    "batch": 8,
                    "key_bits": 4096,
                    "low_water_bytes": 8192,
                    "refill_interval_s": 0.02,
                    "lease_bytes": 0,
                },
                "stores": STORES,
            },
        )
        for name, cfg in configs.items():
            cfg["udp"] = {**udp, **{b: tap for (a, b), tap in tapped.items() if a == name}}
        other = {
            "master": OTHER_MASTER, "slave": OTHER_SLAVE, "master_node": "R2", "slave_node": "D",
            "peer_url": f"http://127.0.0.1:{self.peer['R2']}",
        }  # fmt: skip
        configs["D"]["api"]["pairs"].append(other)
        for name, cfg in configs.items():
            (self.dir / f"{name}.json").write_text(json.dumps(cfg, indent=1))

    def _wait_up(self, name: str, timeout: float = 60) -> None:
        path = self.dir / f"{name}.log"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = path.read_text(errors="replace")
            if f"node {name}: up" in text and f"node {name}: every neighbour resumes sending" in text:
                return
            if self.procs[name].poll() is not None:
                raise RuntimeError(f"node {name} exited with {self.procs[name].returncode}:\n{text[-3000:]}")
            time.sleep(0.05)
        raise RuntimeError(f"node {name} did not come up:\n{path.read_text(errors='replace')[-3000:]}")

    def _keyed(self) -> bool:
        return all(self.stats(a)["links"].get(f"{a}>{b}", {}).get("end", 0) > 0 for a, b in SHARE_LINKS)

    def stats(self, name: str) -> dict[str, Any]:
        """The node's counters from its peer API, read as an operator."""
        return self.call(self._stats(name))

    async def _stats(self, name: str) -> dict[str, Any]:
        import aiohttp

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            url = f"http://127.0.0.1:{self.peer[name]}/mpss/v1/node/stats"
            async with session.get(url, headers={"X-MPSS-Node": OPERATOR}) as response:
                assert response.status == 200, await response.text()
                data: dict[str, Any] = await response.json()
                return data

    def app(self, node: str, sae: str) -> Etsi014Client:
        return Etsi014Client(f"http://127.0.0.1:{self.api[node]}", sae_id=sae, timeout=10)

    def move(self, count: int) -> dict[uuid.UUID, bytes]:
        """``count`` keys from enc_keys at S (master), collected with dec_keys at D (slave): the same keys;
        returns once the store refilled (exactly ``count`` units relayed, when no unit is lost)."""
        keys = self.call(self._move(count))
        self.settle()
        return keys

    async def _move(self, count: int) -> dict[uuid.UUID, bytes]:
        async with self.app("S", nodelab.MASTER) as master, self.app("D", nodelab.SLAVE) as slave:
            keys = await master.enc_keys(nodelab.SLAVE, number=count, size=KEY_BITS)
            got = await slave.dec_keys(nodelab.MASTER, [kid for kid, _ in keys])  # at once: D holds them
            assert got == keys, "the slave application collected other keys than the master got"
            assert len({key for _, key in keys}) == count
            return dict(keys)

    def settle(self, timeout: float = 30) -> None:
        """Wait until the flow is quiet: S's store full and nothing in flight."""

        def quiet() -> bool:
            flow = self.stats("S")["keyflow"]
            return flow["pending"] == 0 and flow["pairs"][f"{nodelab.MASTER}->{nodelab.SLAVE}"]["ready_bytes"] == (
                DEPTH_UNITS * UNIT_BYTES
            )

        _until(quiet, timeout, "S's key store to be full with nothing in flight")

    def logs(self) -> str:
        return "\n".join(
            f"--- {name}\n{(self.dir / f'{name}.log').read_text(errors='replace')[-2000:]}" for name in self.names
        )

    def close(self) -> None:
        nodelab.stop_processes(self.procs.values(), 10)
        if self._kme is not None:
            self.call(self._kme.close())
        for tap in self.taps.values():
            if tap.transport is not None:
                self._loop.call_soon_threadsafe(tap.transport.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture(scope="module")
def udp_net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UdpNet]:
    net = UdpNet(tmp_path_factory.mktemp("attacks-udp"))
    try:
        net.start()
        net.move(3)  # honest: every tap has seen shares
        yield net
    finally:
        net.close()
    assert all(not tap.errors for tap in net.taps.values()), {t.link: t.errors for t in net.taps.values()}


@pytest.fixture
def attacker(udp_net: UdpNet) -> Iterator[dict[str, Tap]]:
    """The taps, every one passing packets on again when the test ends."""
    yield udp_net.taps
    for tap in udp_net.taps.values():
        tap.act = None


def test_udp_a_rewritten_segment_list_is_dropped_at_r1_and_keys_still_flow(
    udp_net: UdpNet, attacker: dict[str, Tap]
) -> None:
    """Attack 1 on S>R1: each share is steered on through D to R2, which would then hold two shares of the key."""
    net = udp_net
    before = {name: net.stats(name) for name in ("R1", "R2", "D")}
    attacker["S>R1"].act = lambda data: [_steer_to_r2(data)]
    keys = net.move(5)  # still delivered: the shares on R2 and R3 decide (k = 2)
    _until(lambda: _handled(net.stats("R1")) - _handled(before["R1"]) >= 5, 15, "R1 to handle 5 packets")
    after = {name: net.stats(name) for name in ("R1", "R2", "D")}
    steered = {
        "relayed by R1": after["R1"]["shares_relayed"] - before["R1"]["shares_relayed"],
        "relayed by D": after["D"]["shares_relayed"] - before["D"]["shares_relayed"],
        "received by R2 as their destination": after["R2"]["shares_received"] - before["R2"]["shares_received"],
    }
    assert set(steered.values()) == {0}, f"rerouted shares went on: {steered}"
    assert _count(after["R1"], "bad tag", "S>R1") - _count(before["R1"], "bad tag", "S>R1") == 5, net.logs()
    assert _count(after["R1"], "bad tag") - _count(before["R1"], "bad tag") == 5
    assert _position(after["R1"], "S>R1") == _position(before["R1"], "S>R1"), "a rerouted share consumed key"
    assert after["D"]["keys_delivered"] - before["D"]["keys_delivered"] == len(keys) == 5
    assert after["D"]["shares_received"] - before["D"]["shares_received"] == 10  # two paths of three
    assert after["D"]["tampered"] == before["D"]["tampered"]


def test_udp_forged_key_ids_and_replays_move_no_pool_and_honest_keys_flow_on_all_paths(
    udp_net: UdpNet, attacker: dict[str, Tap]
) -> None:
    """Attack 2 on S>R1: forged shares with random hop key IDs (in R1's pool and beyond it), replayed shares."""
    net = udp_net
    tap = attacker["S>R1"]
    replays = tap.passed[:3]  # R1 took these shares when the network started (udp_net)
    assert len(replays) == 3

    before = {name: net.stats(name) for name in ("R1", "D")}
    # held and never handed out: past the committed position (exact here: no lease), before the end
    position, end = _position(before["R1"], "S>R1"), before["R1"]["links"]["S>R1"]["end"]
    assert end - position > 4 * MATERIAL
    held, beyond = _forgeries(replays[0], (position, end - MATERIAL), 60, seed=2)
    net.call(tap.inject([*held, *beyond, *replays]))
    _until(lambda: _handled(net.stats("R1")) - _handled(before["R1"]) >= 123, 20, "R1 to handle 123 packets")
    after = net.stats("R1")
    assert _position(after, "S>R1") == position, "forged key IDs moved R1's pool for S>R1"
    assert after["links"]["S>R1"]["end"] >= end
    assert _count(after, "bad tag", "S>R1") - _count(before["R1"], "bad tag", "S>R1") == 60, net.logs()
    assert _count(after, "bad tag") - _count(before["R1"], "bad tag") == 60
    assert _count(after, "no key") - _count(before["R1"], "no key") == 60
    replayed = "offset behind the pool (replay or restart)"
    assert _count(after, replayed) - _count(before["R1"], replayed) == 3
    assert after["shares_relayed"] == before["R1"]["shares_relayed"]
    keys = net.move(5)  # and R1's path still carries: every key's three shares reach D

    def received() -> int:
        return int(net.stats("D")["shares_received"]) - int(before["D"]["shares_received"])

    _until(lambda: received() >= 15, 15, "D to receive 15 shares")
    assert received() == 15
    assert net.stats("R1")["shares_relayed"] - before["R1"]["shares_relayed"] == len(keys) == 5


def test_udp_a_spoofed_source_cannot_pick_the_application_pair(udp_net: UdpNet, attacker: dict[str, Tap]) -> None:
    """Attack 4 on every link into D: the IPv6 source becomes R2's SID, the master node of D's other pair.

    Keys issued now come from material confirmed before the attack: the right pair collects them,
    the other pair cannot. The units relayed to refill the store arrive spoofed: every share is
    dropped for a bad tag (the tag covers the source), no unit is rebuilt for either pair, and
    S wipes them after ``pending_s``; the store refills once the attacker is gone.
    """
    net = udp_net
    before = net.stats("D")
    for relay in ("R1", "R2", "R3"):
        attacker[f"{relay}>D"].act = lambda data: [_rewrite(data, src=sid("R2"))]

    async def attack() -> list[str]:
        async with net.app("S", nodelab.MASTER) as master:
            keys = await master.enc_keys(nodelab.SLAVE, number=3, size=KEY_BITS)
        ids = [kid for kid, _ in keys]
        outcome = []
        for node_app, master_app in ((OTHER_SLAVE, OTHER_MASTER), (nodelab.SLAVE, nodelab.MASTER)):
            async with net.app("D", node_app) as slave:
                try:
                    got = await slave.dec_keys(master_app, ids)
                    outcome.append(f"{master_app}>{node_app}: " + ("delivered" if got == keys else "other keys"))
                except Etsi014BadRequestError:
                    outcome.append(f"{master_app}>{node_app}: unknown")
        return outcome

    outcome = net.call(attack())
    assert outcome[0] == f"{OTHER_MASTER}>{OTHER_SLAVE}: unknown", "a key was delivered under another SAE pair"
    assert outcome[1] == f"{nodelab.MASTER}>{nodelab.SLAVE}: delivered"  # confirmed before the attack
    arrived = lambda stats: stats["shares_received"] + sum(stats.get("dropped", {}).values())  # noqa: E731
    _until(lambda: arrived(net.stats("D")) - arrived(before) >= 9, 15, "D to handle the 9 spoofed shares")
    after = net.stats("D")
    spoofed = arrived(after) - arrived(before)
    assert _count(after, "bad tag") - _count(before, "bad tag") == spoofed, net.logs()
    per_link = [_count(after, "bad tag", f"{r}>D") - _count(before, "bad tag", f"{r}>D") for r in ("R1", "R2", "R3")]
    assert sum(per_link) == spoofed and min(per_link) >= 3  # every link's spoofed shares, counted against it
    assert after["keys_delivered"] == before["keys_delivered"] and after["shares_received"] == before["shares_received"]
    assert after["keyflow"]["units_confirmed"] == before["keyflow"]["units_confirmed"]
    for relay in ("R1", "R2", "R3"):
        attacker[f"{relay}>D"].act = None
    net.settle()  # the units lost to the attack expired at S and were sent again
    net.move(3)  # the attacker gone, keys flow again


# -- SRv6 through tun devices in network namespaces (root) -------------------------------------


def _mac(net: NodeNet, node: str, ifname: str) -> bytes:
    """The MAC address of ``ifname`` in ``node``'s namespace."""
    out = net.lab.run(node, ["ip", "-j", "link", "show", "dev", ifname]).stdout
    return bytes.fromhex(json.loads(out)[0]["address"].replace(":", ""))


def _put_on_link(ns: str, ifname: str, mac: bytes, packets: list[bytes]) -> None:
    """Send ``packets`` as Ethernet frames out of ``ifname`` (in namespace ``ns``) to ``mac``: onto the link,
    past the sender's routing."""
    eth_p_ipv6 = 0x86DD
    with in_netns(ns), socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(eth_p_ipv6)) as sock:
        for i, packet in enumerate(packets, 1):
            sock.sendto(packet, (ifname, eth_p_ipv6, 0, 0, mac))
            if i % 16 == 0:
                time.sleep(0.01)


def test_srv6_shares_held_back_and_rewritten_or_forged_onto_a_link_are_dropped_by_the_next_node(
    tmp_path: Path,
) -> None:
    """An attacker in S's namespace holds back S's shares to R1 (a blackhole route for R1's SID) and reads them on
    S's tun; it then puts them onto the S-R1 link with their segment list rewritten to steer them on through D to R2,
    and forged shares with random hop key IDs. R1 drops them all (bad tags on S>R1, or no key beyond its pool), its
    pool does not move, keys are delivered on the other two paths meanwhile and on all three afterwards."""
    reason = netns_available()
    if reason is not None:
        pytest.skip(reason)
    with Lab() as lab:
        net = NodeNet(lab, tmp_path)
        try:
            net.build()
            net.start()
            _srv6_attack(net)
        finally:
            net.close()


def _srv6_attack(net: NodeNet) -> None:
    async def move(count: int) -> dict[uuid.UUID, bytes]:
        """``count`` keys from the store (one unit each: ``nodenet.STORES``); the store refills after."""
        async with net.app("S", nodelab.MASTER) as master, net.app("D", nodelab.SLAVE) as slave:
            keys = await master.enc_keys(nodelab.SLAVE, number=count, size=KEY_BITS)
            got = await slave.dec_keys(nodelab.MASTER, [kid for kid, _ in keys])
            assert got == keys, "the slave application collected other keys than the master got"
            return dict(keys)

    def stats(name: str) -> dict[str, Any]:
        return net.call(net.stats(name))

    lab, r1 = net.lab, nodelab.sid("R1")
    s_iface = net.ifaces[("S", "R1")]
    r1_mac = _mac(net, "R1", net.ifaces[("R1", "S")])
    net.settle(60)
    net.call(move(2))
    net.settle()
    before = {name: stats(name) for name in ("R1", "R2", "D")}
    # Hold back S's shares to R1 and read them where S's node writes them: its tun (raw IPv6, no link header).
    lab.ip("S", [f"route replace blackhole {r1}/128"])
    try:
        tun = Capture(lab.ns("S"), "mpss0").start()
        try:
            held_back = net.call(move(4))  # the 4 units refilling the store: delivered on R2's and R3's paths
            net.settle()
        finally:
            frames = tun.stop()
        taken = [f.data for f in frames if f.data[:1] == b"\x60" and f.data[24:40] == sid("R1")]
        assert len(taken) == 4, f"{len(taken)} of S's shares to R1 read on its tun"
        middle = stats("R1")
        position, end = _position(middle, "S>R1"), middle["links"]["S>R1"]["end"]
        assert end - position > 4 * MATERIAL
        steered = [_steer_to_r2(data) for data in taken]
        held, beyond = _forgeries(taken[0], (position, end - MATERIAL), 40, seed=3)
        _put_on_link(lab.ns("S"), s_iface, r1_mac, [*steered, *held, *beyond])
        _until(lambda: _handled(stats("R1")) - _handled(middle) >= 84, 20, "R1 to handle the 84 packets put on S-R1")
        after = {name: stats(name) for name in ("R1", "R2", "D")}
        r1_log = net.log_path("R1").read_text(errors="replace")[-3000:]
        steered = {
            "relayed by R1": after["R1"]["shares_relayed"] - before["R1"]["shares_relayed"],
            "relayed by D": after["D"]["shares_relayed"] - before["D"]["shares_relayed"],
            "received by R2 as their destination": after["R2"]["shares_received"] - before["R2"]["shares_received"],
        }
        assert set(steered.values()) == {0}, f"shares put on S-R1 went on: {steered}"
        assert _count(after["R1"], "bad tag", "S>R1") - _count(middle, "bad tag", "S>R1") == 44, r1_log
        assert _count(after["R1"], "bad tag") - _count(middle, "bad tag") == 44
        assert _count(after["R1"], "no key") - _count(middle, "no key") == 40
        assert _position(after["R1"], "S>R1") == position == _position(before["R1"], "S>R1"), "R1's pool moved"
        assert after["D"]["keys_delivered"] - before["D"]["keys_delivered"] == len(held_back) == 4
        assert after["D"]["shares_received"] - before["D"]["shares_received"] == 8  # two paths of three
    finally:
        via = link_addrs("S", "R1")[1]
        lab.ip("S", [f"route replace {r1}/128 via {via} dev {s_iface}"])
    keys = net.call(move(5))  # the route back: every unit's three shares reach D
    net.settle()
    received = lambda: stats("D")["shares_received"] - after["D"]["shares_received"]  # noqa: E731
    _until(lambda: received() >= 15, 15, "D to receive 15 shares")
    final = {name: stats(name) for name in ("R1", "D")}
    assert received() == 15 and final["R1"]["shares_relayed"] - after["R1"]["shares_relayed"] == len(keys) == 5
    assert final["D"]["tampered"] == before["D"]["tampered"]
