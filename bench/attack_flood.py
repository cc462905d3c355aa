"""Forged packets against real ``mpss node`` processes: what a flood moves, costs and leaves behind.

The two figures of the security issue (attacks 2 and 7), measured on loopback: five
``python -m mpss_fast node`` processes (S, R1..R3, D from ``tests.nodelab``; UDP transport,
plain HTTP, k=2 n=3), a ``mpss kme-sim`` process for the link keys, applications asking
256-bit keys through ETSI 014 (``enc_keys`` at S, ``dec_keys`` at D, closed loop) and an
attacker process sending share packets built with ``mpss_fast.wire`` (valid layout and UDP
checksum, S's SID as source, an SRH toward D through a relay) straight to the nodes' UDP
endpoints.

* **flood**: with the applications paused, every pool's position and available bytes (from
  ``GET /mpss/v1/node/stats``, at both ends of every link direction) before and after
  ``--packets`` forged packets (random tags and payloads; hop key IDs half random u64, half
  inside the receiving pool's unused range) to R1, R2, R3 and D; the packets the nodes
  counted as dropped against those sent. Then, ``--repeats`` times: the honest key rate
  for ``--seconds`` without a flood and during another flood of ``--packets``.
* **memory**: ``--memory-packets`` packets to D and R2 (forged tags with random key IDs,
  replays of real packets captured on the way, forged shares of unknown sessions, shares
  from an unknown source SID), applications paused: each node's VmRSS before and after, its
  CPU seconds, and the lines it logged.

The attacker is paced by the receiving sockets' queues (``/proc/net/udp``), so the
kernel drops nothing and every packet sent is one a node handled: the flood runs at the
rate the nodes can take packets in. Run from the repository root (Linux)::

    python -m bench.attack_flood [--packets 100000] [--memory-packets 1000000] [--json FILE]

Link positions are committed with ``keys.lease_bytes = 0`` here, so the stats' position is
the pool's exact high-water mark (the default lease would round it to 64 KiB), and the
stores live in ``/dev/shm`` where there is one (the commits' fsyncs cost nothing there).
``tests/test_flood_nodes.py`` runs the same code with small counts and checks the facts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from tests import nodelab

from mpss_fast.exceptions import Etsi014UnavailableError
from mpss_fast.wire import MpssOption, Packet, Srh, address, encode_packet, parse_packet

PATHS = 3
NAMES = nodelab.node_names(PATHS)
RELAYS = [n for n in NAMES if n.startswith("R")]
OPERATOR = "bench-operator"
"""The identity that reads the nodes' stats (``peer.operators``; the ``X-MPSS-Node`` header on plain HTTP)."""

KEYS = {"batch": 32, "key_bits": 8192, "low_water_bytes": 196608, "refill_interval_s": 0.02, "lease_bytes": 0}
"""The nodes' link key settings (``tests.nodenet``'s, with positions committed exactly)."""

PREPARED_KEYS = 256
"""Default-size keys S prepares ahead per pair (``stores.prepared_keys``, the node's default)."""

STORES = {"unit_bytes": 1024, "depth_bytes": 64 * 1024, "window": 32, "prepared_keys": PREPARED_KEYS}
"""The key stores (``stores``): 64 KiB of confirmed key per pair, refilled in 1 KiB units, and the prepared
keys: the flow is at rest only once they are all made."""

KEY_BITS = 256
PER_REQUEST = 10
WORKERS = 4
"""Applications: this many concurrent enc_keys/dec_keys loops of PER_REQUEST keys each."""

QUEUE_LIMIT = 48 * 1024
"""The attacker sends to a node only while its socket holds fewer bytes than this (of ~208 KiB)."""
BATCH = 16

MIX_FLOOD = ("forged-in-range", "forged-u64")
MIX_MEMORY = (
    "forged-in-range",
    "forged-u64",
    "replay",
    "replay",
    "replay",
    "unknown-session",
    "unknown-session",
    "unknown-source",
)
"""Kinds of packet, in the proportions sent (the sender cycles through the tuple)."""

MAX_TAP_PACKETS = 4096
PROCESS_LIFETIME_S = 1800.0
"""Helper processes stop by themselves after this long, or when their parent is gone."""

U64 = (1 << 64) - 1


# -- processes and their /proc figures ---------------------------------------------------


