"""``mpss node`` on real Linux SRv6 in network namespaces (root only; CI runs as root).

Source S, destination D and relays R1..R3 on three node-disjoint paths, each node a real
``mpss node`` process with its SID routed into a tun device; link keys from a KME over
ETSI 014; the applications get and collect keys over ETSI 014 with mutual TLS. S keeps the
pair's key store full by relaying units in the background; the tests read counters when
that flow is quiet (``NodeNet.settle``). Packets are captured on every link (AF_PACKET ring)
and checked against the real link keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aiohttp")

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.poly1305 import Poly1305

from mpss_fast.e2e import derive_key
from mpss_fast.exceptions import WireError
from mpss_fast.relay import number_check
from mpss_fast.relay.hop import hop_key_bytes
from mpss_fast.wire import parse_packet

from . import nodelab
from .capture import Capture, Frame, ipv6_packets
from .nodenet import LINKS, PAIR, STORES, NodeNet, running
from .nodepromises import Load, capture_end, capture_iface, check_no_pad_reuse, handed_out_but_not_collected

KEY_BITS = 256
KEY_BYTES = KEY_BITS // 8
UNIT_BYTES = STORES["unit_bytes"]
assert UNIT_BYTES == KEY_BYTES, "the exact counts below take one key per unit"
DEPTH_KEYS = STORES["depth_bytes"] // KEY_BYTES
SHARE_LEN = UNIT_BYTES + 16
MATERIAL = hop_key_bytes(SHARE_LEN)  # the MAC key and the pad one share spends on one link


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeNet]:
    yield from running(tmp_path_factory.mktemp("nodenet"), stores=STORES)


async def _move(net: NodeNet, count: int, *, per_request: int = 10) -> list[tuple[uuid.UUID, bytes]]:
    """``count`` keys from enc_keys at S, collected with dec_keys at D; both sides must agree. The callers
    settle the flow first and ask at most the store's depth, so no request meets a short store."""
    got: list[tuple[uuid.UUID, bytes]] = []
    async with net.app("S", nodelab.MASTER) as master, net.app("D", nodelab.SLAVE) as slave:
        while len(got) < count:
            keys = await master.enc_keys(nodelab.SLAVE, number=min(per_request, count - len(got)), size=KEY_BITS)
            assert await slave.dec_keys(nodelab.MASTER, [kid for kid, _ in keys]) == keys
            got += keys
    return got


async def _status(net: NodeNet) -> tuple[int, int]:
    """ETSI 014 status at S for the pair: (stored_key_count, max_key_count)."""
    async with net.app("S", nodelab.MASTER) as master:
        status = await master.status(nodelab.SLAVE)
    return status.stored_key_count, status.max_key_count


def _delta(after: dict[str, Any], before: dict[str, Any], *names: str) -> dict[str, int]:
    """How much each of the node's ``keyflow`` counters ``names`` moved."""
    return {name: after["keyflow"][name] - before["keyflow"][name] for name in names}


FLOW = ("units_sent", "units_confirmed", "units_expired", "units_unknown", "mismatches", "keys_burnt")


