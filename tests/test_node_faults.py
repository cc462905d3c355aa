"""Attack 8, faults from outside: a KME or a neighbour that answers wrongly, and crashes of the
node's background tasks.

* A KME whose ``dec_keys`` answer differs from its ``enc_keys`` answer (other key sizes,
  another number of keys, other or repeated key IDs) must never make the two ends of a link
  hold different key streams: nothing is appended, both ends mark the link faulty, count it
  in their stats and log it once.
* Repeated key IDs (or a wrong number or size) in an ``enc_keys`` answer: the same, and the
  refill task goes on.
* A KME that answers too slowly is an outage (``Etsi014ConnectionError``), never an
  exception that ends a task.
* Background tasks never die silently: a crashed one is restarted with a backoff and logged
  at ERROR with the exception type; one that keeps crashing stops the node with an error
  (``mpss node`` exits 1).

Everything runs on 127.0.0.1 with ephemeral ports, plain HTTP, an in-process KME simulator.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

aiohttp = pytest.importorskip("aiohttp")

from aiohttp import web  # noqa: E402

from mpss_fast.etsi014 import kme_sim  # noqa: E402
from mpss_fast.etsi014.client import Etsi014Client  # noqa: E402
from mpss_fast.etsi014.model import KeyList  # noqa: E402
from mpss_fast.exceptions import Etsi014ConnectionError, NodeError  # noqa: E402
from mpss_fast.https.server import REQUIRE_CLIENT_CERT, start_server  # noqa: E402
from mpss_fast.node import daemon, linkkeys  # noqa: E402
from mpss_fast.node.config import parse_config  # noqa: E402
from mpss_fast.node.daemon import Node  # noqa: E402
from mpss_fast.node.linkkeys import LinkKeyFeeder, LinkKeyReceiver  # noqa: E402
from mpss_fast.node.store import LinkStore  # noqa: E402

from . import nodelab  # noqa: E402

LINK = "A>B"
BATCH, KEY_BITS = 4, 256
BATCH_BYTES = BATCH * KEY_BITS // 8
NODE_LOG = "mpss_fast.node"


def _accept(material: memoryview) -> None:
    """A tag check that passes: these tests compare key streams, not tags."""


# =======================================================================================
# A KME simulator that can answer wrongly
# =======================================================================================


def _alter(keys: KeyList, fault: str | None) -> KeyList:
    """``keys`` as a faulty KME would return them."""
    keys = list(keys)
    if fault is None:
        return keys
    if fault == "shorter keys":  # every key 64 bits short: one size, but not the announced one
        return [(kid, key[:-8]) for kid, key in keys]
    if fault == "longer keys":
        return [(kid, key + os.urandom(8)) for kid, key in keys]
    if fault == "one key shorter":
        keys[-1] = (keys[-1][0], keys[-1][1][:-1])
    elif fault == "a key missing":
        keys.pop()
    elif fault == "a key more":
        keys.append((uuid.uuid4(), os.urandom(len(keys[0][1]))))
    elif fault == "another key ID":
        keys[-1] = (uuid.uuid4(), keys[-1][1])
    elif fault == "a key ID twice":
        keys[-1] = (keys[0][0], keys[-1][1])
    else:
        raise AssertionError(f"unknown fault {fault}")
    return keys


class FaultyKme(kme_sim.KmeSimBackend):
    """The link KME simulator; ``enc_fault`` / ``dec_fault`` alter its answers to the SAEs in ``faulty``."""

    def __init__(self, pairs: list[tuple[str, str]], faulty: set[str]) -> None:
        super().__init__(pairs)
        self.faulty = faulty
        self.enc_fault: str | None = None
        self.dec_fault: str | None = None
        self.enc_calls = 0

    async def enc_keys(self, master: str, slave: str, number: int, size_bits: int) -> KeyList:
        self.enc_calls += 1
        keys = await super().enc_keys(master, slave, number, size_bits)
        return _alter(keys, self.enc_fault) if master in self.faulty else keys

    async def dec_keys(self, slave: str, master: str, key_ids: list[uuid.UUID]) -> KeyList:
        keys = await super().dec_keys(slave, master, key_ids)
        return _alter(keys, self.dec_fault) if slave in self.faulty else keys


# =======================================================================================
# 1. One link direction A>B: feeder at A, receiver at B, one KME over HTTP
# =======================================================================================


@dataclass
class Link:
    kme: FaultyKme
    kme_url: str
    a: LinkStore
    b: LinkStore
    receiver: LinkKeyReceiver
    answers: list[str] = field(default_factory=list)
    clients: list[Etsi014Client] = field(default_factory=list)

    async def announce(self, start: int, key_ids: list[uuid.UUID], size: int) -> str:
        status: str = (await self.receiver.receive(start, key_ids, size))["status"]
        self.answers.append(status)
        return status

    def feeder(self, kme: Etsi014Client | None = None, *, low_water: int = 1 << 20) -> LinkKeyFeeder:
        if kme is None:
            kme = Etsi014Client(self.kme_url, sae_id="A", timeout=5)
            self.clients.append(kme)
        return LinkKeyFeeder(
            self.a, LINK, kme, "B", self.announce, batch=BATCH, key_bits=KEY_BITS, low_water=low_water, interval=0.01
        )

    def ends(self) -> tuple[int, int]:
        return self.a.stream_end(LINK), self.b.stream_end(LINK)

    def assert_same_streams(self) -> int:
        end_a, end_b = self.ends()
        assert end_a == end_b
        if end_a:
            sender, receiver = self.a.pool(LINK), self.b.pool(LINK)
            assert (sender.position, sender.available) == (receiver.position, receiver.available)
            key_id, mine = sender.take(sender.available)
            assert receiver.take_at(key_id, len(mine), _accept) == mine
        return end_a


@asynccontextmanager
async def _link(tmp_path: Path, faulty: str) -> AsyncIterator[Link]:
    kme = FaultyKme([("A", "B")], {faulty})
    server = await kme_sim.start(kme, "127.0.0.1", 0, plain_http=True)
    url = f"http://127.0.0.1:{server.port}"
    a, b = LinkStore(tmp_path / "A.db"), LinkStore(tmp_path / "B.db")
    b_kme = Etsi014Client(url, sae_id="B", timeout=5)
    link = Link(kme, url, a, b, LinkKeyReceiver(b, LINK, b_kme, "A"))
    link.clients.append(b_kme)
    try:
        yield link
    finally:
        for client in link.clients:
            await client.close()
        a.close()
        b.close()
        await server.close()


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == NODE_LOG and r.levelno >= logging.ERROR]


DEC_FAULTS = [
    "shorter keys",
    "longer keys",
    "one key shorter",
    "a key missing",
    "a key more",
    "another key ID",
    "a key ID twice",
]


@pytest.mark.parametrize("fault", DEC_FAULTS)
def test_a_dec_keys_answer_unlike_the_enc_keys_one_appends_nothing_and_marks_the_link_faulty(
    tmp_path: Path, fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=NODE_LOG)

    async def main() -> None:
        async with _link(tmp_path, faulty="B") as link:
            feeder = link.feeder()
            link.kme.dec_fault = fault
            for _ in range(2):  # the same fault twice: counted twice, logged once on each side
                await feeder.step()
            assert link.answers == ["fault", "fault"]
            assert link.ends() == (0, 0), "a faulty answer must append nothing, on either side"
            assert link.a.staged_batches(LINK) == []  # dropped: the receiver has none of it
            assert (feeder.committed_batches, feeder.dropped_batches) == (0, 2)
            assert feeder.faults == 2 and feeder.fault is not None and "dec_keys" in feeder.fault
            assert link.receiver.faults == 2 and link.receiver.fault is not None
            errors = _errors(caplog)
            assert len(errors) == 2, errors  # one line at the receiver, one at the sender
            assert all("A>B" in e for e in errors)
            assert any("dec_keys" in e for e in errors)

            link.kme.dec_fault = None  # the KME behaves again: the link recovers
            await feeder.step()
            assert link.answers[-1] == "added" and feeder.fault is None and link.receiver.fault is None
            assert (feeder.faults, link.receiver.faults) == (2, 2)  # the counters keep the history
            assert link.assert_same_streams() == BATCH_BYTES

    asyncio.run(main())


class LenientKme:
    """A KME client that checks nothing: the receiver's own checks must catch what it lets through."""

    base_url = "http://lenient.invalid"

    def __init__(self, keys: KeyList) -> None:
        self.keys = keys

    async def dec_keys(self, master: str, key_ids: list[uuid.UUID], size: int | None = None) -> KeyList:
        return self.keys


