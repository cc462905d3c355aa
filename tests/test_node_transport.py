"""The share transports lose nothing silently: what the kernel or the device drops is counted, by reason.

* UDP: the socket's receive buffer is set from ``udp_rcvbuf_bytes`` and read back; the
  kernel's count of datagrams it dropped at the socket (``SO_RXQ_OVFL`` in each datagram's
  ancillary data, ``SO_MEMINFO`` when the stats are read) is ``transport_kernel_drops``.
* tun: failed reads and writes are counted by reason (a pipe or a socket stands in for the
  device); packets the kernel dropped because the tun's queue toward the process was full
  are counted on a real tun in a network namespace (root).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mpss_fast.node import transport as transport_module
from mpss_fast.node.transport import TunTransport, UdpTransport

from .netns import Lab, netns_available, start_in_netns

LINUX = os.uname().sysname == "Linux"


async def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def _settled(received: list[Any]) -> None:
    """Until the transport has read everything queued: no new datagram for a few loop turns."""
    seen = -1
    while seen != len(received):
        seen = len(received)
        await asyncio.sleep(0.05)


def _rmem_max() -> int:
    return int(Path("/proc/sys/net/core/rmem_max").read_text())


def _has_cap_net_admin() -> bool:
    """Whether this process may use SO_RCVBUFFORCE (CAP_NET_ADMIN in its effective set)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> 12 & 1)
    return False


# -- UDP: the kernel's drops -------------------------------------------------------------


@pytest.mark.skipif(not LINUX, reason="SO_RXQ_OVFL and SO_MEMINFO are Linux")
def test_a_flooded_udp_socket_reports_the_datagrams_the_kernel_dropped() -> None:
    sent = 2000

    async def main() -> tuple[int, int]:
        received: list[bytes] = []
        udp = UdpTransport(("127.0.0.1", 0), {}, rcvbuf_bytes=65536)
        await udp.start(received.append)
        try:
            assert udp.drops() == {}
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
                for _ in range(sent):  # the loop does not run meanwhile: nothing is read, the buffer fills
                    tx.sendto(b"\x60" + bytes(1199), udp.address)
                await _settled(received)
                dropped = sent - len(received)
                assert dropped > 0, "the flood did not overflow the receive buffer"
                # The drops at the tail of a burst come in no datagram's ancillary data; SO_MEMINFO has them.
                assert udp.drops() == {"transport_kernel_drops": dropped}
                tx.sendto(b"probe", udp.address)
                await _until(lambda: received[-1] == b"probe")
            # The next datagram carries the socket's cumulative drop counter (SO_RXQ_OVFL).
            assert udp.last_rxq_ovfl == dropped
            assert udp.drops() == {"transport_kernel_drops": dropped}
            return len(received) - 1, dropped
        finally:
            udp.close()

    got, dropped = asyncio.run(main())
    assert got + dropped == sent


@pytest.mark.skipif(not LINUX, reason="Linux doubles the asked size and caps it at net.core.rmem_max")
def test_the_configured_receive_buffer_is_applied(caplog: pytest.LogCaptureFixture) -> None:
    rmem_max = _rmem_max()
    below, above = min(rmem_max, 1 << 17), rmem_max + (1 << 20)

    async def main() -> None:
        for asked in (below, above):
            udp = UdpTransport(("127.0.0.1", 0), {}, rcvbuf_bytes=asked)
            await udp.start(lambda data: None)
            try:
                assert udp.sock is not None
                kernel = udp.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
                assert udp.rcvbuf_bytes == kernel  # what the transport reports is what the kernel has
                if asked == below or _has_cap_net_admin():  # above rmem_max: SO_RCVBUFFORCE
                    assert kernel == 2 * asked  # Linux doubles the asked size (for its bookkeeping)
                else:
                    assert kernel == 2 * rmem_max
            finally:
                udp.close()

    with caplog.at_level(logging.WARNING, logger="mpss_fast.node"):
        asyncio.run(main())
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    if _has_cap_net_admin():
        assert warnings == []
    else:
        assert len(warnings) == 1 and "net.core.rmem_max" in warnings[0]


class _CappingSocket:
    """A socket whose kernel caps SO_RCVBUF at ``rmem_max`` and refuses SO_RCVBUFFORCE (no CAP_NET_ADMIN)."""

    def __init__(self, rmem_max: int) -> None:
        self.rmem_max = rmem_max
        self.rcvbuf = 212992

    def setsockopt(self, level: int, option: int, value: int) -> None:
        if option == transport_module.SO_RCVBUFFORCE:
            raise PermissionError(errno.EPERM, "Operation not permitted")
        assert (level, option) == (socket.SOL_SOCKET, socket.SO_RCVBUF)
        self.rcvbuf = 2 * min(value, self.rmem_max)

    def getsockopt(self, level: int, option: int) -> int:
        assert (level, option) == (socket.SOL_SOCKET, socket.SO_RCVBUF)
        return self.rcvbuf