def rss_mib(pid: int) -> float:
    """VmRSS of ``pid`` in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def udp_sockets(ports: set[int]) -> dict[int, tuple[int, int]]:
    """For each 127.0.0.1 UDP port in ``ports``: (bytes queued for reading, datagrams the kernel dropped)."""
    out = {}
    with open("/proc/net/udp") as f:
        next(f)
        for line in f:
            parts = line.split()
            host, port = parts[1].split(":")
            if host == "0100007F" and int(port, 16) in ports:
                out[int(port, 16)] = (int(parts[4].split(":")[1], 16), int(parts[12]))
    return out


def _orphaned(parent: int, started: float) -> bool:
    return os.getppid() != parent or time.monotonic() - started > PROCESS_LIFETIME_S


# -- the tap: a forwarder on two hops that keeps the latest real packets ------------------


def _tap_main(routes: list[tuple[int, int]], parent: int, conn: Any) -> None:
    """Forward UDP from each listen port to its target port; on "dump", send the latest packets per port."""
    started = time.monotonic()
    socks: dict[socket.socket, tuple[int, deque[bytes], int]] = {}
    for listen, target in routes:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", listen))
        sock.setblocking(False)
        socks[sock] = (target, deque(maxlen=MAX_TAP_PACKETS), listen)
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    conn.send("ready")
    while not _orphaned(parent, started):
        readable, _, _ = select.select([*socks, conn], [], [], 0.5)
        for sock in readable:
            if sock is conn:
                order = conn.recv()
                if order == "stop":
                    return
                conn.send({listen: list(kept) for _, kept, listen in socks.values()})
                continue
            target, kept, _ = socks[sock]
            for _ in range(256):
                try:
                    data = sock.recv(65535)
                except BlockingIOError:
                    break
                kept.append(data)
                out.sendto(data, ("127.0.0.1", target))


# -- the attacker -------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where forged packets go and what they look like: a share from S on the path S-``relay``-D at ``node``."""

    node: str
    port: int
    relay: str
    key_range: tuple[int, int]
    """The receiving pool's unused key IDs [position, end) (the node's stats for ``previous>node``)."""
    share_len: int
    replays: tuple[bytes, ...] = ()

    @property
    def previous(self) -> str:
        return "S" if self.node != "D" else self.relay


def _forger(target: Target, template: Packet) -> Any:
    """A function ``kind -> packet bytes`` for ``target``."""
    src = address(nodelab.sid("S"))
    srh = Srh.from_path([address(nodelab.sid(target.relay)), address(nodelab.sid("D"))])
    if target.node == "D":
        srh = Srh(srh.segments, 0, srh.flags, srh.tag)
    x = int(target.relay[1:])
    low, high = target.key_range
    span = max(1, high - low - target.share_len - 64)
    opt = template.option
    sport, dport = template.sport, template.dport
    replays = target.replays
    counter = [0]
    session = os.urandom(16)

    def forge(kind: str) -> bytes:
        if kind == "replay":
            if not replays:
                raise RuntimeError(f"no real packet to replay at {target.node}")
            counter[0] += 1
            return replays[counter[0] % len(replays)]
        noise = os.urandom(16 + 16 + 8 + target.share_len)
        tag, fresh, number, payload = noise[:16], noise[16:32], noise[32:40], noise[40:]
        if kind == "forged-u64":
            key_id = int.from_bytes(number) & U64
        else:
            key_id = low + int.from_bytes(number) % span
        sid = fresh if kind in ("unknown-session", "unknown-source") else session
        option = MpssOption(opt.poly, opt.k, opt.n, x, x - 1, target.share_len, sid, key_id, tag)
        source = b"\xfd\x00\x00\x09" + fresh[:12] if kind == "unknown-source" else src
        return encode_packet(Packet(source, srh, option, payload, sport, dport))

    return forge


def flood(
    targets: list[Target],
    counts: list[int],
    mix: tuple[str, ...],
    template: bytes,
    *,
    timeout_s: float,
    queue_limit: int = QUEUE_LIMIT,
    on_start: Any = None,
) -> dict[str, Any]:
    """Send ``counts[i]`` packets to ``targets[i]``, cycling through ``mix``, while each socket's queue is short.

    Returns what was sent per node and kind, the kernel's drops on the targets' sockets, and the
    monotonic start and end (the clock is system-wide, so the parent can compare).
    """
    packet = parse_packet(template)
    forgers = [_forger(t, packet) for t in targets]
    ports = {t.port for t in targets}
    drops_before = {p: d for p, (_, d) in udp_sockets(ports).items()}
    sent = [0] * len(targets)
    kinds: dict[str, dict[str, int]] = {t.node: {} for t in targets}
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if on_start is not None:
        on_start()
    started, cpu0 = time.monotonic(), time.process_time()
    deadline = started + timeout_s
    waits = 0
    try:
        while any(s < c for s, c in zip(sent, counts, strict=True)) and time.monotonic() < deadline:
            queues = udp_sockets(ports)
            busy = True
            for i, target in enumerate(targets):
                if sent[i] >= counts[i] or queues.get(target.port, (0, 0))[0] >= queue_limit:
                    continue
                busy = False
                addr = ("127.0.0.1", target.port)
                tally = kinds[target.node]
                for _ in range(min(BATCH, counts[i] - sent[i])):
                    kind = mix[sent[i] % len(mix)]
                    sock.sendto(forgers[i](kind), addr)
                    tally[kind] = tally.get(kind, 0) + 1
                    sent[i] += 1
            if busy:
                waits += 1
                time.sleep(0.0005)
    finally:
        sock.close()
    ended = time.monotonic()
    cpu = time.process_time() - cpu0
    drops_after = {p: d for p, (_, d) in udp_sockets(ports).items()}
    by_node: dict[str, int] = {}
    for t, s in zip(targets, sent, strict=True):
        by_node[t.node] = by_node.get(t.node, 0) + s
    return {
        "sent": by_node,
        "kinds": kinds,
        "kernel_drops": {t.node: drops_after.get(t.port, 0) - drops_before.get(t.port, 0) for t in targets},
        "started": started,
        "ended": ended,
        "waits": waits,
        "cpu_s": cpu,
    }