def test_keys_relayed_over_srv6_with_only_ciphertext_on_every_link(net: NodeNet) -> None:
    """Every link captured while the store is emptied and refilled twice: the first keys drain the units
    made before the capture; the 30 keys after them are carved from units relayed while it ran, and each
    is exactly one captured unit's material (one key per unit, carved in confirmation order)."""
    first = net.settle()
    assert net.call(_status(net)) == (DEPTH_KEYS, DEPTH_KEYS)  # full: as many keys stored as it holds
    captures = {link: Capture(net.lab.ns(capture_end(link)), net.ifaces[capture_iface(link)]) for link in LINKS}
    control = Capture(net.lab.ns("S"), net.control_ifaces[0])  # S-D direct: the proofs and ledger records
    for cap in [*captures.values(), control]:
        cap.start()
    try:
        drained = net.call(_move(net, DEPTH_KEYS))
        net.settle()
        keys = net.call(_move(net, 30))
        last = net.settle()
    finally:
        frames = {link: cap.stop() for link, cap in captures.items()}
        control_frames = control.stop()
    assert all(cap.drops == 0 for cap in [*captures.values(), control])
    flow = _delta(last["S"], first["S"], *FLOW)
    units_moved = DEPTH_KEYS + 30
    assert flow == dict.fromkeys(FLOW, 0) | {"units_sent": units_moved, "units_confirmed": units_moved}, flow
    assert _delta(last["D"], first["D"], "units_confirmed", "mismatches") == {
        "units_confirmed": units_moved,
        "mismatches": 0,
    }
    units, secrets = _check_links(net, frames)
    assert len(units) == units_moved, f"{len(units)} units on the links, {units_moved} refilled"
    # Keys are fresh UUIDs (not unit IDs): match each to its unit by material.
    unit_of = {material: unit_id for unit_id, material in units.items()}
    carved = [unit_of.get(key) for _, key in keys]
    assert None not in carved and len(set(carved)) == len(keys), "a key is not one captured unit's material"
    assert not {kid for kid, _ in keys} & set(units), "a key ID is a unit ID"
    secrets += [key for _, key in (*drained, *keys)]
    for link, captured in [*frames.items(), (("S", "D"), control_frames)]:
        wire = b"".join(frame.data for frame in captured)  # a secret spanning two frames would be a false alarm
        for secret in secrets:
            assert secret not in wire, f"secret bytes in the clear on link {link}"
    assert not [p for _, p in ipv6_packets(control_frames) if _is_share(p)], "a share took the pair channel"
    check_no_pad_reuse(frames)


def _is_share(data: bytes) -> bool:
    try:
        parse_packet(data)
    except WireError:
        return False
    return True


def _check_links(
    net: NodeNet, frames: dict[tuple[str, str], list[Frame]]
) -> tuple[dict[uuid.UUID, bytes], list[bytes]]:
    """Check every share packet against the link keys; the units rebuilt from the captured shares (unit ID ->
    material, as D derives it) and every secret seen on the way (shares, pads, MAC keys, numbers, materials)."""
    import galois

    field = galois.GF(2**8, irreducible_poly=0x11B)
    shares: dict[tuple[uuid.UUID, int], bytes] = {}
    per_link: dict[tuple[str, str], set[uuid.UUID]] = {}
    secrets: list[bytes] = []
    for (a, b), captured in frames.items():
        stream = net.kme.stream(a, b)
        path = int((b if a == "S" else a)[1:]) - 1
        seen = per_link.setdefault((a, b), set())
        for _, data in ipv6_packets(captured):
            try:
                packet = parse_packet(data)
            except WireError:
                continue  # the link key announcements (TCP) and neighbour discovery
            option = packet.option
            assert (option.k, option.n, option.share_len) == (2, 3, SHARE_LEN)
            assert option.path_id == path and option.x == path + 1, "a share on another path's link"
            assert packet.srh.segments_left == (1 if a == "S" else 0)
            unit_id = uuid.UUID(bytes=option.session_id)  # the MPSS session ID names the unit
            assert unit_id not in seen, f"unit {unit_id} twice on {a}>{b}"
            seen.add(unit_id)
            h = option.hop_key_id
            material = stream[h : h + MATERIAL]
            assert len(material) == MATERIAL
            try:
                Poly1305.verify_tag(material[:32], _tag_input(data), option.tag)
            except InvalidSignature:
                raise AssertionError(f"packet on {a}>{b} not tagged with that link's key at key ID {h}") from None
            y = bytes(c ^ p for c, p in zip(packet.payload, material[32:], strict=True))
            earlier = shares.setdefault((unit_id, option.x), y)
            assert earlier == y, "the relay changed the share"
            secrets += [y, material[32:], material[:32]]
    every = set().union(*per_link.values())
    assert all(seen == every for seen in per_link.values()), "a link missed some unit's share"
    units: dict[uuid.UUID, bytes] = {}
    for unit_id in every:
        ys = [shares[(unit_id, x)] for x in (1, 2, 3)]
        rebuilt = set()
        for i, j in ((0, 1), (0, 2), (1, 2)):
            xi, xj = field(i + 1), field(j + 1)
            value = field(list(ys[i])) * (xj / (xi + xj)) + field(list(ys[j])) * (xi / (xi + xj))
            rebuilt.add(bytes(value.tolist()))
        (raw,) = rebuilt  # any two shares give the same value
        number, check = raw[:UNIT_BYTES], raw[UNIT_BYTES:]
        assert check == number_check(number), f"unit {unit_id}: the shared value fails its check"
        units[unit_id] = derive_key(number, unit_id, length=UNIT_BYTES)
        secrets += [number, units[unit_id]]
    return units, secrets


