"""``mpss node`` on real Linux SRv6 in network namespaces (root only; CI runs as root).

Source S, destination D and relays R1..R3 on three node-disjoint paths, each node a real
``mpss node`` process with its SID routed into a tun device; link keys from a KME over
ETSI 014; the applications get and collect keys over ETSI 014 with mutual TLS. Packets are
captured on every link (AF_PACKET ring) and checked against the real link keys.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import signal
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
from .nodenet import LINKS, NAMES, NodeNet

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
    captures = {(a, b): Capture(net.lab.ns(b if a == "S" else a), net.ifaces[(b, a) if a == "S" else (a, b)]) for a, b in LINKS}
    for cap in captures.values():
        cap.start()
    try:
        keys = net.call(_move(net, 30))
        time.sleep(0.2)
    finally:
        frames = {link: cap.stop() for link, cap in captures.items()}
    assert all(cap.drops == 0 for cap in captures.values())
    _check_links(net, frames, dict(keys))


def _check_links(net: NodeNet, frames: dict[tuple[str, str], Any], keys: dict[uuid.UUID, bytes]) -> None:
    import galois

    field = galois.GF(2**8, irreducible_poly=0x11B)
    shares: dict[tuple[uuid.UUID, int], bytes] = {}
    secrets = [*keys.values()]
    for (a, b), captured in frames.items():
        stream = net.kme.stream(a, b)
        used: list[tuple[int, int]] = []
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
                Poly1305.verify_tag(material[:32], option.mac_bytes() + packet.payload, option.tag)
            except InvalidSignature:
                raise AssertionError(f"packet on {a}>{b} not tagged with that link's key at key ID {h}") from None
            y = bytes(c ^ p for c, p in zip(packet.payload, material[32:], strict=True))
            earlier = shares.setdefault((key_id, option.x), y)
            assert earlier == y, "the relay changed the share"
            used.append((h, h + MATERIAL))
            secrets += [y, material[32:], material[:32]]
        assert seen == len(keys), f"link {a}>{b} carried {seen} shares for {len(keys)} keys"
        used.sort()
        assert all(end <= start for (_, end), (start, _) in zip(used, used[1:])), f"pad reused on {a}>{b}"
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


class Load:
    """Applications moving keys as fast as they can: ``workers`` loops of enc_keys at S then dec_keys at D."""

    def __init__(self, net: NodeNet, *, per_request: int = 10, workers: int = 4) -> None:
        self.net = net
        self.per_request = per_request
        self.workers = workers
        self.issued: dict[uuid.UUID, bytes] = {}
        self.delivered: dict[uuid.UUID, bytes] = {}
        self.mismatched: list[uuid.UUID] = []
        self.unknown_at_d: list[uuid.UUID] = []
        self.enc_ms: list[float] = []
        self.dec_ms: list[float] = []
        self.errors: dict[str, int] = {}

    async def run(self, *, keys: int, seconds: float) -> float:
        """Until ``keys`` were delivered or ``seconds`` passed; returns the elapsed time."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        deadline = start + seconds

        async def worker() -> None:
            async with self.net.app("S", nodelab.MASTER) as master, self.net.app("D", nodelab.SLAVE) as slave:
                while len(self.delivered) < keys and loop.time() < deadline:
                    await self._one(master, slave, loop)

        await asyncio.gather(*(worker() for _ in range(self.workers)))
        return loop.time() - start

    async def _one(self, master: Any, slave: Any, loop: asyncio.AbstractEventLoop) -> None:
        from mpss_fast.exceptions import Etsi014Error

        t0 = loop.time()
        try:
            keys = await master.enc_keys(nodelab.SLAVE, number=self.per_request, size=KEY_BITS)
        except Etsi014Error as exc:
            self.errors[f"enc {exc.status}"] = self.errors.get(f"enc {exc.status}", 0) + 1
            await asyncio.sleep(0.05)
            return
        self.enc_ms.append((loop.time() - t0) * 1e3)
        self.issued.update(keys)
        pending = [kid for kid, _ in keys]
        while pending:
            t0 = loop.time()
            try:
                got = await slave.dec_keys(nodelab.MASTER, pending)
            except Etsi014BadRequestError:
                # Some ID is unknown at D (its shares were lost while D was down): find which, take the rest.
                still = []
                for kid in pending:
                    try:
                        got_one = await slave.dec_keys(nodelab.MASTER, [kid])
                    except Etsi014BadRequestError:
                        self.unknown_at_d.append(kid)
                    except Etsi014Error:
                        still.append(kid)
                    else:
                        self._check(got_one)
                pending = still
                continue
            except Etsi014Error as exc:
                self.errors[f"dec {exc.status}"] = self.errors.get(f"dec {exc.status}", 0) + 1
                await asyncio.sleep(0.05)
                continue
            self.dec_ms.append((loop.time() - t0) * 1e3)
            self._check(got)
            pending = []

    def _check(self, got: list[tuple[uuid.UUID, bytes]]) -> None:
        for kid, key in got:
            if kid in self.delivered:
                self.mismatched.append(kid)  # delivered twice
            self.delivered[kid] = key
            if self.issued.get(kid) != key:
                self.mismatched.append(kid)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_load(net: NodeNet, capsys: pytest.CaptureFixture[str]) -> None:
    load = Load(net, per_request=10, workers=4)
    before = {name: _cpu_seconds(proc.pid) for name, proc in net.procs.items()}
    me = _cpu_seconds(os.getpid())
    elapsed = net.call(load.run(keys=3000, seconds=20), timeout=60)
    cpu = {name: round(_cpu_seconds(proc.pid) - before[name], 2) for name, proc in net.procs.items()}
    cpu["test (KME + apps)"] = round(_cpu_seconds(os.getpid()) - me, 2)
    rate = len(load.delivered) / elapsed
    with capsys.disabled():
        print(
            f"\nmpss node load: {len(load.delivered)} keys relayed end to end in {elapsed:.2f} s = {rate:.0f} keys/s; "
            f"enc_keys p50 {_pct(load.enc_ms, .5):.1f} ms p99 {_pct(load.enc_ms, .99):.1f} ms; "
            f"dec_keys p50 {_pct(load.dec_ms, .5):.1f} ms p99 {_pct(load.dec_ms, .99):.1f} ms; errors {load.errors}; "
            f"CPU s {cpu}"
        )
    assert not load.mismatched and not load.unknown_at_d
