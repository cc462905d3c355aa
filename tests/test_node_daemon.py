"""The node daemon in one process on loopback: UDP transport, plain HTTP, an in-process KME simulator.

These run anywhere (no root, no namespaces); the real-SRv6 runs are in test_node_netns.py.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aiohttp")

from mpss_fast.etsi014 import kme_sim
from mpss_fast.etsi014.client import Etsi014Client
from mpss_fast.exceptions import Etsi014BadRequestError, Etsi014UnauthorizedError, NodeConfigError
from mpss_fast.node.config import load_config, parse_config
from mpss_fast.node.daemon import Node

from . import nodelab


def _keys_section(name: str) -> dict[str, Any]:
    return {
        "keys": {"batch": 8, "key_bits": 4096, "low_water_bytes": 8192, "refill_interval_s": 0.02},
        "stores": {"unit_bytes": 256, "depth_bytes": 16384, "window": 16},
    }


async def _stored(master: Etsi014Client, count: int, timeout: float = 10.0) -> None:
    """Wait until the master's node holds ``count`` confirmed keys for the pair (ETSI ``stored_key_count``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (await master.status(nodelab.SLAVE)).stored_key_count < count:
        if loop.time() > deadline:
            raise AssertionError(f"the key store did not reach {count} keys")
        await asyncio.sleep(0.02)


def _configs(
    tmp_path: Path, kme_port: int, paths: int = 3, extra: Callable[[str], dict[str, Any]] = _keys_section, **kw: Any
) -> dict[str, dict[str, Any]]:
    names = nodelab.node_names(paths)
    ports = nodelab.free_ports(3 * len(names))
    peer = dict(zip(names, ports[0::3], strict=True))
    api = dict(zip(names, ports[1::3], strict=True))
    udp = dict(zip(names, ports[2::3], strict=True))
    return nodelab.loopback(paths, tmp_path, kme_port, peer, api, udp, extra=extra, **kw)


async def _network(
    tmp_path: Path, body: Callable[[dict[str, Node], dict[str, dict[str, Any]]], Awaitable[None]], **kw: Any
) -> None:
    backend = kme_sim.KmeSimBackend(nodelab.kme_pairs(kw.get("paths", 3)))
    kme = await kme_sim.start(backend, "127.0.0.1", 0, plain_http=True)
    configs = _configs(tmp_path, kme.port, **kw)
    nodes = {name: Node(parse_config(cfg)) for name, cfg in configs.items()}
    try:
        for node in nodes.values():
            await node.start()
        await _until(lambda: _ready(nodes), 10)
        await body(nodes, configs)
    finally:
        for node in nodes.values():
            await node.close()
        await kme.close()


def _ready(nodes: dict[str, Node]) -> bool:
    """Every link direction a share uses holds key at its sender."""
    return all(nodes[a].stats()["links"].get(f"{a}>{b}", {}).get("end", 0) > 0 for a, b in nodelab.links(3))