def _tag_input(data: bytes) -> bytes:
    """What an option version 2 hop tag covers, read from the packet's own bytes (docs/wire-format.md,
    "The per-hop tag"): the MPSS option TLV with its Tag zeroed, the route (IPv6 Source Address; the SRH's
    Segments Left, Last Entry, Flags and Tag; its segment list), then the UDP payload."""
    assert (data[6], data[40], data[42], data[43]) == (60, 43, 0x7E, 52), "not IPv6 | DOH (MPSS option) | SRH"
    srh = 40 + (data[41] + 1) * 8
    assert (data[srh], data[srh + 2]) == (17, 4), "not SRH (type 4) | UDP"
    last_entry = data[srh + 4]
    option = data[42:80] + bytes(16)  # type, length and data up to the Tag (DOH offset 40..56), zeroed
    route = data[8:24] + data[srh + 3 : srh + 8] + data[srh + 8 : srh + 8 + 16 * (last_entry + 1)]
    assert len(route) == 21 + 16 * (last_entry + 1)
    payload = data[srh + (data[srh + 1] + 1) * 8 + 8 :]  # after the SRH and the UDP header
    return option + route + payload


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_keys_are_delivered_with_a_relay_stopped(net: NodeNet) -> None:
    """R3 stopped: S still sends each unit on all three paths while its link to R3 holds key (that link is
    not refilled any more: R3 takes no announcement), and D rebuilds every unit from the two shares that
    arrive (k = 2). With one key per unit, 5 keys taken are 5 units relayed to refill the store."""
    net.settle()
    net.stop_node("R3")
    try:
        before = net.settle()  # nothing was in flight when R3 stopped
        keys = net.call(_move(net, 5))
        after = net.settle()
        flow = _delta(after["S"], before["S"], *FLOW)
        assert flow == dict.fromkeys(FLOW, 0) | {"units_sent": 5, "units_confirmed": 5}, flow
        assert after["D"]["keys_delivered"] - before["D"]["keys_delivered"] == len(keys) == 5
        assert after["D"]["shares_received"] - before["D"]["shares_received"] == 10  # two paths of three
        link, was = after["S"]["links"]["S>R3"], before["S"]["links"]["S>R3"]
        assert link["end"] == was["end"], "S's link to the stopped R3 was refilled"
        assert link["high"] - was["high"] == 5 * MATERIAL  # still spent: S sends every unit on every path
    finally:
        net.restart_node("R3")


