"""The node's promise under stress, on real SRv6 in namespaces (root only, like ``test_node_netns``): **every
key an ``enc_keys`` 200 handed out can be collected once by ``dec_keys`` at D**, and every refusal is a 503
with ``Retry-After`` that hands out nothing.

Three scenarios, each printing one ``mpss node promise:`` line with its figures:

* overload: applications ask 128 keys of 8192 bits per request, back to back, four requests at
  once, while the transport's and the key flow's drop counters are watched;
* a link's QKD key supply runs out (its KME stops serving S>R1) while applications keep asking, then
  returns;
* a relay stopped with k = n = 3: no unit can be rebuilt, so none is confirmed; the ready store drains to
  503, and keys flow again once the relay is back (every link captured: no pad byte used twice).

Keys are 8192 bits and units 1 KiB, so one key is one unit: at S, every unit confirmed goes to a key handed
out or burnt (never handed out), and the store is back to its depth once the flow is quiet.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("aiohttp")

from .nodenet import NAMES, PAIR, NodeNet, running
from .nodepromises import (
    Load,
    capture_links,
    check_no_pad_reuse,
    handed_out_but_not_collected,
    key_states,
    store_ready_bytes,
)

KEY_BITS = 8192
KEY_BYTES = KEY_BITS // 8
STORES = {"unit_bytes": KEY_BYTES, "depth_bytes": 256 * KEY_BYTES, "window": 64, "pending_s": 1.0}
"""One 8192-bit key per 1 KiB unit (the node's default unit), 256 keys deep (two 128-key requests), the node's
default window of 64 units in flight; units not confirmed within a second are wiped at both ends."""
DEPTH_KEYS = STORES["depth_bytes"] // KEY_BYTES
TRANSPORT = ("transport_kernel_drops", "transport_send_queue_full", "transport_send_errors", "transport_read_errors")
"""The transport's drop reasons in a node's ``dropped`` stats (``node/transport.py``)."""


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeNet]:
    yield from running(tmp_path_factory.mktemp("promises"), stores=STORES)


def _first_refusal_after(load: Load, since: float) -> float:
    """Seconds from ``since`` (time.monotonic()) to the first refused enc_keys after it."""
    return min(t for t, _, _ in load.refusals if t >= since) - since


def _load(net: NodeNet, *, per_request: int, inflight: int, rate: float = 1e9) -> Load:
    """Requests of ``per_request`` keys of :data:`KEY_BITS` at ``rate`` keys/s, at most ``inflight`` at once; by
    default back to back (each started as one ends; a refused one waits 50 ms first)."""
    return Load(net, rate=rate, per_request=per_request, inflight=inflight, key_bits=KEY_BITS)


def _start(net: NodeNet, load: Load) -> concurrent.futures.Future[float]:
    return asyncio.run_coroutine_threadsafe(load.run(keys=10**9, seconds=300), net._loop)


def _finish(load: Load, running: concurrent.futures.Future[float]) -> float:
    load.stop = True  # no new requests; those out are collected
    return running.result(timeout=120)


def _all_stats(net: NodeNet) -> dict[str, dict[str, Any]]:
    return {name: net.call(net.stats(name)) for name in NAMES}


def _wait(what: str, done: Callable[[], bool], timeout: float) -> float:
    """Poll ``done`` until true; the seconds it took (AssertionError naming ``what`` after ``timeout``)."""
    began = time.monotonic()
    while not done():
        if time.monotonic() - began > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - began


def _keys_since(load: Load, since: float) -> bool:
    """Whether a request started after ``since`` (time.monotonic()) got keys that D handed out."""
    return any(started >= since for started, _ in list(load.collected))


def _refused(load: Load) -> int:
    return load.errors.get("enc_keys 503", 0)


def _ready(stats: dict[str, Any]) -> int:
    """The pair's ready bytes in a node's stats."""
    return int(stats["keyflow"]["pairs"][PAIR]["ready_bytes"])


def _drops(after: dict[str, dict[str, Any]], before: dict[str, dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per drop reason, how much it grew at each node (``dropped`` in the stats: the share logic's reasons and
    the transport's); only what grew."""
    out: dict[str, dict[str, int]] = {}
    for name in NAMES:
        was = before[name].get("dropped", {})
        for why, count in after[name].get("dropped", {}).items():
            if count > was.get(why, 0):
                out.setdefault(why, {})[name] = count - was.get(why, 0)
    return out


def _flow(after: dict[str, Any], before: dict[str, Any], *names: str) -> dict[str, int]:
    """How much each of a node's ``keyflow`` counters ``names`` moved."""
    return {name: after["keyflow"][name] - before["keyflow"][name] for name in names}


def _check_promise(net: NodeNet, load: Load, before: dict[str, Any], after: dict[str, Any]) -> None:
    """What every scenario asserts once the load stopped and the flow is quiet again (``before``/``after``: S's
    stats from ``settle``). Each key handed out (200) was collected once at D with the bytes S gave, and D's
    key store holds it as delivered (none left collectable); every refusal is a 503 with a Retry-After;
    S counted exactly the keys answered; every unit S sent was confirmed or wiped (expired), every unit
    confirmed went to a key answered or burnt (never handed out), and both ends' key store files hold a full
    store again."""
    assert not load.mismatched, "a key collected twice, or unlike the one handed out"
    assert not load.unknown_at_d and not load.gone_at_d, "a key handed out that D cannot give out"
    assert load.issued and load.delivered == load.issued
    states = key_states(net)
    assert {states.get(kid) for kid in load.issued} == {"delivered"}, "a key handed out is not delivered at D"
    assert handed_out_but_not_collected(net, load) == ([], {})
    assert set(load.errors) <= {"enc_keys 503"}, load.errors  # never a 500, never without an answer
    assert len(load.refusals) == _refused(load)
    bad = [(status, retry) for _, status, retry in load.refusals if status != 503 or retry is None or retry < 1]
    assert not bad, f"refusals other than a 503 with Retry-After: {bad[:5]}"
    flow = _flow(after, before, *FLOW)
    assert flow["keys_issued"] == len(load.issued), flow
    assert flow["keys_refused"] + flow["keys_burnt"] == _refused(load) * load.per_request, flow
    assert flow["mismatches"] == 0, flow
    assert flow["units_sent"] == flow["units_confirmed"] + flow["units_expired"], flow
    assert _ready(after) == _ready(before) == STORES["depth_bytes"]
    assert flow["units_confirmed"] == flow["keys_issued"] + flow["keys_burnt"], flow  # one key per unit
    files = {node: store_ready_bytes(net, node) for node in ("S", "D")}
    assert files == {"S": STORES["depth_bytes"], "D": STORES["depth_bytes"]}, files


FLOW = ("units_sent", "units_confirmed", "units_expired", "mismatches", "link_key_short")
FLOW += ("keys_issued", "keys_refused", "keys_burnt")
"""S's key flow counters the scenarios account for."""

OVERLOAD_S = 10.0
"""How long the overload runs at most (it stops early once a transport dropped shares)."""


def test_overload_hands_out_only_keys_the_slave_can_collect(net: NodeNet, capsys: pytest.CaptureFixture[str]) -> None:
    """The master asks 128 keys of 8192 bits per request, four requests at once, back to back (the store holds
    two such requests), until a transport drops shares or :data:`OVERLOAD_S` passed. Whatever was dropped on
    the way (by a transport, or by a relay short of link key) costs units, never a key handed out: each 200's
    keys are collected at D."""
    before = net.settle(60, match=False)
    first = _all_stats(net)
    load = _load(net, per_request=128, inflight=4)
    running = _start(net, load)
    began = time.monotonic()
    try:
        while time.monotonic() - began < OVERLOAD_S:
            time.sleep(0.5)
            grown = _drops(_all_stats(net), first)
            if any(why in grown for why in TRANSPORT):
                break
    finally:
        elapsed = _finish(load, running)
    after = net.settle(60, match=False)
    last = _all_stats(net)
    drops = _drops(last, first)
    transport = {why: sum(drops.get(why, {}).values()) for why in TRANSPORT}
    others = {why: by_node for why, by_node in drops.items() if why not in TRANSPORT}
    flow = _flow(after["S"], before["S"], *FLOW)
    failed = last["D"]["keys_failed"] - first["D"]["keys_failed"]
    paced = "seen" if any(transport.values()) else "none: at most 64 units in flight pace the transport"
    with capsys.disabled():
        print(
            f"\nmpss node promise: overload: 128 keys of 8192 bits per enc_keys, 4 at once back to back for "
            f"{elapsed:.1f} s: transport drops {transport} ({paced}); other drops by reason and node "
            f"{others or 'none'}; at S units sent {flow['units_sent']}, confirmed {flow['units_confirmed']}, "
            f"expired {flow['units_expired']}, link key short {flow['link_key_short']}; units D could not rebuild "
            f"{failed}; keys issued (200) {len(load.issued)}, collected at D {len(load.delivered)}, burnt "
            f"{flow['keys_burnt']}, 503 {_refused(load)} (all with Retry-After), issued but not collectable 0"
        )
    _check_promise(net, load, before["S"], after["S"])
    assert len(load.issued) >= 2 * 128 and _refused(load) > 0  # served and refused


PACE, PER_REQUEST = 200.0, 16
"""The applications' demand in the link key and relay scenarios: 200 keys/s (200 units/s, well within the
refill's pace), 16 keys of 8192 bits per request, so the full store of 256 keys lasts about 1.3 s once
nothing refills it."""


def test_link_key_running_out_hands_out_only_confirmed_keys(net: NodeNet, capsys: pytest.CaptureFixture[str]) -> None:
    """The KME stops serving S>R1 while the applications keep asking: once S's key for that link is spent,
    S relays no unit (each needs key on all three first links), the ready store drains and requests get
    503; once the KME serves again the store refills and keys flow."""
    before = net.settle(60, match=False)
    load = _load(net, per_request=PER_REQUEST, inflight=4, rate=PACE)
    running = _start(net, load)
    try:
        _wait("keys moving", lambda: len(load.delivered) >= 64, 30)
        refused_before = _refused(load)
        net.kme.withhold("S", "R1")
        withheld = time.monotonic()
        short = before["S"]["keyflow"]["link_key_short"]
        spent = lambda: net.call(net.stats("S"))["keyflow"]["link_key_short"] > short  # noqa: E731
        dry_s = _wait("S's key for S>R1 spent", spent, 60)
        dry = net.call(net.stats("S"))
        issued_dry, refused_dry = len(load.issued), _refused(load)
        _wait("503s once the ready store is short", lambda: _refused(load) >= refused_dry + 10, 30)
        out = net.call(net.stats("S"))
        out_s = time.monotonic() - withheld
        issued_out, refused_out = len(load.issued) - issued_dry, _refused(load) - refused_dry
        net.kme.release("S", "R1")
        released = time.monotonic()
        back_s = _wait("keys after the supply returned", lambda: _keys_since(load, released), 30)
    finally:
        net.kme.release("S", "R1")
        elapsed = _finish(load, running)
    after = net.settle(60, match=False)
    sent_out = out["keyflow"]["units_sent"] - dry["keyflow"]["units_sent"]
    first_503_s = _first_refusal_after(load, withheld)
    with capsys.disabled():
        print(
            f"\nmpss node promise: link key out: the KME stopped serving S>R1 for {out_s:.1f} s "
            f"({net.kme.refused[('S', 'R1')]} enc_keys refused) under {PACE:.0f} keys/s of 8192 bits, "
            f"{PER_REQUEST} per request (503 before: {refused_before}): S's key for it spent {dry_s:.2f} s in "
            f"(ready store then {_ready(dry) // KEY_BYTES} keys), first 503 {first_503_s:.2f} s in; once spent: "
            f"units relayed {sent_out}, keys issued from the ready store {issued_out}, 503 {refused_out}; keys "
            f"flowed again {back_s:.2f} s after the supply returned, store full again; over {elapsed:.1f} s: keys "
            f"issued (200) {len(load.issued)}, collected at D {len(load.delivered)}, 503 {_refused(load)} (all "
            f"with Retry-After), issued but not collectable 0"
        )
    _check_promise(net, load, before["S"], after["S"])
    assert sent_out == 0, "S relayed a unit without key on one of its first links"
    assert dry["refill"]["S>R1"]["error"] is not None  # the outage shows in S's stats
    assert refused_out > 0 and net.kme.refused[("S", "R1")] > 0
    assert _ready(out) < PER_REQUEST * KEY_BYTES  # refused because the store was short


def test_relay_stopped_with_k_equal_n_stops_confirmations_then_keys_flow_again(
    net: NodeNet, capsys: pytest.CaptureFixture[str]
) -> None:
    """S restarted with k = 3 of n = 3; under load, R2 stopped: D gets two shares of each new unit, too few to
    rebuild it, so no unit is confirmed and those in flight expire; the ready store drains and enc_keys
    answers 503. R2 restarted: keys flow again. Every link captured throughout: no pad byte used twice.
    Last in the module: S keeps k = 3 after it."""
    net.set_k(3)
    net.stop_node("S")
    net.restart_node("S")
    before = net.settle(60, match=False)  # S lost its units in flight with the restart; D wiped its copies
    first = _all_stats(net)
    captures = capture_links(net)
    load = _load(net, per_request=PER_REQUEST, inflight=4, rate=PACE)
    try:
        for cap in captures.values():
            cap.start()
        running = _start(net, load)
        try:
            _wait("keys moving with k = 3", lambda: len(load.delivered) >= 64, 30)
            refused_before = _refused(load)
            net.stop_node("R2")
            stopped = time.monotonic()
            time.sleep(STORES["pending_s"] + 0.5)  # every unit sent before the stop is confirmed or expired now
            quiet = net.call(net.stats("S"))
            refused_quiet = _refused(load)
            _wait("503s once the ready store is drained", lambda: _refused(load) >= refused_quiet + 10, 30)
            down = net.call(net.stats("S"))
            down_s = time.monotonic() - stopped
            net.restart_node("R2")
            restarted = time.monotonic()
            back_s = _wait("keys after R2 restarted", lambda: _keys_since(load, restarted), 30)
        finally:
            elapsed = _finish(load, running)
        after = net.settle(60, match=False)
        last = _all_stats(net)
    finally:
        frames = {link: cap.stop() for link, cap in captures.items()}
    confirmed_down = down["keyflow"]["units_confirmed"] - quiet["keyflow"]["units_confirmed"]
    sent_down = down["keyflow"]["units_sent"] - quiet["keyflow"]["units_sent"]
    expired = after["S"]["keyflow"]["units_expired"] - before["S"]["keyflow"]["units_expired"]
    failed = last["D"]["keys_failed"] - first["D"]["keys_failed"]
    first_503_s = _first_refusal_after(load, stopped)
    shares = check_no_pad_reuse(frames)
    capture_drops = sum(cap.drops or 0 for cap in captures.values())
    with capsys.disabled():
        print(
            f"\nmpss node promise: relay stopped, k=3 of n=3: R2 down {down_s:.1f} s under {PACE:.0f} keys/s of "
            f"8192 bits, {PER_REQUEST} per request (503 before: {refused_before}): from "
            f"{STORES['pending_s'] + 0.5:.1f} s after the stop units sent {sent_down} (at most 64 in "
            f"flight, each wiped {STORES['pending_s']:.0f} s after it was sent), confirmed {confirmed_down}; "
            f"expired at S {expired}, not rebuilt at D {failed}; first 503 {first_503_s:.2f} s after the stop "
            f"(ready store drained); keys flowed again {back_s:.2f} s after R2 restarted, store full again; over "
            f"{elapsed:.1f} s: keys issued (200) {len(load.issued)}, collected at D {len(load.delivered)}, 503 "
            f"{_refused(load)} (all with Retry-After), issued but not collectable 0; {shares} shares captured on "
            f"6 links (capture drops {capture_drops}), no pad byte used twice"
        )
    _check_promise(net, load, before["S"], after["S"])
    assert confirmed_down == 0, "a unit confirmed though D could not rebuild it"
    assert expired > 0 and failed > 0  # the units sent meanwhile were wiped, none rebuilt
    assert _ready(down) < PER_REQUEST * KEY_BYTES  # refused because the store was drained
    assert capture_drops == 0, "the capture missed frames"
