"""Choosing (k, n) from what must be tolerated, and planning the n paths for it.

To survive ``f`` failed paths and ``t`` compromised relays (each on a different path, so
the attacker sees ``t`` shares) a ``(k, n)`` scheme needs ``n - f >= k > t``. The
smallest choice is ``k = max(2, t + 1)`` (the share engine needs ``k >= 2``) and
``n = k + f``, with ``n`` node-disjoint paths available and ``n <= 255``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._validate import MAX_SHARES
from ..exceptions import PolicyError
from ._checks import check_count
from .paths import Path, disjoint_paths, max_disjoint_paths
from .topology import Topology


@dataclass(frozen=True)
class Plan:
    """A (k, n) threshold and the n node-disjoint paths to send the shares on."""

    k: int
    n: int
    paths: tuple[Path, ...]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _choose(failures: object, compromised: object, paths_available: object, between: str) -> tuple[int, int]:
    f = check_count(failures, "failures", 0)
    t = check_count(compromised, "compromised", 0)
    available = check_count(paths_available, "paths_available", 0)
    k = max(2, t + 1)
    n = k + f
    asked = (
        f"tolerating {_plural(f, 'failed path')} and {_plural(t, 'compromised relay')} "
        f"needs k = {k} and n = {n} node-disjoint paths"
    )
    if n > MAX_SHARES:
        raise PolicyError(f"{asked}, more than the {MAX_SHARES} shares GF(2^8) allows")
    if n > available:
        have = f"only {available} exist{'s' if available == 1 else ''}" if available else "none exist"
        raise PolicyError(f"{asked}; {have}{between}")
    return k, n


def choose_k_n(*, failures: int, compromised: int, paths_available: int) -> tuple[int, int]:
    """The smallest ``(k, n)`` with ``n - failures >= k > compromised``, ``k >= 2`` and ``n <= paths_available``.

    Raises :class:`PolicyError` with the numbers when the paths (or the 255-share limit)
    do not allow it; ``ParameterError`` for a negative count.
    """
    return _choose(failures, compromised, paths_available, "")


def plan(topology: Topology, src: str, dst: str, *, failures: int, compromised: int, demand_bytes: int = 0) -> Plan:
    """Choose ``(k, n)`` for the disjoint paths between ``src`` and ``dst``, and plan the ``n`` cheapest.

    ``demand_bytes`` is the key one share takes from each link (``kmp.cost``); links
    with less are left out, so fewer paths may be available.
    """
    available = max_disjoint_paths(topology, src, dst, demand_bytes=demand_bytes)
    between = f" between {src!r} and {dst!r}"
    if demand_bytes:
        between += f" over links holding {demand_bytes} bytes of key"
    k, n = _choose(failures, compromised, available, between)
    return Plan(k=k, n=n, paths=tuple(disjoint_paths(topology, src, dst, n, demand_bytes=demand_bytes)))