@pytest.mark.parametrize("fault", DEC_FAULTS)
def test_the_receiver_checks_the_keys_itself_whatever_its_client_checked(tmp_path: Path, fault: str) -> None:
    async def main() -> None:
        async with _link(tmp_path, faulty="nobody") as link:
            keys = await link.kme.enc_keys("A", "B", BATCH, KEY_BITS)
            ids = [kid for kid, _ in keys]
            link.receiver.kme = LenientKme(_alter(keys, fault))  # type: ignore[assignment]
            assert await link.receiver.receive(0, ids, KEY_BITS) == {"status": "fault"}
            assert link.b.stream_end(LINK) == 0 and link.receiver.faults == 1
            link.receiver.kme = LenientKme(keys)  # type: ignore[assignment]
            assert await link.receiver.receive(0, ids, KEY_BITS * 2) == {"status": "fault"}  # another size announced
            assert link.b.stream_end(LINK) == 0 and link.receiver.faults == 2
            assert await link.receiver.receive(0, ids, KEY_BITS) == {"status": "added"}
            assert link.b.stream_end(LINK) == BATCH_BYTES and link.receiver.fault is None

    asyncio.run(main())


@pytest.mark.parametrize("size", [None, 0, -8, 12, 8.0, True, "256"])
def test_an_announcement_with_a_bad_size_is_400_and_fetches_nothing(tmp_path: Path, size: Any) -> None:
    from mpss_fast.node.peer_api import NODE_HEADER, PEER_PREFIX, make_peer_app

    async def main() -> None:
        async with _link(tmp_path, faulty="nobody") as link:
            keys = await link.kme.enc_keys("A", "B", 1, KEY_BITS)

            async def skip(receiver: str, position: int) -> int:
                return 0

            app = make_peer_app({"A": link.receiver}, dict, skip, plain_http=True)
            server = await start_server(app, "127.0.0.1", 0, ssl_context=None)
            body: dict[str, Any] = {"start": 0, "key_IDs": [str(keys[0][0])]}
            if size is not None:
                body["size"] = size
            try:
                async with aiohttp.ClientSession() as session:
                    url = f"http://127.0.0.1:{server.port}{PEER_PREFIX}/links/A/keys"
                    async with session.post(url, json=body, headers={NODE_HEADER: "A"}) as response:
                        assert response.status == 400
                        assert "size" in (await response.json())["message"]
            finally:
                await server.close()
            assert link.b.stream_end(LINK) == 0
            assert await link.kme.dec_keys("B", "A", [keys[0][0]])  # still at the KME: nothing was fetched

    asyncio.run(main())