def test_a_tampering_relay_is_detected_and_named(net: NodeNet) -> None:
    """R2 alters every share it relays: D corrects each unit from the other two shares and names path 1 and
    R2 in its tamper reports (one per unit, by unit ID), so D proves the right number and S finds no mismatch."""
    net.set_tamper("R2")
    net.stop_node("R2")
    net.restart_node("R2")
    try:
        before = net.settle()
        keys = net.call(_move(net, 10))  # still delivered: the other two shares decide
        after = net.settle()
        flow = _delta(after["S"], before["S"], *FLOW)
        assert flow == dict.fromkeys(FLOW, 0) | {"units_sent": 10, "units_confirmed": 10}, flow
        assert after["D"]["keyflow"]["mismatches"] == before["D"]["keyflow"]["mismatches"]
        new = after["D"]["tamper_reports"] - before["D"]["tamper_reports"]
        reports = after["D"]["tampered"][-new:]
        assert new == 10 and all(r["path"] == 1 and r["relays"] == ["R2"] and r["source"] == "S" for r in reports)
        units = {uuid.UUID(r["unit_ID"]) for r in reports}
        assert len(units) == 10 and not units & {kid for kid, _ in keys}  # unit IDs, not the applications' keys
        assert "the share on path 1 (relays R2) was altered" in net.log_path("D").read_text()
    finally:
        net.set_tamper(None)
        net.stop_node("R2")
        net.restart_node("R2")


def _positions(net: NodeNet, name: str) -> dict[str, int]:
    """The committed position of every link direction in the node's database (read-only, while it runs)."""
    uri = f"file:{net.dir / (name + '.db')}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
        return dict(conn.execute("SELECT link, position FROM links").fetchall())


CYCLES = ["R1", "S", "R2", "D", "R3", "R1", "S", "R2", "D", "R3"]


def _recovered(load: Load, since: float, timeout: float = 30) -> float:
    """Seconds from ``since`` (time.monotonic()) until a request started after it got keys that D handed out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [collected for started, collected in list(load.collected) if started >= since]
        if done:
            return min(done) - since
        time.sleep(0.02)
    raise AssertionError(f"no key moved in the {timeout} s after a restart: {load.report(1.0)}")


def test_kill_restart_cycles_hand_out_no_key_the_slave_cannot_collect_and_reuse_no_pad(
    net: NodeNet, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGKILL and restart each node in turn (10 cycles) under a paced load, with every link captured. A 200
    from enc_keys means D committed the keys, so every key handed out is collected, whoever was killed when;
    requests meeting a node down are refused (503, or no answer from S) or served (a relay down: k = 2).
    S prepares keys ahead (``stores.prepared_keys``), so kills also land while prepared keys are carved,
    pushed and handed out."""
    net.restart_ends({**STORES, "prepared_keys": 64})
    captures = {link: Capture(net.lab.ns(capture_end(link)), net.ifaces[capture_iface(link)]) for link in LINKS}
    for cap in captures.values():
        cap.start()
    load = Load(net, rate=200, per_request=5)
    running = asyncio.run_coroutine_threadsafe(load.run(keys=10**6, seconds=300), net._loop)
    d_killed: list[float] = []  # time.time() of each kill of D (the key store's clock)
    regressions = []
    recovery: list[float] = []
    try:
        for name in CYCLES:
            _recovered(load, time.monotonic() - 0.7)  # keys flow before each kill
            time.sleep(0.7)
            before = _positions(net, name)
            if name == "D":
                d_killed.append(time.time())
            net.stop_node(name, signal.SIGKILL)
            time.sleep(0.3)  # down a moment: requests meet it down
            net.restart_node(name)
            recovery.append(_recovered(load, time.monotonic()))
            after = _positions(net, name)
            regressions += [(name, link, p, after.get(link)) for link, p in before.items() if after.get(link, -1) < p]
        time.sleep(0.5)
    finally:
        load.stop = True  # no new requests; the ones out are collected
        elapsed = running.result(timeout=120)
    end = net.settle(match=False)  # the flow recovers: S's store full, nothing in flight
    frames = {link: cap.stop() for link, cap in captures.items()}
    left, answer_lost = handed_out_but_not_collected(net, load)
    ready = {name: end[name]["keyflow"]["pairs"][PAIR]["ready_bytes"] for name in ("S", "D")}
    with capsys.disabled():
        print(
            f"\nmpss node kill/restart: 10 SIGKILL+restart cycles (R1 S R2 D R3 x2) under load: "
            f"{load.report(elapsed)}; first keys after each restart in "
            f"{' '.join(f'{name} {s:.2f}' for name, s in zip(CYCLES, recovery, strict=True))} s; "
            f"handed out but unknown at D: {len(load.unknown_at_d)}; collectable but not collected: {len(left)}; "
            f"delivered by D in the instant it was killed, answer lost: {len(answer_lost)}; "
            f"ready bytes after: S {ready['S']} D {ready['D']}"
        )
    assert not regressions, f"a recorded position went back after a restart: {regressions}"
    assert not load.mismatched, "a key collected twice, or unlike the one handed out"
    assert not load.unknown_at_d and not left, "a key handed out that the slave cannot collect"
    # At most once: a key D delivered just before a kill, whose answer died with D, is not delivered again.
    assert sorted(map(str, load.gone_at_d)) == sorted(answer_lost)
    assert all(any(abs(killed - when) < 1.0 for killed in d_killed) for when in answer_lost.values())
    refused = {what for what in load.errors if what.startswith("enc_keys")}
    assert refused <= {"enc_keys 503", "enc_keys no answer"}, load.errors
    assert len(load.delivered) >= 300  # the point is the cycles; the pace drops while S or D is down
    check_no_pad_reuse(frames)
    net.call(_move(net, 10))  # and keys flow after it all


