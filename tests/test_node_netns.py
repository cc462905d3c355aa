"""``mpss node`` on real Linux SRv6 in network namespaces (root only; CI runs as root).

Source S, destination D and relays R1..R3 on three node-disjoint paths, each node a real
``mpss node`` process with its SID routed into a tun device; link keys from a KME over
ETSI 014; the applications get and collect keys over ETSI 014 with mutual TLS. Packets are
captured on every link (AF_PACKET ring) and checked against the real link keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aiohttp")

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.poly1305 import Poly1305

from mpss_fast.e2e import derive_key
from mpss_fast.exceptions import Etsi014BadRequestError, WireError
from mpss_fast.wire import parse_packet

from . import nodelab
from .capture import Capture, ipv6_packets
from .netns import Lab, netns_available
from .nodenet import LINKS, NodeNet

KEY_BITS = 256
SHARE_LEN = KEY_BITS // 8 + 16
MATERIAL = 32 + SHARE_LEN


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeNet]:
    reason = netns_available()
    if reason is not None:
        pytest.skip(reason)
    with Lab() as lab:
        network = NodeNet(lab, tmp_path_factory.mktemp("nodenet"))
        try:
            network.build()
            network.start()
            yield network
        finally:
            network.close()


async def _move(net: NodeNet, count: int, *, per_request: int = 10) -> list[tuple[uuid.UUID, bytes]]:
    """``count`` keys from enc_keys at S, collected with dec_keys at D; both sides must agree."""
    got: list[tuple[uuid.UUID, bytes]] = []
    async with net.app("S", nodelab.MASTER) as master, net.app("D", nodelab.SLAVE) as slave:
        while len(got) < count:
            keys = await master.enc_keys(nodelab.SLAVE, number=min(per_request, count - len(got)), size=KEY_BITS)
            assert await slave.dec_keys(nodelab.MASTER, [kid for kid, _ in keys]) == keys
            got += keys
    return got


def test_keys_relayed_over_srv6_with_only_ciphertext_on_every_link(net: NodeNet) -> None:
    captures = {link: Capture(net.lab.ns(_capture_end(link)), net.ifaces[_capture_iface(link)]) for link in LINKS}
    for cap in captures.values():
        cap.start()
    try:
        keys = net.call(_move(net, 30))
        time.sleep(0.2)
    finally:
        frames = {link: cap.stop() for link, cap in captures.items()}
    assert all(cap.drops == 0 for cap in captures.values())
    _check_links(net, frames, dict(keys))
    _check_no_pad_reuse(frames)


def _check_links(net: NodeNet, frames: dict[tuple[str, str], Any], keys: dict[uuid.UUID, bytes]) -> None:
    import galois

    field = galois.GF(2**8, irreducible_poly=0x11B)
    shares: dict[tuple[uuid.UUID, int], bytes] = {}
    secrets = [*keys.values()]
    for (a, b), captured in frames.items():
        stream = net.kme.stream(a, b)
        path = int((b if a == "S" else a)[1:]) - 1
        seen = 0
        for _, data in ipv6_packets(captured):
            try:
                packet = parse_packet(data)
            except WireError:
                continue  # the link key announcements (TCP) and neighbour discovery
            seen += 1
            option = packet.option
            assert (option.k, option.n, option.share_len) == (2, 3, SHARE_LEN)
            assert option.path_id == path and option.x == path + 1, "a share on another path's link"
            assert packet.srh.segments_left == (1 if a == "S" else 0)
            key_id = uuid.UUID(bytes=option.session_id)
            assert key_id in keys
            h = option.hop_key_id
            material = stream[h : h + MATERIAL]
            assert len(material) == MATERIAL
            try:
                Poly1305.verify_tag(material[:32], _tag_input(data), option.tag)
            except InvalidSignature:
                raise AssertionError(f"packet on {a}>{b} not tagged with that link's key at key ID {h}") from None
            y = bytes(c ^ p for c, p in zip(packet.payload, material[32:], strict=True))
            earlier = shares.setdefault((key_id, option.x), y)
            assert earlier == y, "the relay changed the share"
            secrets += [y, material[32:], material[:32]]
        assert seen == len(keys), f"link {a}>{b} carried {seen} shares for {len(keys)} keys"
    for key_id, key in keys.items():
        ys = [shares[(key_id, x)] for x in (1, 2, 3)]
        for i, j in ((0, 1), (0, 2), (1, 2)):
            xi, xj = field(i + 1), field(j + 1)
            number = field(list(ys[i])) * (xj / (xi + xj)) + field(list(ys[j])) * (xi / (xi + xj))
            raw = bytes(number.tolist())
            assert derive_key(raw[: KEY_BITS // 8], key_id, length=KEY_BITS // 8) == key
        secrets.append(bytes(number.tolist())[: KEY_BITS // 8])
    for captured in frames.values():
        for frame in captured:
            for secret in secrets:
                assert secret not in frame.data, "secret bytes in the clear on a link"


def _tag_input(data: bytes) -> bytes:
    """What an option version 2 hop tag covers, read from the packet's own bytes (docs/wire-format.md,
    "The per-hop tag"): the MPSS option TLV with its Tag zeroed, the route (IPv6 Source Address; the SRH's
    Segments Left, Last Entry, Flags and Tag; its segment list), then the UDP payload."""
    assert (data[6], data[40], data[42], data[43]) == (60, 43, 0x7E, 52), "not IPv6 | DOH (MPSS option) | SRH"
    srh = 40 + (data[41] + 1) * 8
    assert (data[srh], data[srh + 2]) == (17, 4), "not SRH (type 4) | UDP"
    last_entry = data[srh + 4]
    option = data[42:80] + bytes(16)  # type, length and data up to the Tag (DOH offset 40..56), zeroed
    route = data[8:24] + data[srh + 3 : srh + 8] + data[srh + 8 : srh + 8 + 16 * (last_entry + 1)]
    assert len(route) == 21 + 16 * (last_entry + 1)
    payload = data[srh + (data[srh + 1] + 1) * 8 + 8 :]  # after the SRH and the UDP header
    return option + route + payload


class Load:
    """Applications moving keys at a set pace: every ``per_request / rate`` seconds a request of
    ``per_request`` keys starts (enc_keys at S, then dec_keys at D), at most ``inflight`` at once."""

    def __init__(self, net: NodeNet, *, rate: float, per_request: int = 5, inflight: int = 32) -> None:
        self.net = net
        self.rate = rate
        self.per_request = per_request
        self.inflight = inflight
        self.issued: dict[uuid.UUID, bytes] = {}
        self.issued_at: dict[uuid.UUID, float] = {}  # time.monotonic() when enc_keys answered
        self.delivered: dict[uuid.UUID, bytes] = {}
        self.mismatched: list[uuid.UUID] = []
        self.unknown_at_d: list[uuid.UUID] = []
        self.enc_ms: list[float] = []
        self.dec_ms: list[float] = []
        self.errors: dict[str, int] = {}
        self.stop = False
        """Set to stop starting requests (those out are still collected)."""

    async def run(self, *, keys: int, seconds: float) -> float:
        """Until ``keys`` were issued or ``seconds`` passed, then until they are collected; returns the time."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        slots = asyncio.Semaphore(self.inflight)
        tasks = []
        async with self.net.app("S", nodelab.MASTER) as master, self.net.app("D", nodelab.SLAVE) as slave:
            sent = 0
            while sent < keys and loop.time() - start < seconds and not self.stop:
                await slots.acquire()
                tasks.append(asyncio.create_task(self._one(master, slave, loop, slots)))
                sent += self.per_request
                await asyncio.sleep(max(0.0, start + sent / self.rate - loop.time()))
            await asyncio.gather(*tasks)
        return loop.time() - start

    def _count(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1

    async def _one(self, master: Any, slave: Any, loop: asyncio.AbstractEventLoop, slots: asyncio.Semaphore) -> None:
        from mpss_fast.exceptions import Etsi014Error

        try:
            t0 = loop.time()
            try:
                keys = await master.enc_keys(nodelab.SLAVE, number=self.per_request, size=KEY_BITS)
            except Etsi014Error as exc:  # S is down or short of link key: nothing was issued
                self._count(f"enc_keys {exc.status}")
                await asyncio.sleep(0.05)
                return
            self.enc_ms.append((loop.time() - t0) * 1e3)
            self.issued.update(keys)
            now = time.monotonic()
            self.issued_at.update((kid, now) for kid, _ in keys)
            await self._collect([kid for kid, _ in keys], slave, loop)
        finally:
            slots.release()

    async def _collect(self, pending: list[uuid.UUID], slave: Any, loop: asyncio.AbstractEventLoop) -> None:
        from mpss_fast.exceptions import Etsi014Error

        deadline = loop.time() + 60
        while pending and loop.time() < deadline:
            t0 = loop.time()
            try:
                got = await slave.dec_keys(nodelab.MASTER, pending)
            except Etsi014BadRequestError:
                # Some ID is unknown at D (its shares were lost while D was down): find which, take the rest.
                still = []
                for kid in pending:
                    try:
                        self._check(await slave.dec_keys(nodelab.MASTER, [kid]))
                    except Etsi014BadRequestError:
                        self.unknown_at_d.append(kid)
                    except Etsi014Error:
                        still.append(kid)
                pending = still
                continue
            except Etsi014Error as exc:  # D is down: try again
                self._count(f"dec_keys {exc.status}")
                await asyncio.sleep(0.05)
                continue
            self.dec_ms.append((loop.time() - t0) * 1e3)
            self._check(got)
            pending = []

    def _check(self, got: list[tuple[uuid.UUID, bytes]]) -> None:
        for kid, key in got:
            if kid in self.delivered or self.issued.get(kid) != key:
                self.mismatched.append(kid)  # delivered twice, or not the key issued
            self.delivered[kid] = key

    def report(self, elapsed: float) -> str:
        return (
            f"{len(self.delivered)} of {len(self.issued)} keys relayed end to end in {elapsed:.2f} s = "
            f"{len(self.delivered) / elapsed:.0f} keys/s (paced at {self.rate:.0f}); "
            f"enc_keys p50 {_pct(self.enc_ms, 0.5):.1f} ms p99 {_pct(self.enc_ms, 0.99):.1f} ms; "
            f"dec_keys p50 {_pct(self.dec_ms, 0.5):.1f} ms p99 {_pct(self.dec_ms, 0.99):.1f} ms; "
            f"refused {self.errors or 'none'}"
        )


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_load(net: NodeNet, capsys: pytest.CaptureFixture[str]) -> None:
    """Bounded (3,000 keys or 15 s) at 550 keys/s, 10 keys per request: the figures the closing note quotes."""
    load = Load(net, rate=550, per_request=10)
    before = {name: _cpu_seconds(proc.pid) for name, proc in net.procs.items()}
    me = _cpu_seconds(os.getpid())
    elapsed = net.call(load.run(keys=3000, seconds=15), timeout=120)
    cpu = {name: round(_cpu_seconds(proc.pid) - before[name], 2) for name, proc in net.procs.items()}
    cpu["test (KME + apps)"] = round(_cpu_seconds(os.getpid()) - me, 2)
    with capsys.disabled():
        print(f"\nmpss node load: {load.report(elapsed)}; CPU seconds {cpu}")
    assert not load.mismatched and not load.unknown_at_d and len(load.delivered) == len(load.issued) >= 1000


def test_keys_are_delivered_with_a_relay_stopped(net: NodeNet) -> None:
    net.stop_node("R3")
    try:
        before = net.call(net.stats("D"))
        net.call(_move(net, 20))
        after = net.call(net.stats("D"))
        assert after["keys_delivered"] - before["keys_delivered"] == 20
        assert after["shares_received"] - before["shares_received"] == 40  # two paths of three
    finally:
        net.restart_node("R3")


def test_a_tampering_relay_is_detected_and_named(net: NodeNet) -> None:
    net.set_tamper("R2")
    net.stop_node("R2")
    net.restart_node("R2")
    try:
        keys = dict(net.call(_move(net, 10)))  # still delivered: the other two shares decide
        reports = [r for r in net.call(net.stats("D"))["tampered"] if uuid.UUID(r["key_ID"]) in keys]
        assert len(reports) == 10 and all(r["path"] == 1 and r["relays"] == ["R2"] for r in reports)
        assert "the share on path 1 (relays R2) was altered" in net.log_path("D").read_text()
    finally:
        net.set_tamper(None)
        net.stop_node("R2")
        net.restart_node("R2")


def _positions(net: NodeNet, name: str) -> dict[str, int]:
    """The committed position of every link direction in the node's database (read-only, while it runs)."""
    uri = f"file:{net.dir / (name + '.db')}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
        return dict(conn.execute("SELECT link, position FROM links").fetchall())


CYCLES = ["R1", "S", "R2", "D", "R3", "R1", "S", "R2", "D", "R3"]


def test_kill_restart_cycles_lose_no_acknowledged_key_and_reuse_no_pad(
    net: NodeNet, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGKILL and restart each node in turn (10 cycles) under a paced load, with every link captured."""
    captures = {link: Capture(net.lab.ns(_capture_end(link)), net.ifaces[_capture_iface(link)]) for link in LINKS}
    for cap in captures.values():
        cap.start()
    load = Load(net, rate=200, per_request=5)
    running = asyncio.run_coroutine_threadsafe(load.run(keys=10**6, seconds=60), net._loop)
    d_down: list[tuple[float, float]] = []  # time.monotonic() windows around each kill of D
    d_killed: list[float] = []  # time.time() of each kill of D (the store's clock)
    regressions = []
    try:
        for name in CYCLES:
            time.sleep(0.7)
            before = _positions(net, name)
            killed = time.monotonic()
            if name == "D":
                d_killed.append(time.time())
            net.stop_node(name, signal.SIGKILL)
            net.restart_node(name)
            if name == "D":
                d_down.append((killed - 1.0, time.monotonic() + 1.0))
            after = _positions(net, name)
            regressions += [(name, link, p, after.get(link)) for link, p in before.items() if after.get(link, -1) < p]
        time.sleep(0.5)
    finally:
        load.stop = True  # no new requests; the ones out are collected
        elapsed = running.result(timeout=120)
    frames = {link: cap.stop() for link, cap in captures.items()}
    lost_after_ack, answer_lost = _acknowledged_but_not_delivered(net, load)
    with capsys.disabled():
        print(
            f"\nmpss node kill/restart: 10 SIGKILL+restart cycles (R1 S R2 D R3 x2) under load: "
            f"{load.report(elapsed)}; keys in flight to D while it was down (never acknowledged): "
            f"{len(load.unknown_at_d) - len(answer_lost)}; delivered by D in the instant it was killed, "
            f"answer lost: {len(answer_lost)}; acknowledged but lost: {len(lost_after_ack)}"
        )
    assert not regressions, f"a recorded position went back after a restart: {regressions}"
    assert not load.mismatched and not lost_after_ack
    # At most once: a key D delivered just before a kill, whose answer died with D, is not delivered again.
    assert all(any(0 <= killed - when < 1.0 for killed in d_killed) for when in answer_lost.values())
    in_flight = [kid for kid in load.unknown_at_d if str(kid) not in answer_lost]
    assert all(any(a <= load.issued_at[kid] <= b for a, b in d_down) for kid in in_flight)
    assert len(load.delivered) >= 300  # the point is the cycles; the pace drops while D is down
    _check_no_pad_reuse(frames)


def _capture_end(link: tuple[str, str]) -> str:
    a, b = link
    return b if a == "S" else a  # the relay's side of the link


def _capture_iface(link: tuple[str, str]) -> tuple[str, str]:
    a, b = link
    return (b, a) if a == "S" else (a, b)


def _acknowledged_but_not_delivered(net: NodeNet, load: Load) -> tuple[list[str], dict[str, float]]:
    """Keys D committed that the application never got: still pending (lost after acknowledgement),
    and marked delivered (with when) though the answer never arrived (D was killed as it answered)."""
    with contextlib.closing(sqlite3.connect(f"file:{net.dir / 'D.db'}?mode=ro", uri=True)) as conn:
        rows = conn.execute("SELECT key_id, state, delivered FROM keys").fetchall()
    missed = [(kid, state, when) for kid, state, when in rows if uuid.UUID(kid) in load.issued]
    missed = [(kid, state, when) for kid, state, when in missed if uuid.UUID(kid) not in load.delivered]
    pending = [kid for kid, state, _ in missed if state != "delivered"]
    return pending, {kid: when for kid, state, when in missed if state == "delivered"}


def _check_no_pad_reuse(frames: dict[tuple[str, str], Any]) -> None:
    for link, captured in frames.items():
        used = []
        for _, data in ipv6_packets(captured):
            try:
                packet = parse_packet(data)
            except WireError:
                continue
            used.append((packet.option.hop_key_id, packet.option.hop_key_id + MATERIAL))
        used.sort()
        overlaps = [(p, q) for p, q in itertools.pairwise(used) if q[0] < p[1]]
        assert not overlaps, f"pad material used twice on {link}: {overlaps[:3]}"
