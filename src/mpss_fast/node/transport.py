"""How share packets leave and reach a node: a tun device on real SRv6, or per-hop UDP.

Both carry the same bytes, a whole IPv6 packet with the MPSS Destination Option and the
SRH (``mpss_fast.wire``); only the delivery differs:

* :class:`TunTransport` (Linux, root): the node's SID is routed into a tun device, so
  the kernel hands the process every packet addressed to the SID, before any extension
  header processing (a stock kernel would drop the option: its type says "discard if
  unknown"). The node writes packets back to the tun; the kernel routes them by their
  destination address, the next segment.
* :class:`UdpTransport` (no privileges; any OS whose asyncio loop can watch a socket, so
  not Windows' default proactor loop): the packet is the payload of a UDP datagram sent to
  the next segment's node at its configured ``host:port``.

Nothing is lost silently: each transport counts the packets it or the kernel dropped, by
reason (:meth:`Transport.drops`, in the node's stats under ``dropped``):

* ``transport_kernel_drops``: packets the kernel dropped before the process read them. UDP:
  the socket's receive buffer was full (Linux: the counter of ``SO_RXQ_OVFL``, read from
  each datagram's ancillary data and with ``SO_MEMINFO`` when the stats are read, so drops
  at the end of a burst count before the next datagram comes). tun: the device's queue
  toward the process was full (its ``tx_dropped``, since the transport started).
* ``transport_send_queue_full``: a packet to send found no room (tun: the write failed with
  ENOBUFS or EAGAIN; UDP: the socket was not writable and the transport's own send queue of
  :data:`SEND_QUEUE_PACKETS` was full).
* ``transport_send_errors``: sending failed otherwise (e.g. no route to the next node).
* ``transport_read_errors``: reading from the tun device or the socket failed.

The first drop of each reason is logged (one WARNING line), the rest only counted; kernel
drops are logged when first seen, then at most once a minute while they grow.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import logging
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

from ..exceptions import NetworkSetupError

log = logging.getLogger("mpss_fast.node")

Receiver = Callable[[bytes], None]

DEFAULT_UDP_RCVBUF_BYTES = 4 << 20
"""The receive buffer the UDP share socket asks for (``udp_rcvbuf_bytes``): a burst of
``enc_keys`` (128 keys of 8192 bits make n shares each) must fit while the node is busy."""

SEND_QUEUE_PACKETS = 4096
"""Packets the UDP transport holds while its socket is not writable; more are dropped and counted."""

KERNEL_DROPS_LOG_S = 60.0
"""Kernel drops seen again are logged at most this often (the stats have every one)."""

SO_RXQ_OVFL = getattr(socket, "SO_RXQ_OVFL", 40)
"""Linux: each datagram's ancillary data carries the socket's count of dropped datagrams (not in
Python's ``socket`` module)."""
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
"""Linux, CAP_NET_ADMIN: SO_RCVBUF past ``net.core.rmem_max``."""
SO_MEMINFO = 55
"""Linux: the socket's memory counters, the drop counter among them (``SK_MEMINFO_DROPS``, where the
kernel has it)."""
_SK_MEMINFO_DROPS = 8
_ANCILLARY = socket.CMSG_SPACE(4) if hasattr(socket, "CMSG_SPACE") else 0
"""Room for the one control message (the u32 drop counter) a datagram carries."""
_LINUX = sys.platform.startswith("linux")
_U32 = 1 << 32

_TUNSETIFF = 0x400454CA
_IFF_TUN = 0x0001
_IFF_NO_PI = 0x1000
_MAX_PACKET = 65535


class Transport(Protocol):
    """Sends packets towards a SID and hands received ones to ``receiver``; counts what it drops."""

    async def start(self, receiver: Receiver) -> None:
        """Begin receiving."""
        ...

    def send(self, packet: bytes, next_node: str) -> None:
        """Send ``packet`` towards ``next_node`` (whose SID is the packet's destination address)."""
        ...

    def close(self) -> None:
        """Stop receiving and release the device or socket."""
        ...

    def drops(self) -> dict[str, int]:
        """Packets dropped so far by the transport or the kernel, by reason (only reasons that occurred)."""
        ...


class _Drops:
    """Per reason, packets dropped; the first of each reason is logged once."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.counts: dict[str, int] = {}

    def add(self, reason: str, detail: str) -> None:
        if reason not in self.counts:
            self.counts[reason] = 0
            log.warning(
                "%s: %s: a packet dropped (%s); further ones are counted in the stats", self.what, reason, detail
            )
        self.counts[reason] += 1


class _KernelDrops:
    """A cumulative u32 drop counter of the kernel, accumulated as deltas (so its wrap is harmless and a
    stale reading, older than one seen before, is ignored)."""

    def __init__(self, what: str, advice: str) -> None:
        self.what = what
        self.advice = advice
        self.total = 0
        self._raw: int | None = None
        self._logged = -KERNEL_DROPS_LOG_S

    def saw(self, raw: int) -> None:
        if self._raw is None:
            self._raw = raw
            self.total = raw
        else:
            delta = (raw - self._raw) % _U32
            if not delta or delta >= _U32 // 2:
                return
            self._raw = raw
            self.total += delta
        if self.total and time.monotonic() - self._logged >= KERNEL_DROPS_LOG_S:
            self._logged = time.monotonic()
            log.warning("%s: the kernel dropped %d packets so far; %s", self.what, self.total, self.advice)


def ip_command(*args: str) -> None:
    """Run ``ip ARGS`` (iproute2); ``NetworkSetupError`` with its message if it fails."""
    binary = shutil.which("ip") or "/sbin/ip"
    try:
        # A fixed binary; the arguments come from the node's own configuration.
        done = subprocess.run([binary, *args], capture_output=True, text=True, timeout=10, check=False)  # noqa: S603
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetworkSetupError(f"cannot run ip {' '.join(args)}: {exc}") from None
    if done.returncode != 0:
        raise NetworkSetupError(f"ip {' '.join(args)} failed: {done.stderr.strip() or done.returncode}")


def open_tun(name: str) -> int:
    """Create (or attach to) the tun device ``name``: raw IPv6 packets, no packet-info header, non-blocking."""
    import fcntl  # not on Windows, where only the UDP transport runs

    try:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise NetworkSetupError(
            f"cannot open /dev/net/tun ({exc.strerror}): the srv6 transport needs Linux and root"
        ) from None
    try:
        fcntl.ioctl(fd, _TUNSETIFF, struct.pack("16sH", name.encode(), _IFF_TUN | _IFF_NO_PI))
    except OSError as exc:
        os.close(fd)
        raise NetworkSetupError(f"cannot create tun device {name!r}: {exc.strerror}") from None
    return fd


class TunTransport:
    """Packets to and from the tun device ``name``, with ``sid/128`` routed into it."""

    def __init__(self, name: str, sid: str) -> None:
        self.name = name
        self.sid = sid
        self._fd: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drops = _Drops(f"tun {name}")
        self._tx_dropped_at_start: int | None = None
        self._queue_drops = 0

    async def start(self, receiver: Receiver) -> None:
        fd = open_tun(self.name)
        try:
            ip_command("link", "set", "dev", self.name, "up")
            ip_command("-6", "route", "replace", f"{self.sid}/128", "dev", self.name)
        except NetworkSetupError:
            os.close(fd)
            raise
        self._fd = fd
        self._loop = asyncio.get_running_loop()
        self._tx_dropped_at_start = _tx_dropped(self.name)
        self._loop.add_reader(fd, self._drain, receiver)

    def _drain(self, receiver: Receiver) -> None:
        fd = self._fd
        for _ in range(256):  # bounded, so one busy device cannot starve the loop
            if fd is None:
                return
            try:
                packet = os.read(fd, _MAX_PACKET)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # the device is readable again at the next wakeup, if ever
                self._drops.add("transport_read_errors", f"read: {exc.strerror or exc}")
                return
            receiver(packet)

    def send(self, packet: bytes, next_node: str) -> None:
        if self._fd is None:
            raise NetworkSetupError(f"tun {self.name} is not open")
        try:
            os.write(self._fd, packet)  # the kernel routes it by its destination address
        except OSError as exc:
            full = exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS)
            reason = "transport_send_queue_full" if full else "transport_send_errors"
            self._drops.add(reason, f"write toward {next_node}: {exc.strerror or exc}")

    def drops(self) -> dict[str, int]:
        if self._fd is not None and self._tx_dropped_at_start is not None:
            now = _tx_dropped(self.name)
            if now is not None:  # the device's counter, read while it is ours
                self._queue_drops = max(self._queue_drops, now - self._tx_dropped_at_start)
        counts = dict(self._drops.counts)
        if self._queue_drops:
            counts["transport_kernel_drops"] = self._queue_drops
        return counts

    def close(self) -> None:
        self.drops()  # the kernel's count as the device goes
        fd, self._fd = self._fd, None
        if fd is not None:
            if self._loop is not None:
                self._loop.remove_reader(fd)
            os.close(fd)  # a non-persistent tun disappears, and its route with it


def _tx_dropped(device: str) -> int | None:
    """The ``tx_dropped`` counter of ``device`` (for a tun: packets the kernel could not queue toward the
    process), from the calling thread's network namespace; ``None`` where it cannot be read."""
    try:  # /proc/thread-self: this thread's namespace (/proc/net is the process leader's)
        lines = Path("/proc/thread-self/net/dev").read_text().splitlines()
    except OSError:
        return None
    for line in lines[2:]:
        name, _, fields = line.partition(":")
        if name.strip() == device:
            values = fields.split()
            return int(values[11]) if len(values) >= 12 else None  # rx: 8 fields; tx: bytes packets errs drop
    return None


def set_rcvbuf(sock: socket.socket, asked: int, *, linux: bool = _LINUX) -> int:
    """Set ``sock``'s receive buffer to ``asked`` bytes; the size the kernel gives, read back.

    Linux doubles the asked size (its bookkeeping overhead) and caps it at ``net.core.rmem_max``;
    past that, with CAP_NET_ADMIN, ``SO_RCVBUFFORCE`` sets it anyway. Short of the asked size, one
    WARNING line names the size given and the sysctl that raises the cap.
    """
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, asked)
    except OSError as exc:  # e.g. macOS, past kern.ipc.maxsockbuf
        log.warning("udp share socket: receive buffer of %d bytes refused (%s)", asked, exc.strerror or exc)
    got = int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
    wanted = 2 * asked if linux else asked
    if got >= wanted:
        return got
    if linux:
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, asked)
            got = int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
        except OSError:  # no CAP_NET_ADMIN
            pass
        if got < wanted:
            log.warning(
                "udp share socket: receive buffer %d bytes, not the %d asked (udp_rcvbuf_bytes; Linux doubles it): "
                "net.core.rmem_max caps it; raise it with sysctl -w net.core.rmem_max=%d",
                got, asked, asked,
            )  # fmt: skip
    else:
        log.warning("udp share socket: receive buffer %d bytes, not the %d asked (udp_rcvbuf_bytes)", got, asked)
    return got


