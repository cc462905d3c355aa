"""An active attacker against real share nodes (the adversary harness, tests/advnet.py).

Each test is an attack that worked before option version 2 (docs/security.md, the threat
table): rerouting a share to a relay of another path, draining pools with forged key IDs,
a compromised relay next to D forging a whole share set, a spoofed source picking the
application pair. The last test is a property over random topologies, (k, n) and
adversaries: with fewer than k compromised relays on distinct paths plus an attacker on
every link, the adversary never holds k shares of a session, D never delivers a key other
than the source's, only packets the attacker made or changed fail a tag, and each failure is
counted against the link the packet names as its last hop.
"""

from __future__ import annotations

import dataclasses
import os
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mpss_fast.kmp import METRO_ENDPOINTS, PathError, disjoint_paths, metro, random_mesh
from mpss_fast.node.linkkeys import link_name
from mpss_fast.relay import CHECK_BYTES, number_check, seal
from mpss_fast.wire import MpssOption, Srh, encode_packet, parse_packet, route_bytes

from .advnet import AdversaryNet, Attacker, Hop, sid_of

ALICE, BOB = METRO_ENDPOINTS


def _rewrite(hop: Hop, **changes: object) -> Hop:
    """The same packet with some fields changed and a fresh, valid UDP checksum (an on-link attacker can do this)."""
    packet = parse_packet(hop.data)
    return Hop(hop.sender, hop.receiver, encode_packet(dataclasses.replace(packet, **changes)), injected=True)


def test_a_rewritten_segment_list_cannot_steer_a_share_to_another_paths_relay(tmp_path: Path) -> None:
    """Attack 1: on S's first link of path 0, the next segment becomes a relay of path 1, which is curious."""
    with AdversaryNet(metro(), tmp_path, k=2, n=3) as probe:
        paths = probe.paths(ALICE, BOB)
    first, curious = paths[0][1], paths[1][1]  # campus (path 0) is a neighbour of market (path 1)
    assert probe.topology.has_link(first, curious)

    def reroute(net: AdversaryNet, hop: Hop) -> list[Hop]:
        if (hop.sender, hop.receiver) != (ALICE, first):
            return [hop]
        segments = list(parse_packet(hop.data).srh.segments)
        segments[-2] = sid_of(net, curious)  # the segment after `first`
        srh = Srh(tuple(segments), len(segments) - 1)
        return [_rewrite(hop, srh=srh)]

    with AdversaryNet(metro(), tmp_path / "net", k=2, n=3, attacker=Attacker(reroute), compromised={curious}) as net:
        key_ids = [net.send_key(ALICE, BOB) for _ in range(3)]
        net.settle()
        held = net.adversary_shares()
        assert all(len(held.get(key_id, ())) < net.k for key_id in key_ids), "the curious relay holds k shares"
        assert net.stats(first).link_drops[link_name(ALICE, first)]["bad tag"] == 3  # caught at the next hop
        assert net.wrong_keys() == []
        assert set(net.delivered[BOB]) == set(key_ids)  # paths 1 and 2 still deliver (k = 2)


def _forgeries(net: AdversaryNet, template: Hop, count: int, seed: int) -> list[Hop]:
    """``count`` packets like ``template`` with random hop key IDs (inside and beyond the pool) and random tags."""
    draw = random.Random(seed)
    packet = parse_packet(template.data)
    forged = []
    for i in range(count):
        key_id = draw.randrange(0, 1 << 17) if i % 2 else draw.randrange(0, 1 << 64)
        option = packet.option.with_hop(key_id, draw.randbytes(16))
        forged.append(_rewrite(template, option=option, payload=draw.randbytes(len(packet.payload))))
    return forged


