"""The namespace lab and the packet capture used by the SRv6 integration tests.

These need root. Without it they skip, and ``MPSS_FAST_NO_SKIPS=1`` turns the skip into a failed run
(conftest's ``pytest_sessionfinish``).
"""

from __future__ import annotations

import os
import re
import socket
import struct
import subprocess
import threading
from collections.abc import Callable

import pytest

from .capture import Capture, Frame, ipv6_packets
from .netns import Lab, LabError, NetnsThread, in_netns, list_netns, netns_available, start_in_netns

A_B = ("fd00:ab::1", "fd00:ab::2")
B_C = ("fd00:bc::1", "fd00:bc::2")
PORT = 40123
needs_netns = pytest.mark.usefixtures("_need_netns")


@pytest.fixture
def _need_netns() -> None:
    reason = netns_available()
    if reason is not None:
        pytest.skip(reason)


def _net_inode() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


def _line(lab: Lab) -> tuple[str, str, str, str]:
    """Nodes a - b - c, routed both ways through b; b's interfaces towards a and towards c, and a's, c's."""
    for name in "abc":
        lab.add_node(name)
    a_if, b_to_a = lab.link("a", "b", *A_B)
    b_to_c, c_if = lab.link("b", "c", *B_C)
    lab.route("a", "fd00:bc::/64", via=A_B[1])
    lab.route("c", "fd00:ab::/64", via=B_C[0])
    return b_to_a, b_to_c, a_if, c_if


def _udp_to(packet: bytes, marker: bytes) -> bool:
    """An IPv6 packet with UDP (no extension headers) to PORT whose payload is ``marker``."""
    return (
        len(packet) >= 48
        and packet[6] == 17
        and struct.unpack_from("!H", packet, 42)[0] == PORT
        and (packet[48:] == marker)
    )


def _udp_checksum_ok(packet: bytes) -> bool:
    data = packet[8:40] + struct.pack("!I3xB", len(packet) - 40, 17) + packet[40:]
    data += b"\0" * (len(data) % 2)
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total == 0xFFFF


def _send(dst: str, payloads: list[bytes], src: str | None = None) -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as tx:
        if src is not None:
            tx.bind((src, 0))
        for payload in payloads:
            tx.sendto(payload, (dst, PORT))


@needs_netns
def test_udp_through_router_captured_once_each_side() -> None:
    marker = os.urandom(16)
    with Lab() as lab:
        b_to_a, b_to_c, _, _ = _line(lab)
        with lab.in_node("c"):
            rx = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        with rx, Capture(lab.ns("b"), b_to_a) as cap_in, Capture(lab.ns("b"), b_to_c) as cap_out:
            rx.bind((B_C[1], PORT))
            rx.settimeout(5)
            start_in_netns(lab.ns("a"), _send, B_C[1], [marker]).wait(5)
            data, addr = rx.recvfrom(2048)
            assert data == marker
            assert addr[0] == A_B[0]
            # Both frames were copied into the rings before c's socket got the datagram.
            assert cap_in.wait(lambda fs: any(_udp_to(p, marker) for _, p in ipv6_packets(fs)), 2)
            assert cap_out.wait(lambda fs: any(_udp_to(p, marker) for _, p in ipv6_packets(fs)), 2)
        seen = {}
        for cap in (cap_in, cap_out):
            assert cap.drops == 0
            hits = [(f, p) for f, p in ipv6_packets(cap.frames) if _udp_to(p, marker)]
            assert len(hits) == 1, hits
            seen[cap.ifname] = hits[0]
    (f_in, p_in), (f_out, p_out) = seen[b_to_a], seen[b_to_c]
    assert (f_in.direction, f_out.direction) == ("in", "out")
    assert f_in.ts <= f_out.ts
    for frame, packet in ((f_in, p_in), (f_out, p_out)):
        assert socket.inet_pton(socket.AF_INET6, A_B[0]) == packet[8:24]
        assert socket.inet_pton(socket.AF_INET6, B_C[1]) == packet[24:40]
        # veth leaves the UDP checksum to "hardware": then the frame says so, else the checksum is right.
        assert frame.csum_not_ready or _udp_checksum_ok(packet)
    # b forwarded it: one hop less on the way out, and each ring kept its own copy.
    assert p_in[7] == p_out[7] + 1
    assert f_in.wire_len == len(f_in.data) == 14 + 48 + 16


