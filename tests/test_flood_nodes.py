"""Forged packets against real ``mpss node`` processes (attacks 2 and 7): the facts behind the benchmark.

Runs ``bench.attack_flood`` (the code that measures the figures in docs/benchmarks.md) with
small counts: five node processes on loopback, a KME simulator, applications asking keys, and
an attacker sending forged, replayed and stray share packets to the relays and D. Timing is
not asserted, only what must hold on any machine: forged packets move no pool and are all
counted, honest keys keep coming during a flood, memory and log lines stay flat.
"""

from __future__ import annotations

import sys

import pytest

pytest.importorskip("aiohttp")
if not sys.platform.startswith("linux"):
    pytest.skip("reads /proc (RSS, CPU, socket queues)", allow_module_level=True)

from bench import attack_flood

pytestmark = pytest.mark.slow

FLOOD, MEMORY = 5_000, 50_000


@pytest.fixture(scope="module")
def figures() -> attack_flood.Figures:
    return attack_flood.run(FLOOD, MEMORY, seconds=1.5, repeats=1, settle_logs=False, unpaced=False, timeout_s=120)


def test_forged_packets_move_no_pool(figures: attack_flood.Figures) -> None:
    """Positions and available bytes at both ends of every link direction, applications paused around the flood."""
    pools = figures.flood["pools"]
    assert len(pools) == 24  # 6 links, 2 directions, both ends
    moved = {link: change for link, change in pools.items() if change["before"] != change["after"]}
    assert moved == {}
    # the in-range half aimed at key IDs the pools hold: they were checked, failed, and consumed nothing
    for node in ("R1", "R2", "R3", "D"):
        assert figures.flood["reasons"][node]["bad tag"] == figures.flood["kinds"][node]["forged-in-range"]


def test_every_forged_packet_is_counted(figures: attack_flood.Figures) -> None:
    flood = figures.flood
    assert flood["sent"] == FLOOD and flood["kernel_drops"] == 0
    assert flood["counted"] == FLOOD
    assert sum(flood["by_node"].values()) == FLOOD and flood["reasons"]["S"] == {}
    (round_,) = figures.rates["rounds"]
    assert round_["sent"] == FLOOD and round_["kernel_drops"] == 0 and round_["counted"] == FLOOD


def test_honest_keys_are_delivered_during_the_flood(figures: attack_flood.Figures) -> None:
    (round_,) = figures.rates["rounds"]
    assert round_["without_keys"] > 0
    assert round_["during_keys"] > 0
    assert round_["app_failures"] == 0 and figures.rates["failures"] == 0, figures.rates["last_error"]
    assert figures.memory["keys_after"] > 0  # and after the memory flood


def test_memory_and_log_lines_stay_flat(figures: attack_flood.Figures) -> None:
    memory = figures.memory
    assert memory["sent"] == MEMORY and memory["counted"] == MEMORY and memory["kernel_drops"] == 0
    assert memory["kinds"]["replay"] > 0 and memory["replays_available"]["D"] > 0
    for node in memory["targets"]:
        figures_of = memory["nodes"][node]
        assert figures_of["rss_growth_mib"] < 10, (node, figures_of)
        assert figures_of["log_lines_during"] < 20, (node, figures_of)
        assert sum(figures_of["dropped"].values()) == memory["by_node"][node]
        assert figures_of["shares_received"] == 0  # no replay was taken for a share
    assert memory["nodes"]["D"]["dropped"]["offset behind the pool (replay or restart)"] > 0  # the replays