async def _until(condition: Callable[[], bool], timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("timed out waiting for the network")
        await asyncio.sleep(0.01)


def _app(configs: dict[str, dict[str, Any]], node: str, sae: str) -> Etsi014Client:
    return Etsi014Client(f"http://{configs[node]['api']['listen']}", sae_id=sae, timeout=5)


def test_keys_from_enc_keys_at_s_come_out_of_dec_keys_at_d(tmp_path: Path) -> None:
    async def body(nodes: dict[str, Node], configs: dict[str, dict[str, Any]]) -> None:
        async with _app(configs, "S", nodelab.MASTER) as master, _app(configs, "D", nodelab.SLAVE) as slave:
            await _until(lambda: _prepared(nodes["S"]) == 256, 30)  # S prepared its default-size keys
            keys = await master.enc_keys(nodelab.SLAVE, number=20, size=256)
            got = await slave.dec_keys(nodelab.MASTER, [kid for kid, _ in keys])
            assert got == keys and len({key for _, key in keys}) == 20
            with pytest.raises(Etsi014BadRequestError, match="already delivered"):
                await slave.dec_keys(nodelab.MASTER, [keys[0][0]])
            with pytest.raises(Etsi014UnauthorizedError):  # the slave's node does not issue keys
                await _enc(configs, "D", nodelab.MASTER)
            await _stored(master, 16384 // 32 + 256)  # full again (the depth and the prepared keys)
        await _until(lambda: nodes["S"].stats()["keyflow"]["pending"] == 0, 5)
        stats = {name: node.stats() for name, node in nodes.items()}
        flow = stats["S"]["keyflow"]
        # The 20 keys came from the keys S prepared (D committed them ahead): D applied those records only.
        assert flow["keys_issued"] == 20 and stats["D"]["keyflow"]["records_applied"] == flow["keys_prepared"]
        pair = flow["pairs"][f"{nodelab.MASTER}->{nodelab.SLAVE}"]
        assert pair["prepared_keys"] == 256 and flow["keys_prepared"] == 256 + 20  # topped up after the 20
        assert stats["D"]["keyflow"]["records_applied"] == 256 + 20
        # Every unit sent is accounted for: confirmed, or lost (units sent before the relays had link key:
        # their shares were dropped for "no key" and the units expired, costing link key only).
        assert stats["S"]["keys_sent"] == flow["units_sent"] == flow["units_confirmed"] + flow["units_expired"]
        # Every confirmed byte is ready, or was carved into a prepared key: the store is full again.
        assert flow["units_confirmed"] * 256 == pair["ready_bytes"] + flow["keys_prepared"] * 32
        assert 16384 <= pair["ready_bytes"] < 16384 + 256  # refilled to the depth (units are 256 bytes)
        assert flow["mismatches"] == flow["units_unknown"] == flow["keys_burnt"] == 0
        assert all(set(s["dropped"]) <= {"no key"} and not s["tampered"] for s in stats.values())

    asyncio.run(_network(tmp_path, body))


def _prepared(node: Node) -> int:
    """Keys S prepared ahead of requests (D committed them) for the one application pair."""
    return int(node.stats()["keyflow"]["pairs"][f"{nodelab.MASTER}->{nodelab.SLAVE}"]["prepared_keys"])


async def _enc(configs: dict[str, dict[str, Any]], node: str, sae: str) -> None:
    async with _app(configs, node, sae) as client:
        await client.enc_keys(nodelab.SLAVE, number=1)


def test_a_tampering_relay_is_named_and_its_keys_still_delivered(tmp_path: Path) -> None:
    async def body(nodes: dict[str, Node], configs: dict[str, dict[str, Any]]) -> None:
        async with _app(configs, "S", nodelab.MASTER) as master, _app(configs, "D", nodelab.SLAVE) as slave:
            await _stored(master, 5)
            keys = await master.enc_keys(nodelab.SLAVE, number=5, size=256)
            assert await slave.dec_keys(nodelab.MASTER, [kid for kid, _ in keys]) == keys
        tampered = nodes["D"].stats()["tampered"]
        assert tampered and {(r["path"], tuple(r["relays"])) for r in tampered} == {(1, ("R2",))}
        assert nodes["S"].stats()["keyflow"]["mismatches"] == 0  # corrected at D, so S's copy matched

    def tamper(name: str) -> dict[str, Any]:
        return {**_keys_section(name), "testing": {"tamper": name == "R2"}}

    asyncio.run(_network(tmp_path, body, extra=tamper))


def test_keys_are_delivered_with_one_relay_stopped(tmp_path: Path) -> None:
    async def body(nodes: dict[str, Node], configs: dict[str, dict[str, Any]]) -> None:
        await nodes["R3"].close()
        async with _app(configs, "S", nodelab.MASTER) as master, _app(configs, "D", nodelab.SLAVE) as slave:
            # Small units and store: every unit takes every path, so S's link to R3 spends key on each
            # (about 100 bytes here) until its last 4 KiB batch runs out.
            await _stored(master, 1024 // 32)  # full: units from before R3 stopped are all in
            await _until(lambda: nodes["S"].stats()["keyflow"]["pending"] == 0, 5)
            before = nodes["D"].stats()
            keys = await master.enc_keys(nodelab.SLAVE, number=8, size=256)  # 256 bytes: 4 units to refill
            assert await slave.dec_keys(nodelab.MASTER, [kid for kid, _ in keys]) == keys
            await _stored(master, 1024 // 32)
        after = nodes["D"].stats()
        delivered = after["keys_delivered"] - before["keys_delivered"]
        assert delivered == 4 and after["shares_received"] - before["shares_received"] == 2 * delivered

    def small_store(name: str) -> dict[str, Any]:
        # no prepared keys: each request carves its keys, so the units it takes are the units refilled
        return {
            **_keys_section(name),
            "stores": {"unit_bytes": 64, "depth_bytes": 1024, "window": 4, "prepared_keys": 0},
        }

    asyncio.run(_network(tmp_path, body, extra=small_store))


def test_bad_configuration_is_refused_with_the_key_named(tmp_path: Path) -> None:
    configs = _configs(tmp_path, 1)
    bad = dict(configs["S"], transport="carrier-pigeon")
    with pytest.raises(NodeConfigError, match="transport"):
        parse_config(bad)
    bad = dict(configs["S"], k=4)
    with pytest.raises(NodeConfigError, match="k=4 exceeds n=3"):
        parse_config(bad)
    bad = dict(configs["S"], colour="blue")
    with pytest.raises(NodeConfigError, match="unknown key"):
        parse_config(bad)
    bad = {key: value for key, value in configs["S"].items() if key != "plain_http"}
    with pytest.raises(NodeConfigError, match="tls"):
        parse_config(bad)
    bad = dict(configs["S"], links=[{"neighbour": "D", "peer_url": "x", "kme_url": "y"}])
    with pytest.raises(NodeConfigError, match="no link S-D"):
        parse_config(bad)
    assert parse_config(configs["S"]).node == "S"


def test_the_example_configuration_in_the_docs_is_valid(tmp_path: Path) -> None:
    text = (Path(__file__).parent.parent / "docs" / "node.md").read_text()
    example = json.loads(text.split("```json\n", 1)[1].split("```", 1)[0])
    (tmp_path / "metro.json").write_text(json.dumps(nodelab.topology(3)))
    path = tmp_path / "S.json"
    path.write_text(json.dumps(example))
    config = load_config(path)
    assert (config.node, config.k, config.n, config.transport, config.lease_bytes) == ("S", 2, 3, "srv6", 65536)
    assert config.db == tmp_path / "state" / "S.db" and config.tls is not None  # a private directory of its own
    assert (config.tls.node_ca, config.tls.app_ca) == (tmp_path / "node-ca.pem", tmp_path / "app-ca.pem")
    assert config.operators == {"noc-1"}
    assert [link.neighbour for link in config.links] == ["R1", "R2", "R3"] and config.pairs[0].slave_node == "D"


def test_cli_node_refuses_a_missing_or_bad_configuration(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mpss_fast import cli

    assert cli.main(["node", "--config", str(tmp_path / "missing.json")]) == 1
    assert "cannot read the node configuration" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"node": "S"}))
    assert cli.main(["node", "--config", str(bad)]) == 1
    assert "missing key(s) db, topology, k, n, links, peer" in capsys.readouterr().err


def test_mpss_node_refuses_n_above_the_node_disjoint_paths_in_one_line_and_a_working_config_starts(
    tmp_path: Path,
) -> None:
    raw = _configs(tmp_path, nodelab.free_ports(1)[0])["S"]
    path = tmp_path / "S.json"
    path.write_text(json.dumps({**raw, "n": 4}))
    command = [sys.executable, "-m", "mpss_fast", "node", "--config", str(path)]
    # A process: a node that starts after all fails the test (timeout) instead of running on.
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1 and done.stdout == ""
    assert not (tmp_path / "S.db").exists()  # refused before anything ran: no store was created
    assert done.stderr == (
        "mpss: error: api.pairs[0] (app-S at S -> app-D at D): k=2, n=4 asks for 4 node-disjoint paths from S to D, "
        "but the topology has 3; set n to at most 3\n"
    )

    path.write_text(json.dumps(raw))  # n=3: as many node-disjoint paths as the topology has
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True) as proc:
        watchdog = threading.Timer(60, proc.kill)  # a node that never says it is up fails the test, not hangs it
        watchdog.start()
        try:
            assert proc.stderr is not None
            for line in proc.stderr:  # the KME and the neighbours are not there: the node says so, and runs on
                if "node S: up" in line:
                    break
            assert proc.poll() is None, "the node stopped"
        finally:
            watchdog.cancel()
            nodelab.stop_processes([proc], 10)
    assert proc.returncode == 0  # SIGTERM: a clean stop


def test_a_failed_key_commit_is_retried_and_nothing_is_lost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mpss_fast.exceptions import StoreError

    async def body(nodes: dict[str, Node], configs: dict[str, dict[str, Any]]) -> None:
        store = nodes["D"].keystore
        assert store is not None
        real = store.add_ready
        failures: list[int] = []

        def failing(pair: tuple[str, str], units: list[tuple[bytes, bytes]]) -> int:
            if len(failures) < 2:
                failures.append(len(units))
                raise StoreError("disk full (simulated)")
            return real(pair, units)

        monkeypatch.setattr(store, "add_ready", failing)
        async with _app(configs, "S", nodelab.MASTER) as master, _app(configs, "D", nodelab.SLAVE) as slave:
            await _stored(master, 16384 // 32)
            keys = await master.enc_keys(nodelab.SLAVE, number=100, size=1024)  # most of the store
            assert await slave.dec_keys(nodelab.MASTER, [kid for kid, _ in keys]) == keys
        assert len(failures) == 2 and nodes["D"].stats()["keyflow"]["commit_failures"] == 2

    def no_prepared(name: str) -> dict[str, Any]:
        section = _keys_section(name)
        return {**section, "stores": {**section["stores"], "prepared_keys": 0}}

    asyncio.run(_network(tmp_path, body, extra=no_prepared))


def test_the_node_extra_brings_what_the_node_imports() -> None:
    # The daemon serves HTTP (aiohttp) and plans its paths with mpss_fast.kmp (networkx); checked on the
    # installed distribution's metadata, so a wheel built without them fails here.
    from importlib.metadata import requires

    node = [spec for spec in requires("mpss-fast") or [] if 'extra == "node"' in spec]
    assert {spec.split(">")[0].split(";")[0].strip() for spec in node} >= {"aiohttp", "networkx"}


def test_a_node_whose_kernels_fail_the_selftest_does_not_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mpss_fast.exceptions import SelfTestError
    from mpss_fast.node import daemon

    def broken(**kw: Any) -> None:
        raise SelfTestError("gfni512: split-0x11b failed", (("gfni512", "split-0x11b"),))

    monkeypatch.setattr(daemon, "selftest", broken)
    configs = _configs(tmp_path, 9)
    node = Node(parse_config(configs["S"]))
    with pytest.raises(SelfTestError, match="gfni512"):
        asyncio.run(node.start())
    assert node.store is None and node.transport is None and not Path(configs["S"]["db"]).exists()


def test_store_maintenance_drops_old_ledger_rows_and_empties_the_write_ahead_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the maintenance interval at 50 ms and nothing kept, every delivered key's ledger row goes at D
    (a repeat dec_keys then says "unknown", not "already delivered") and both stores' WAL files are
    checkpointed to empty between refills."""
    from mpss_fast.node import daemon

    monkeypatch.setattr(daemon, "MAINTENANCE_INTERVAL_S", 0.05)
    monkeypatch.setattr(daemon, "LEDGER_KEEP_S", 0.0)

    async def body(nodes: dict[str, Node], configs: dict[str, dict[str, Any]]) -> None:
        async with _app(configs, "S", nodelab.MASTER) as master, _app(configs, "D", nodelab.SLAVE) as slave:
            await _stored(master, 16384 // 32)
            keys = await master.enc_keys(nodelab.SLAVE, number=4, size=256)
            assert await slave.dec_keys(nodelab.MASTER, [kid for kid, _ in keys]) == keys
            await _stored(master, 16384 // 32)  # refilled: the flow is quiet again

            async def unknown() -> bool:
                try:
                    await slave.dec_keys(nodelab.MASTER, [keys[0][0]])
                except Etsi014BadRequestError as exc:
                    return "unknown" in exc.message
                raise AssertionError("a delivered key was delivered again")

            loop = asyncio.get_running_loop()
            deadline = loop.time() + 5
            while not await unknown():
                assert loop.time() < deadline, "the ledger row of a delivered key was never dropped"
                await asyncio.sleep(0.05)
        wals = [Path(configs[name]["db"] + "-wal") for name in ("S", "D")]
        wals += [Path(str(configs[name]["db"]).removesuffix(".db") + ".keys.db-wal") for name in ("S", "D")]
        await _until(lambda: all(not wal.exists() or wal.stat().st_size == 0 for wal in wals), 5)

    asyncio.run(_network(tmp_path, body))


def test_a_start_that_fails_part_way_stops_exactly_what_it_started(tmp_path: Path) -> None:
    """The peer API's port is taken: the start fails after the stores, the transport and the clients were
    opened; all of them are closed again (the stores' locks are released: a second start succeeds)."""
    import socket

    configs = _configs(tmp_path, 9)
    host, port = configs["S"]["peer"]["listen"].rsplit(":", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind((host, int(port)))
        taken.listen()
        node = Node(parse_config(configs["S"]))
        with pytest.raises(OSError):
            asyncio.run(node.start())
        assert node.store is None and node.keystore is None and node.transport is None

    async def again() -> None:
        second = Node(parse_config(configs["S"]))
        await second.start()
        await second.close()
        await second.close()  # idempotent

    asyncio.run(again())
