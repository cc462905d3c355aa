"""Each link direction's QKD key material in SQLite: the pads of hop-by-hop one-time-pad encryption.

A link direction's material is one stream of bytes; a byte's **offset** in it names it (both
ends of the link count from the same first byte). One promise survives a crash (``kill -9``,
power loss) at any instant: **no pad reused**. A pool's new position (the offset of its first
unused byte) is committed (``synchronous=FULL``, so fsynced) *before* the material is handed
out (``LinkKeyPool.on_consume``), and on reopen the pool resumes at the committed position. A
crash between recording and use loses that material, by design; it never hands it out again.

Consumed link material is deleted from the database in the recording transaction, with
``PRAGMA secure_delete=ON`` so SQLite zeroes the freed space.

The files hold key material in the clear, so they are the owner's alone: the directory is
created 0700, the database and its ``-lock`` file 0600 before SQLite opens them (SQLite
gives ``-wal`` and ``-shm`` the database's mode), whatever the umask; a store whose
directory or files group or others may use is refused (``StorePermissionError``). See
``docs/node-store.md`` for the schema, the argument step by step and what is not guaranteed.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import uuid
from collections.abc import Callable
from typing import Any

from ...exceptions import (
    InputTypeError,
    ParameterError,
    StoreError,
    UnknownLinkError,
)
from ...relay.pool import LinkKeyPool, wipe
from . import db
from .db import key_id_text

SCHEMA_VERSION = 3
"""The schema this module writes. A database with a newer version is refused; an older one is migrated."""

MAX_LEASE_BYTES = 1 << 40
"""The largest lease (positions are SQLite INTEGERs; a lease is meant to be kilobytes)."""

CHUNK_BYTES = 4096
"""Link material is stored in rows of at most this many bytes, so recording a consumption
rewrites at most one partly used row."""

_BATCHES = (
    # Sender side of a link direction: key fetched from the KME but not yet confirmed by the
    # neighbour (docs/node.md, "link keys"); not part of the stream, never handed out.
    "CREATE TABLE link_batches ("
    " batch INTEGER PRIMARY KEY,"
    " link TEXT NOT NULL,"
    " key_ids TEXT NOT NULL,"
    " material BLOB NOT NULL)",
)

_SCHEMA = (
    "CREATE TABLE schema_version (version INTEGER NOT NULL)",
    # One row per link direction: `position` is the offset of the first unconsumed byte,
    # `stream_end` the offset after the last byte ever added.
    "CREATE TABLE links ("
    " link TEXT PRIMARY KEY,"
    " position INTEGER NOT NULL CHECK (position >= 0),"
    " stream_end INTEGER NOT NULL CHECK (stream_end >= position))",
    # Unconsumed material: rows of at most CHUNK_BYTES, keyed by their first byte's offset.
    "CREATE TABLE link_chunks ("
    " link TEXT NOT NULL REFERENCES links (link),"
    " start INTEGER NOT NULL,"
    " material BLOB NOT NULL,"
    " PRIMARY KEY (link, start)) WITHOUT ROWID",
    *_BATCHES,
)

_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: _BATCHES,
    # Version 2 also kept end-to-end keys one by one; they now live in the key store
    # (keys.py), only after end-to-end confirmation, so the old table goes.
    2: ("DROP TABLE keys",),
}
"""Statements taking the schema from version v to v + 1."""

_LAYOUT = db.Schema("schema_version", SCHEMA_VERSION, _SCHEMA, _MIGRATIONS, "schema version", foreign_keys=True)


def _stream_end(conn: sqlite3.Connection, link: str) -> int:
    row = conn.execute("SELECT stream_end FROM links WHERE link = ?", (link,)).fetchone()
    return 0 if row is None else int(row[0])


def _append(conn: sqlite3.Connection, link: str, end: int, data: bytes) -> None:
    """Append ``data`` to ``link``'s stream, which ends at ``end`` (the link row is created if missing)."""
    conn.execute("INSERT OR IGNORE INTO links (link, position, stream_end) VALUES (?, 0, 0)", (link,))
    conn.executemany(
        "INSERT INTO link_chunks (link, start, material) VALUES (?, ?, ?)",
        ((link, end + offset, data[offset : offset + CHUNK_BYTES]) for offset in range(0, len(data), CHUNK_BYTES)),
    )
    conn.execute("UPDATE links SET stream_end = ? WHERE link = ?", (end + len(data), link))