def _seq_frames_at_least(n: int) -> Callable[[list[Frame]], bool]:
    return lambda frames: sum(f.data[-8:-4] == b"seq:" for f in frames) >= n


@needs_netns
def test_ring_wraps_without_loss() -> None:
    """A 64-slot ring, several hundred frames paced so none is lost: all there, in order, zero drops."""
    with Lab() as lab:
        b_to_a, _, _, _ = _line(lab)
        with lab.in_node("c"):
            rx = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        cap = Capture(lab.ns("b"), b_to_a, block_size=1 << 16, block_nr=2, frame_size=2048)
        assert cap.frame_nr == 64
        sent: list[bytes] = []
        with rx, cap:
            rx.bind((B_C[1], PORT))
            rx.settimeout(5)
            for burst in range(20):
                payloads = [struct.pack("!4sI", b"seq:", burst * 16 + i) for i in range(16)]
                start_in_netns(lab.ns("a"), _send, B_C[1], payloads).wait(5)
                sent += payloads
                for _ in payloads:
                    rx.recvfrom(64)
                assert cap.wait(_seq_frames_at_least(len(sent)), 5)
        got = [p[48:] for _, p in ipv6_packets(cap.frames) if len(p) == 56 and p[6] == 17]
        assert got == sent
        assert cap.drops == 0
        assert cap.packets is not None and cap.packets >= len(sent)


@needs_netns
def test_full_ring_drops_are_counted() -> None:
    """With the drain held up, a 64-slot ring keeps the first frames and the kernel counts the rest as drops."""
    with Lab() as lab:
        b_to_a, _, _, _ = _line(lab)
        with lab.in_node("c"):
            rx = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        cap = Capture(lab.ns("b"), b_to_a, block_size=1 << 16, block_nr=2, frame_size=2048)
        payloads = [struct.pack("!4sI", b"seq:", i) for i in range(200)]
        with rx, cap:
            rx.bind((B_C[1], PORT))
            rx.settimeout(5)
            with cap._cond:  # the drain thread blocks on its next frame
                start_in_netns(lab.ns("a"), _send, B_C[1], payloads).wait(5)
                for _ in payloads:
                    rx.recvfrom(64)
        got = [p[48:] for _, p in ipv6_packets(cap.frames) if len(p) == 56 and p[6] == 17]
        assert cap.drops is not None and cap.drops > 0
        assert len(got) <= cap.frame_nr + 1
        assert got == payloads[: len(got)]
        assert len(got) + cap.drops >= len(payloads)


@needs_netns
def test_capture_bad_interface_raises() -> None:
    with Lab() as lab:
        lab.add_node("a")
        with pytest.raises(OSError):
            Capture(lab.ns("a"), "nonexistent0").start()


@needs_netns
def test_nodes_configured() -> None:
    with Lab() as lab:
        _line(lab)
        values = {}

        def read() -> None:
            for key in ("all/forwarding", "all/seg6_enabled", "v-b/seg6_enabled", "v-b/accept_dad"):
                with open(f"/proc/sys/net/ipv6/conf/{key}") as fh:
                    values[key] = fh.read().strip()

        start_in_netns(lab.ns("c"), read).wait(5)
        assert values == {
            "all/forwarding": "1",
            "all/seg6_enabled": "1",
            "v-b/seg6_enabled": "1",
            "v-b/accept_dad": "0",
        }
        assert ",UP" in lab.run("c", ["ip", "-o", "link", "show", "lo"]).stdout
        # Each veth end's ifindex differs from its peer's (else its carrier comes up to 1 s late).
        for node in "abc":
            for index, peer in re.findall(
                r"^(\d+): v-[^@]+@if(\d+):", lab.run(node, ["ip", "-o", "link"]).stdout, re.M
            ):
                assert index != peer
        assert lab.link("a", "b", "fd00:ab2::1", "fd00:ab2::2") == ("v-b2", "v-a2")
        long_names = [lab.add_node(n) for n in ("node-with-a-long-name-1", "node-with-a-long-name-2")]
        assert all(ns.startswith(lab.prefix) for ns in long_names)
        ifs = lab.link("node-with-a-long-name-1", "a", "fd00:1::1", "fd00:1::2")
        assert ifs[0] == "v-a" and len(ifs[1]) == 15
        ifs2 = lab.link("node-with-a-long-name-2", "a", "fd00:2::1", "fd00:2::2")
        assert ifs2[1] != ifs[1] and len(ifs2[1]) == 15
    # Root namespace untouched.
    with open("/proc/sys/net/ipv6/conf/all/seg6_enabled") as fh:
        assert fh.read().strip() == "0"


