"""Packet capture without tcpdump: an ``AF_PACKET`` socket with a TPACKET_V2 mmap ring on one interface.

The kernel copies each frame into the ring when it sees it, so a frame later rewritten in place (by
seg6local, say) is captured as it was; a plain ``recvfrom`` may show the rewritten bytes. The socket is
created inside the interface's namespace (via :func:`tests.netns.in_netns`) and drained by a thread.
"""

from __future__ import annotations

import mmap
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

from .netns import in_netns

__all__ = ["Capture", "Frame", "ipv6_packets"]

SOL_PACKET = 263
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
TPACKET_V2 = 1
ETH_P_ALL = 0x0003
ETH_P_IPV6 = 0x86DD
PACKET_OUTGOING = 4
TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
TP_STATUS_CSUMNOTREADY = 8
# struct tpacket2_hdr: tp_status, tp_len, tp_snaplen (u32), tp_mac, tp_net (u16), tp_sec, tp_nsec (u32), ...
_HDR = struct.Struct("=IIIHHII")
# The struct sockaddr_ll follows at TPACKET_ALIGN(sizeof(tpacket2_hdr)) = 32; sll_pkttype is its byte 10.
_PKTTYPE_OFFSET = 32 + 10
_U32 = struct.Struct("=I")


@dataclass(frozen=True)
class Frame:
    """One captured Ethernet frame: kernel timestamp, direction, bytes (``wire_len`` > len(data) if cut).

    ``status`` is the slot's ``tp_status``; see :attr:`csum_not_ready`.
    """

    ts: float
    direction: Literal["in", "out"]
    data: bytes
    wire_len: int
    status: int = TP_STATUS_USER

    @property
    def csum_not_ready(self) -> bool:
        """Checksum offload pending (``TP_STATUS_CSUMNOTREADY``): the L4 checksum field holds only a partial sum.

        On veth this is the case for locally sent UDP, also after forwarding; do not check such checksums.
        """
        return bool(self.status & TP_STATUS_CSUMNOTREADY)


def ipv6_packets(frames: Iterable[Frame]) -> list[tuple[Frame, bytes]]:
    """(frame, IPv6 packet) for each frame of ethertype 0x86DD; the packet is the frame less its 14-byte header."""
    return [(f, f.data[14:]) for f in frames if len(f.data) >= 14 and f.data[12:14] == b"\x86\xdd"]


class Capture:
    """Capture every frame on ``ifname`` in namespace ``ns_name`` between :meth:`start` and :meth:`stop`.

    After :meth:`stop`, ``drops`` is the kernel's count of frames lost for a full ring and ``packets`` the
    number it saw (``PACKET_STATISTICS``).
    """

    def __init__(
        self,
        ns_name: str,
        ifname: str,
        *,
        block_size: int = 1 << 20,
        block_nr: int = 8,
        frame_size: int = 2048,
        poll_ms: int = 20,
    ) -> None:
        if frame_size % 16 or block_size % frame_size or block_size % mmap.PAGESIZE:
            raise ValueError("frame_size must be a multiple of 16 dividing block_size, a multiple of the page size")
        self.ns_name = ns_name
        self.ifname = ifname
        self.block_size = block_size
        self.block_nr = block_nr
        self.frame_size = frame_size
        self.frame_nr = block_size // frame_size * block_nr
        self.poll_ms = poll_ms
        self.drops: int | None = None
        self.packets: int | None = None
        self._frames: list[Frame] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Capture:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def frames(self) -> list[Frame]:
        """A copy of the frames captured so far."""
        with self._cond:
            return list(self._frames)

    def start(self) -> Capture:
        """Open the socket in the namespace and start draining; returns once the capture is live."""
        if self._thread is not None:
            raise RuntimeError("capture already started")
        self._thread = threading.Thread(target=self._run, name=f"capture-{self.ifname}", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def stop(self) -> list[Frame]:
        """Drain what is left, stop, close the socket and unmap the ring; the frames captured.

        Re-raises an error of the draining thread.
        """
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        if self._error is not None:
            raise self._error
        return self.frames

    def wait(self, predicate: Callable[[list[Frame]], bool], timeout: float = 5.0) -> bool:
        """Wait until ``predicate(frames)`` holds (checked as frames arrive); whether it did within ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self._frames):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def _open(self) -> tuple[socket.socket, mmap.mmap]:
        # Protocol 0 receives nothing until bind() names the interface and ETH_P_ALL.
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V2)
            req = struct.pack("=IIII", self.block_size, self.block_nr, self.frame_size, self.frame_nr)
            sock.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
            ring = mmap.mmap(
                sock.fileno(), self.block_size * self.block_nr, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE
            )
            try:
                sock.bind((self.ifname, ETH_P_ALL))
            except BaseException:
                ring.close()
                raise
        except BaseException:
            sock.close()
            raise
        return sock, ring

    def _run(self) -> None:
        try:
            with in_netns(self.ns_name):
                sock, ring = self._open()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        view = memoryview(ring)
        try:
            self._drain(sock, view)
        except BaseException as exc:
            self._error = exc
        finally:
            try:
                self.packets, self.drops = struct.unpack("=II", sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
            finally:
                view.release()
                ring.close()
                sock.close()

    def _drain(self, sock: socket.socket, view: memoryview) -> None:
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN | select.POLLERR)
        per_block = self.block_size // self.frame_size
        idx = 0
        while True:
            off = (idx // per_block) * self.block_size + (idx % per_block) * self.frame_size
            if not _U32.unpack_from(view, off)[0] & TP_STATUS_USER:
                if self._stop.is_set():
                    return
                poller.poll(self.poll_ms)
                continue
            status, tp_len, snaplen, mac, _net, sec, nsec = _HDR.unpack_from(view, off)
            outgoing = view[off + _PKTTYPE_OFFSET] == PACKET_OUTGOING
            data = bytes(view[off + mac : off + mac + snaplen])
            frame = Frame(sec + nsec * 1e-9, "out" if outgoing else "in", data, tp_len, status)
            _U32.pack_into(view, off, TP_STATUS_KERNEL)  # hand the slot back to the kernel
            idx = (idx + 1) % self.frame_nr
            with self._cond:
                self._frames.append(frame)
                self._cond.notify_all()