ENC_FAULTS = ["a key ID twice", "a key missing", "a key more", "shorter keys", "one key shorter"]


@pytest.mark.parametrize("fault", ENC_FAULTS)
def test_a_bad_enc_keys_answer_marks_the_link_faulty_and_the_refill_task_goes_on(
    tmp_path: Path, fault: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger=NODE_LOG)
    monkeypatch.setattr(linkkeys, "FAULT_RETRY_S", 0.01, raising=False)

    async def main() -> None:
        async with _link(tmp_path, faulty="A") as link:
            link.kme.enc_fault = fault
            feeder = link.feeder()
            task = asyncio.create_task(feeder.run())
            try:
                await _until(lambda: link.kme.enc_calls >= 3 or task.done(), 5)
                assert not task.done(), f"the refill task ended: {task.exception()!r}"
                assert feeder.faults >= 2 and feeder.fault is not None
                assert link.ends() == (0, 0) and link.a.staged_batches(LINK) == [] and link.answers == []
                errors = _errors(caplog)
                assert len(errors) == 1 and "A>B" in errors[0] and "enc_keys" in errors[0], errors

                link.kme.enc_fault = None
                await _until(lambda: feeder.committed_batches >= 1 or task.done(), 5)
                assert not task.done() and feeder.fault is None
            finally:
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            assert link.assert_same_streams() >= BATCH_BYTES

    asyncio.run(main())


# =======================================================================================
# 2. Timeouts: a KME (or a neighbour) too slow to answer
# =======================================================================================


@asynccontextmanager
async def _slow_server(delay: float) -> AsyncIterator[str]:
    """An HTTP server that answers every request after ``delay`` seconds."""

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(delay)
        return web.json_response({"keys": []})

    app = web.Application()
    app[REQUIRE_CLIENT_CERT] = False
    app.router.add_route("*", "/{tail:.*}", slow)
    server = await start_server(app, "127.0.0.1", 0, ssl_context=None)
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()


def test_a_kme_too_slow_to_answer_is_a_connection_error() -> None:
    async def main() -> None:
        async with _slow_server(5) as url, Etsi014Client(url, sae_id="A", timeout=0.2) as client:
            with pytest.raises(Etsi014ConnectionError, match="TimeoutError"):
                await client.enc_keys("B", 1, KEY_BITS)
            with pytest.raises(Etsi014ConnectionError, match="TimeoutError"):
                await client.dec_keys("B", [uuid.uuid4()], KEY_BITS)

    asyncio.run(main())


