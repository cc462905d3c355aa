"""``run(config) -> Results``: draw the load once, simulate MPSS and single-path relay on it, measure both."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from ..engine import Engine
from ..exceptions import ParameterError
from ..kmp import Topology
from .adversary import Adversary, InvariantError
from .config import SimConfig, load_topology
from .metrics import Results, Sample, summarise
from .modes import MpssMode, SessionRecord, SinglePathMode, Traffic


def _draw(config: SimConfig, topology: Topology) -> tuple[frozenset[str], Traffic]:
    """The compromised relays and the offered load, from ``numpy.random.default_rng(seed)`` (not key material)."""
    nodes = topology.nodes
    if len(nodes) < 2:
        raise ParameterError("the topology needs at least 2 nodes")
    if config.compromised_relays > len(nodes) - 2:
        raise ParameterError(
            f"{config.compromised_relays} compromised relays asked, but the {len(nodes)}-node topology "
            f"needs 2 honest endpoints: at most {len(nodes) - 2}"
        )
    draw = np.random.default_rng(config.seed)
    bad = draw.choice(len(nodes), size=config.compromised_relays, replace=False)
    compromised = frozenset(nodes[int(i)] for i in bad)
    honest = [name for name in nodes if name not in compromised]
    count = config.sessions
    gaps = draw.exponential(config.duration_s / count, size=count)
    a = draw.integers(0, len(honest), size=count)
    b = draw.integers(0, len(honest) - 1, size=count)
    b += b >= a
    verified = draw.random(count) < config.verify_fraction
    return compromised, Traffic(
        gaps=tuple(float(g) for g in gaps),
        pairs=tuple((honest[int(i)], honest[int(j)]) for i, j in zip(a, b, strict=True)),
        verified=tuple(bool(v) for v in verified),
    )


def run(
    config: SimConfig,
    *,
    topology: Topology | None = None,
    engine: Engine | None = None,
    progress: Callable[[int], None] | None = None,
) -> Results:
    """Simulate ``config`` (on ``topology`` if given, else ``config.topology``); ``progress(1)`` per finished session.

    Raises ``ParameterError`` (or a ``kmp`` error for a bad topology file) for bad input;
    :class:`~mpss_fast.sim.InvariantError` if a correctness check fails.
    """
    config = config.checked()
    started = time.perf_counter()
    if topology is None:
        topology = load_topology(config.topology, seed=config.seed)
    k, n = config.threshold()
    engine = engine or Engine()
    compromised, traffic = _draw(config, topology)
    common = {"config": config, "topology": topology, "traffic": traffic, "engine": engine, "progress": progress}

    mpss_adversary = Adversary(compromised, engine, tamper=config.tamper)
    mpss = MpssMode(
        adversary=mpss_adversary,
        payload_len=config.key_bytes + config.check_bytes,
        k=k,
        n=n,
        **common,
    )
    mpss_records = mpss.simulate()
    single = SinglePathMode(
        adversary=Adversary(compromised, engine, tamper=config.tamper),
        payload_len=config.key_bytes,
        **common,
    )
    single_records = single.simulate()

    _check_accounting(mpss_records, mpss.ledger.total_consumed, mpss.hop_bytes, "mpss")
    _check_accounting(single_records, single.ledger.total_consumed, single.hop_bytes, "single_path")
    first = traffic.gaps[0]
    results = Results(
        config=config.to_dict(),
        topology={"spec": config.topology, "nodes": len(topology), "links": len(topology.links)},
        k=k,
        n=n,
        compromised=tuple(sorted(compromised)),
        mpss=summarise("mpss", mpss_records, mpss.ledger.total_consumed, config.key_bytes, mpss.end_s - first),
        single_path=summarise(
            "single_path", single_records, single.ledger.total_consumed, config.key_bytes, single.end_s - first
        ),
        verified_sessions=sum(1 for r in mpss_records if r.verified and r.paths),
        verified_shares=mpss.real.shares,
        verified_hops=mpss.real.hops,
        link_failures=mpss.failures.failures,
        wall_s=time.perf_counter() - started,
        sample=_sample(mpss_records, single_records),
        records=(
            {"mpss": _ordered(mpss_records), "single_path": _ordered(single_records)} if config.keep_sessions else {}
        ),
    )
    return results


def _ordered(records: list[SessionRecord]) -> tuple[SessionRecord, ...]:
    return tuple(sorted(records, key=lambda r: r.index))


def _check_accounting(records: list[SessionRecord], consumed: int, hop_bytes: int, mode: str) -> None:
    """Key taken from the links == hops keyed x (32 + payload), exactly."""
    expected = sum(r.keyed_hops for r in records) * hop_bytes
    if consumed != expected:
        raise InvariantError(f"{mode}: links gave up {consumed} bytes of key, the sessions account for {expected}")


def _sample(mpss: list[SessionRecord], single: list[SessionRecord]) -> Sample | None:
    """The first session planned in both modes, preferring one with a delivered MPSS key."""
    by_index = {r.index: r for r in single if r.paths}
    candidates = sorted((r for r in mpss if r.paths and r.index in by_index), key=lambda r: (not r.delivered, r.index))
    if not candidates:
        return None
    r = candidates[0]
    return Sample(r.index, r.src, r.dst, r.k, r.n, r.paths, by_index[r.index].paths[0])
