"""The two ways of getting a key from source to destination, as simpy processes.

:class:`MpssMode`: the key (with a truncated SHA-256 check appended) is split ``k``-of-``n``
with the real engine; each share travels its own node-disjoint path from ``kmp``; the
destination rebuilds as soon as ``k`` received shares combine to a value whose check
holds. :class:`SinglePathMode`: the key travels one least-cost path (``kmp``, ``n = 1``),
decrypted and re-encrypted by every relay (trusted relay). Both take
``32 + payload`` bytes of key per hop (Poly1305 key and pad) and the link's latency.

Both plan on the same key-aware cost (``kmp.key_aware_cost``; links short of key or known
to be down are left out). The single path is found with networkx's Dijkstra under that
cost, which gives the cost of ``kmp.disjoint_paths(n=1)`` (the tests compare them) at a
fifth of the time: the simulator's running time is mostly planning.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import simpy

from ..engine import Engine
from ..exceptions import PathError
from ..kmp import DEFAULT_COST, Topology, disjoint_paths, key_aware_cost
from ..relay.hop import hop_key_bytes
from .adversary import Adversary, InvariantError, tampered
from .config import SimConfig
from .network import KeyLedger, LinkFailures, PlannerView
from .verify import RealPools, share_option


@dataclass(frozen=True)
class Traffic:
    """The offered load, identical for every mode: arrival gaps, endpoints, which sessions are verified."""

    gaps: tuple[float, ...]
    pairs: tuple[tuple[str, str], ...]
    verified: tuple[bool, ...]


@dataclass(frozen=True)
class SessionRecord:
    """The outcome of one session in one mode."""

    index: int
    src: str
    dst: str
    arrival_s: float
    k: int
    n: int
    paths: tuple[tuple[str, ...], ...]
    delivered: bool
    latency_s: float | None
    failure: str | None
    """None, or why: no_plan, link_down, key_timeout, tampered."""
    keyed_hops: int
    """Hops for which key was taken (each ``32 + payload`` bytes)."""
    adversary_shares: int
    """Distinct shares of this session the adversary holds (single path: 1 if a compromised relay saw the key)."""
    exposed: bool
    tamper_detected: bool
    corrupted: bool
    """The destination accepted a key that differs from the source's (undetected tampering)."""
    verified: bool


@dataclass
class _Session:
    index: int
    src: str
    dst: str
    arrival: float
    k: int
    n: int
    paths: tuple[tuple[str, ...], ...]
    verified: bool
    # The key relayed and its shares: kept out of the repr.
    secret: bytes = field(default=b"", repr=False)
    payload: bytes = field(default=b"", repr=False)
    shares: list[bytes] = field(default_factory=list, repr=False)
    received: list[tuple[int, bytes]] = field(default_factory=list, repr=False)
    resolved: int = 0
    lost: int = 0
    keyed: int = 0
    delivered_at: float | None = None
    loss_reason: str | None = None
    tamper_detected: bool = False
    corrupted: bool = False
    exposed: bool = False