def test_a_slow_kme_pauses_the_refill_and_the_task_goes_on(tmp_path: Path) -> None:
    async def main() -> None:
        async with _slow_server(5) as url, _link(tmp_path, faulty="nobody") as link:
            slow = Etsi014Client(url, sae_id="A", timeout=0.05)
            link.clients.append(slow)
            feeder = link.feeder(slow)
            task = asyncio.create_task(feeder.run())
            try:
                await _until(lambda: feeder.last_error is not None or task.done(), 5)
                await asyncio.sleep(0.2)
                assert not task.done() and "TimeoutError" in (feeder.last_error or "")
                assert feeder.faults == 0  # an outage, not a fault
            finally:
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task

    asyncio.run(main())


# =======================================================================================
# 3. The supervisor: a background task that raises
# =======================================================================================


class Injected(Exception):
    """The fault injected into a background task."""


def test_the_supervisor_restarts_a_crashed_task_with_backoff_and_logs_it(caplog: pytest.LogCaptureFixture) -> None:
    from mpss_fast.node.supervisor import Supervisor

    caplog.set_level(logging.INFO, logger=NODE_LOG)
    runs: list[float] = []

    async def flaky() -> None:
        runs.append(asyncio.get_running_loop().time())
        if len(runs) <= 3:
            raise Injected(f"crash {len(runs)}")
        await asyncio.sleep(3600)

    async def main() -> None:
        supervisor = Supervisor(delay_s=0.02, max_delay_s=1, max_crashes=10, healthy_s=60)
        task = supervisor.spawn("flaky", flaky)
        await _until(lambda: len(runs) == 4, 5)
        assert not supervisor.failed.is_set() and supervisor.restarts == {"flaky": 3}
        gaps = [b - a for a, b in itertools.pairwise(runs)]
        assert gaps[0] >= 0.015 and gaps[1] >= 0.035 and gaps[2] >= 0.075  # 0.02, 0.04, 0.08 s
        await supervisor.close()
        assert task.cancelled()

    asyncio.run(main())
    errors = [r for r in caplog.records if r.name == NODE_LOG and r.levelno == logging.ERROR]
    assert len(errors) == 3
    assert all("flaky" in r.getMessage() and "Injected" in r.getMessage() for r in errors)


def test_the_supervisor_gives_up_on_a_task_that_keeps_crashing(caplog: pytest.LogCaptureFixture) -> None:
    from mpss_fast.node.supervisor import Supervisor

    caplog.set_level(logging.INFO, logger=NODE_LOG)
    runs = 0

    async def broken() -> None:
        nonlocal runs
        runs += 1
        raise Injected("always")

    async def finished() -> None:
        return

    async def main() -> None:
        supervisor = Supervisor(delay_s=0.01, max_delay_s=0.01, max_crashes=4, healthy_s=60)
        done = supervisor.spawn("done", finished)
        supervisor.spawn("broken", broken)
        await asyncio.wait_for(supervisor.failed.wait(), 5)
        assert runs == 4 and supervisor.failure is not None
        assert "broken" in supervisor.failure and "Injected" in supervisor.failure
        assert done.done() and not done.cancelled() and supervisor.restarts.get("done", 0) == 0
        await supervisor.close()

    asyncio.run(main())
    assert any(r.levelno >= logging.ERROR and "giving up" in r.getMessage() for r in caplog.records)


# =======================================================================================
# 4. Whole nodes: a faulty KME on one link, a task that raises
# =======================================================================================


def _configs(tmp_path: Path, kme_port: int, paths: int = 2) -> dict[str, dict[str, Any]]:
    names = nodelab.node_names(paths)
    ports = nodelab.free_ports(3 * len(names))
    peer = dict(zip(names, ports[0::3], strict=True))
    api = dict(zip(names, ports[1::3], strict=True))
    udp = dict(zip(names, ports[2::3], strict=True))
    keys = {"keys": {"batch": 4, "key_bits": 2048, "low_water_bytes": 2048, "refill_interval_s": 0.02}}
    return nodelab.loopback(paths, tmp_path, kme_port, peer, api, udp, k=2, extra=lambda n: keys)


async def _until(condition: Callable[[], bool], timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.01)


