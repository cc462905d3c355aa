"""The key-aware planning cost of one link for one share.

A share of ``demand_bytes`` consumes that much key from every link it crosses (for the
relay of docs/relay.md: ``32 + share length`` bytes per message). A link whose pool holds
less is unusable now: its cost is ``None``. Otherwise the cost is the link's base cost
(``cost``, or 1 per link) scaled up by the fraction of the pool the share would take::

    cost = base_cost * (1 + demand_bytes / max(pool_bytes, 1))

With ``demand_bytes = 0`` this is the base cost. A share that would take the whole pool
doubles the link's cost; one that takes 1 % of it adds 1 %. Between two otherwise equal
paths the planner therefore prefers the one whose links keep more key in reserve, and
it stays away from nearly drained links unless nothing else is disjoint.
"""

from __future__ import annotations

from .topology import Link


def link_cost(link: Link, demand_bytes: int = 0) -> float | None:
    """The planning cost of ``link`` for a share of ``demand_bytes``; ``None`` if its pool is short."""
    return key_aware_cost(link.base_cost, link.pool_bytes, demand_bytes)


def key_aware_cost(base_cost: float, pool_bytes: int, demand_bytes: int) -> float | None:
    """The formula above on plain numbers; ``None`` when ``pool_bytes < demand_bytes``."""
    if pool_bytes < demand_bytes:
        return None
    return base_cost * (1.0 + demand_bytes / max(pool_bytes, 1))