def test_a_receive_buffer_capped_by_the_kernel_is_one_warning_naming_the_sysctl(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = _CappingSocket(rmem_max=212992)
    with caplog.at_level(logging.WARNING, logger="mpss_fast.node"):
        got = transport_module.set_rcvbuf(fake, 4 << 20, linux=True)  # type: ignore[arg-type]
    assert got == 2 * 212992
    (record,) = caplog.records
    message = record.getMessage()
    assert "425984 bytes" in message and "4194304 asked" in message
    assert "sysctl -w net.core.rmem_max=4194304" in message and "\n" not in message
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mpss_fast.node"):
        assert transport_module.set_rcvbuf(fake, 65536, linux=True) == 2 * 65536  # type: ignore[arg-type]
    assert caplog.records == []


def test_node_stats_count_what_the_kernel_dropped_at_the_udp_socket(tmp_path: Path) -> None:
    pytest.importorskip("aiohttp")
    from mpss_fast.node.config import parse_config
    from mpss_fast.node.daemon import Node

    from . import nodelab
    from .test_node_parts import _closed_port, _free_udp_port

    udp = {n: f"127.0.0.1:{_free_udp_port()}" for n in nodelab.node_names(3)}
    dead = _closed_port()
    raw = nodelab.diamond(
        3,
        db=lambda n: str(tmp_path / f"{n}.db"),
        peer_url=lambda me, nb: f"http://127.0.0.1:{dead}",
        kme_url=lambda me, nb: f"http://127.0.0.1:{dead}",
        peer_listen=lambda n: "127.0.0.1:0",
        api_listen=lambda n: "127.0.0.1:0",
        udp=udp,
        extra=lambda n: {"udp_rcvbuf_bytes": 65536, "keys": {"refill_interval_s": 0.5}},
    )["D"]
    host, port = raw["udp"]["D"].split(":")
    sent = 2000

    async def main() -> dict[str, int]:
        node = Node(parse_config(raw))
        try:
            await node.start()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
                for _ in range(sent):  # junk, each one a "malformed" drop once read; the loop is not reading now
                    tx.sendto(b"\x60" + bytes(1199), (host, int(port)))
            dropped: dict[str, int] = {}

            def accounted() -> bool:
                dropped.update(node.stats()["dropped"])
                return sum(dropped.values()) == sent

            await _until(accounted)
            return dropped
        finally:
            await node.close()

    dropped = asyncio.run(main())
    assert set(dropped) == {"malformed", "transport_kernel_drops"}
    assert dropped["transport_kernel_drops"] > 0


def test_udp_sends_that_fail_are_counted_not_ignored() -> None:
    async def main() -> dict[str, int]:
        udp = UdpTransport(("127.0.0.1", 0), {"X": ("127.0.0.1", 0)})  # port 0: the kernel refuses (EINVAL)
        await udp.start(lambda data: None)
        try:
            udp.send(b"\x60" + bytes(99), "X")
            udp.send(b"\x60" + bytes(99), "X")
            return udp.drops()
        finally:
            udp.close()

    assert asyncio.run(main()) == {"transport_send_errors": 2}


def test_udp_sends_wait_in_order_while_the_socket_is_full_and_overflow_is_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(transport_module, "SEND_QUEUE_PACKETS", 3)
    full = [True]

    class FullSocket(socket.socket):
        """A UDP socket whose send buffer is full (EAGAIN) while ``full[0]``."""

        def sendto(self, data: Any, *args: Any) -> int:
            if full[0]:
                raise BlockingIOError(errno.EAGAIN, os.strerror(errno.EAGAIN))
            return int(super().sendto(data, *args))

    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.setblocking(False)

    async def main() -> tuple[dict[str, int], list[bytes]]:
        udp = UdpTransport(("127.0.0.1", 0), {"D": rx.getsockname()})
        with monkeypatch.context() as patch:
            patch.setattr(socket, "socket", FullSocket)
            await udp.start(lambda data: None)
        try:
            udp.send(b"0", "D")
            udp.send(b"1", "D")
            await asyncio.sleep(0.05)  # the socket stays full: both wait
            full[0] = False
            udp.send(b"2", "D")  # the socket could take it, but it goes behind what waits
            udp.send(b"3", "D")  # three wait: dropped
            got: list[bytes] = []

            def arrived(count: int) -> Callable[[], bool]:
                def check() -> bool:
                    with contextlib.suppress(BlockingIOError):
                        got.append(rx.recv(100))
                    return len(got) == count

                return check

            await _until(arrived(3))
            udp.send(b"4", "D")  # nothing waits: sent at once
            await _until(arrived(4))
            return udp.drops(), got
        finally:
            udp.close()

    try:
        drops, got = asyncio.run(main())
    finally:
        rx.close()
    assert drops == {"transport_send_queue_full": 1}
    assert got == [b"0", b"1", b"2", b"4"]


# -- tun: failed reads and writes, by reason ---------------------------------------------


def _fake_tun(monkeypatch: pytest.MonkeyPatch, fd: int) -> None:
    """``TunTransport.start`` gets ``fd`` instead of a tun device, and runs no ``ip`` command."""
    monkeypatch.setattr(transport_module, "open_tun", lambda name: fd)
    monkeypatch.setattr(transport_module, "ip_command", lambda *args: None)


def test_tun_writes_the_kernel_refuses_are_counted_by_reason_not_raised(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    filled = 0
    try:
        while True:
            filled += os.write(write_end, bytes(65536))
    except BlockingIOError:
        pass  # the pipe is full: the next write fails with EAGAIN, as a tun's can with ENOBUFS/EAGAIN
    _fake_tun(monkeypatch, write_end)

    async def main() -> dict[str, int]:
        tun = TunTransport("mpss-test", "fd00:5::1")
        await tun.start(lambda packet: None)
        try:
            tun.send(b"\x60" + bytes(99), "R1")
            tun.send(b"\x60" + bytes(99), "R1")
            return tun.drops()
        finally:
            tun.close()  # closes write_end

    try:
        with caplog.at_level(logging.WARNING, logger="mpss_fast.node"):
            assert asyncio.run(main()) == {"transport_send_queue_full": 2}
    finally:
        os.close(read_end)
    (record,) = caplog.records  # the first of a kind is logged, the rest only counted
    assert "tun mpss-test" in record.getMessage() and "transport_send_queue_full" in record.getMessage()


def test_tun_writes_failing_otherwise_are_counted_as_send_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    read_end, write_end = os.pipe()
    _fake_tun(monkeypatch, read_end)  # writing to a pipe's read end: EBADF

    async def main() -> dict[str, int]:
        tun = TunTransport("mpss-test", "fd00:5::1")
        await tun.start(lambda packet: None)
        try:
            tun.send(b"\x60" + bytes(99), "R1")
            return tun.drops()
        finally:
            tun.close()

    try:
        assert asyncio.run(main()) == {"transport_send_errors": 1}
    finally:
        os.close(write_end)


def test_tun_reads_that_fail_are_counted_and_reading_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    # A UDP socket connected to a closed port: the ICMP error makes it readable and the next read fails with
    # ECONNREFUSED, as a tun's read can fail; the read after that works again.
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.connect(("127.0.0.1", closed_port))
    _fake_tun(monkeypatch, os.dup(sock.fileno()))

    async def main() -> tuple[dict[str, int], list[bytes]]:
        received: list[bytes] = []
        tun = TunTransport("mpss-test", "fd00:5::1")
        await tun.start(received.append)
        try:
            sock.send(b"to nobody")
            await _until(lambda: bool(tun.drops()))
            return tun.drops(), received
        finally:
            tun.close()

    try:
        drops, received = asyncio.run(main())
    finally:
        sock.close()
    assert drops == {"transport_read_errors": 1} and received == []


def test_a_tun_queue_overflow_in_the_kernel_is_counted() -> None:
    reason = netns_available()
    if reason is not None:
        pytest.skip(reason)
    sid, source, sent = "fd00:77::1", "fd00:77::2", 2000
    ours = 40 + 8 + 1000  # the flood's packets as the tun gives them: IPv6, UDP, payload

    async def main() -> tuple[int, dict[str, int], dict[str, int]]:
        received: list[bytes] = []
        tun = TunTransport("mpsst0", sid)
        await tun.start(received.append)
        try:
            await asyncio.sleep(0.2)  # the kernel's own packets as the device comes up (MLD reports) go first
            before = tun.drops()
            with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as tx:
                tx.bind((source, 0))
                for _ in range(sent):  # routed into the tun; the loop does not read meanwhile
                    tx.sendto(bytes(1000), (sid, 9))
            await _settled(received)
            return sum(len(p) == ours for p in received), before, tun.drops()
        finally:
            tun.close()

    with Lab() as lab:
        lab.add_node("t")
        # the device's MLD reports repeated within 1 ms, not up to 1 s later, in the middle of the flood
        intervals = [f"net.ipv6.conf.default.mld{v}_unsolicited_report_interval=1" for v in ("v1", "v2")]
        lab.run("t", ["sysctl", "-qw", *intervals])
        lab.ip("t", [f"addr add {source}/128 dev lo"])
        got, before, after = start_in_netns(lab.ns("t"), lambda: asyncio.run(main())).wait(60)
    assert before == {}
    assert 0 < got < sent
    assert after == {"transport_kernel_drops": sent - got}