class _Mode:
    """What both modes share: the simpy environment, key ledger, failures, planner view, hop and bookkeeping."""

    name = ""

    def __init__(
        self,
        config: SimConfig,
        topology: Topology,
        traffic: Traffic,
        adversary: Adversary,
        engine: Engine,
        payload_len: int,
        progress: Callable[[int], None] | None,
    ) -> None:
        self.config = config
        self.traffic = traffic
        self.adversary = adversary
        self.engine = engine
        self.payload_len = payload_len
        self.hop_bytes = hop_key_bytes(payload_len)
        self.progress = progress
        self.env = simpy.Environment()
        self.ledger = KeyLedger(topology)
        self.failures = LinkFailures(topology, config.seed, config.mtbf_s, config.mttr_s, config.detect_s)
        self.view = PlannerView(topology, self.ledger, self.failures, payload_len, config.refresh_s)
        self.latency = [link.latency_s for link in topology.links]
        self.records: list[SessionRecord] = []
        self._cache: dict[tuple[str, str], tuple[tuple[str, ...], ...] | None] = {}
        self._cache_version = -1
        self._pending = len(traffic.gaps)
        self._finished = self.env.event()
        self.end_s = 0.0

    def simulate(self) -> list[SessionRecord]:
        """Run every session to its end; returns the records in completion order."""
        for _ in self.failures.processes(self.env):
            pass
        self.env.process(self.view.process(self.env))
        self.env.process(self._arrivals())
        self.env.run(until=self._finished)
        return self.records

    def _arrivals(self) -> Generator[Any, Any, None]:
        for i, (gap, (src, dst)) in enumerate(zip(self.traffic.gaps, self.traffic.pairs, strict=True)):
            yield self.env.timeout(gap)
            self.start(i, src, dst)

    def start(self, index: int, src: str, dst: str) -> None:
        raise NotImplementedError

    def plan(self, src: str, dst: str) -> tuple[tuple[str, ...], ...] | None:
        """The paths (node names) on the planner's view now, or None if there are not enough; cached per view."""
        if self.view.version != self._cache_version:
            self._cache.clear()
            self._cache_version = self.view.version
        key = (src, dst)
        if key not in self._cache:
            self._cache[key] = self._plan(src, dst)
        return self._cache[key]

    def _plan(self, src: str, dst: str) -> tuple[tuple[str, ...], ...] | None:
        raise NotImplementedError

    def hop(self, session: _Session, u: str, v: str, dirs: list[int]) -> Generator[Any, Any, str | None]:
        """Carry one message over ``u -> v``: a generator whose value is None, or why it was lost."""
        d = self.ledger.direction[u, v]
        link = d >> 1
        failures = self.failures
        if failures.down[link]:
            return "link_down"  # the sender sees its link down and takes no key
        wait = self.ledger.reserve(d, self.hop_bytes, self.env.now, self.config.key_timeout_s)
        if wait is None:
            return "key_timeout"
        session.keyed += 1
        dirs.append(d)
        if wait:
            yield self.env.timeout(wait)
            if failures.down[link]:
                return "link_down"
        epoch = failures.epoch[link]
        yield self.env.timeout(self.latency[link])
        if failures.epoch[link] != epoch:
            return "link_down"  # failed while the message was on it
        return None

    def finish(self, record: SessionRecord) -> None:
        self.records.append(record)
        self.end_s = max(self.end_s, self.env.now)
        if self.progress is not None:
            self.progress(1)
        self._pending -= 1
        if not self._pending:
            self._finished.succeed()

    def _record(self, s: _Session, failure: str | None, shares: int) -> SessionRecord:
        delivered = s.delivered_at is not None
        return SessionRecord(
            index=s.index,
            src=s.src,
            dst=s.dst,
            arrival_s=s.arrival,
            k=s.k,
            n=s.n,
            paths=s.paths,
            delivered=delivered,
            latency_s=None if s.delivered_at is None else s.delivered_at - s.arrival,
            failure=None if delivered else failure,
            keyed_hops=s.keyed,
            adversary_shares=shares,
            exposed=s.exposed,
            tamper_detected=s.tamper_detected,
            corrupted=s.corrupted,
            verified=s.verified,
        )