def test_forged_key_ids_consume_no_key_material(tmp_path: Path) -> None:
    """Attack 2: blind packets with arbitrary hop key IDs on every first link; pools must not move."""
    with AdversaryNet(metro(), tmp_path, k=2, n=3) as net:
        net.send_key(ALICE, BOB)
        templates = list(net.queue)
        net.settle()
        before = net.pool_state()
        for i, template in enumerate(templates):
            for forged in _forgeries(net, template, 300, seed=i):
                net.deliver(forged)
        assert net.pool_state() == before, "forged packets moved a pool"
        drops = sum(net.stats(t.receiver).link_drops.get(link_name(t.sender, t.receiver), {}).get("bad tag", 0)
                    for t in templates)  # fmt: skip
        no_key = sum(net.stats(t.receiver).dropped.get("no key", 0) for t in templates)
        assert drops + no_key == 300 * len(templates)  # each one counted, none consumed anything
        key_ids = [net.send_key(ALICE, BOB) for _ in range(5)]
        net.settle()
        assert set(key_ids) <= set(net.delivered[BOB]) and net.wrong_keys() == []  # honest keys still flow


def _forged_share_set(net: AdversaryNet, relay: str, honest: Hop) -> list[Hop]:
    """A compromised relay next to D makes n shares of a number it chose, under the session it just saw,
    each tagged validly with its own link key and carrying the honest share's segment list and source."""
    packet = parse_packet(honest.data)
    option = packet.option
    number = os.urandom(option.share_len - CHECK_BYTES)
    data = np.frombuffer(number + number_check(number), dtype=np.uint8).reshape(1, -1)
    shares = net.nodes[relay].engine.split_array(data, option.k, option.n, poly=option.poly)
    pool = net.stores[relay].pool(link_name(relay, BOB))
    forged = []
    for x in range(1, option.n + 1):
        claim = MpssOption(option.poly, option.k, option.n, x, x - 1, option.share_len, option.session_id)
        message = seal(claim, shares[x - 1, 0], pool, route=route_bytes(packet.src, packet.srh))
        out = dataclasses.replace(packet, option=message.option, payload=message.ciphertext)
        forged.append(Hop(relay, BOB, encode_packet(out), injected=True))
    return forged


def test_a_relay_next_to_d_cannot_swap_the_key(tmp_path: Path) -> None:
    """Attack 3: the last relay of path 0 drops its share and sends D a complete forged share set first."""
    with AdversaryNet(metro(), tmp_path, k=2, n=3) as probe:
        last = probe.paths(ALICE, BOB)[0][-2]

    def swap(net: AdversaryNet, hop: Hop) -> list[Hop]:
        if (hop.sender, hop.receiver) == (last, BOB) and not hop.injected:
            return _forged_share_set(net, last, hop)
        return [hop]

    with AdversaryNet(metro(), tmp_path / "net", k=2, n=3, attacker=Attacker(swap), compromised={last}) as net:
        key_ids = [net.send_key(ALICE, BOB) for _ in range(3)]
        net.settle()
        assert net.wrong_keys() == [], "D delivered a key the compromised relay knows"
        stats = net.stats(BOB)
        assert stats.link_drops[link_name(last, BOB)]["route refused"] == 3 * 2  # n - 1 refused per session
        assert {r["link"] for r in stats.refused} == {link_name(last, BOB)}
        assert set(net.delivered[BOB]) == set(key_ids)  # the honest paths outvote the one forged share
        assert {r["path"] for r in stats.tampered} == {0}  # and the forged one is named by its path


def test_a_spoofed_source_cannot_pick_the_application_pair(tmp_path: Path) -> None:
    """Attack 4: on every link into D the IPv6 source becomes another node's SID."""
    with AdversaryNet(metro(), tmp_path, k=2, n=3) as probe:
        other = next(n for n in probe.topology.nodes if n not in {ALICE, BOB})

    def spoof(net: AdversaryNet, hop: Hop) -> list[Hop]:
        if hop.receiver == BOB and not hop.injected:
            return [_rewrite(hop, src=sid_of(net, other))]
        return [hop]

    with AdversaryNet(metro(), tmp_path / "net", k=2, n=3, attacker=Attacker(spoof)) as net:
        net.send_key(ALICE, BOB)
        net.settle()
        assert net.delivered[BOB] == {}  # nothing filed under the other node's pair
        assert net.stats(BOB).dropped["bad tag"] == 3
    with AdversaryNet(metro(), tmp_path / "honest", k=2, n=3) as net:  # the same network without the attacker
        key_id = net.send_key(ALICE, BOB)
        net.settle()
        assert net.delivered[BOB][key_id][1] == ALICE and net.wrong_keys() == []