def _flood_main(args: tuple[Any, ...], kw: dict[str, Any], conn: Any) -> None:
    try:
        conn.send(flood(*args, **kw, on_start=lambda: conn.send("started")))
    except BaseException as exc:
        conn.send({"error": f"{type(exc).__name__}: {exc}"})
        raise


class FloodProcess:
    """:func:`flood` in a process of its own (the applications keep this process's CPU)."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_flood_main, args=(args, kw, child), daemon=True)
        self._proc.start()
        child.close()
        self._timeout = kw["timeout_s"] + 30

    def wait_started(self, timeout: float = 60) -> None:
        """Until the attacker has built its packet makers and sends."""
        if not self._conn.poll(timeout):
            self._proc.kill()
            raise RuntimeError("the attacker process did not start")
        first = self._conn.recv()
        if first != "started":
            raise RuntimeError(f"the attacker failed: {first.get('error', first)}")

    def done(self) -> bool:
        return self._conn.poll()

    def result(self) -> dict[str, Any]:
        if not self._conn.poll(self._timeout):
            self._proc.kill()
            raise RuntimeError("the attacker process did not finish")
        out: dict[str, Any] = self._conn.recv()
        self._proc.join(10)
        if "error" in out:
            raise RuntimeError(f"the attacker failed: {out['error']}")
        return out


# -- the applications ---------------------------------------------------------------------


class Apps:
    """WORKERS closed loops of ``enc_keys`` at S then ``dec_keys`` at D, on a thread; pausable."""

    def __init__(self, api_s: str, api_d: str) -> None:
        self.api_s, self.api_d = api_s, api_d
        self.delivered = 0
        self.failures = 0
        self.waits = 0
        """enc_keys answered 503 (the key store was empty for a moment): waited Retry-After, not a failure."""
        self.last_error = ""
        self.busy = 0
        self._loop = asyncio.new_event_loop()
        self._go: asyncio.Event | None = None
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="apps", daemon=True)

    def start(self) -> None:
        self._thread.start()
        while self._go is None:
            time.sleep(0.01)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        from mpss_fast.etsi014.client import Etsi014Client

        self._go = asyncio.Event()
        self._go.set()
        master = Etsi014Client(f"http://{self.api_s}", sae_id=nodelab.MASTER, timeout=20)
        slave = Etsi014Client(f"http://{self.api_d}", sae_id=nodelab.SLAVE, timeout=20)
        async with master, slave:
            await asyncio.gather(*(self._worker(master, slave) for _ in range(WORKERS)))

    async def _worker(self, master: Any, slave: Any) -> None:
        assert self._go is not None
        while not self._stop:
            await self._go.wait()
            if self._stop:
                return
            self.busy += 1
            try:
                try:
                    keys = await master.enc_keys(nodelab.SLAVE, PER_REQUEST, KEY_BITS)
                except Etsi014UnavailableError:  # the store is refilling: ETSI 014 says come back later
                    self.waits += 1
                    await asyncio.sleep(0.05)
                    continue
                got = await slave.dec_keys(nodelab.MASTER, [kid for kid, _ in keys])
                if got != keys:
                    raise RuntimeError("dec_keys answered other keys than enc_keys gave")
                self.delivered += len(keys)
            except Exception as exc:
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                await asyncio.sleep(0.05)
            finally:
                self.busy -= 1

    def pause(self, timeout: float = 30) -> None:
        """Stop starting requests and wait until none is in flight."""
        assert self._go is not None
        self._loop.call_soon_threadsafe(self._go.clear)
        deadline = time.monotonic() + timeout
        time.sleep(0.01)
        while self.busy:
            if time.monotonic() > deadline:
                raise RuntimeError("the applications did not pause")
            time.sleep(0.01)

    def resume(self) -> None:
        assert self._go is not None
        self._loop.call_soon_threadsafe(self._go.set)

    def close(self) -> None:
        self._stop = True
        if self._go is not None:
            self._loop.call_soon_threadsafe(self._go.set)
        self._thread.join(30)


# -- the network ----------------------------------------------------------------------------


class Lab:
    """The processes: a KME, five nodes, a tap on R1>D and S>R2 (to capture real packets); stats and figures."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        tcp = nodelab.free_ports(2 * len(NAMES) + 1)
        udp = nodelab.free_ports(len(NAMES) + 2, socket.SOCK_DGRAM)
        self.kme_port = tcp.pop()
        self.peer = dict(zip(NAMES, tcp[: len(NAMES)], strict=True))
        self.api = dict(zip(NAMES, tcp[len(NAMES) :], strict=True))
        self.udp = dict(zip(NAMES, udp[: len(NAMES)], strict=True))
        self.taps = {("R1", "D"): udp[-2], ("S", "R2"): udp[-1]}
        self._tap: Any = None
        self._tap_conn: Any = None
        self.operators = True

    def log_path(self, name: str) -> Path:
        return self.dir / f"{name}.log"

    def log_lines(self, name: str) -> int:
        return len(self.log_path(name).read_bytes().splitlines())

    def _configs(self) -> dict[str, dict[str, Any]]:
        configs = nodelab.loopback(
            PATHS,
            self.dir,
            self.kme_port,
            self.peer,
            self.api,
            self.udp,
            operators=[OPERATOR],
            extra=lambda n: {"keys": dict(KEYS), "stores": dict(STORES)},
        )
        for (sender, receiver), port in self.taps.items():
            configs[sender]["udp"] = {**configs[sender]["udp"], receiver: f"127.0.0.1:{port}"}
        if not self.operators:  # a node from before peer.operators (9b5c5df) refuses the key
            for cfg in configs.values():
                cfg["peer"].pop("operators", None)
        return configs

    def start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._tap_conn, child = ctx.Pipe()
        routes = [(port, self.udp[receiver]) for (_, receiver), port in self.taps.items()]
        self._tap = ctx.Process(target=_tap_main, args=(routes, os.getpid(), child), daemon=True)
        self._tap.start()
        child.close()
        if not self._tap_conn.poll(30) or self._tap_conn.recv() != "ready":
            raise RuntimeError("the tap did not start")
        kme = [sys.executable, "-m", "mpss_fast", "kme-sim", "--listen", f"127.0.0.1:{self.kme_port}", "--plain-http"]
        for a, b in nodelab.kme_pairs(PATHS):
            kme += ["--sae", f"{a},{b}"]
        self._spawn("kme", kme)
        for name in NAMES:
            self._start_node(name)
        self._wait_all_up()
        self.wait_link_keys()

    def _spawn(self, name: str, argv: list[str]) -> None:
        with open(self.log_path(name), "ab") as log:
            self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=log, env=self.env)

    def _start_node(self, name: str) -> None:
        path = self.dir / f"{name}.json"
        path.write_text(json.dumps(self._configs()[name], indent=1))
        self._spawn(name, [sys.executable, "-m", "mpss_fast", "node", "--config", str(path)])

    def _wait_all_up(self, timeout: float = 60) -> None:
        """Until every node logged that it is up and that its neighbours resume sending where it resumed."""
        deadline = time.monotonic() + timeout
        waiting = set(NAMES)
        while waiting:
            for name in sorted(waiting):
                text = self.log_path(name).read_text(errors="replace")
                if f"node {name}: up" in text and f"node {name}: every neighbour resumes sending" in text:
                    waiting.discard(name)
                elif self.procs[name].poll() is not None:
                    if "unknown key(s) operators" not in text:
                        raise RuntimeError(f"node {name} exited with {self.procs[name].returncode}:\n{text[-3000:]}")
                    self.operators = False  # a node from before peer.operators (9b5c5df): stats are open there
                    self.log_path(name).unlink()
                    self._start_node(name)
            if time.monotonic() > deadline:
                tails = {n: self.log_path(n).read_text(errors="replace")[-1500:] for n in sorted(waiting)}
                raise RuntimeError(f"nodes {sorted(waiting)} did not come up: {tails}")
            time.sleep(0.05)

    def stats(self, name: str) -> dict[str, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.peer[name]}/mpss/v1/node/stats", headers={"X-MPSS-Node": OPERATOR}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 (our own loopback node)
            data: dict[str, Any] = json.load(answer)
            return data

    def all_stats(self) -> dict[str, dict[str, Any]]:
        return {name: self.stats(name) for name in NAMES}

    def wait_link_keys(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            links = {n: self.stats(n)["links"] for n in ("S", *RELAYS)}
            missing = [f"{a}>{b}" for a, b in nodelab.links(PATHS) if links[a].get(f"{a}>{b}", {}).get("end", 0) == 0]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"no link key on {missing} after {timeout} s")
            time.sleep(0.1)

    def quiet_stats(self, timeout: float = 30) -> dict[str, dict[str, Any]]:
        """Every node's stats once the key flow is at rest (nothing in flight or pending, the prepared keys
        all made) and two readings 0.3 s apart agree on links, share and key flow counters."""

        def steady(stats: dict[str, dict[str, Any]]) -> dict[str, Any]:
            keep = ("links", "keys_sent", "shares_relayed", "shares_received", "keys_delivered", "dropped", "keyflow")
            return {n: {k: s.get(k) for k in keep} for n, s in stats.items()}

        def at_rest(stats: dict[str, dict[str, Any]]) -> bool:
            for node in stats.values():
                flow = node.get("keyflow") or {}
                if flow.get("pending", 0):
                    return False
                for pair in flow.get("pairs", {}).values():
                    if pair["in_flight"] or (pair["end"] == "source" and pair["prepared_keys"] < PREPARED_KEYS):
                        return False
            return True

        deadline = time.monotonic() + timeout
        last = self.all_stats()
        while True:
            time.sleep(0.3)
            now = self.all_stats()
            if at_rest(now) and steady(now) == steady(last):
                return now
            if time.monotonic() > deadline:
                raise RuntimeError("the network did not come to rest with the applications paused")
            last = now

    def captured(self) -> dict[tuple[str, str], list[bytes]]:
        """The latest real packets on the tapped hops."""
        self._tap_conn.send("dump")
        if not self._tap_conn.poll(30):
            raise RuntimeError("the tap did not answer")
        dump = self._tap_conn.recv()
        return {hop: dump[port] for hop, port in self.taps.items()}

    def close(self) -> None:
        nodelab.stop_processes(self.procs.values(), 15)
        if self._tap is not None:
            with contextlib.suppress(OSError, EOFError):
                self._tap_conn.send("stop")
            self._tap.join(10)
            if self._tap.is_alive():
                self._tap.kill()