async def _network(
    tmp_path: Path, kme: kme_sim.KmeSimBackend, body: Callable[[dict[str, Node]], Awaitable[None]]
) -> None:
    server = await kme_sim.start(kme, "127.0.0.1", 0, plain_http=True)
    nodes = {name: Node(parse_config(cfg)) for name, cfg in _configs(tmp_path, server.port).items()}
    try:
        for node in nodes.values():
            await node.start()
        await body(nodes)
    finally:
        for node in nodes.values():
            await node.close()
        await server.close()


def test_a_faulty_kme_on_one_link_shows_in_both_nodes_stats_and_the_streams_stay_equal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger=NODE_LOG)
    monkeypatch.setattr(linkkeys, "FAULT_RETRY_S", 0.05, raising=False)
    kme = FaultyKme(nodelab.kme_pairs(2), {"R1"})
    kme.dec_fault = "shorter keys"  # R1's dec_keys answers: every incoming link of R1 (S>R1, D>R1)

    async def body(nodes: dict[str, Node]) -> None:
        s, r1 = nodes["S"], nodes["R1"]
        await _until(lambda: s.stats()["refill"]["S>R1"]["faults"] >= 2, 10)
        await _until(lambda: s.stats()["links"].get("S>R2", {}).get("end", 0) > 0, 10)  # other links fine
        refill = s.stats()["refill"]["S>R1"]
        incoming = r1.stats()["incoming"]["S>R1"]
        assert refill["fault"] is not None and incoming["faults"] >= 2 and incoming["fault"] is not None
        assert s.stats()["links"].get("S>R1", {}).get("end", 0) == 0
        assert r1.stats()["links"].get("S>R1", {}).get("end", 0) == 0
        assert json.dumps(s.stats()) and json.dumps(r1.stats())  # stats stay JSON
        errors = [e for e in _errors(caplog) if "S>R1" in e]
        assert len(errors) == 2, errors  # once at S, once at R1

        kme.dec_fault = None
        await _until(lambda: s.stats()["links"].get("S>R1", {}).get("end", 0) > 0, 10)
        await _until(lambda: s.stats()["refill"]["S>R1"]["fault"] is None, 10)
        assert r1.stats()["links"]["S>R1"]["end"] == s.stats()["links"]["S>R1"]["end"]

    asyncio.run(_network(tmp_path, kme, body))


def test_a_background_task_that_raises_is_restarted_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash inside the refill task (an exception nobody expected, as aiohttp's
    asyncio.TimeoutError was on Python 3.10) restarts it; keys still flow."""
    caplog.set_level(logging.INFO, logger=NODE_LOG)
    monkeypatch.setattr(daemon, "RESTART_DELAY_S", 0.01, raising=False)
    step = LinkKeyFeeder.step
    crashes = {"S>R1": 2}

    async def crashing_step(self: LinkKeyFeeder) -> None:
        if crashes.get(self.link, 0) > 0:
            crashes[self.link] -= 1
            raise Injected(f"injected into {self.link}")
        await step(self)

    monkeypatch.setattr(LinkKeyFeeder, "step", crashing_step)

    async def body(nodes: dict[str, Node]) -> None:
        s = nodes["S"]
        await _until(lambda: s.stats()["links"].get("S>R1", {}).get("end", 0) > 0, 10)
        assert crashes["S>R1"] == 0
        assert s.stats()["task_restarts"] == {"link key S>R1": 2}

    asyncio.run(_network(tmp_path, kme_sim.KmeSimBackend(nodelab.kme_pairs(2)), body))
    errors = _errors(caplog)
    assert len(errors) == 2 and all("link key S>R1" in e and "Injected" in e for e in errors), errors


def test_a_node_whose_task_keeps_crashing_stops_with_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``mpss node`` exits 1, naming the task, instead of running on without it."""
    from mpss_fast import cli

    monkeypatch.setattr(daemon, "RESTART_DELAY_S", 0.01, raising=False)
    monkeypatch.setattr(daemon, "RESTART_DELAY_MAX_S", 0.01, raising=False)

    async def broken(self: Node) -> None:
        raise Injected("expiry is broken")

    monkeypatch.setattr(Node, "_expire", broken)
    config = _configs(tmp_path, nodelab.free_ports(1)[0])["S"]
    path = tmp_path / "S.json"
    path.write_text(json.dumps(config))

    with pytest.raises(NodeError, match="expire sessions"):
        asyncio.run(asyncio.wait_for(daemon.run(parse_config(config)), 20))
    assert cli.main(["node", "--config", str(path)]) == 1  # (only once run() is known to return)
    err = capsys.readouterr().err
    assert "mpss: error: node S:" in err and "expire sessions" in err and "Injected" in err