# -- the property: random topologies, (k, n) and adversaries ------------------------------

ACTIONS = ("pass", "drop", "flip", "reroute", "spoof", "replay", "forge", "duplicate")
WEIGHTS = (40, 6, 8, 8, 8, 10, 12, 8)


class RandomAttacker(Attacker):
    """On every link, each packet meets one of ACTIONS, drawn from a seeded generator."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.draw = random.Random(seed)
        self.history: list[Hop] = []
        self.acted: set[tuple[str, str]] = set()

    def on_link(self, net: AdversaryNet, hop: Hop) -> list[Hop]:
        if hop.injected:
            return [hop]
        action = self.draw.choices(ACTIONS, WEIGHTS)[0]
        self.history.append(hop)
        if action != "pass":
            self.acted.add((hop.sender, hop.receiver))
        packet = parse_packet(hop.data)
        nodes = net.topology.nodes
        if action == "drop":
            return []
        if action == "flip":
            payload = bytearray(packet.payload)
            payload[self.draw.randrange(len(payload))] ^= 1 << self.draw.randrange(8)
            return [_rewrite(hop, payload=bytes(payload))]
        if action == "reroute" and len(packet.srh.segments) > 1:
            segments = list(packet.srh.segments)
            segments[self.draw.randrange(len(segments) - 1)] = sid_of(net, self.draw.choice(nodes))
            srh = Srh(tuple(segments), packet.srh.segments_left)
            return [_rewrite(hop, srh=srh)] if srh.segments[srh.segments_left] == packet.srh.segments[
                packet.srh.segments_left] else [hop]  # fmt: skip
        if action == "spoof":
            return [_rewrite(hop, src=sid_of(net, self.draw.choice(nodes)))]
        if action == "replay":
            earlier = self.draw.choice(self.history)
            return [hop, Hop(earlier.sender, earlier.receiver, earlier.data, injected=True)]
        if action == "forge":
            return [hop, *_forgeries(net, hop, 3, self.draw.randrange(1 << 30))]
        if action == "duplicate":
            return [hop, Hop(hop.sender, hop.receiver, hop.data, injected=True)]
        return [hop]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[int, int, int, int, int, list[int], int, int]:
    size = draw(st.sampled_from([8, 10, 12]))
    degree = draw(st.sampled_from([3, 4]))
    seed = draw(st.integers(0, 1000))
    n = draw(st.integers(2, degree))
    k = draw(st.integers(2, n))
    compromised = draw(st.lists(st.integers(0, n - 1), unique=True, max_size=k - 1))
    tampering = draw(st.integers(0, len(compromised)))
    attack_seed = draw(st.integers(0, 1 << 30))
    return size, degree, seed, n, k, compromised, tampering, attack_seed


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=scenarios())
def test_an_adversary_below_the_threshold_never_wins(tmp_path_factory: pytest.TempPathFactory, scenario) -> None:
    size, degree, seed, n, k, on_paths, tampering, attack_seed = scenario
    topology = random_mesh(size if size * degree % 2 == 0 else size + 1, degree, seed=seed)
    src, dst = "n0", f"n{len(topology) - 1}"
    try:
        paths = [list(p.nodes) for p in disjoint_paths(topology, src, dst, n)]
    except PathError:
        return  # this mesh has fewer than n disjoint paths between the two: nothing to test
    draw = random.Random(attack_seed)
    relays = [draw.choice(paths[i][1:-1]) for i in on_paths if len(paths[i]) > 2]  # one per chosen path
    attacker = RandomAttacker(attack_seed)
    tmp = tmp_path_factory.mktemp("adv")
    with AdversaryNet(topology, tmp, k=k, n=n, attacker=attacker, compromised=relays, tamper=relays[:tampering]) as net:
        key_ids = [net.send_key(src, dst) for _ in range(3)]
        net.settle()
        held = net.adversary_shares()
        assert all(len(held.get(key_id, ())) < k for key_id in key_ids), "the adversary holds k shares"
        assert net.wrong_keys() == [], "a node delivered a key other than the source's"
        for name, node in net.nodes.items():
            named = node.stats.link_drops
            bad = sum(counts.get("bad tag", 0) for counts in named.values())
            assert bad == node.stats.dropped.get("bad tag", 0)  # every tag failure is counted against a link
            assert bad <= net.injected_into[name]  # and only what the attacker made or changed fails one
            for link, counts in named.items():
                sender, receiver = link.split(">")
                assert name in (sender, receiver) and {sender, receiver} <= set(net.topology.nodes)  # bounded
                if "bad tag" in counts:  # the link a packet names as its last hop: a real one into this node
                    assert receiver == name and net.topology.has_link(sender, receiver)


# -- attack 7: bounded state, quiet logs -----------------------------------------------------


def test_a_flood_of_bad_tags_writes_a_summary_not_a_line_each(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with AdversaryNet(metro(), tmp_path, k=2, n=3) as net:
        net.send_key(ALICE, BOB)
        template = net.queue[0]
        net.settle()
        caplog.clear()
        with caplog.at_level("WARNING", logger="mpss_fast.node"):
            for forged in _forgeries(net, template, 1000, seed=7):
                net.deliver(forged)
            net.nodes[template.receiver].log_summary.flush()
        lines = [r for r in caplog.records if r.name == "mpss_fast.node"]
        assert 1 <= len(lines) <= 2, f"{len(lines)} log lines for 1000 forged packets"
        drops = net.stats(template.receiver).link_drops[link_name(template.sender, template.receiver)]
        assert drops.get("bad tag", 0) + net.stats(template.receiver).dropped.get("no key", 0) >= 500


def test_late_shares_leave_no_state_behind(tmp_path: Path) -> None:
    """Shares that arrive after their session ended (held back by the attacker) must not grow the destination."""
    held: list[Hop] = []

    def hold_back(net: AdversaryNet, hop: Hop) -> list[Hop]:
        if hop.receiver == BOB and not hop.injected and parse_packet(hop.data).option.x == 3:
            held.append(hop)
            return []
        return [hop]

    with AdversaryNet(metro(), tmp_path, k=2, n=3, attacker=Attacker(hold_back)) as net:
        key_ids = [net.send_key(ALICE, BOB) for _ in range(20)]
        net.settle()
        assert set(net.delivered[BOB]) == set(key_ids)
        for hop in held:  # now late: their sessions were delivered from x = 1, 2
            net.deliver(Hop(hop.sender, hop.receiver, hop.data, injected=True))
        net.nodes[BOB].expire()
        assert net.nodes[BOB]._routes == {}  # nothing kept per late share
        assert net.nodes[BOB].destination.pending() == ()


def test_the_destination_bounds_the_sessions_it_collects(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from mpss_fast.relay import endpoints

    monkeypatch.setattr(endpoints, "MAX_SESSIONS", 4)

    def first_share_only(net: AdversaryNet, hop: Hop) -> list[Hop]:
        return [hop] if hop.receiver != BOB or parse_packet(hop.data).option.x == 1 else []

    with AdversaryNet(metro(), tmp_path, k=2, n=3, attacker=Attacker(first_share_only)) as net:
        for _ in range(10):
            net.send_key(ALICE, BOB)
        net.run()
        assert len(net.nodes[BOB].destination.pending()) == 4  # the rest were refused, counted
        assert net.stats(BOB).dropped["SessionError"] == 6


def test_reports_are_bounded(tmp_path: Path) -> None:
    from mpss_fast.node.shares import MAX_REPORTS

    with AdversaryNet(metro(), tmp_path, k=2, n=3, tamper={"campus"}) as net:
        for _ in range(MAX_REPORTS + 20):
            net.send_key(ALICE, BOB)
        net.settle()
        stats = net.stats(BOB)
        assert stats.tamper_reports == MAX_REPORTS + 20 and len(stats.tampered) == MAX_REPORTS
        assert net.wrong_keys() == []