@contextlib.contextmanager
def lab() -> Iterator[Lab]:
    """A started :class:`Lab` in a fresh directory (in /dev/shm when there is one), closed and removed after."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 (a private mkdtemp under it)
    directory = Path(tempfile.mkdtemp(prefix="mpss-flood-", dir=base))
    net = Lab(directory)
    try:
        net.start()
        yield net
    finally:
        net.close()
        shutil.rmtree(directory, ignore_errors=True)


# -- the measurements -----------------------------------------------------------------------


def _dropped(stats: dict[str, Any]) -> int:
    return sum(stats.get("dropped", {}).values())


def _reasons(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    old = before.get("dropped", {})
    return {k: v - old.get(k, 0) for k, v in after.get("dropped", {}).items() if v != old.get(k, 0)}


def pools(stats: dict[str, dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Every link direction at every node holding it: ``{"R1: S>R1": {position, available}}``."""
    out = {}
    for name, s in stats.items():
        for link, figures in s["links"].items():
            out[f"{name}: {link}"] = {
                "position": figures["position"],
                "available": figures["end"] - figures["position"],
            }
    return out


def targets(
    net: Lab,
    stats: dict[str, dict[str, Any]],
    nodes: list[str],
    share_len: int,
    replays: dict[str, list[bytes]] | None = None,
) -> list[Target]:
    """A target per node (D's forged packets come through R1, R2, R3 in turn: one target per relay)."""
    out = []
    for node in nodes:
        relays = RELAYS if node == "D" else [node]
        for relay in relays:
            target = Target(node, net.udp[node], relay, (0, 0), share_len, tuple((replays or {}).get(node, ())))
            link = stats[node]["links"][f"{target.previous}>{node}"]
            out.append(replace(target, key_range=(link["position"], link["end"])))
    return out


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (i < total % parts) for i in range(parts)]


