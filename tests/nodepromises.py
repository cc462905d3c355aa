"""What the namespace node tests share (``test_node_netns``, ``test_node_netns_promises``): applications
moving keys under load (:class:`Load`), the checks of what they were handed out against D's key store, and
the captures of every link with the check that no pad byte serves two shares."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
import time
import uuid
from typing import Any

from mpss_fast.exceptions import Etsi014BadRequestError, Etsi014Error, WireError
from mpss_fast.relay.hop import hop_key_bytes
from mpss_fast.wire import parse_packet

from . import nodelab
from .capture import Capture, Frame, ipv6_packets
from .nodenet import LINKS, NodeNet


class Load:
    """Applications moving keys at a set pace: every ``per_request / rate`` seconds a request of
    ``per_request`` keys starts (enc_keys at S, then dec_keys at D), at most ``inflight`` at once.
    A refused enc_keys (503: the store is short, or D did not confirm; or no answer: S is down) is
    counted and not retried: nothing was handed out (each in :attr:`refusals`). ``key_bits``: the size
    asked."""

    def __init__(
        self,
        net: NodeNet,
        *,
        rate: float,
        per_request: int = 5,
        inflight: int = 32,
        key_bits: int = 256,
    ) -> None:
        self.net = net
        self.rate = rate
        self.per_request = per_request
        self.inflight = inflight
        self.key_bits = key_bits
        self.issued: dict[uuid.UUID, bytes] = {}
        self.issued_at: dict[uuid.UUID, float] = {}  # time.monotonic() when enc_keys answered
        self.delivered: dict[uuid.UUID, bytes] = {}
        self.collected: list[tuple[float, float]] = []  # (request start, keys collected), time.monotonic()
        self.mismatched: list[uuid.UUID] = []
        self.unknown_at_d: list[uuid.UUID] = []
        """Keys S handed out that D did not know: the promise broken."""
        self.gone_at_d: list[uuid.UUID] = []
        """Keys D called already delivered though the application never got them (their answer was lost)."""
        self.enc_ms: list[float] = []
        self.dec_ms: list[float] = []
        self.errors: dict[str, int] = {}
        self.refusals: list[tuple[float, int | None, float | None]] = []
        """(time.monotonic(), HTTP status or None without an answer, Retry-After in seconds or None) of each
        refused enc_keys."""
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

        try:
            started = time.monotonic()
            t0 = loop.time()
            try:
                keys = await master.enc_keys(nodelab.SLAVE, number=self.per_request, size=self.key_bits)
            except Etsi014Error as exc:  # nothing was handed out
                self._count(f"enc_keys {exc.status or 'no answer'}")
                self.refusals.append((time.monotonic(), exc.status, exc.retry_after))
                await asyncio.sleep(0.05)
                return
            self.enc_ms.append((loop.time() - t0) * 1e3)
            self.issued.update(keys)
            now = time.monotonic()
            self.issued_at.update((kid, now) for kid, _ in keys)
            if await self._collect([kid for kid, _ in keys], slave, loop):
                self.collected.append((started, time.monotonic()))
        finally:
            slots.release()

    async def _collect(self, pending: list[uuid.UUID], slave: Any, loop: asyncio.AbstractEventLoop) -> bool:
        """dec_keys at D until every key is collected or found uncollectable; whether all came at once."""

        deadline = loop.time() + 60
        while pending and loop.time() < deadline:
            t0 = loop.time()
            try:
                got = await slave.dec_keys(nodelab.MASTER, pending)
            except Etsi014BadRequestError:
                # Some ID is unknown or gone at D: find which, take the rest.
                still = []
                for kid in pending:
                    try:
                        self._check(await slave.dec_keys(nodelab.MASTER, [kid]))
                    except Etsi014BadRequestError as exc:
                        (self.gone_at_d if "already delivered" in str(exc) else self.unknown_at_d).append(kid)
                    except Etsi014Error:
                        still.append(kid)
                pending = still
                continue
            except Etsi014Error as exc:  # D is down: try again
                self._count(f"dec_keys {exc.status or 'no answer'}")
                await asyncio.sleep(0.05)
                continue
            self.dec_ms.append((loop.time() - t0) * 1e3)
            self._check(got)
            return True
        return False

    def _check(self, got: list[tuple[uuid.UUID, bytes]]) -> None:
        for kid, key in got:
            if kid in self.delivered or self.issued.get(kid) != key:
                self.mismatched.append(kid)  # delivered twice, or not the key issued
            self.delivered[kid] = key

    def report(self, elapsed: float) -> str:
        return (
            f"{len(self.delivered)} of {len(self.issued)} keys relayed end to end in {elapsed:.2f} s = "
            f"{len(self.delivered) / elapsed:.0f} keys/s (paced at {self.rate:.0f}); "
            f"enc_keys p50 {pct(self.enc_ms, 0.5):.1f} ms p99 {pct(self.enc_ms, 0.99):.1f} ms; "
            f"dec_keys p50 {pct(self.dec_ms, 0.5):.1f} ms p99 {pct(self.dec_ms, 0.99):.1f} ms; "
            f"refused {self.errors or 'none'}"
        )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def key_states(net: NodeNet) -> dict[uuid.UUID, str]:
    """Every key in D's key store and its state (``collectable``, ``delivered``), read-only while D runs."""
    uri = f"file:{net.dir / 'D.keys.db'}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
        return {uuid.UUID(kid): state for kid, state in conn.execute("SELECT key_id, state FROM keys")}


