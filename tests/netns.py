"""Network namespaces for integration tests: a :class:`Lab` of nodes and veth links, built with iproute2.

Every namespace a lab creates is named ``<prefix><node>``, where the prefix is ``mpsst<pid>x<3 hex>-``: the
``mpsst`` family, the full PID of the creating process (so a later run can tell a stale namespace from a live
one; ``pid % 10000`` would be ambiguous on a machine whose ``pid_max`` is above 10000) and a random tag.
A lab sweeps stale namespaces of the family when entered and deletes its own when left, even after an error.

:func:`in_netns` moves the *current thread* (not the process) into a namespace with ``setns(2)``; sockets
and devices created there belong to that namespace for their whole life, whichever thread uses them later.
"""

from __future__ import annotations

import ctypes
import functools
import os
import re
import secrets
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from types import TracebackType
from typing import Any, Generic, TypeVar

__all__ = [
    "FAMILY",
    "Lab",
    "LabError",
    "NetnsThread",
    "in_netns",
    "list_netns",
    "make_prefix",
    "netns_available",
    "start_in_netns",
    "sweep_stale",
]

FAMILY = "mpsst"
NETNS_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
IFNAMSIZ = 15  # longest interface name, without the trailing NUL
_FAMILY_RE = re.compile(rf"^{FAMILY}(\d+)x[0-9a-f]{{3}}-")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_SYSCTLS = (
    ("all/forwarding", "1"),
    ("default/forwarding", "1"),
    ("all/seg6_enabled", "1"),
    ("default/seg6_enabled", "1"),
    ("lo/seg6_enabled", "1"),
    ("all/accept_dad", "0"),
    ("default/accept_dad", "0"),
)

T = TypeVar("T")


class LabError(RuntimeError):
    """An ``ip`` command failed, or a lab could not clean up after itself."""


@functools.cache
def _ip_bin() -> str:
    return shutil.which("ip") or "/usr/sbin/ip"