LOAD_STORES = {"unit_bytes": 1024, "depth_bytes": 64 * 1024, "window": 16, "pending_s": 1.0, "prepared_keys": 256}
"""The load run's key stores: 1 KiB units (the node's default: 32 keys each), 2,048 keys deep (4 s of demand),
and the node's default 256 keys prepared ahead (so enc_keys of 256-bit keys needs no push to D)."""


def test_load(net: NodeNet, capsys: pytest.CaptureFixture[str]) -> None:
    """S and D restarted with :data:`LOAD_STORES`; the store emptied at once and timed while it refills; then
    a bounded run (3,000 keys or 15 s) at 500 keys/s, 10 keys per request: the figures docs/benchmarks.md
    quotes. Last in the module: the stores keep 1 KiB units after it."""
    full = net.restart_ends(LOAD_STORES)
    ready = full["S"]["keyflow"]["pairs"][PAIR]["ready_bytes"]
    began = time.monotonic()
    drained = net.call(_move(net, ready // KEY_BYTES, per_request=128))
    refilled = net.settle(60, match=False)
    refill_s = time.monotonic() - began
    units = refilled["S"]["keyflow"]["units_confirmed"] - full["S"]["keyflow"]["units_confirmed"]
    load = Load(net, rate=500, per_request=10)
    before = {name: _cpu_seconds(proc.pid) for name, proc in net.procs.items()}
    me = _cpu_seconds(os.getpid())
    elapsed = net.call(load.run(keys=3000, seconds=15), timeout=120)
    cpu = {name: round(_cpu_seconds(proc.pid) - before[name], 2) for name, proc in net.procs.items()}
    cpu["test (KME + apps)"] = round(_cpu_seconds(os.getpid()) - me, 2)
    during = net.call(net.stats("S"))["keyflow"]["units_confirmed"] - refilled["S"]["keyflow"]["units_confirmed"]
    unit_keys = LOAD_STORES["unit_bytes"] // KEY_BYTES
    with capsys.disabled():
        print(
            f"\nmpss node load: {load.report(elapsed)}; refill {during / elapsed:.1f} units/s = "
            f"{during * unit_keys / elapsed:.0f} keys/s confirmed during the run; store of {len(drained)} keys "
            f"emptied at once and refilled in {refill_s:.2f} s = {units / refill_s:.0f} units/s = "
            f"{units * unit_keys / refill_s:.0f} keys/s (window {LOAD_STORES['window']}); CPU seconds {cpu}"
        )
    assert not load.mismatched and not load.unknown_at_d and not load.gone_at_d
    assert len(load.delivered) == len(load.issued) >= 1000