def handed_out_but_not_collected(net: NodeNet, load: Load) -> tuple[list[str], dict[str, float]]:
    """Keys S handed out (enc_keys 200) that the application did not collect, from D's key store: still
    collectable there, and delivered (with when) though the answer never arrived (D killed as it answered)."""
    uri = f"file:{net.dir / 'D.keys.db'}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
        rows = conn.execute("SELECT key_id, state, delivered FROM keys").fetchall()
    missed = [(kid, state, when) for kid, state, when in rows if uuid.UUID(kid) in load.issued]
    missed = [(kid, state, when) for kid, state, when in missed if uuid.UUID(kid) not in load.delivered]
    pending = [kid for kid, state, _ in missed if state != "delivered"]
    return pending, {kid: when for kid, state, when in missed if state == "delivered"}


def capture_end(link: tuple[str, str]) -> str:
    a, b = link
    return b if a == "S" else a  # the relay's side of the link


def capture_iface(link: tuple[str, str]) -> tuple[str, str]:
    a, b = link
    return (b, a) if a == "S" else (a, b)


def capture_links(net: NodeNet) -> dict[tuple[str, str], Capture]:
    """A capture of every link of the paths, on the relay's side (not started)."""
    return {link: Capture(net.lab.ns(capture_end(link)), net.ifaces[capture_iface(link)]) for link in LINKS}


def check_no_pad_reuse(frames: dict[tuple[str, str], list[Frame]]) -> int:
    """No byte of a link's key serves two captured shares on that link (each share spends its hop key ID
    onward: a MAC key and a pad as long as the share); returns how many shares were checked."""
    shares = 0
    for link, captured in frames.items():
        used = []
        for _, data in ipv6_packets(captured):
            try:
                packet = parse_packet(data)
            except WireError:
                continue
            start = packet.option.hop_key_id
            used.append((start, start + hop_key_bytes(packet.option.share_len)))
        used.sort()
        overlaps = [(p, q) for p, q in itertools.pairwise(used) if q[0] < p[1]]
        assert not overlaps, f"pad material used twice on {link}: {overlaps[:3]}"
        shares += len(used)
    return shares


def store_ready_bytes(net: NodeNet, node: str) -> int:
    """The pair's ready bytes in ``node``'s key store file (read-only, while it runs): what the node's
    ``ready_bytes`` counter should say."""
    uri = f"file:{net.dir / (node + '.keys.db')}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(size - used), 0) FROM units WHERE master = ? AND slave = ? AND state = 'ready'",
            (nodelab.MASTER, nodelab.SLAVE),
        ).fetchone()
    return int(row[0])