def _wait_counted(net: Lab, before: dict[str, dict[str, Any]], sent: dict[str, int], timeout: float = 60) -> float:
    """Until each target's dropped counters grew by what it was sent (or they stop growing); returns when."""
    deadline = time.monotonic() + timeout
    last: dict[str, int] | None = None
    still = 0
    while time.monotonic() < deadline:
        now = {n: _dropped(net.stats(n)) - _dropped(before[n]) for n in sent}
        if all(now[n] >= sent[n] for n in sent):
            return time.monotonic()
        still = still + 1 if now == last else 0
        if still >= 20:  # 2 s without a change: what is missing will not come
            return time.monotonic()
        last = now
        time.sleep(0.1)
    return time.monotonic()


@dataclass
class Figures:
    """Everything measured; ``lines()`` prints the two summary lines."""

    machine: dict[str, Any]
    packets: int
    memory_packets: int
    flood: dict[str, Any] = field(default_factory=dict)
    rates: dict[str, Any] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)

    def lines(self) -> list[str]:
        f, r, m = self.flood, self.rates, self.memory
        moved = [k for k, v in f["pools"].items() if v["before"] != v["after"]]
        flood_line = (
            f"mpss flood: {f['sent']} forged packets to R1-R3 and D, applications paused: "
            f"{f['counted']} counted as dropped by the nodes (kernel socket drops {f['kernel_drops']}), "
            f"taken in at {f['packets_per_s']:,.0f}/s; pools moved: {len(moved)} of {len(f['pools'])} "
            f"(position and available bytes, both ends of every link direction); "
            f"honest keys/s without a flood {r['without_median']:.0f}, during a flood of {self.packets} "
            f"(taken in at {r['flood_packets_per_s_median']:,.0f}/s) {r['during_median']:.0f}, "
            f"median of {len(r['without'])}, ratio {r['ratio']:.2f}"
        )
        if "unpaced" in r:
            u = r["unpaced"]
            flood_line += (
                f"; unpaced: kernel dropped {u['kernel_drops']} of {u['sent']}, honest keys/s "
                f"{u['during_keys_per_s']:.0f} vs {u['without_keys_per_s']:.0f} just before"
            )
        rss = ", ".join(
            f"{n} {v['rss_before_mib']:.1f}->{v['rss_after_mib']:.1f} MiB ({v['rss_growth_mib']:+.2f})"
            for n, v in m["nodes"].items()
            if n in m["targets"]
        )
        logs = ", ".join(
            f"{n} {v['log_lines_during']}+{v['log_lines_after']}" for n, v in m["nodes"].items() if n in m["targets"]
        )
        cpu = ", ".join(
            f"{n} {v['cpu_s']:.1f} s ({v['cpu_us_per_packet']:.0f} us/packet)"
            for n, v in m["nodes"].items()
            if n in m["targets"]
        )
        memory_line = (
            f"mpss memory: {m['sent']} forged or late packets to {' and '.join(m['targets'])} in {m['wall_s']:.1f} s "
            f"(counted {m['counted']}); RSS {rss}, max growth {m['max_growth_mib']:.2f} MiB; "
            f"log lines during+after the flood {logs}; CPU {cpu}"
        )
        return [flood_line, memory_line]


