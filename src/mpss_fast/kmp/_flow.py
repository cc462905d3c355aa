"""Unit min-cost flow by successive shortest paths (Dijkstra with potentials), on int-indexed arcs.

Arc ``e`` and its residual twin ``e ^ 1`` sit next to each other; costs are >= 0, so the
potentials start at 0 and every reduced cost stays >= 0. Each augmentation moves one
unit: on the node-split graphs of ``kmp.paths`` every source-sink path crosses an arc of
capacity 1.
"""

from __future__ import annotations

import heapq
import math


class UnitFlow:
    """A residual network; :meth:`augment` adds one unit along a cheapest residual path."""

    def __init__(self, size: int, source: int, sink: int) -> None:
        self.source = source
        self.sink = sink
        self.adj: list[list[int]] = [[] for _ in range(size)]
        self.to: list[int] = []
        self.cap: list[int] = []
        self.cost: list[float] = []
        self.pot = [0.0] * size
        self.reached: list[bool] = [False] * size
        """After an :meth:`augment` that failed: the nodes the source still reaches (a min cut's side)."""

    def add_arc(self, u: int, v: int, capacity: int, cost: float) -> int:
        """Add ``u -> v`` and its empty twin ``v -> u``; returns the arc's index."""
        e = len(self.to)
        self.to += (v, u)
        self.cap += (capacity, 0)
        self.cost += (cost, -cost)
        self.adj[u].append(e)
        self.adj[v].append(e + 1)
        return e

    def augment(self) -> bool:
        """Push one unit along a cheapest residual path; False (and ``reached`` set) if none is left."""
        adj, to, cap, cost, pot = self.adj, self.to, self.cap, self.cost, self.pot
        inf = math.inf
        dist = [inf] * len(adj)
        via = [-1] * len(adj)
        dist[self.source] = 0.0
        heap = [(0.0, self.source)]
        pop, push = heapq.heappop, heapq.heappush
        while heap:
            d, u = pop(heap)
            if d > dist[u]:
                continue
            base = d + pot[u]
            for e in adj[u]:
                if cap[e]:
                    v = to[e]
                    nd = base + cost[e] - pot[v]
                    if nd < d:  # rounding: a reduced cost is never below 0
                        nd = d
                    if nd < dist[v]:
                        dist[v] = nd
                        via[v] = e
                        push(heap, (nd, v))
        if dist[self.sink] == inf:
            self.reached = [x < inf for x in dist]
            return False
        for v, x in enumerate(dist):
            if x < inf:
                pot[v] += x
        v = self.sink
        while v != self.source:
            e = via[v]
            cap[e] -= 1
            cap[e ^ 1] += 1
            v = to[e ^ 1]
        return True