def _check_batch(value: Any) -> None:
    if type(value) is not int:
        raise InputTypeError(f"batch must be an int, not {type(value).__name__}")


def _check_name(value: Any, what: str) -> str:
    if type(value) is not str:
        raise InputTypeError(f"{what} must be a str, not {type(value).__name__}")
    if not value:
        raise ParameterError(f"{what} must be a non-empty name")
    return value


def _check_bytes(value: Any, what: str) -> bytes:
    if isinstance(value, str) or not isinstance(value, (bytes, bytearray, memoryview)):
        raise InputTypeError(f"{what} must be bytes-like, not {type(value).__name__}")
    data = bytes(memoryview(value).cast("B"))
    if not data:
        raise ParameterError(f"{what} must not be empty")
    return data


class LinkStore(db.StoreFile):
    """A node's durable state in one SQLite file (see the module docstring).

    ``LinkStore(path)`` opens or creates the database; one store at a time may hold it
    (a second raises ``StoreLockedError``; the lock is a ``flock`` on ``<path>-lock``,
    released by the kernel when the process dies). Its directory is created 0700 and its
    files 0600; an existing directory or file open to group or others raises
    ``StorePermissionError``. Thread-safe: one connection, one lock.
    Use as a context manager or call ``close()``.
    """

    kind = "link store"

    def __init__(self, path: str | os.PathLike[str], *, lease_bytes: int = 0) -> None:
        if isinstance(lease_bytes, bool) or not isinstance(lease_bytes, int) or not 0 <= lease_bytes <= MAX_LEASE_BYTES:
            raise ParameterError(f"lease_bytes must be an int in 0..{MAX_LEASE_BYTES}, not {lease_bytes!r}")
        self.lease_bytes = lease_bytes
        self._recorded: dict[str, int] = {}  # link -> position committed (>= every byte handed out)
        self._feed_lock = threading.Lock()  # orders add_key and pool(): taken before the store lock
        self._pools: dict[str, LinkKeyPool] = {}
        super().__init__(path, _LAYOUT)

    def __enter__(self) -> LinkStore:
        return self

    def close(self) -> None:
        """Checkpoint and truncate the WAL, close the database, release the lock (idempotent).

        Pools handed out by ``pool()`` are wiped (their material stays in the file for the
        next open) and refuse to hand out material afterwards.
        """
        with self._feed_lock:
            if not self._close_file():
                return
            for live in self._pools.values():  # outside the store lock: a take in progress holds its pool's lock
                live.wipe()
            self._pools.clear()

    # -- link key material ---------------------------------------------------------

    def add_key(self, link: str, material: Any, *, start: int | None = None) -> bool:
        """Append QKD key material delivered for one link direction (created on first use).

        The material's offsets continue the link's stream. It is committed before this
        returns and, if ``pool(link)`` was handed out, appended to that live pool too.
        With ``start`` (the offset the sender gave its first byte), a batch the stream
        already holds (``start + len <= end``) is ignored and ``False`` returned, so a
        repeated announcement is harmless; any other ``start`` than the stream's end
        raises ``StoreError``. Returns ``True`` when the material was appended.
        """
        link = _check_name(link, "link")
        data = _check_bytes(material, "material")
        if start is not None and (isinstance(start, bool) or not isinstance(start, int) or start < 0):
            raise ParameterError(f"start must be an int >= 0, not {start!r}")

        def body(conn: sqlite3.Connection) -> bool:
            end = _stream_end(conn, link)
            if start is not None and start != end:
                if start + len(data) <= end:
                    return False
                raise StoreError(
                    f"link {link}: a batch at offset {start} ({len(data)} bytes) does not continue the stream, "
                    f"which ends at {end}"
                )
            _append(conn, link, end, data)
            return True

        return self._feed(link, f"adding key to link {link}", body, data)

    def _feed(self, link: str, what: str, body: Callable[[sqlite3.Connection], Any], data: bytes) -> Any:
        # Lock order: feed lock -> store lock, feed lock -> pool lock, pool lock -> store lock
        # (on_consume). The store lock is released before feeding the pool, so a take in
        # progress can record its position; the feed lock keeps two additions in order.
        with self._feed_lock:
            added = self._write(what, body)
            live = self._pools.get(link)
            if live is not None and added is not False:
                live.add(data)
            return added

    def stream_end(self, link: str) -> int:
        """The offset after the last byte ever added to ``link`` (0 for a link never fed)."""
        link = _check_name(link, "link")
        with self._lock:
            self._check_open()
            return _stream_end(self._conn, link)

    # -- staged batches (sender side of the link key exchange) ------------------------

    def stage_batch(self, link: str, key_ids: list[uuid.UUID], material: Any) -> int:
        """Keep key the KME gave the sender of ``link`` until the neighbour confirms it has it too.

        Staged material is not in the stream and never handed out; ``commit_batch``
        appends it, ``drop_batch`` discards it. Returns the batch number.
        """
        link = _check_name(link, "link")
        data = _check_bytes(material, "material")
        if not isinstance(key_ids, (list, tuple)):
            raise InputTypeError(f"key_ids must be a list of uuid.UUID, not {type(key_ids).__name__}")
        if not key_ids:
            raise ParameterError("a batch needs at least one key ID")
        texts = [key_id_text(kid) for kid in key_ids]
        if len(set(texts)) != len(texts):
            raise ParameterError("a batch lists the same key ID twice")
        ids = ",".join(texts)

        def body(conn: sqlite3.Connection) -> int:
            cur = conn.execute("INSERT INTO link_batches (link, key_ids, material) VALUES (?, ?, ?)", (link, ids, data))
            return int(cur.lastrowid or 0)

        result: int = self._write(f"staging a batch for link {link}", body)
        return result

    def staged_batches(self, link: str) -> list[tuple[int, list[uuid.UUID], int]]:
        """``(batch, key_ids, nbytes)`` of every staged batch of ``link``, oldest first."""
        link = _check_name(link, "link")
        with self._lock:
            self._check_open()
            rows = self._conn.execute(
                "SELECT batch, key_ids, length(material) FROM link_batches WHERE link = ? ORDER BY batch", (link,)
            ).fetchall()
        return [(batch, [uuid.UUID(k) for k in ids.split(",")], size) for batch, ids, size in rows]

    def commit_batch(self, link: str, batch: int) -> int:
        """Append a staged batch to ``link``'s stream (and live pool); returns the offset of its first byte."""
        link = _check_name(link, "link")
        _check_batch(batch)
        holder: list[bytes] = []

        def body(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT material FROM link_batches WHERE batch = ? AND link = ?", (batch, link)
            ).fetchone()
            if row is None:
                raise StoreError(f"link {link}: no staged batch {batch}")
            data = bytes(row[0])
            end = _stream_end(conn, link)
            _append(conn, link, end, data)
            conn.execute("DELETE FROM link_batches WHERE batch = ?", (batch,))
            holder.append(data)
            return end

        with self._feed_lock:
            start: int = self._write(f"committing batch {batch} of link {link}", body)
            live = self._pools.get(link)
            if live is not None:
                live.add(holder[0])
            return start

    def drop_batch(self, link: str, batch: int) -> None:
        """Discard a staged batch (the neighbour could not get the same key from the KME)."""
        link = _check_name(link, "link")
        _check_batch(batch)

        def body(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM link_batches WHERE batch = ? AND link = ?", (batch, link))

        self._write(f"dropping batch {batch} of link {link}", body)

    def links(self) -> dict[str, tuple[int, int]]:
        """Every link direction with ``(position, end)``: the first unconsumed offset and the stream's end."""
        with self._lock:
            self._check_open()
            rows = self._conn.execute("SELECT link, position, stream_end FROM links ORDER BY link").fetchall()
        return {link: (position, end) for link, position, end in rows}

    def pool(self, link: str) -> LinkKeyPool:
        """The link direction's ``LinkKeyPool``, resuming at the recorded position.

        One live pool per link per store: calling again returns the same object. Its
        ``on_consume`` commits the new position (and deletes the material behind it)
        before any material is handed out. Raises ``UnknownLinkError`` for a link that
        never had key added.
        """
        link = _check_name(link, "link")
        # A live pool is returned without the feed lock, which a refill holds across its commit:
        # a node's event loop asks for pools on every packet and must not wait for an fsync.
        live = self._pools.get(link)
        if live is not None:
            self._check_open()
            return live
        with self._feed_lock:
            self._check_open()
            live = self._pools.get(link)
            if live is not None:
                return live
            with self._lock:
                try:
                    row = self._conn.execute(
                        "SELECT position, stream_end FROM links WHERE link = ?", (link,)
                    ).fetchone()
                    chunks = self._conn.execute(
                        "SELECT start, material FROM link_chunks WHERE link = ? ORDER BY start", (link,)
                    ).fetchall()
                except sqlite3.Error as exc:
                    raise StoreError(f"link store {self.path}: reading link {link} failed: {exc}") from exc
            if row is None:
                raise UnknownLinkError(f"link {link}: no key material was ever added")
            position, end = row
            buf = bytearray()
            try:
                expected = position
                for start, chunk in chunks:
                    skip = max(0, position - start)  # never more than the recorded position allows
                    if start + skip != expected or skip > len(chunk):
                        raise StoreError(
                            f"link {link}: stored material is not contiguous at offset {expected} "
                            f"(a row starts at {start}); refusing to guess"
                        )
                    buf += memoryview(chunk)[skip:]
                    expected = start + len(chunk)
                if expected != end:
                    raise StoreError(f"link {link}: stored material ends at offset {expected}, expected {end}")

                def on_consume(new_position: int) -> None:
                    self._record_position(link, new_position)

                self._recorded[link] = position

                live = LinkKeyPool(link, buf, position=position, on_consume=on_consume)
            finally:
                wipe(buf)
            self._pools[link] = live
            return live

    def _record_position(self, link: str, new_position: int) -> None:
        """Commit a position >= ``new_position`` for ``link`` and delete the stored material behind it.

        With ``lease_bytes`` the committed position runs ahead of use by up to that many
        bytes (capped at the stream's end), so most takes commit nothing; a restart resumes
        at the committed position and the leased bytes are never used.
        """
        if new_position <= self._recorded.get(link, -1):
            return  # within the lease already committed
        target = new_position + self.lease_bytes

        def body(conn: sqlite3.Connection) -> int:
            updated = conn.execute(
                "UPDATE links SET position = min(?, stream_end) WHERE link = ? AND position <= ? AND stream_end >= ?",
                (target, link, new_position, new_position),
            ).rowcount
            if updated != 1:
                raise StoreError(
                    f"link {link}: cannot record position {new_position} (behind the record or past the end)"
                )
            position = int(conn.execute("SELECT position FROM links WHERE link = ?", (link,)).fetchone()[0])
            conn.execute("DELETE FROM link_chunks WHERE link = ? AND start + length(material) <= ?", (link, position))
            partial = conn.execute(
                "SELECT start FROM link_chunks WHERE link = ? AND start < ?", (link, position)
            ).fetchone()
            if partial is not None:  # keep only the unconsumed tail of the row the position falls in
                start = partial[0]
                conn.execute(
                    "UPDATE link_chunks SET start = ?, material = substr(material, ?) WHERE link = ? AND start = ?",
                    (position, position - start + 1, link, start),
                )
            return position

        self._recorded[link] = self._write(f"recording link {link} position {new_position}", body)
