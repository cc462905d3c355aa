"""The simulated network's state: key levels per link direction, link failures, and the planner's view.

Key is simulated as byte counters (real bytes move only for verified sessions:
``sim.verify``). Each direction of a link starts with half the link's ``pool_bytes``
and gains half its ``rate_bps`` (as bytes/s), continuously; levels are brought up to
date lazily when touched. A request that finds too little key **reserves** it against
future generation: the level goes negative and the share waits until the deficit is
made, first come first served. A wait longer than the timeout fails the share and takes
nothing.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Any

import numpy as np

from ..kmp import Topology
from ..relay.hop import hop_key_bytes


class KeyLedger:
    """Key levels of every link direction; direction ``2 i`` is link ``i``'s ``a -> b``, ``2 i + 1`` its ``b -> a``."""

    def __init__(self, topology: Topology) -> None:
        links = topology.links
        self.names: list[tuple[str, str]] = []
        self.direction: dict[tuple[str, str], int] = {}
        self.level: list[float] = []
        self.rate: list[float] = []  # bytes per second
        self.consumed: list[int] = []
        self.updated: list[float] = []
        for i, link in enumerate(links):
            for d, (u, v) in enumerate(((link.a, link.b), (link.b, link.a))):
                self.direction[u, v] = 2 * i + d
                self.names.append((u, v))
                self.level.append(link.pool_bytes / 2)
                self.rate.append(link.rate_bps / 16)
                self.consumed.append(0)
                self.updated.append(0.0)

    def now_level(self, d: int, now: float) -> float:
        """Bring direction ``d``'s level up to ``now``; returns it (negative: key reserved ahead)."""
        self.level[d] += self.rate[d] * (now - self.updated[d])
        self.updated[d] = now
        return self.level[d]

    def reserve(self, d: int, nbytes: int, now: float, timeout: float) -> float | None:
        """Take ``nbytes`` from direction ``d``: the wait until they exist (0 if they do), or None past ``timeout``."""
        level = self.now_level(d, now)
        if level >= nbytes:
            wait = 0.0
        else:
            rate = self.rate[d]
            if rate <= 0:
                return None
            wait = (nbytes - level) / rate
            if wait > timeout:
                return None
        self.level[d] = level - nbytes
        self.consumed[d] += nbytes
        return wait

    @property
    def total_consumed(self) -> int:
        """Bytes of key taken over all directions."""
        return sum(self.consumed)


class LinkFailures:
    """Which links are down now (``down``), which the planner believes down (``known_down``), failure epochs.

    Each link with ``mtbf_s > 0`` alternates up (exponential, mean ``mtbf_s``) and down
    (exponential, mean ``mttr_s``), drawn from its own seeded generator so every mode
    sees the same failure timeline. The planner learns of each change ``detect_s`` later.
    """

    def __init__(self, topology: Topology, seed: int, mtbf_s: float, mttr_s: float, detect_s: float) -> None:
        self.index = {frozenset((link.a, link.b)): i for i, link in enumerate(topology.links)}
        count = len(self.index)
        self.down = [False] * count
        self.known_down = [False] * count
        self.epoch = [0] * count
        self.failures = 0
        self._seed, self._mtbf, self._mttr, self._detect = seed, mtbf_s, mttr_s, detect_s
        self.on_known_change: Any = None  # set by the planner view: called with the link index

    def processes(self, env: Any) -> Iterator[Any]:
        """The simpy processes that drive the failure timeline (none when failures are off)."""
        if self._mtbf <= 0:
            return
        for i in range(len(self.down)):
            yield env.process(self._link(env, i))

    def _link(self, env: Any, i: int) -> Generator[Any, Any, None]:
        draw = np.random.default_rng([self._seed, 0x6661696C, i])  # simulation randomness, not key material
        while True:
            yield env.timeout(float(draw.exponential(self._mtbf)))
            self.down[i] = True
            self.epoch[i] += 1
            self.failures += 1
            env.process(self._notify(env, i, True))
            yield env.timeout(float(draw.exponential(self._mttr)))
            self.down[i] = False
            env.process(self._notify(env, i, False))

    def _notify(self, env: Any, i: int, down: bool) -> Generator[Any, Any, None]:
        yield env.timeout(self._detect)
        self.known_down[i] = down
        if self.on_known_change is not None:
            self.on_known_change(i, env.now)


class PlannerView:
    """The key management plane's picture of the network: a ``kmp.Topology`` planned on.

    A link's ``pool_bytes`` there is the smaller of its two directions' levels, or 0 while
    it is known to be down (so planning with ``demand_bytes`` leaves it out). Levels are
    republished every ``refresh_s`` (a link only when it moved by 2 % or one share's
    demand); a detected failure or recovery is published at once. ``version`` changes with
    every publication, and plans are cached per ``(src, dst, version)``.
    """

    def __init__(
        self, topology: Topology, ledger: KeyLedger, failures: LinkFailures, share_len: int, refresh_s: float
    ) -> None:
        self.refresh_s = refresh_s
        self.topology = topology.copy()
        self.ledger = ledger
        self.failures = failures
        self.demand = hop_key_bytes(share_len)
        self.links = [(link.a, link.b) for link in topology.links]
        self.published = [link.pool_bytes for link in topology.links]
        self.version = 0
        failures.on_known_change = self._publish_one

    def _pool(self, i: int, now: float) -> int:
        if self.failures.known_down[i]:
            return 0
        level = min(self.ledger.now_level(2 * i, now), self.ledger.now_level(2 * i + 1, now))
        return max(0, int(level))

    def _set(self, i: int, pool: int) -> None:
        a, b = self.links[i]
        self.topology.update_link(a, b, pool_bytes=pool)
        self.published[i] = pool

    def _publish_one(self, i: int, now: float) -> None:
        self._set(i, self._pool(i, now))
        self.version += 1

    def refresh(self, now: float) -> None:
        """Republish the levels that moved enough."""
        changed = False
        for i in range(len(self.links)):
            pool, old = self._pool(i, now), self.published[i]
            if pool != old and (pool == 0 or old == 0 or abs(pool - old) >= max(self.demand, 0.02 * old)):
                self._set(i, pool)
                changed = True
        if changed:
            self.version += 1

    def process(self, env: Any) -> Generator[Any, Any, None]:
        """The body of a simpy process refreshing the view every ``refresh_s``."""
        while True:
            yield env.timeout(self.refresh_s)
            self.refresh(env.now)