def machine() -> dict[str, Any]:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    import mpss_fast

    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": sys.version.split()[0],
        "backend": getattr(mpss_fast, "BACKEND", "?"),
    }


def _template(net: Lab) -> tuple[bytes, dict[str, list[bytes]]]:
    """A real first-hop packet (the layout forged packets copy) and the real packets to replay at D and R2."""
    captured = net.captured()
    to_d, to_r2 = captured[("R1", "D")], captured[("S", "R2")]
    if not to_r2 or not to_d:
        raise RuntimeError("the tap captured no real packets: did the applications get keys?")
    return to_r2[-1], {"D": to_d, "R2": to_r2}


def run(
    packets: int = 100_000,
    memory_packets: int = 1_000_000,
    *,
    seconds: float = 4.0,
    repeats: int = 3,
    settle_logs: bool = True,
    unpaced: bool = True,
    timeout_s: float = 600.0,
    progress: Any = None,
) -> Figures:
    """Both figures (see the module docstring); ``progress(text)`` is told each step."""
    say = progress or (lambda text: None)
    figures = Figures(machine(), packets, memory_packets)
    with lab() as net:
        apps = Apps(f"127.0.0.1:{net.api['S']}", f"127.0.0.1:{net.api['D']}")
        apps.start()
        try:
            say("warm-up: applications asking keys")
            _until(lambda: apps.delivered >= 200, 60, "the applications got no keys")
            time.sleep(1)
            template, replays = _template(net)
            share_len = parse_packet(template).option.share_len
            rss_warm = {n: rss_mib(net.procs[n].pid) for n in NAMES}

            say(f"flood with the applications paused: {packets} forged packets")
            apps.pause()
            before = net.quiet_stats()
            figures.flood = _flood_paused(net, before, packets, template, share_len, timeout_s)
            after_pools = pools(net.quiet_stats())
            before_pools = pools(before)
            figures.flood["pools"] = {
                k: {"before": before_pools[k], "after": after_pools.get(k)} for k in sorted(before_pools)
            }
            apps.resume()

            rounds = []
            for i in range(repeats):
                say(f"honest rate, round {i + 1} of {repeats}: {seconds:g} s without a flood, then during one")
                rounds.append(_rate_round(net, apps, packets, template, share_len, seconds, QUEUE_LIMIT, timeout_s))
            without = [r["without_keys_per_s"] for r in rounds]
            during = [r["during_keys_per_s"] for r in rounds]
            figures.rates = {
                "seconds": seconds,
                "without": without,
                "during": during,
                "without_median": statistics.median(without),
                "during_median": statistics.median(during),
                "ratio": statistics.median(during) / statistics.median(without) if statistics.median(without) else 0,
                "flood_packets_per_s_median": statistics.median(r["flood_packets_per_s"] for r in rounds),
                "rounds": rounds,
                "failures": apps.failures,
                "last_error": apps.last_error,
            }
            say(f"memory: {memory_packets} forged or late packets to D and R2")
            template, replays = _template(net)
            apps.pause()
            figures.memory = _memory(net, memory_packets, template, share_len, replays, settle_logs, timeout_s)
            for name, mib in rss_warm.items():  # before any flood: what all of them together left behind
                figures.memory["nodes"][name]["rss_after_warmup_mib"] = mib
            apps.resume()
            start, deadline = apps.delivered, time.monotonic() + 30
            while apps.delivered == start and time.monotonic() < deadline:
                time.sleep(0.05)
            figures.memory["keys_after"] = apps.delivered - start  # honest keys still come (0: none in 30 s)

            if unpaced:  # last: the honest shares the kernel drops here would be late packets to replay above
                say(f"honest rate during an unpaced flood of {packets} (the kernel drops what does not fit)")
                figures.rates["unpaced"] = _rate_round(
                    net, apps, packets, template, share_len, seconds, 1 << 62, timeout_s
                )
        finally:
            apps.close()
    return figures


