"""Link key pools: one direction of a QKD link's key material, handed out once, in order.

Two neighbours share the key stream of their link; each direction has its own pool
(the sender's and the receiver's copies of one stream), so the two ends never race for
the same bytes. A byte's **key ID** is its offset in that stream since the link started:
the sender takes the next bytes and puts their key ID in the message; the receiver takes
the bytes at that key ID. Material leaves the pool exactly once and is zeroed in the pool
as it leaves; a key ID behind the pool's position is refused (that material is gone), and
running out raises rather than ever reusing a byte.

Persistence: ``on_consume(position)`` is called with the new position *before* the
material is handed to the caller, so a store can record the consumption first (the node
keeps pools in SQLite); if it raises, the material is wiped and never returned.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ..exceptions import InputTypeError, KeyPoolExhaustedError, KeyReuseError, ParameterError


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

    ``position`` is the key ID of the first byte still in the pool (bytes before it
    were handed out or discarded); ``available`` is how many bytes remain.
    """

    def __init__(
        self,
        link: str,
        material: Any = b"",
        *,
        position: int = 0,
        on_consume: Callable[[int], None] | None = None,
    ) -> None:
        if type(link) is not str or not link:
            raise ParameterError("link must be a non-empty name")
        if type(position) is not int or position < 0:
            raise ParameterError(f"position must be an int >= 0, not {position!r}")
        self.link = link
        self._position = position
        self._buf = bytearray()
        self._head = 0  # index in _buf of the byte at self._position
        self._lock = threading.Lock()
        self._on_consume = on_consume
        self.discarded = 0
        """Bytes skipped by ``take_at`` (lost messages): zeroed, never handed out."""
        self.add(material)

    def __repr__(self) -> str:
        return f"LinkKeyPool({self.link!r}, position={self._position}, available={self.available})"

    @property
    def position(self) -> int:
        """Key ID of the next byte the pool holds."""
        return self._position

    @property
    def available(self) -> int:
        """Bytes of key material left."""
        return len(self._buf) - self._head

    def add(self, material: Any) -> None:
        """Append newly delivered key material (copied; the caller may wipe its own copy)."""
        view = _as_bytes_view(material, "material")
        with self._lock:
            if self._head and self._head >= len(self._buf) // 2:
                self._compact()
            self._buf += view

    def take(self, nbytes: int) -> tuple[int, bytearray]:
        """Sender side: the next ``nbytes`` and their key ID. The caller wipes the returned buffer after use."""
        self._check_size(nbytes)
        with self._lock:
            return self._position, self._take_locked(self._position, nbytes)

    def take_at(self, key_id: int, nbytes: int) -> bytearray:
        """Receiver side: the ``nbytes`` at ``key_id``, which the peer took with ``take``.

        Material between the pool's position and ``key_id`` (messages that never
        arrived) is discarded. A ``key_id`` behind the position raises ``KeyReuseError``.
        """
        self._check_size(nbytes)
        if type(key_id) is not int or key_id < 0:
            raise ParameterError(f"key_id must be an int >= 0, not {key_id!r}")
        with self._lock:
            if key_id < self._position:
                raise KeyReuseError(
                    f"link {self.link}: key ID {key_id} is behind position {self._position}; "
                    "that material was already used (a replayed or reordered message)"
                )
            return self._take_locked(key_id, nbytes)

    def skip_to(self, key_id: int) -> int:
        """Sender side: discard the material before ``key_id`` (the receiver resumed there after a restart).

        Nothing happens if the pool is already at or past ``key_id``; material beyond what the
        pool holds cannot be skipped (``KeyPoolExhaustedError``). Returns the bytes discarded.
        """
        if type(key_id) is not int or key_id < 0:
            raise ParameterError(f"key_id must be an int >= 0, not {key_id!r}")
        with self._lock:
            skip = key_id - self._position
            if skip <= 0:
                return 0
            end = self._head + skip
            if end > len(self._buf):
                raise KeyPoolExhaustedError(
                    f"link {self.link}: cannot skip to key ID {key_id}; "
                    f"the pool holds key up to {self._position + self.available}"
                )
            self._buf[self._head : end] = bytes(skip)
            self._head = end
            self._position = key_id
            self.discarded += skip
            if self._on_consume is not None:
                self._on_consume(key_id)
            return skip

    def wipe(self) -> None:
        """Zero and drop all remaining material."""
        with self._lock:
            wipe(self._buf)
            self._position += len(self._buf) - self._head
            self._buf = bytearray()
            self._head = 0

    def _check_size(self, nbytes: int) -> None:
        if type(nbytes) is not int or nbytes < 1:
            raise ParameterError(f"nbytes must be an int >= 1, not {nbytes!r}")

    def _take_locked(self, key_id: int, nbytes: int) -> bytearray:
        skip = key_id - self._position
        end = self._head + skip + nbytes
        if end > len(self._buf):
            raise KeyPoolExhaustedError(
                f"link {self.link}: {nbytes} bytes of key at key ID {key_id} requested, "
                f"{self.available} available from key ID {self._position}; wait for more key or fail the session"
            )
        out = self._buf[self._head + skip : end]
        self._buf[self._head : end] = bytes(end - self._head)  # same length: zeroed in place
        new_position = key_id + nbytes
        self.discarded += skip
        self._head = end
        self._position = new_position
        if self._on_consume is not None:
            try:
                self._on_consume(new_position)
            except BaseException:
                wipe(out)
                raise
        return out

    def _compact(self) -> None:
        del self._buf[: self._head]
        self._head = 0
