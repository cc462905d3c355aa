"""The simulator's model: determinism, the adversary-exposure invariant, key accounting, failures, tampering."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest

pytest.importorskip("simpy")
pytest.importorskip("networkx")

import mpss_fast
from mpss_fast import kmp, sim
from mpss_fast.relay.hop import hop_key_bytes

SMALL = sim.SimConfig(topology="metro", sessions=300, duration_s=30.0, compromised_relays=2, verify_fraction=0.2)


@pytest.fixture(scope="module")
def small() -> sim.Results:
    return sim.run(SMALL)


def _without_wall(results: sim.Results) -> dict[str, object]:
    document = results.to_dict()
    del document["wall_s"]
    return document


def test_same_seed_same_results(small: sim.Results) -> None:
    again = sim.run(SMALL)
    assert _without_wall(again) == _without_wall(small)
    assert again.records == small.records
    other = sim.run(dataclasses.replace(SMALL, seed=1))
    assert other.records["mpss"] != small.records["mpss"]


def test_exposed_exactly_when_k_shares_held(small: sim.Results) -> None:
    records = small.records["mpss"]
    assert any(r.exposed for r in records) and any(r.adversary_shares and not r.exposed for r in records)
    for r in records:
        assert r.exposed == (r.adversary_shares >= r.k)


def test_adversary_combines_real_shares() -> None:
    engine = mpss_fast.Engine()
    value = os.urandom(48)
    shares = engine.split(value, 3, 5)
    adversary = sim.Adversary(frozenset({"r"}), engine)
    for share in shares[:2]:
        adversary.observe(1, share[0], share[1:])
        adversary.observe(2, share[0], share[1:])
    adversary.observe(2, shares[4][0], shares[4][1:])
    assert adversary.judge(1, 3, value) == (2, False)
    assert adversary.judge(2, 3, value) == (3, True)
    for share in shares[:3]:
        adversary.observe(3, share[0], share[1:])
    with pytest.raises(sim.InvariantError):
        adversary.judge(3, 3, os.urandom(48))  # what it rebuilt is not the value: the check notices


def test_shares_seen_match_the_paths() -> None:
    """Without failures every share arrives, so the adversary holds one share per path through a bad relay."""
    results = sim.run(dataclasses.replace(SMALL, mtbf_s=0.0))
    bad = set(results.compromised)
    for r in results.records["mpss"]:
        assert r.adversary_shares == sum(1 for p in r.paths if bad & set(p[1:-1]))
    for r in results.records["single_path"]:
        assert r.exposed == bool(r.paths and bad & set(r.paths[0][1:-1]))


@pytest.mark.parametrize(("topology", "bad"), [("metro", 1), ("metro", 2), ("mesh:40", 2), ("backbone", 3)])
def test_mpss_exposes_no_more_than_single_path(topology: str, bad: int) -> None:
    """With no more compromised relays than the policy tolerates (k > C), MPSS exposes nothing; one path does."""
    for seed in (0, 1):
        config = dataclasses.replace(
            SMALL, topology=topology, seed=seed, compromised_relays=bad, tolerate=bad, failures=0, verify_fraction=0.0
        )
        results = sim.run(config)
        assert results.k > bad and results.mpss.delivered > 0
        assert results.mpss.exposed == 0
        assert results.mpss.exposed_ratio is not None and results.single_path.exposed_ratio is not None
        assert results.mpss.exposed_ratio <= results.single_path.exposed_ratio
        assert results.single_path.exposed > 0 or bad == 1


def test_more_compromised_relays_than_tolerated_can_expose_mpss() -> None:
    """Past the policy (C > k - 1), shares on relays in two paths rebuild keys: MPSS is not always better then."""
    results = sim.run(dataclasses.replace(SMALL, compromised_relays=4, tolerate=1, verify_fraction=0.0))
    assert results.mpss.exposed > 0
    assert all(r.exposed == (r.adversary_shares >= 2) for r in results.records["mpss"])


def test_key_accounting(small: sim.Results) -> None:
    share_len = SMALL.key_bytes + SMALL.check_bytes
    for mode, size in (("mpss", share_len), ("single_path", SMALL.key_bytes)):
        records = small.records[mode]
        consumed = getattr(small, mode).consumed_bytes
        assert consumed == sum(r.keyed_hops for r in records) * hop_key_bytes(size)
    calm = sim.run(dataclasses.replace(SMALL, mtbf_s=0.0, sessions=100))
    for r in calm.records["mpss"]:
        assert r.keyed_hops == sum(len(p) - 1 for p in r.paths)  # every hop of every path, nothing else
    hops = sum(len(p) - 1 for r in calm.records["mpss"] for p in r.paths)
    assert calm.mpss.consumed_bytes == hops * (share_len + 32)


def test_failures_reduce_success() -> None:
    calm = sim.run(dataclasses.replace(SMALL, mtbf_s=0.0, verify_fraction=0.0))
    stormy = sim.run(dataclasses.replace(SMALL, mtbf_s=20.0, mttr_s=20.0, detect_s=10.0, verify_fraction=0.0))
    assert calm.link_failures == 0 and stormy.link_failures > 0
    for mode in ("mpss", "single_path"):
        assert getattr(stormy, mode).success_ratio < getattr(calm, mode).success_ratio
    assert stormy.single_path.failures["link_down"] > 0


def test_short_of_key_shares_time_out() -> None:
    topology = kmp.Topology()
    for name in ("a", "r", "b"):
        topology.add_node(name)
    topology.add_link("a", "r", rate_bps=8.0, pool_bytes=200, latency_s=1e-3)
    topology.add_link("r", "b", rate_bps=8.0, pool_bytes=200, latency_s=1e-3)
    config = sim.SimConfig(sessions=20, duration_s=1.0, k=2, n=2, mtbf_s=0.0, verify_fraction=0.0)
    with pytest.raises(mpss_fast.ParameterError):
        sim.run(dataclasses.replace(config, k=3), topology=topology)  # k > n
    results = sim.run(dataclasses.replace(config, k=None, n=None), topology=topology)
    assert results.single_path.failures["key_timeout"] > 0
    assert results.mpss.failures["no_plan"] == 20  # one relay: never two disjoint paths


def test_tampering_is_detected_by_mpss_not_by_single_path() -> None:
    results = sim.run(dataclasses.replace(SMALL, tamper=True, mtbf_s=0.0, verify_fraction=1.0))
    assert results.mpss.tamper_detected > 0 and results.mpss.corrupted == 0
    assert results.single_path.corrupted > 0
    assert results.verified_sessions > 0 and results.verified_hops > 0


def test_verify_mode_relays_real_bytes() -> None:
    results = sim.run(dataclasses.replace(SMALL, sessions=60, verify_fraction=1.0))
    planned = [r for r in results.records["mpss"] if r.paths]
    assert results.verified_sessions == len(planned)
    assert results.verified_shares == sum(len(r.paths) for r in planned)


def test_single_path_is_the_kmp_least_cost_path() -> None:
    results = sim.run(sim.SimConfig(topology="mesh:30", sessions=40, mtbf_s=0.0, verify_fraction=0.0))
    topology = kmp.random_mesh(30, seed=0)
    demand = hop_key_bytes(32)
    for r in results.records["single_path"][:10]:
        best = kmp.disjoint_paths(topology, r.src, r.dst, 1, demand_bytes=demand)[0]
        cost = sum(
            kmp.link_cost(topology.link(u, v), demand) or 0 for u, v in zip(r.paths[0], r.paths[0][1:], strict=False)
        )
        assert cost == pytest.approx(best.cost, rel=1e-3)  # the view's pools drift a little from the start


def test_json_schema(small: sim.Results) -> None:
    document = small.to_dict()
    assert document["schema"] == sim.SCHEMA
    assert set(document) == {
        "schema", "config", "topology", "k", "n", "compromised", "modes", "verified_sessions",
        "verified_shares", "verified_hops", "link_failures", "wall_s", "sample",
    }  # fmt: skip
    assert set(document["modes"]) == {"mpss", "single_path"}
    fields = {f.name for f in dataclasses.fields(sim.ModeResult)}
    for mode in document["modes"].values():
        assert set(mode) == fields
        assert set(mode["failures"]) == {"no_plan", "link_down", "key_timeout", "tampered"}
    assert set(document["config"]) == set(sim.SimConfig.field_names())
    assert sim.Results.__dataclass_fields__["records"].compare is False
    import json

    assert json.loads(small.to_json()) == document


@pytest.mark.parametrize(
    "change",
    [
        {"sessions": 0},
        {"duration_s": 0.0},
        {"key_bytes": 0},
        {"k": 2},
        {"k": 3, "n": 2},
        {"verify_fraction": 1.5},
        {"mtbf_s": float("nan")},
        {"check_bytes": 33},
        {"failures": -1},
        {"compromised_relays": 11},
        {"topology": "mesh:x"},
        {"topology": "no-such-file.json"},
    ],
)
def test_bad_config(change: dict[str, object]) -> None:
    with pytest.raises(mpss_fast.ParameterError):
        sim.run(dataclasses.replace(SMALL, **change))  # type: ignore[arg-type]


def test_import_mpss_fast_imports_no_simpy() -> None:
    code = (
        "import sys, mpss_fast, mpss_fast.cli; assert 'simpy' not in sys.modules and 'mpss_fast.sim' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