def _cpu(net: Lab) -> dict[str, float]:
    """CPU seconds so far of every node, the KME and this process (the applications)."""
    out = {name: cpu_s(proc.pid) for name, proc in net.procs.items()}
    out["apps"] = time.process_time()
    return out


def _rate_round(
    net: Lab,
    apps: Apps,
    packets: int,
    template: bytes,
    share_len: int,
    seconds: float,
    queue_limit: int,
    timeout_s: float,
) -> dict[str, Any]:
    """Honest keys/s for ``seconds`` without a flood, then during a flood of ``packets`` to R1-R3 and D."""
    failures = apps.failures
    cpu0, start, t0 = _cpu(net), apps.delivered, time.monotonic()
    time.sleep(seconds)
    keys0, wall0, cpu_b = apps.delivered - start, time.monotonic() - t0, _cpu(net)
    stats = net.all_stats()
    aimed = targets(net, stats, [*RELAYS, "D"], share_len)
    proc = FloodProcess(
        aimed, _split(packets, len(aimed)), MIX_FLOOD, template, timeout_s=timeout_s, queue_limit=queue_limit
    )
    proc.wait_started()
    cpu1, start, t0 = _cpu(net), apps.delivered, time.monotonic()
    while not proc.done():
        time.sleep(0.01)
    keys, wall = apps.delivered - start, time.monotonic() - t0
    cpu2 = _cpu(net)
    out = proc.result()
    done = _wait_counted(net, stats, out["sent"])
    after = net.all_stats()
    sent = sum(out["sent"].values())
    return {
        "without_keys": keys0,
        "without_s": wall0,
        "without_keys_per_s": keys0 / wall0,
        "without_cpu_s": {k: cpu_b[k] - cpu0[k] for k in cpu0},
        "during_keys": keys,
        "during_s": wall,
        "during_keys_per_s": keys / wall,
        "during_cpu_s": {**{k: cpu2[k] - cpu1[k] for k in cpu1}, "attacker": out["cpu_s"]},
        "sent": sent,
        "counted": sum(_dropped(after[n]) - _dropped(stats[n]) for n in NAMES),
        "reasons": {n: _reasons(stats[n], after[n]) for n in NAMES},
        "kernel_drops": sum(out["kernel_drops"].values()),
        "flood_packets_per_s": sent / max(1e-9, done - out["started"]),
        "app_failures": apps.failures - failures,
    }