class MpssMode(_Mode):
    """Multi-path secret sharing: ``k``-of-``n`` shares over ``n`` node-disjoint paths."""

    name = "mpss"

    def __init__(self, *args: Any, k: int, n: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.k, self.n = k, n
        self.check_bytes = self.config.check_bytes
        self.real = RealPools(self.ledger.names, self.engine)
        self.verified_consumed = 0

    def _check(self, secret: bytes) -> bytes:
        return hashlib.sha256(secret).digest()[: self.check_bytes]

    def _plan(self, src: str, dst: str) -> tuple[tuple[str, ...], ...] | None:
        try:
            found = disjoint_paths(self.view.topology, src, dst, self.n, demand_bytes=self.view.demand)
        except PathError:
            return None  # fewer than n paths: kmp.plan would raise PolicyError
        return tuple(path.nodes for path in found)

    def start(self, index: int, src: str, dst: str) -> None:
        paths = self.plan(src, dst)
        s = _Session(index, src, dst, self.env.now, self.k, self.n, paths or (), self.traffic.verified[index])
        if paths is None:
            self.finish(self._record(s, "no_plan", 0))
            return
        s.secret = os.urandom(self.config.key_bytes)  # the key relayed: OS randomness, never the simulation's
        s.payload = s.secret + self._check(s.secret)
        s.shares = self.engine.split(s.payload, self.k, self.n)
        for i, path in enumerate(paths):
            self.env.process(self._share(s, i, path))

    def _share(self, s: _Session, i: int, nodes: tuple[str, ...]) -> Generator[Any, Any, None]:
        x = i + 1
        y = original = s.shares[i][1:]
        dirs: list[int] = []
        reason = None
        completed = 0
        for h in range(len(nodes) - 1):
            reason = yield from self.hop(s, nodes[h], nodes[h + 1], dirs)
            if reason is not None:
                break
            completed += 1
            node = nodes[h + 1]
            if node in self.adversary.relays and node != s.dst:
                self.adversary.observe(s.index, x, y)
                if self.adversary.tamper:
                    y = tampered(y)
        if s.verified:
            self._replay(s, x, original, nodes, dirs, completed, y if reason is None else None)
        if reason is None:
            self._arrive(s, x, y)
        else:
            s.lost += 1
            if s.loss_reason is None and s.n - s.lost < s.k:
                s.loss_reason = reason
        s.resolved += 1
        if s.resolved == s.n:
            self._end(s)

    def _replay(
        self, s: _Session, x: int, y: bytes, nodes: tuple[str, ...], dirs: list[int], done: int, final: bytes | None
    ) -> None:
        option = share_option(s.index, s.k, s.n, x, len(y))
        journey = self.real.journey(option, y, nodes, dirs, done, self.adversary.relays, self.adversary.tamper)
        self.verified_consumed += len(dirs) * self.hop_bytes
        if journey.delivered != final:
            raise InvariantError(f"session {s.index} share {x}: the real relay delivered other bytes than modelled")
        seen = self.adversary.held(s.index).get(x)
        if (seen is None) != (not journey.seen) or (journey.seen and journey.seen[0] != seen):
            raise InvariantError(f"session {s.index} share {x}: the adversary's view differs from the real relay's")
        if self.real.consumed != self.verified_consumed:
            raise InvariantError("real pools and the key ledger disagree on the key consumed")

    def _arrive(self, s: _Session, x: int, y: bytes) -> None:
        s.received.append((x, y))
        if s.delivered_at is not None or len(s.received) < s.k:
            return
        newest = s.received[-1]
        for others in itertools.combinations(s.received[:-1], s.k - 1):
            value = self.engine.combine([bytes([sx]) + sy for sx, sy in (*others, newest)])
            key, check = value[: self.config.key_bytes], value[self.config.key_bytes :]
            if check != self._check(key):
                s.tamper_detected = True
                continue
            s.delivered_at = self.env.now
            s.corrupted = key != s.secret
            return

    def _end(self, s: _Session) -> None:
        shares, s.exposed = self.adversary.judge(s.index, s.k, s.payload)
        # not delivered with no decisive loss: every k-subset of the shares that came failed the check
        self.finish(self._record(s, s.loss_reason or "tampered", shares))


class SinglePathMode(_Mode):
    """Trusted relay: the key over one least-cost path, in the clear at every relay."""

    name = "single_path"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._graph = self.view.topology.graph  # a live read-only view: it follows the planner's updates

    def _weight(self, u: str, v: str, data: dict[str, Any]) -> float | None:
        base = DEFAULT_COST if data["cost"] is None else data["cost"]
        return key_aware_cost(base, data["pool_bytes"], self.view.demand)  # None hides the link

    def _plan(self, src: str, dst: str) -> tuple[tuple[str, ...], ...] | None:
        try:
            return (tuple(nx.dijkstra_path(self._graph, src, dst, weight=self._weight)),)
        except nx.NetworkXNoPath:
            return None

    def start(self, index: int, src: str, dst: str) -> None:
        paths = self.plan(src, dst)
        s = _Session(index, src, dst, self.env.now, 1, 1, paths or (), False)
        if paths is None:
            self.finish(self._record(s, "no_plan", 0))
            return
        self.env.process(self._carry(s, paths[0]))

    def _carry(self, s: _Session, nodes: tuple[str, ...]) -> Generator[Any, Any, None]:
        dirs: list[int] = []
        reason = None
        for h in range(len(nodes) - 1):
            reason = yield from self.hop(s, nodes[h], nodes[h + 1], dirs)
            if reason is not None:
                break
            if nodes[h + 1] in self.adversary.relays and nodes[h + 1] != s.dst:
                s.exposed = True
                s.corrupted = s.corrupted or self.adversary.tamper
        if reason is None:
            s.delivered_at = self.env.now
        self.finish(self._record(s, reason, int(s.exposed)))
