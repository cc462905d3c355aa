"""How share packets leave and reach a node: a tun device on real SRv6, or per-hop UDP.

Both carry the same bytes, a whole IPv6 packet with the MPSS Destination Option and the
SRH (``mpss_fast.wire``); only the delivery differs:

* :class:`TunTransport` (Linux, root): the node's SID is routed into a tun device, so
  the kernel hands the process every packet addressed to the SID, before any extension
  header processing (a stock kernel would drop the option: its type says "discard if
  unknown"). The node writes packets back to the tun; the kernel routes them by their
  destination address, the next segment.
* :class:`UdpTransport` (no privileges, any OS): the packet is the payload of a UDP
  datagram sent to the next segment's node at its configured ``host:port``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import struct
import subprocess
from collections.abc import Callable, Mapping
from typing import Protocol

from ..exceptions import NetworkSetupError

Receiver = Callable[[bytes], None]

_TUNSETIFF = 0x400454CA
_IFF_TUN = 0x0001
_IFF_NO_PI = 0x1000
_MAX_PACKET = 65535


class Transport(Protocol):
    """Sends packets towards a SID and hands received ones to ``receiver``."""

    async def start(self, receiver: Receiver) -> None:
        """Begin receiving."""
        ...

    def send(self, packet: bytes, next_node: str) -> None:
        """Send ``packet`` towards ``next_node`` (whose SID is the packet's destination address)."""
        ...

    def close(self) -> None:
        """Stop receiving and release the device or socket."""
        ...


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
        self._loop.add_reader(fd, self._drain, receiver)

    def _drain(self, receiver: Receiver) -> None:
        fd = self._fd
        for _ in range(256):  # bounded, so one busy device cannot starve the loop
            if fd is None:
                return
            try:
                packet = os.read(fd, _MAX_PACKET)
            except BlockingIOError:
                return
            receiver(packet)

    def send(self, packet: bytes, next_node: str) -> None:
        if self._fd is None:
            raise NetworkSetupError(f"tun {self.name} is not open")
        os.write(self._fd, packet)  # the kernel routes it by its destination address

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            if self._loop is not None:
                self._loop.remove_reader(fd)
            os.close(fd)  # a non-persistent tun disappears, and its route with it


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.receiver(data)


class UdpTransport:
    """Each packet in one UDP datagram to the next segment's node (``endpoints``: node -> (host, port))."""

    def __init__(self, listen: tuple[str, int], endpoints: Mapping[str, tuple[str, int]]) -> None:
        self.listen = listen
        self.endpoints = dict(endpoints)
        self._transport: asyncio.DatagramTransport | None = None

    async def start(self, receiver: Receiver) -> None:
        loop = asyncio.get_running_loop()
        host, port = self.listen
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Datagrams(receiver), local_addr=(host, port), family=family
            )
        except OSError as exc:
            raise NetworkSetupError(f"cannot bind the UDP share socket on [{host}]:{port}: {exc.strerror}") from None
        self._transport = transport

    def send(self, packet: bytes, next_node: str) -> None:
        if self._transport is None:
            raise NetworkSetupError("the UDP share socket is not open")
        self._transport.sendto(packet, self.endpoints[next_node])

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
