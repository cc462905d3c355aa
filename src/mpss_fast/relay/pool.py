"""Link key pools: one direction of a QKD link's key material, handed out once, in order.

Two neighbours share the key stream of their link; each direction has its own pool
(the sender's and the receiver's copies of one stream), so the two ends never race for
the same bytes. A byte's **offset** is its place in that stream since the link started:
the sender takes the next bytes and puts their offset in the message (the option's ``hop_key_id``); the receiver takes
the bytes at that offset. Material leaves the pool exactly once and is zeroed in the pool
as it leaves; running out raises rather than ever reusing a byte.

**Verify, then consume.** The receiver's ``take_at`` is given the check of the message
(its one-time tag) and runs it on the material at the claimed offset *before* anything
moves: a message that fails it consumes nothing, discards nothing and persists nothing,
so forged offsets cannot drain a pool. Messages may arrive out of order within a
**window** of ``window`` bytes behind the furthest authenticated message: material
there stays usable until authenticated traffic moves the window past it, and only then
is it discarded. Each range is handed out once (a replay is ``KeyReuseError``), and a
offset behind the window is refused (that material is gone).

Persistence: ``on_consume(end)`` is called, *before* the material is handed to the
caller, with the end of the furthest material handed out so far: nothing below it may be
used after a restart, so a store records it first (the node keeps pools in SQLite) and a
restarted pool resumes there (the window is not carried across restarts). If it raises,
the material is wiped and never returned.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable
from typing import Any

from ..exceptions import InputTypeError, KeyPoolExhaustedError, KeyReuseError, ParameterError

DEFAULT_WINDOW = 1 << 16
"""Bytes behind the furthest authenticated message within which messages may arrive out of order."""

MAX_WINDOW = 1 << 24
"""The largest reordering window a pool accepts."""


def wipe(buf: bytearray) -> None:
    """Overwrite a key buffer with zeros (in place: same-length slice assignment never reallocates)."""
    buf[:] = bytes(len(buf))


def _as_bytes_view(obj: Any, name: str) -> memoryview:
    try:
        view = memoryview(obj)
    except TypeError:
        raise InputTypeError(f"{name} must be bytes-like, not {type(obj).__name__}") from None
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


class LinkKeyPool:
    """One direction of a link's QKD key material (see the module docstring).

    ``position`` is the offset of the first byte the pool still holds (bytes before it
    were handed out or discarded); ``available`` is how many held bytes were not handed
    out yet; ``window`` the reordering window in bytes (0: strictly in order).
    """

    def __init__(
        self,
        link: str,
        material: Any = b"",
        *,
        position: int = 0,
        on_consume: Callable[[int], None] | None = None,
        window: int = DEFAULT_WINDOW,
    ) -> None:
        if type(link) is not str or not link:
            raise ParameterError("link must be a non-empty name")
        if type(position) is not int or position < 0:
            raise ParameterError(f"position must be an int >= 0, not {position!r}")
        if type(window) is not int or not 0 <= window <= MAX_WINDOW:
            raise ParameterError(f"window must be an int in 0..{MAX_WINDOW}, not {window!r}")
        self.link = link
        self.window = window
        self._position = position
        self._high = position  # end of the furthest material handed out
        self._used: list[tuple[int, int]] = []  # handed-out ranges in [position, high), sorted, disjoint
        self._used_bytes = 0
        self._buf = bytearray()
        self._head = 0  # index in _buf of the byte at self._position
        self._lock = threading.Lock()
        self._on_consume = on_consume
        self.discarded = 0
        """Bytes dropped unused (lost messages, skips): zeroed, never handed out."""
        self.add(material)

    def __repr__(self) -> str:
        return f"LinkKeyPool({self.link!r}, position={self._position}, available={self.available})"

    @property
    def position(self) -> int:
        """Key ID of the first byte the pool holds (the back of the reordering window)."""
        return self._position

    @property
    def high(self) -> int:
        """Key ID just after the furthest material handed out (what ``on_consume`` was last given)."""
        return self._high

    @property
    def available(self) -> int:
        """Bytes of key material held and not handed out."""
        return len(self._buf) - self._head - self._used_bytes

    def add(self, material: Any) -> None:
        """Append newly delivered key material (copied; the caller may wipe its own copy)."""
        view = _as_bytes_view(material, "material")
        with self._lock:
            if self._head and self._head >= len(self._buf) // 2:
                self._compact()
            self._buf += view

    def take(self, nbytes: int) -> tuple[int, bytearray]:
        """Sender side: the next ``nbytes`` and their offset. The caller wipes the returned buffer after use."""
        self._check_size(nbytes)
        with self._lock:
            offset = self._high
            self._check_held(offset, nbytes)
            return offset, self._consume_locked(offset, nbytes)

    def take_at(self, offset: int, nbytes: int, verify: Callable[[memoryview], object]) -> bytearray:
        """Receiver side: the ``nbytes`` at ``offset``, which the peer took with ``take``, if ``verify`` passes.

        ``verify(material)`` is called with a read-only view of the material at ``offset``
        and raises if the message does not authenticate under it; then nothing is consumed,
        discarded or persisted and its exception propagates. Only material that passed is
        handed out (and zeroed in the pool). Errors: ``KeyReuseError`` for an offset behind
        the window or a range already handed out (a replay), ``KeyPoolExhaustedError`` for
        material the pool does not hold (yet). Both leave the pool as it was.
        """
        self._check_size(nbytes)
        if type(offset) is not int or offset < 0:
            raise ParameterError(f"offset must be an int >= 0, not {offset!r}")
        if not callable(verify):
            raise ParameterError("verify must be callable: material is handed out only to an authenticated message")
        with self._lock:
            if offset < self._position:
                raise KeyReuseError(
                    f"link {self.link}: offset {offset} is behind the window at {self._position}; "
                    "that material was already used or discarded (a replayed or late message)",
                    link=self.link,
                )
            self._check_held(offset, nbytes)
            if offset < self._high and self._overlaps(offset, offset + nbytes):
                raise KeyReuseError(
                    f"link {self.link}: offset {offset} ({nbytes} bytes) was already handed out (a replayed message)",
                    link=self.link,
                )
            start = self._head + offset - self._position
            with memoryview(self._buf) as whole, whole[start : start + nbytes].toreadonly() as material:
                verify(material)
            return self._consume_locked(offset, nbytes)

    def skip_to(self, offset: int) -> int:
        """Sender side: discard the material before ``offset`` (the receiver resumed there after a restart).

        Nothing happens if the pool is already at or past ``offset``; material beyond what the
        pool holds cannot be skipped (``KeyPoolExhaustedError``). Returns the bytes discarded.
        """
        if type(offset) is not int or offset < 0:
            raise ParameterError(f"offset must be an int >= 0, not {offset!r}")
        with self._lock:
            if offset <= self._position:
                return 0
            if offset - self._position > len(self._buf) - self._head:
                raise KeyPoolExhaustedError(
                    f"link {self.link}: cannot skip to offset {offset}; "
                    f"the pool holds key up to {self._position + len(self._buf) - self._head}",
                    link=self.link,
                )
            before = self.discarded
            self._high = max(self._high, offset)
            self._slide_to(offset)
            if self._on_consume is not None:
                self._on_consume(self._high)
            return self.discarded - before

    def wipe(self) -> None:
        """Zero and drop all remaining material."""
        with self._lock:
            wipe(self._buf)
            self._position += len(self._buf) - self._head
            self._high = self._position
            self._used.clear()
            self._used_bytes = 0
            self._buf = bytearray()
            self._head = 0

    def _check_size(self, nbytes: int) -> None:
        if type(nbytes) is not int or nbytes < 1:
            raise ParameterError(f"nbytes must be an int >= 1, not {nbytes!r}")

    def _check_held(self, offset: int, nbytes: int) -> None:
        if offset + nbytes > self._position + len(self._buf) - self._head:
            end = self._position + len(self._buf) - self._head
            raise KeyPoolExhaustedError(
                f"link {self.link}: {nbytes} bytes of key at offset {offset} requested, "
                f"{max(0, end - offset)} available from there (the pool holds offsets up to {end}); "
                "wait for more key or fail the session",
                link=self.link,
            )

    def _overlaps(self, start: int, end: int) -> bool:
        used = self._used
        i = bisect.bisect_right(used, (start, float("inf")))
        if i and used[i - 1][1] > start:
            return True
        return i < len(used) and used[i][0] < end

    def _consume_locked(self, offset: int, nbytes: int) -> bytearray:
        """Hand out ``[offset, offset + nbytes)`` (held, not used): copy, zero, record, slide the window."""
        start = self._head + offset - self._position
        end = offset + nbytes
        out = self._buf[start : start + nbytes]
        self._buf[start : start + nbytes] = bytes(nbytes)  # same length: zeroed in place
        bisect.insort(self._used, (offset, end))
        self._used_bytes += nbytes
        moved = end > self._high
        if moved:
            self._high = end
        self._slide_to(self._high - self.window)
        if moved and self._on_consume is not None:
            try:
                self._on_consume(end)
            except BaseException:
                wipe(out)
                raise
        return out

    def _slide_to(self, low: int) -> None:
        """Move the window's back to ``low``, or past the handed-out ranges there; zero what it passes."""
        used = self._used
        position = self._position
        while True:
            if used and used[0][0] <= max(position, low):
                first, last = used.pop(0)
                self._used_bytes -= last - first
                if first > position:
                    self.discarded += first - position
                position = max(position, last)
            elif low > position:
                self.discarded += low - position
                position = low
            else:
                break
        if position != self._position:
            end = self._head + position - self._position
            self._buf[self._head : end] = bytes(end - self._head)
            self._head = end
            self._position = position

    def _compact(self) -> None:
        del self._buf[: self._head]
        self._head = 0