@needs_netns
def test_lab_deletes_its_namespaces() -> None:
    with Lab() as lab:
        prefix = lab.prefix
        for name in "abc":
            lab.add_node(name)
        lab.link("a", "b", *A_B)
        proc = lab.exec("a", ["sleep", "60"])
        assert {lab.ns(n) for n in "abc"} <= set(list_netns())
    assert proc.poll() is not None
    assert not [n for n in list_netns() if n.startswith(prefix)]


@needs_netns
def test_lab_deletes_its_namespaces_after_error() -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), Lab() as lab:
        prefix = lab.prefix
        lab.add_node("a")
        lab.add_node("b")
        raise Boom
    assert not [n for n in list_netns() if n.startswith(prefix)]

    with pytest.raises(LabError), Lab() as lab:
        prefix = lab.prefix
        lab.add_node("a")
        lab.add_node("b")
        lab.link("a", "b", "fd00::1", "not-an-address")  # ip fails in b, after the veth exists
    assert not [n for n in list_netns() if n.startswith(prefix)]


def _dead_pid() -> int:
    while True:
        proc = subprocess.Popen(["true"])
        proc.wait()
        try:
            os.kill(proc.pid, 0)
        except ProcessLookupError:
            return proc.pid


@needs_netns
def test_stale_sweep() -> None:
    tag = os.urandom(2).hex()[:3]
    stale = f"mpsst{_dead_pid()}x{tag}-old"
    live = f"mpsst{os.getpid()}x{tag}-live"
    outside = [f"mpsstest{tag}", f"other{tag}-mpsst1x{tag}-"]
    made = [stale, live, *outside]
    try:
        for name in made:
            subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
        with Lab() as lab:
            assert stale in lab.swept
            names = set(list_netns())
            assert stale not in names
            assert {live, *outside} <= names
    finally:
        subprocess.run(["ip", "-force", "-batch", "-"], input="".join(f"netns del {n}\n" for n in made), text=True)
    assert not set(made) & set(list_netns())


@needs_netns
def test_in_netns_restores_thread_namespace() -> None:
    with Lab() as lab:
        ns = lab.add_node("a")
        target = os.stat(f"/run/netns/{ns}").st_ino
        before = _net_inode()
        go, done = threading.Event(), threading.Event()
        seen: list[int] = []

        def look() -> None:
            go.wait(5)
            seen.append(_net_inode())
            done.set()

        waiting = threading.Thread(target=look)
        waiting.start()
        with in_netns(ns):
            assert _net_inode() == target
            # Per thread: a thread already running stays where it was ...
            go.set()
            done.wait(5)
            # ... while a thread started from in here inherits this thread's namespace.
            spawned: list[int] = []
            t = threading.Thread(target=lambda: spawned.append(_net_inode()))
            t.start()
            t.join()
            with in_netns(ns):
                assert _net_inode() == target
            assert _net_inode() == target
        waiting.join()
        assert _net_inode() == before != target
        assert seen == [before]
        assert spawned == [target]

        with pytest.raises(ZeroDivisionError), in_netns(ns):
            1 / 0  # noqa: B018
        assert _net_inode() == before

        assert start_in_netns(ns, _net_inode).wait(5) == target
        failing = NetnsThread(ns, lambda: 1 / 0)
        failing.start()
        with pytest.raises(ZeroDivisionError):
            failing.wait(5)
        with pytest.raises(FileNotFoundError):
            start_in_netns(lab.prefix + "missing", _net_inode).wait(5)
        assert _net_inode() == before


def test_ipv6_packets_filter() -> None:
    eth = b"\x00" * 12
    frames = [
        Frame(0.0, "in", eth + b"\x86\xdd" + b"v6", 16),
        Frame(0.0, "out", eth + b"\x08\x00" + b"v4", 16),
        Frame(0.0, "in", b"\x86\xdd", 2),
    ]
    assert ipv6_packets(frames) == [(frames[0], b"v6")]