def _until(condition: Any, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(message)
        time.sleep(0.05)


def _flood_paused(
    net: Lab, before: dict[str, dict[str, Any]], packets: int, template: bytes, share_len: int, timeout_s: float
) -> dict[str, Any]:
    aimed = targets(net, before, [*RELAYS, "D"], share_len)
    out = flood(aimed, _split(packets, len(aimed)), MIX_FLOOD, template, timeout_s=timeout_s)
    done = _wait_counted(net, before, out["sent"])
    after = net.all_stats()
    sent = sum(out["sent"].values())
    wall = done - out["started"]
    return {
        "sent": sent,
        "by_node": out["sent"],
        "kinds": out["kinds"],
        "counted": sum(_dropped(after[n]) - _dropped(before[n]) for n in NAMES),
        "reasons": {n: _reasons(before[n], after[n]) for n in NAMES},
        "link_drops": {n: after[n].get("link_drops") for n in NAMES},
        "kernel_drops": sum(out["kernel_drops"].values()),
        "wall_s": wall,
        "sender_s": out["ended"] - out["started"],
        "packets_per_s": sent / max(1e-9, wall),
        "key_ranges": {f"{t.node} via {t.relay}": list(t.key_range) for t in aimed},
    }


def _memory(
    net: Lab,
    packets: int,
    template: bytes,
    share_len: int,
    replays: dict[str, list[bytes]],
    settle_logs: bool,
    timeout_s: float,
) -> dict[str, Any]:
    nodes = ["D", "R2"]
    before = net.quiet_stats()
    aimed = targets(net, before, nodes, share_len, replays)
    counts = _split(packets, 2)  # half to D (through its three relays in turn), half to R2
    per_target = [*_split(counts[0], len(RELAYS)), counts[1]]
    pids = {n: net.procs[n].pid for n in NAMES}
    rss0 = {n: rss_mib(p) for n, p in pids.items()}
    cpu0 = {n: cpu_s(p) for n, p in pids.items()}
    lines0 = {n: net.log_lines(n) for n in NAMES}
    out = flood(aimed, per_target, MIX_MEMORY, template, timeout_s=timeout_s)
    done = _wait_counted(net, before, out["sent"])
    after = net.all_stats()
    rss1 = {n: rss_mib(p) for n, p in pids.items()}
    cpu1 = {n: cpu_s(p) for n, p in pids.items()}
    lines1 = {n: net.log_lines(n) for n in NAMES}
    if settle_logs:  # the rate-limited summary says "N more" once its interval (10 s) has passed
        time.sleep(11)
    lines2 = {n: net.log_lines(n) for n in NAMES}
    sent = sum(out["sent"].values())
    by_node: dict[str, int] = out["sent"]
    kinds: dict[str, int] = {}
    for tally in out["kinds"].values():
        for k, v in tally.items():
            kinds[k] = kinds.get(k, 0) + v
    report = {}
    for n in NAMES:
        cpu = cpu1[n] - cpu0[n]
        report[n] = {
            "pid": pids[n],
            "rss_before_mib": rss0[n],
            "rss_after_mib": rss1[n],
            "rss_growth_mib": rss1[n] - rss0[n],
            "cpu_s": cpu,
            "cpu_us_per_packet": cpu / by_node[n] * 1e6 if by_node.get(n) else 0.0,
            "log_lines_during": lines1[n] - lines0[n],
            "log_lines_after": lines2[n] - lines1[n],
            "dropped": _reasons(before[n], after[n]),
            "shares_received": after[n]["shares_received"] - before[n]["shares_received"],
            "keys_failed": after[n]["keys_failed"] - before[n]["keys_failed"],
        }
    wall = done - out["started"]
    return {
        "targets": nodes,
        "sent": sent,
        "by_node": by_node,
        "kinds": kinds,
        "counted": sum(_dropped(after[n]) - _dropped(before[n]) for n in NAMES),
        "kernel_drops": sum(out["kernel_drops"].values()),
        "wall_s": wall,
        "packets_per_s": sent / max(1e-9, wall),
        "replays_available": {n: len(v) for n, v in replays.items()},
        "max_growth_mib": max(report[n]["rss_growth_mib"] for n in nodes),
        "nodes": report,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.attack_flood", description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=100_000, help="forged packets per flood (default 100000)")
    parser.add_argument(
        "--memory-packets", type=int, default=1_000_000, help="packets of the memory flood (default 1000000)"
    )
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds of each honest-rate baseline (default 4)")
    parser.add_argument("--repeats", type=int, default=3, help="rate measurements without/during a flood (default 3)")
    parser.add_argument("--json", metavar="FILE", help="save every figure as JSON ('-': standard output)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on standard error")
    args = parser.parse_args(argv)
    if not sys.platform.startswith("linux"):
        print("attack_flood needs Linux (/proc)", file=sys.stderr)
        return 1

    def progress(text: str) -> None:
        if not args.quiet:
            print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    figures = run(args.packets, args.memory_packets, seconds=args.seconds, repeats=args.repeats, progress=progress)
    for line in figures.lines():
        print(line)
    if args.json:
        text = json.dumps(asdict(figures), indent=1)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