class UdpTransport:
    """Each packet in one UDP datagram to the next segment's node (``endpoints``: node -> (host, port)).

    The socket is read with ``recvmsg`` from ``loop.add_reader``, not through asyncio's datagram
    endpoint, which passes no ancillary data: on Linux each datagram carries the socket's drop
    counter (``SO_RXQ_OVFL``). Level-triggered: each wakeup reads up to 256 datagrams (so one
    busy socket cannot starve the loop) and the loop calls again at once while more wait.
    """

    def __init__(
        self,
        listen: tuple[str, int],
        endpoints: Mapping[str, tuple[str, int]],
        *,
        rcvbuf_bytes: int = DEFAULT_UDP_RCVBUF_BYTES,
    ) -> None:
        self.listen = listen
        self.endpoints = dict(endpoints)
        self.asked_rcvbuf_bytes = rcvbuf_bytes
        self.rcvbuf_bytes: int | None = None
        """The receive buffer the kernel gave, read back (Linux: twice the usable payload)."""
        self.sock: socket.socket | None = None
        self.last_rxq_ovfl: int | None = None
        """The socket's drop counter in the latest datagram's ancillary data (none until a drop)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: collections.deque[tuple[bytes, tuple[str, int], str]] = collections.deque()
        self._drops = _Drops("udp share socket")
        self._kernel = _KernelDrops("udp share socket", "raise udp_rcvbuf_bytes (docs/node.md)")

    @property
    def address(self) -> tuple[str, int]:
        """Where the socket is bound (the port the kernel chose for port 0)."""
        if self.sock is None:
            raise NetworkSetupError("the UDP share socket is not open")
        host, port = self.sock.getsockname()[:2]
        return str(host), int(port)

    async def start(self, receiver: Receiver) -> None:
        loop = asyncio.get_running_loop()
        host, port = self.listen
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            try:
                sock.bind((host, port))
            except OSError as exc:
                raise NetworkSetupError(
                    f"cannot bind the UDP share socket on [{host}]:{port}: {exc.strerror}"
                ) from None
            self.rcvbuf_bytes = set_rcvbuf(sock, self.asked_rcvbuf_bytes)
            if _LINUX:
                sock.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
            try:
                loop.add_reader(sock.fileno(), self._drain, receiver)
            except NotImplementedError:
                raise NetworkSetupError(
                    "the udp transport needs an asyncio loop that watches sockets (not Windows' proactor loop)"
                ) from None
        except BaseException:
            sock.close()
            raise
        self.sock, self._loop = sock, loop

    def _drain(self, receiver: Receiver) -> None:
        for _ in range(256):
            sock = self.sock
            if sock is None:
                return
            try:
                data, ancdata, _, _ = sock.recvmsg(_MAX_PACKET, _ANCILLARY)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # readable again at the next wakeup, if ever
                self._drops.add("transport_read_errors", f"recvmsg: {exc.strerror or exc}")
                return
            for level, kind, value in ancdata:
                if level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL and len(value) >= 4:
                    self.last_rxq_ovfl = struct.unpack("=I", value[:4])[0]
                    self._kernel.saw(self.last_rxq_ovfl)
            receiver(data)

    def send(self, packet: bytes, next_node: str) -> None:
        sock = self.sock
        if sock is None:
            raise NetworkSetupError("the UDP share socket is not open")
        endpoint = self.endpoints[next_node]
        if self._queue:  # in order, behind what waits
            self._enqueue(packet, endpoint, next_node)
            return
        try:
            sock.sendto(packet, endpoint)
        except (BlockingIOError, InterruptedError):
            self._enqueue(packet, endpoint, next_node)
        except OSError as exc:
            self._drops.add("transport_send_errors", f"send to {next_node}: {exc.strerror or exc}")

    def _enqueue(self, packet: bytes, endpoint: tuple[str, int], next_node: str) -> None:
        """Hold a packet until the socket is writable (``_flush``); past SEND_QUEUE_PACKETS, drop it."""
        if len(self._queue) >= SEND_QUEUE_PACKETS:
            self._drops.add("transport_send_queue_full", f"send to {next_node}: {SEND_QUEUE_PACKETS} packets wait")
            return
        if not self._queue and self._loop is not None and self.sock is not None:
            self._loop.add_writer(self.sock.fileno(), self._flush)
        self._queue.append((packet, endpoint, next_node))

    def _flush(self) -> None:
        sock = self.sock
        while sock is not None and self._queue:
            packet, endpoint, next_node = self._queue.popleft()
            try:
                sock.sendto(packet, endpoint)
            except (BlockingIOError, InterruptedError):
                self._queue.appendleft((packet, endpoint, next_node))
                return
            except OSError as exc:
                self._drops.add("transport_send_errors", f"send to {next_node}: {exc.strerror or exc}")
        if sock is not None and self._loop is not None:
            self._loop.remove_writer(sock.fileno())

    def drops(self) -> dict[str, int]:
        if self.sock is not None and _LINUX:
            raw = self.sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, 4 * (_SK_MEMINFO_DROPS + 1))
            if len(raw) >= 4 * (_SK_MEMINFO_DROPS + 1):  # older kernels have no drop counter here
                self._kernel.saw(struct.unpack_from("=I", raw, 4 * _SK_MEMINFO_DROPS)[0])
        counts = dict(self._drops.counts)
        if self._kernel.total:
            counts["transport_kernel_drops"] = self._kernel.total
        return counts

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            if self._loop is not None:
                self._loop.remove_reader(sock.fileno())
                self._loop.remove_writer(sock.fileno())
            self._queue.clear()
            sock.close()