def _ip(args: Sequence[str], stdin: str | None = None, timeout: float = 10.0) -> str:
    """Run ``ip ARGS`` (with ``stdin`` as batch input); its stdout, or LabError with its stderr."""
    proc = subprocess.run([_ip_bin(), *args], input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        detail = f"\n{stdin}" if stdin else ""
        raise LabError(f"ip {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}{detail}")
    return proc.stdout


# --- per-thread namespace switching -------------------------------------------------------------


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(ctypes.c_int(fd), ctypes.c_int(CLONE_NEWNET)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def _netns_path(ns_name: str) -> str:
    return ns_name if ns_name.startswith("/") else os.path.join(NETNS_DIR, ns_name)


@contextmanager
def in_netns(ns_name: str) -> Iterator[None]:
    """Run the body with the current thread in network namespace ``ns_name`` (a name or a path).

    Per thread: other threads stay where they are. On exit the thread returns to the namespace it
    was in before, also when the body raises. Nesting works.
    """
    own = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(_netns_path(ns_name), os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(own)


class NetnsThread(threading.Thread, Generic[T]):
    """A thread that runs ``target(*args, **kwargs)`` inside a namespace; :meth:`wait` gives its result."""

    def __init__(
        self,
        ns_name: str,
        target: Callable[..., T],
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        name: str | None = None,
        daemon: bool = True,
    ) -> None:
        super().__init__(name=name or f"netns-{ns_name}", daemon=daemon)
        self.ns_name = ns_name
        self._fn = target
        self._args = tuple(args)
        self._kwargs = dict(kwargs or {})
        self.result: T | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with in_netns(self.ns_name):
                self.result = self._fn(*self._args, **self._kwargs)
        except BaseException as exc:
            self.error = exc

    def wait(self, timeout: float | None = None) -> T:
        """Join; re-raise the target's exception, or TimeoutError if it is still running."""
        self.join(timeout)
        if self.is_alive():
            raise TimeoutError(f"{self.name} still running after {timeout} s")
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]


def start_in_netns(ns_name: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> NetnsThread[T]:
    """Start ``fn(*args, **kwargs)`` in a new daemon thread inside ``ns_name``; ``.wait()`` for the result."""
    thread: NetnsThread[T] = NetnsThread(ns_name, fn, args, kwargs)
    thread.start()
    return thread


# --- namespaces ---------------------------------------------------------------------------------


def make_prefix() -> str:
    """A fresh lab prefix, ``mpsst<pid>x<3 random hex>-``."""
    return f"{FAMILY}{os.getpid()}x{secrets.randbits(12):03x}-"


def list_netns() -> list[str]:
    """Names of all named network namespaces (``ip netns list``)."""
    return [line.split()[0] for line in _ip(["netns", "list"]).splitlines() if line.strip()]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


def _delete(names: Iterable[str]) -> None:
    """Delete namespaces, carrying on past failures (``ip -force -batch``); the caller checks the result."""
    lines = "".join(f"netns del {name}\n" for name in names)
    if lines:
        subprocess.run(
            [_ip_bin(), "-force", "-batch", "-"], input=lines, capture_output=True, text=True, timeout=30, check=False
        )


def sweep_stale() -> list[str]:
    """Delete namespaces of the family whose creating PID is dead; their names.

    Only names matching ``mpsst<digits>x<3 hex>-`` are considered; anything else is left alone.
    """
    stale = []
    for name in list_netns():
        match = _FAMILY_RE.match(name)
        if match and not _pid_alive(int(match.group(1))):
            stale.append(name)
    _delete(stale)
    return stale


@functools.cache
def netns_available() -> str | None:
    """None if this process can create, enter and delete a network namespace; else why not."""
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None and not os.path.exists("/usr/sbin/ip"):
        return "iproute2 `ip` is not installed"
    name = make_prefix() + "probe"
    try:
        _ip(["netns", "add", name])
    except (OSError, LabError, subprocess.SubprocessError) as exc:
        return f"cannot create a network namespace: {exc}"
    try:
        start_in_netns(name, lambda: None).wait(10)
    except (OSError, AttributeError, TimeoutError) as exc:
        return f"cannot enter a network namespace with setns: {exc}"
    finally:
        _delete([name])
    if name in list_netns():
        return f"cannot delete network namespace {name}"
    return None


class Lab:
    """Nodes (namespaces) joined by veth links; use as a context manager.

    Interface names: a link between ``a`` and ``b`` is ``v-<b>`` in ``a`` and ``v-<a>`` in ``b``, cut to
    15 characters; when that name is taken in the namespace (a second link to the same node, or two long
    names with the same start) the name is cut further and a counter 2, 3, ... appended.
    """

    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = prefix if prefix is not None else make_prefix()
        if not _NAME_RE.match(self.prefix):
            raise ValueError(f"bad namespace prefix {self.prefix!r}")
        self.swept: list[str] = []
        self._nodes: dict[str, str] = {}
        self._ifnames: dict[str, set[str]] = {}
        self._procs: list[subprocess.Popen[Any]] = []
        self._active = False
        self._next_index = 1000  # far above the kernel's own picks (2, 3, ... per namespace)

    def __enter__(self) -> Lab:
        self.swept = sweep_stale()
        taken = [name for name in list_netns() if name.startswith(self.prefix)]
        if taken:
            raise LabError(f"namespaces with prefix {self.prefix!r} already exist: {taken}")
        self._active = True
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop processes started with :meth:`exec`, delete every namespace of the lab, check none is left."""
        self._active = False
        try:
            self._stop_procs()
        finally:
            created = list(self._nodes.values())
            _delete(created)
            left = [name for name in list_netns() if name in created]
            if left:  # one more try, then complain
                _delete(left)
                left = [name for name in list_netns() if name in created]
            if left:
                raise LabError(f"namespaces left behind: {left}")

    def _stop_procs(self) -> None:
        running = [proc for proc in self._procs if proc.poll() is None]
        for proc in running:
            proc.terminate()
        for proc in running:
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    @property
    def nodes(self) -> dict[str, str]:
        """Node name -> namespace name."""
        return dict(self._nodes)

    def ns(self, name: str) -> str:
        """The namespace name of node ``name``."""
        try:
            return self._nodes[name]
        except KeyError:
            raise KeyError(f"no node {name!r} in lab {self.prefix!r}") from None

    def add_node(self, name: str) -> str:
        """Create node ``name``: IPv6 forwarding and seg6 on, DAD off, ``lo`` up. Its namespace name."""
        if not self._active:
            raise LabError("enter the lab (with Lab() as lab:) before adding nodes")
        if not _NAME_RE.match(name) or name in self._nodes:
            raise ValueError(f"bad or duplicate node name {name!r}")
        ns = self.prefix + name
        _ip(["netns", "add", ns])
        self._nodes[name] = ns
        self._ifnames[name] = {"lo"}
        start_in_netns(ns, _write_sysctls).wait(10)
        _ip(["-n", ns, "link", "set", "lo", "up"])
        return ns

    def _ifname(self, node: str, peer: str) -> str:
        taken = self._ifnames[node]
        base = f"v-{peer}"[:IFNAMSIZ]
        candidate, n = base, 1
        while candidate in taken:
            n += 1
            candidate = base[: IFNAMSIZ - len(str(n))] + str(n)
        taken.add(candidate)
        return candidate

    def ip(self, node: str, lines: Iterable[str], family: str | None = "-6") -> str:
        """Run ``ip [-6] -n NS -batch -`` with ``lines`` (commands without the leading ``ip``)."""
        lines = list(lines)
        if any(not line.strip() or "\n" in line or "\r" in line for line in lines):
            raise ValueError("ip batch lines must be single, non-empty lines")
        text = "".join(f"{line}\n" for line in lines)
        return _ip([*([family] if family else []), "-n", self.ns(node), "-batch", "-"], stdin=text)

    def link(self, a: str, b: str, addr_a: str, addr_b: str, prefixlen: int = 64) -> tuple[str, str]:
        """A veth pair between nodes ``a`` and ``b`` with the given IPv6 addresses, both ends up."""
        if a == b:
            raise ValueError("a link needs two different nodes")
        ns_b = self.ns(b)
        self.ns(a)
        if_a, if_b = self._ifname(a, b), self._ifname(b, a)
        # Distinct ifindexes for the two ends: a veth whose ifindex equals its peer's (2 and 2 in two fresh
        # namespaces) gets its carrier-up handled by the kernel's linkwatch up to 1 s late, and until then
        # it drops what it sends (the first neighbour advertisement, typically).
        index = self._next_index
        self._next_index += 2
        self.ip(
            a,
            [
                f"link add {if_a} index {index} type veth peer name {if_b} index {index + 1} netns {ns_b}",
                f"addr add {addr_a}/{prefixlen} dev {if_a} nodad",
                f"link set {if_a} up",
            ],
        )
        self.ip(b, [f"addr add {addr_b}/{prefixlen} dev {if_b} nodad", f"link set {if_b} up"])
        return if_a, if_b

    def route(
        self, node: str, dst_prefix: str, via: str | None = None, dev: str | None = None, extra: Sequence[str] = ()
    ) -> None:
        """``ip -6 route add DST [via VIA] [dev DEV] [EXTRA...]`` in ``node``."""
        words = ["route", "add", dst_prefix, *(["via", via] if via else []), *(["dev", dev] if dev else []), *extra]
        self.ip(node, [" ".join(words)])

    def exec(self, node: str, argv: Sequence[str], **popen_kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` inside ``node`` (``ip netns exec``); it is stopped when the lab closes."""
        proc: subprocess.Popen[Any] = subprocess.Popen(
            [_ip_bin(), "netns", "exec", self.ns(node), *argv], **popen_kwargs
        )
        self._procs.append(proc)
        return proc

    def run(
        self, node: str, argv: Sequence[str], check: bool = True, timeout: float = 10.0
    ) -> subprocess.CompletedProcess[str]:
        """Run a short command inside ``node``; output captured as text."""
        return subprocess.run(
            [_ip_bin(), "netns", "exec", self.ns(node), *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )

    def in_node(self, node: str) -> AbstractContextManager[None]:
        """:func:`in_netns` for node ``node``."""
        return in_netns(self.ns(node))


def _write_sysctls() -> None:
    """Set the IPv6 sysctls of pitfall 1 in the calling thread's namespace."""
    for key, value in _SYSCTLS:
        with open(f"/proc/sys/net/ipv6/conf/{key}", "w") as fh:
            fh.write(value)
