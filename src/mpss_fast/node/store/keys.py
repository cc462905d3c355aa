"""Ready key material per SAE pair, carved into application keys: the store behind confirmed delivery.

Both ends of an application pair (master SAE at the source node S, slave SAE at the
destination node D) keep, per pair ``(master, slave)``, key material made *ahead* of
demand, so that an ETSI 014 ``enc_keys`` answer at S only hands out keys D can hand out
too. Material arrives in **units**: one relayed random number with a 16-byte unit ID (the
MPSS session ID). A unit is

* ``pending``: S made it and sent its shares (S keeps it to check D's proof), or D rebuilt
  it and sent its proof to S;
* ``ready``: S verified D's proof, and D learnt that it did. Only ready material is ever
  carved into keys;
* gone: discarded (proof mismatch, expiry while pending) or fully consumed. Its bytes are
  overwritten in place, the row deleted with ``PRAGMA secure_delete=ON`` (SQLite zeroes the
  freed space), and a tombstone keeps its ID so it is never added again.

**Carving.** ``issue(pair, sizes)`` at S takes the bytes of each key from the pair's ready
units in the order they became ready, continuing in a partly used unit where the previous
issue stopped; each key gets a fresh UUID and a ledger record ``key_ID -> [(unit_id,
start, length), ...]``. All or nothing: with fewer ready bytes than the sum, nothing is
taken (``NotEnoughKeyError``). The key bytes are returned and overwritten in the store in
the same committed transaction. Every unit has a ``used`` offset that only grows, and a
range must start exactly at it, so no byte serves two keys.

**Applying at D.** D learns each issue as S's record (pushed by code outside this module)
and checks it with ``apply_issue``: every range must name a ready unit of the pair here,
start at its ``used`` offset and end within it; anything else is ``LedgerMismatchError``
(S and D disagree) and nothing of the record is applied. ``take(pair, key_ids)`` then hands
each key out once and overwrites its bytes.

Durability and files follow ``links.py`` (``docs/node-store.md``): one SQLite file of its
own (``keystore_path(node_db)``: ``<stem>.keys.db`` next to the node's store), WAL with
``synchronous=FULL`` (every commit fsynced before the call returns), ``BEGIN IMMEDIATE``
per operation, directory ``0700`` and files ``0600`` (a store others may read is
refused), a ``flock`` so one process holds it, a schema version table. See
``docs/key-stores.md`` for the life cycle, a worked example and crash behaviour.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from ...exceptions import (
    InputTypeError,
    KeyAlreadyDeliveredError,
    KeyNotFoundError,
    ParameterError,
    StoreError,
)
from . import db
from .db import key_id_text

KEYSTORE_SCHEMA_VERSION = 2
"""The schema this module writes (table ``keystore_version``). A newer one is refused."""

KEYSTORE_SUFFIX = ".keys.db"
"""``keystore_path("state/S.db")`` is ``state/S.keys.db``: the key store sits next to the link store."""

MAX_UNIT_BYTES = 1 << 20
"""The largest unit accepted (a unit is one relayed number: 32..4096 bytes in practice)."""

MAX_KEYS_PER_REQUEST = 4096
"""The most keys one ``issue`` or ``take`` may ask for."""

MAX_SAE_ID_CHARS = 128
"""SAE IDs are at most this long (ETSI 014 as ``etsi014.model`` checks them)."""

PENDING = "pending"
"""A unit not yet confirmed: S awaits D's proof, or D awaits S's verdict. Never handed out."""
READY = "ready"
"""A confirmed unit: its unused bytes may be carved into keys."""

ISSUED = "issued"
"""At S: the key was carved by ``issue``; its bytes are gone from the units (a prepared key keeps them in
``prepared`` until ``hand_out`` gives them to one request)."""
COLLECTABLE = "collectable"
"""At D: S's record was applied; ``take`` will hand the key out once."""
DELIVERED = "delivered"
"""At D: the key was handed out by ``take``; a tombstone without bytes remains."""

CONSUMED = "consumed"
"""Discard reason: every byte of the unit was carved into keys and (at D) taken."""
EXPIRED = "expired"
"""Discard reason: the unit stayed pending longer than ``expire`` allows."""
MISMATCH = "mismatch"
"""Discard reason for the caller: D's proof did not match S's number."""

_SOURCE = "S"
_DESTINATION = "D"
_REASON = re.compile(r"[a-z][a-z0-9_-]{0,31}")

_PREPARED = (
    # S: keys carved and recorded ahead of requests, their bytes kept until one request takes them
    # (``issue(prepare=True)``, ``hand_out``); only those at or below the push mark are handed out.
    "CREATE TABLE prepared ("
    " key_id TEXT PRIMARY KEY,"
    " master TEXT NOT NULL, slave TEXT NOT NULL,"
    " seq INTEGER NOT NULL UNIQUE,"
    " key BLOB NOT NULL CHECK (length(key) > 0)) WITHOUT ROWID",
    "CREATE INDEX prepared_by_pair ON prepared (master, slave, length(key), seq)",
)

_PUSHED_PREPARED = (
    "FROM prepared AS p JOIN push_marks AS m ON m.master = p.master AND m.slave = p.slave"
    " WHERE p.master = ? AND p.slave = ? AND length(p.key) = ? AND p.seq <= m.seq"
)
"""A pair's prepared keys of one size that D applied (at or below the push mark): what ``hand_out`` gives."""

_SCHEMA = (
    "CREATE TABLE keystore_version (version INTEGER NOT NULL)",
    # Which end of each pair this store is: the first issue makes it S, the first applied record D.
    "CREATE TABLE pair_roles ("
    " master TEXT NOT NULL, slave TEXT NOT NULL,"
    " role TEXT NOT NULL CHECK (role IN ('S', 'D')),"
    " PRIMARY KEY (master, slave)) WITHOUT ROWID",
    # Live units. `id` is the rowid used for in-place (incremental blob) reads and overwrites.
    # used: bytes assigned to keys (from the start); taken: assigned bytes already overwritten.
    "CREATE TABLE units ("
    " id INTEGER PRIMARY KEY,"
    " unit_id BLOB NOT NULL UNIQUE CHECK (length(unit_id) = 16),"
    " master TEXT NOT NULL, slave TEXT NOT NULL,"
    " state TEXT NOT NULL CHECK (state IN ('pending', 'ready')),"
    " size INTEGER NOT NULL CHECK (size > 0),"
    " used INTEGER NOT NULL DEFAULT 0 CHECK (used >= 0 AND used <= size),"
    " taken INTEGER NOT NULL DEFAULT 0 CHECK (taken >= 0 AND taken <= used),"
    " ready_seq INTEGER UNIQUE,"
    " created REAL NOT NULL,"
    " material BLOB NOT NULL CHECK (length(material) = size),"
    " CHECK ((state = 'ready') = (ready_seq IS NOT NULL)),"
    " CHECK (state = 'ready' OR used = 0))",
    "CREATE INDEX units_ready ON units (master, slave, state, ready_seq)",
    "CREATE INDEX units_pending ON units (state, created)",
    "CREATE TRIGGER units_offsets_only_grow BEFORE UPDATE OF used, taken ON units"
    " WHEN NEW.used < OLD.used OR NEW.taken < OLD.taken"
    " BEGIN SELECT RAISE(ABORT, 'a unit''s used and taken offsets only grow'); END",
    "CREATE TRIGGER units_stay_ready BEFORE UPDATE OF state ON units"
    " WHEN OLD.state = 'ready' AND NEW.state <> 'ready'"
    " BEGIN SELECT RAISE(ABORT, 'a ready unit never becomes pending again'); END",
    # Units that are gone (discarded or consumed): their IDs are never accepted again.
    "CREATE TABLE gone_units ("
    " unit_id BLOB PRIMARY KEY, master TEXT NOT NULL, slave TEXT NOT NULL,"
    " reason TEXT NOT NULL, at REAL NOT NULL) WITHOUT ROWID",
    "CREATE TABLE discards ("
    " master TEXT NOT NULL, slave TEXT NOT NULL, reason TEXT NOT NULL, count INTEGER NOT NULL,"
    " PRIMARY KEY (master, slave, reason)) WITHOUT ROWID",
    # The ledger: one row per key (S: issued; D: collectable, then delivered) and its ranges.
    "CREATE TABLE keys ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " key_id TEXT NOT NULL UNIQUE,"
    " master TEXT NOT NULL, slave TEXT NOT NULL,"
    " state TEXT NOT NULL CHECK (state IN ('issued', 'collectable', 'delivered')),"
    " nbytes INTEGER NOT NULL CHECK (nbytes > 0),"
    " created REAL NOT NULL, delivered REAL)",
    "CREATE INDEX keys_by_pair ON keys (master, slave, state, seq)",
    "CREATE TABLE key_ranges ("
    " key_id TEXT NOT NULL, idx INTEGER NOT NULL,"
    " unit_id BLOB NOT NULL, start INTEGER NOT NULL CHECK (start >= 0), length INTEGER NOT NULL CHECK (length > 0),"
    " PRIMARY KEY (key_id, idx)) WITHOUT ROWID",
    # A byte of a unit starts at most one range: a second key carved at the same offset is refused.
    "CREATE UNIQUE INDEX key_ranges_by_unit ON key_ranges (unit_id, start)",
    # S: the last ledger seq D confirmed it applied, per pair (what to push again after a restart).
    "CREATE TABLE push_marks ("
    " master TEXT NOT NULL, slave TEXT NOT NULL, seq INTEGER NOT NULL,"
    " PRIMARY KEY (master, slave)) WITHOUT ROWID",
    *_PREPARED,
)

_MIGRATIONS: dict[int, tuple[str, ...]] = {1: _PREPARED}
"""Statements taking the schema from version v to v + 1."""

_LAYOUT = db.Schema("keystore_version", KEYSTORE_SCHEMA_VERSION, _SCHEMA, _MIGRATIONS, "key store schema version")


class UnitNotFoundError(StoreError, LookupError):
    """No live unit with this ID in the key store (never added, or already discarded or consumed)."""

    unit_id: str | None = None
    """The unit ID concerned, in hex."""


class UnitStateError(StoreError):
    """The unit exists but is in the wrong state for the operation (e.g. confirming a ready unit)."""

    unit_id: str | None = None
    """The unit ID concerned, in hex."""


class LedgerMismatchError(StoreError):
    """S's ledger record does not fit this store (D): S and D disagree; nothing of the record was applied."""

    key_id: str | None = None
    """The key ID of the record (text)."""
    unit_id: str | None = None
    """The unit the disagreement is about, in hex (``None`` if it is about the record as a whole)."""


class NotEnoughKeyError(StoreError):
    """The pair's ready material is shorter than the request; nothing was taken (answer 503, retry later)."""

    needed: int = 0
    """Bytes the request asked for."""
    available: int = 0
    """Ready bytes the pair held."""


class Range(NamedTuple):
    """``length`` bytes of unit ``unit_id`` (16 bytes, public) from byte ``start`` on."""

    unit_id: bytes
    start: int
    length: int

    def __repr__(self) -> str:
        return f"Range(unit_id=bytes.fromhex({self.unit_id.hex()!r}), start={self.start}, length={self.length})"


class LedgerRecord(NamedTuple):
    """One key's ledger record at S: its order ``seq`` in the store, its ID and its ranges. No key bytes."""

    seq: int
    key_id: uuid.UUID
    ranges: tuple[Range, ...]


class IssuedKey(NamedTuple):
    """A key carved by ``issue``: ID, bytes and the ranges to send to D. Its repr leaves the bytes out."""

    key_id: uuid.UUID
    key: bytes
    ranges: tuple[Range, ...]

    def __repr__(self) -> str:
        return f"IssuedKey(key_id={self.key_id!r}, key=<{len(self.key)} bytes>, ranges={self.ranges!r})"


def keystore_path(node_db: str | os.PathLike[str]) -> str:
    """The key store's file for the link store at ``node_db``: ``state/S.db`` -> ``state/S.keys.db``."""
    text = os.fspath(node_db)
    root, ext = os.path.splitext(text)
    return (root if ext == ".db" else text) + KEYSTORE_SUFFIX


# -- argument checks (messages never carry material) -------------------------------------------------


def _check_pair(pair: Any) -> tuple[str, str]:
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise InputTypeError(f"pair must be a (master_sae, slave_sae) tuple, not {type(pair).__name__}")
    for sae in pair:
        if type(sae) is not str:
            raise InputTypeError(f"SAE IDs must be str, not {type(sae).__name__}")
        if not 0 < len(sae) <= MAX_SAE_ID_CHARS:
            raise ParameterError(f"SAE IDs must be 1..{MAX_SAE_ID_CHARS} characters")
    return pair[0], pair[1]


def _check_unit_id(value: Any) -> bytes:
    if isinstance(value, uuid.UUID):
        return value.bytes
    if type(value) is not bytes:
        raise InputTypeError(f"unit_id must be 16 bytes or a uuid.UUID, not {type(value).__name__}")
    if len(value) != 16:
        raise ParameterError(f"unit_id must be 16 bytes, not {len(value)}")
    return value


def _check_material(value: Any) -> bytes:
    if isinstance(value, str) or not isinstance(value, (bytes, bytearray, memoryview)):
        raise InputTypeError(f"material must be bytes-like, not {type(value).__name__}")
    data = bytes(memoryview(value).cast("B"))
    if not 0 < len(data) <= MAX_UNIT_BYTES:
        raise ParameterError(f"a unit must hold 1..{MAX_UNIT_BYTES} bytes, not {len(data)}")
    return data


def _check_count(value: Any, what: str, *, minimum: int = 1) -> int:
    if type(value) is not int:
        raise InputTypeError(f"{what} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ParameterError(f"{what} must be >= {minimum}, not {value}")
    return value


def _check_time(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputTypeError(f"{what} must be a number, not {type(value).__name__}")
    return float(value)


def _check_requests(value: Any, what: str) -> Sequence[Any]:
    if not isinstance(value, (list, tuple)):
        raise InputTypeError(f"{what} must be a list, not {type(value).__name__}")
    if not 0 < len(value) <= MAX_KEYS_PER_REQUEST:
        raise ParameterError(f"{what} must hold 1..{MAX_KEYS_PER_REQUEST} items, not {len(value)}")
    return value


def _check_ranges(value: Any) -> tuple[Range, ...]:
    out = []
    for item in _check_requests(value, "ranges"):
        if not isinstance(item, (tuple, list)) or len(item) != 3:
            raise InputTypeError("each range must be a (unit_id, start, length) tuple")
        out.append(
            Range(
                _check_unit_id(item[0]),
                _check_count(item[1], "a range's start", minimum=0),
                _check_count(item[2], "a range's length"),
            )
        )
    return tuple(out)


def _hex(unit_id: bytes) -> str:
    return unit_id.hex()


class KeyStore(db.StoreFile):
    """Per-pair ready key material and the key ledger, in one SQLite file (see the module docstring).

    ``KeyStore(path)`` opens or creates the store (directory ``0700``, files ``0600``;
    ``StorePermissionError`` for a directory or file open to group or others;
    ``StoreLockedError`` if another ``KeyStore`` holds the file). ``clock`` timestamps
    keys, tombstones and discards. Thread-safe: one connection, one lock; every write is
    one ``BEGIN IMMEDIATE`` transaction committed (and fsynced) before the call returns.
    Use as a context manager or call ``close()``.

    ``pair`` arguments are ``(master_sae, slave_sae)``; unit IDs are 16 bytes (or a
    ``uuid.UUID``); key IDs are ``uuid.UUID``.
    """

    kind = "key store"

    def __init__(self, path: str | os.PathLike[str], *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        super().__init__(path, _LAYOUT)

    def __enter__(self) -> KeyStore:
        return self

    # -- units -----------------------------------------------------------------------

    def add_pending(self, pair: tuple[str, str], unit_id: bytes | uuid.UUID, material: Any, now: float) -> None:
        """Keep a new unit ``pending``: S after sending its shares, D after sending its proof.

        ``now`` is its creation time for ``expire``. Committed before this returns.
        ``UnitStateError`` if the ID is live or was ever discarded or consumed here (a
        replayed unit never comes back).
        """
        master, slave = _check_pair(pair)
        uid = _check_unit_id(unit_id)
        data = _check_material(material)
        created = _check_time(now, "now")

        def body(conn: sqlite3.Connection) -> None:
            if conn.execute("SELECT 1 FROM units WHERE unit_id = ?", (uid,)).fetchone() is not None:
                raise _unit_error(UnitStateError, uid, f"unit {_hex(uid)} is already in the key store")
            gone = conn.execute("SELECT reason FROM gone_units WHERE unit_id = ?", (uid,)).fetchone()
            if gone is not None:
                raise _unit_error(UnitStateError, uid, f"unit {_hex(uid)} was {gone[0]} earlier; it is never re-added")
            conn.execute(
                "INSERT INTO units (unit_id, master, slave, state, size, created, material)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (uid, master, slave, PENDING, len(data), created, data),
            )

        self._write(f"adding unit {_hex(uid)}", body)

    def confirm(self, unit_id: bytes | uuid.UUID) -> None:
        """Make a pending unit ``ready`` (S: D's proof verified; D: S said so); it joins the end of the carving queue.

        ``UnitNotFoundError`` if no such unit lives here; ``UnitStateError`` if it is already ready.
        """
        uid = _check_unit_id(unit_id)

        def body(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT state FROM units WHERE unit_id = ?", (uid,)).fetchone()
            if row is None:
                raise _missing_unit(conn, uid)
            if row[0] != PENDING:
                raise _unit_error(UnitStateError, uid, f"unit {_hex(uid)} is {row[0]}, not pending")
            seq = conn.execute("SELECT coalesce(max(ready_seq), 0) + 1 FROM units").fetchone()[0]
            conn.execute("UPDATE units SET state = ?, ready_seq = ? WHERE unit_id = ?", (READY, seq, uid))

        self._write(f"confirming unit {_hex(uid)}", body)

    def add_ready(self, pair: tuple[str, str], units: Sequence[tuple[bytes | uuid.UUID, Any]]) -> int:
        """Add confirmed units straight as ``ready``, in the given order, in one transaction.

        For a node that keeps pending units in memory (nothing of a unit in flight needs to
        survive a crash: an unconfirmed unit is never handed out, so losing one costs link
        key only) and commits only what the confirmation made ready. A unit already ready
        here is skipped (a confirmation seen twice); one pending here is made ready; one
        gone earlier raises ``UnitStateError`` and nothing is added. Returns how many were added.
        """
        master, slave = _check_pair(pair)
        items = [(_check_unit_id(uid), _check_material(material)) for uid, material in _check_requests(units, "units")]

        def body(conn: sqlite3.Connection) -> int:
            now = self._clock()
            seq = conn.execute("SELECT coalesce(max(ready_seq), 0) FROM units").fetchone()[0]
            added = 0
            for uid, data in items:
                gone = conn.execute("SELECT reason FROM gone_units WHERE unit_id = ?", (uid,)).fetchone()
                if gone is not None:
                    raise _unit_error(UnitStateError, uid, f"unit {_hex(uid)} was {gone[0]} earlier; never re-added")
                row = conn.execute("SELECT state, master, slave, size FROM units WHERE unit_id = ?", (uid,)).fetchone()
                if row is not None and (row[1], row[2], row[3]) != (master, slave, len(data)):
                    raise _unit_error(UnitStateError, uid, f"unit {_hex(uid)} is here for another pair or size")
                if row is not None and row[0] == READY:
                    continue
                seq += 1
                added += 1
                if row is None:
                    conn.execute(
                        "INSERT INTO units (unit_id, master, slave, state, size, created, material, ready_seq)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (uid, master, slave, READY, len(data), now, data, seq),
                    )
                else:
                    conn.execute("UPDATE units SET state = ?, ready_seq = ? WHERE unit_id = ?", (READY, seq, uid))
            return added

        result: int = self._write(f"adding {len(items)} ready unit(s) for {master}->{slave}", body)
        return result

    def pending_material(self, unit_id: bytes | uuid.UUID) -> bytes:
        """A pending unit's bytes, to check (S) or remake (D) the proof; never for an application.

        ``UnitNotFoundError`` if no such unit lives here; ``UnitStateError`` if it is ready
        (ready material leaves the store only through ``issue`` and ``take``).
        """
        uid = _check_unit_id(unit_id)

        def body(conn: sqlite3.Connection) -> bytes:
            row = conn.execute("SELECT state, material FROM units WHERE unit_id = ?", (uid,)).fetchone()
            if row is None:
                raise _missing_unit(conn, uid)
            if row[0] != PENDING:
                raise _unit_error(UnitStateError, uid, f"unit {_hex(uid)} is {row[0]}: its material is not readable")
            return bytes(row[1])

        result: bytes = self._read(f"reading unit {_hex(uid)}", body)
        return result

    def pending_units(self, pair: tuple[str, str]) -> list[bytes]:
        """IDs of the pair's pending units, oldest first (after a restart: ask the other end about each)."""
        master, slave = _check_pair(pair)
        rows = self._read(
            "listing pending units",
            lambda conn: conn.execute(
                "SELECT unit_id FROM units WHERE master = ? AND slave = ? AND state = ? ORDER BY created, id",
                (master, slave, PENDING),
            ).fetchall(),
        )
        return [bytes(row[0]) for row in rows]

    def unit_state(self, unit_id: bytes | uuid.UUID) -> str | None:
        """``"pending"``, ``"ready"``, or ``None`` for a unit that does not live here (any more)."""
        uid = _check_unit_id(unit_id)
        row = self._read(
            "reading a unit's state",
            lambda conn: conn.execute("SELECT state FROM units WHERE unit_id = ?", (uid,)).fetchone(),
        )
        return None if row is None else str(row[0])

    def discard(self, unit_id: bytes | uuid.UUID, reason: str) -> bool:
        """Overwrite and delete a unit (pending, or ready with no key awaiting collection); count it under ``reason``.

        ``reason`` is a short label (``[a-z][a-z0-9_-]*``, e.g. ``"mismatch"``). Returns
        ``False`` if no such unit lives here (nothing to do). ``UnitStateError`` for a
        unit some collectable key still has bytes in (D): those keys would be lost.
        """
        uid = _check_unit_id(unit_id)
        if type(reason) is not str or not _REASON.fullmatch(reason):
            raise ParameterError("reason must be a short lower-case label such as 'mismatch'")

        def body(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT id, master, slave, size, used, taken FROM units WHERE unit_id = ?", (uid,)
            ).fetchone()
            if row is None:
                return False
            rid, master, slave, size, used, taken = row
            if taken < used:
                raise _unit_error(
                    UnitStateError,
                    uid,
                    f"unit {_hex(uid)} still holds {used - taken} bytes of keys awaiting collection",
                )
            _finish(conn, rid, uid, master, slave, size, reason, self._clock())
            return True

        result: bool = self._write(f"discarding unit {_hex(uid)}", body)
        return result

    def expire(self, now: float, max_pending_age_s: float) -> int:
        """Overwrite and delete every pending unit created before ``now - max_pending_age_s``; returns how many."""
        cutoff = _check_time(now, "now") - _check_time(max_pending_age_s, "max_pending_age_s")
        at = float(now)

        def body(conn: sqlite3.Connection) -> int:
            rows = conn.execute(
                "SELECT id, unit_id, master, slave, size FROM units WHERE state = ? AND created < ?", (PENDING, cutoff)
            ).fetchall()
            for rid, uid, master, slave, size in rows:
                _finish(conn, rid, bytes(uid), master, slave, size, EXPIRED, at)
            return len(rows)

        result: int = self._write("expiring pending units", body)
        return result

    # -- counts --------------------------------------------------------------------------

    def ready_bytes(self, pair: tuple[str, str]) -> int:
        """Bytes of the pair's ready units not yet carved into keys."""
        master, slave = _check_pair(pair)
        row = self._read(
            "counting ready bytes",
            lambda conn: conn.execute(
                "SELECT coalesce(sum(size - used), 0) FROM units WHERE master = ? AND slave = ? AND state = ?",
                (master, slave, READY),
            ).fetchone(),
        )
        return int(row[0])

    def ready_count(self, pair: tuple[str, str], key_bytes: int) -> int:
        """How many keys of ``key_bytes`` bytes the ready material serves (ETSI 014 ``stored_key_count``).

        Keys may span units, so this is ``ready_bytes(pair) // key_bytes``.
        """
        size = _check_count(key_bytes, "key_bytes")
        return self.ready_bytes(pair) // size

    def pending_count(self, pair: tuple[str, str]) -> int:
        """How many of the pair's units are pending."""
        master, slave = _check_pair(pair)
        row = self._read(
            "counting pending units",
            lambda conn: conn.execute(
                "SELECT count(*) FROM units WHERE master = ? AND slave = ? AND state = ?", (master, slave, PENDING)
            ).fetchone(),
        )
        return int(row[0])

    def collectable_count(self, pair: tuple[str, str]) -> int:
        """At D: how many of the pair's keys were applied and not yet taken."""
        master, slave = _check_pair(pair)
        row = self._read(
            "counting collectable keys",
            lambda conn: conn.execute(
                "SELECT count(*) FROM keys WHERE master = ? AND slave = ? AND state = ?", (master, slave, COLLECTABLE)
            ).fetchone(),
        )
        return int(row[0])

    def discard_counts(self, pair: tuple[str, str] | None = None) -> dict[str, int]:
        """Units gone, by reason (``consumed``, ``expired``, and the caller's ``discard`` reasons), ever.

        For one pair, or summed over all pairs with ``pair=None``. Survives restarts.
        """
        args: tuple[str, ...] = ()
        if pair is None:
            query = "SELECT reason, sum(count) FROM discards GROUP BY reason"
        else:
            query, args = "SELECT reason, count FROM discards WHERE master = ? AND slave = ?", _check_pair(pair)
        rows = self._read("reading discard counts", lambda conn: conn.execute(query, args).fetchall())
        return {str(reason): int(count) for reason, count in sorted(rows)}

    # -- S: carving -------------------------------------------------------------------------

    def issue(self, pair: tuple[str, str], sizes: Sequence[int], *, prepare: bool = False) -> list[IssuedKey]:
        """At S: carve one key per size (bytes) from the pair's ready units; all or nothing.

        Bytes are taken from the ready units in the order they became ready, each unit
        from its ``used`` offset on, so a key may span units. Each key gets a fresh
        ``uuid4`` key ID and a ledger record; its bytes are overwritten in the store, a
        unit used up is deleted (reason ``consumed``), and everything is committed before
        this returns. ``NotEnoughKeyError`` (``.needed``, ``.available``) when the pair's
        ready bytes are fewer than ``sum(sizes)``: nothing is taken.

        ``prepare=True``: the keys are carved ahead of any request. Their bytes are also kept,
        in the same transaction, until :meth:`hand_out` gives each to one request (once D has
        applied their records: see :meth:`mark_pushed`).
        """
        master, slave = _check_pair(pair)
        if type(prepare) is not bool:
            raise InputTypeError(f"prepare must be a bool, not {type(prepare).__name__}")
        wanted = [_check_count(size, "a key size") for size in _check_requests(sizes, "sizes")]
        needed = sum(wanted)

        def body(conn: sqlite3.Connection) -> list[IssuedKey]:
            _claim_role(conn, master, slave, _SOURCE)
            units = conn.execute(
                "SELECT id, unit_id, size, used FROM units"
                " WHERE master = ? AND slave = ? AND state = ? AND used < size ORDER BY ready_seq",
                (master, slave, READY),
            ).fetchall()
            available = sum(size - used for _, _, size, used in units)
            if available < needed:
                short = NotEnoughKeyError(
                    f"pair {master}->{slave}: {needed} bytes of key asked for, {available} ready; nothing was taken"
                )
                short.needed, short.available = needed, available
                raise short
            now = self._clock()
            out: list[IssuedKey] = []
            queue = [[rid, bytes(uid), size, used] for rid, uid, size, used in units]
            head = 0
            for nbytes in wanted:
                kid = _fresh_key_id(conn)
                buf = bytearray()
                ranges: list[Range] = []
                while len(buf) < nbytes:
                    rid, uid, size, used = queue[head]
                    n = min(nbytes - len(buf), size - used)
                    with conn.blobopen("units", "material", rid) as blob:
                        blob.seek(used)
                        buf += blob.read(n)
                        blob.seek(used)
                        blob.write(bytes(n))
                    conn.execute("UPDATE units SET used = used + ?, taken = taken + ? WHERE id = ?", (n, n, rid))
                    ranges.append(Range(uid, used, n))
                    queue[head][3] = used + n
                    if used + n == size:
                        _finish(conn, rid, uid, master, slave, size, CONSUMED, now)
                        head += 1
                seq = _record_key(conn, kid, master, slave, ISSUED, ranges, now)
                if prepare:
                    conn.execute(
                        "INSERT INTO prepared (key_id, master, slave, seq, key) VALUES (?, ?, ?, ?, ?)",
                        (kid, master, slave, seq, bytes(buf)),
                    )
                out.append(IssuedKey(uuid.UUID(kid), bytes(buf), tuple(ranges)))
                buf[:] = bytes(len(buf))
            return out

        result: list[IssuedKey] = self._write(f"issuing {len(wanted)} key(s) for {master}->{slave}", body)
        return result

    def records(self, pair: tuple[str, str], *, after: int = 0, limit: int | None = None) -> list[LedgerRecord]:
        """At S: the pair's ledger records with ``seq > after``, oldest first (what to push to D)."""
        master, slave = _check_pair(pair)
        after = _check_count(after, "after", minimum=0)
        cap = -1 if limit is None else _check_count(limit, "limit")

        def body(conn: sqlite3.Connection) -> list[LedgerRecord]:
            keys = conn.execute(
                "SELECT seq, key_id FROM keys WHERE master = ? AND slave = ? AND state = ? AND seq > ?"
                " ORDER BY seq LIMIT ?",
                (master, slave, ISSUED, after, cap),
            ).fetchall()
            return [LedgerRecord(seq, uuid.UUID(kid), _ranges_of(conn, kid)) for seq, kid in keys]

        result: list[LedgerRecord] = self._read("reading ledger records", body)
        return result

    def mark_pushed(self, pair: tuple[str, str], seq: int) -> None:
        """At S: remember that D applied the pair's records up to ``seq`` (the mark never moves back)."""
        master, slave = _check_pair(pair)
        seq = _check_count(seq, "seq", minimum=0)

        def body(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO push_marks (master, slave, seq) VALUES (?, ?, ?)"
                " ON CONFLICT (master, slave) DO UPDATE SET seq = max(seq, excluded.seq)",
                (master, slave, seq),
            )

        self._write("recording a push mark", body)

    def pushed(self, pair: tuple[str, str]) -> int:
        """At S: the ``seq`` last given to ``mark_pushed`` for the pair (0 if none): push ``records(after=...)``."""
        master, slave = _check_pair(pair)
        row = self._read(
            "reading a push mark",
            lambda conn: conn.execute(
                "SELECT seq FROM push_marks WHERE master = ? AND slave = ?", (master, slave)
            ).fetchone(),
        )
        return 0 if row is None else int(row[0])

    def hand_out(self, pair: tuple[str, str], size: int, count: int) -> list[tuple[uuid.UUID, bytes]]:
        """At S: ``count`` prepared keys of ``size`` bytes whose records D applied, oldest first; each once.

        Only keys at or below the pair's push mark qualify (D holds them). They are deleted
        here (``secure_delete`` zeroes the freed space) in the transaction that returns
        them, committed before this returns; all or nothing: with fewer such keys,
        ``NotEnoughKeyError`` (``.needed``, ``.available`` in keys) and nothing is taken.
        """
        master, slave = _check_pair(pair)
        size = _check_count(size, "size")
        count = _check_count(count, "count")

        def body(conn: sqlite3.Connection) -> list[tuple[uuid.UUID, bytes]]:
            rows = conn.execute(
                f"SELECT p.key_id, p.key {_PUSHED_PREPARED} ORDER BY p.seq LIMIT ?",
                (master, slave, size, count),
            ).fetchall()
            if len(rows) < count:
                short = NotEnoughKeyError(
                    f"pair {master}->{slave}: {count} prepared keys of {size} bytes asked for, {len(rows)} held"
                )
                short.needed, short.available = count, len(rows)
                raise short
            conn.executemany("DELETE FROM prepared WHERE key_id = ?", [(kid,) for kid, _ in rows])
            return [(uuid.UUID(kid), bytes(key)) for kid, key in rows]

        result: list[tuple[uuid.UUID, bytes]] = self._write(
            f"handing out {count} prepared key(s) for {master}->{slave}", body
        )
        return result

    def prepared_count(self, pair: tuple[str, str], size: int) -> int:
        """At S: how many prepared keys of ``size`` bytes :meth:`hand_out` could give now (at or below the mark)."""
        master, slave = _check_pair(pair)
        size = _check_count(size, "size")
        row = self._read(
            "counting prepared keys",
            lambda conn: conn.execute(
                f"SELECT count(*) {_PUSHED_PREPARED}",
                (master, slave, size),
            ).fetchone(),
        )
        return int(row[0])

    def drop_prepared(self, pair: tuple[str, str], key_ids: Sequence[uuid.UUID]) -> int:
        """At S: forget the kept bytes of these prepared keys (their records went to D as void, or
        were never confirmed); returns how many were held. Keys not prepared are ignored."""
        master, slave = _check_pair(pair)
        kids = [key_id_text(kid) for kid in _check_requests(key_ids, "key_ids")]

        def body(conn: sqlite3.Connection) -> int:
            dropped = 0
            for kid in kids:
                dropped += conn.execute(
                    "DELETE FROM prepared WHERE key_id = ? AND master = ? AND slave = ?", (kid, master, slave)
                ).rowcount
            return dropped

        result: int = self._write(f"dropping prepared keys of {master}->{slave}", body)
        return result

    # -- D: applying S's records and handing keys out ------------------------------------------

    def apply_issue(self, pair: tuple[str, str], key_id: uuid.UUID, ranges: Sequence[Any]) -> bool:
        """At D: check S's record for ``key_id`` and make the key collectable; all or nothing.

        Each range ``(unit_id, start, length)`` must name a ready unit of ``pair`` in this
        store, start exactly at its ``used`` offset (as advanced by the record's earlier
        ranges) and end within it; the units' ``used`` offsets then move past the ranges.
        Anything else raises ``LedgerMismatchError`` naming the key and the unit, and
        nothing is applied. A record already applied with the same ranges (S pushed it
        again) returns ``False``; ``True`` when applied.
        """
        master, slave = _check_pair(pair)
        kid = key_id_text(key_id)
        wanted = _check_ranges(ranges)
        result: bool = self._write(
            f"applying the record of key {kid}",
            lambda conn: _apply_record(conn, master, slave, kid, wanted, self._clock()),
        )
        return result

    def apply_issues(self, pair: tuple[str, str], records: Sequence[tuple[uuid.UUID, Sequence[Any]]]) -> int:
        """``apply_issue`` for many ``(key_id, ranges)`` records of one pair in one transaction, in order.

        All or nothing: the first record that does not fit raises ``LedgerMismatchError``
        and none is applied. Returns how many were new (a record seen before counts 0).
        """
        master, slave = _check_pair(pair)
        checked = [(key_id_text(kid), _check_ranges(ranges)) for kid, ranges in _check_requests(records, "records")]

        def body(conn: sqlite3.Connection) -> int:
            now = self._clock()
            return sum(_apply_record(conn, master, slave, kid, wanted, now) for kid, wanted in checked)

        result: int = self._write(f"applying {len(checked)} record(s) for {master}->{slave}", body)
        return result

    def apply_void(self, pair: tuple[str, str], records: Sequence[tuple[uuid.UUID, Sequence[Any]]]) -> int:
        """At D: move past the bytes of keys S carved but never handed out; their bytes are overwritten.

        Lenient where ``apply_issues`` is strict, because a void record only has to keep D's
        ``used`` offsets in step with S's: a range of a unit not here (never confirmed here,
        or gone) or already passed is skipped; a range at a unit's ``used`` offset moves it on
        and overwrites the bytes; a key already recorded (S's push arrived, its answer did not)
        is taken out of collection. A range past ``used`` is ``LedgerMismatchError`` (bytes S
        never told D about). One transaction; returns how many bytes were voided here.
        """
        master, slave = _check_pair(pair)
        checked = [(key_id_text(kid), _check_ranges(ranges)) for kid, ranges in _check_requests(records, "records")]

        def body(conn: sqlite3.Connection) -> int:
            now = self._clock()
            voided = 0
            for kid, ranges in checked:
                known = conn.execute("SELECT state FROM keys WHERE key_id = ?", (kid,)).fetchone()
                if known is not None:
                    if known[0] == COLLECTABLE:
                        _take_key(conn, kid, master, slave, now)  # applied earlier: out of collection, wiped
                    continue
                for uid, start, length in ranges:
                    row = conn.execute(
                        "SELECT id, master, slave, state, size, used, taken FROM units WHERE unit_id = ?", (uid,)
                    ).fetchone()
                    if row is None or (row[1], row[2]) != (master, slave) or row[3] != READY:
                        continue
                    rid, _, _, _, size, used, taken = row
                    if start + length <= used:
                        continue
                    if start != used or start + length > size:
                        raise _mismatch(
                            kid, uid, f"void key {kid}: unit {_hex(uid)} range {start}+{length}, used {used}"
                        )
                    with conn.blobopen("units", "material", rid) as blob:
                        blob.seek(start)
                        blob.write(bytes(length))
                    conn.execute(
                        "UPDATE units SET used = used + ?, taken = taken + ? WHERE id = ?", (length, length, rid)
                    )
                    voided += length
                    if taken + length == size:
                        _finish(conn, rid, uid, master, slave, size, CONSUMED, now)
            return voided

        result: int = self._write(f"voiding {len(checked)} record(s) for {master}->{slave}", body)
        return result

    def take(self, pair: tuple[str, str], key_ids: Sequence[uuid.UUID]) -> list[bytes]:
        """At D (ETSI 014 ``dec_keys``): the keys' bytes, each handed out once ever; all or nothing.

        The ranges' bytes are overwritten, a unit whose every byte was taken is deleted
        (reason ``consumed``) and the keys become ``delivered``, all committed before this
        returns. ``KeyNotFoundError`` for an ID not collectable for this pair (never applied,
        another pair's, or an issued key at S); ``KeyAlreadyDeliveredError`` for one taken
        before. Either way nothing is handed out; both carry ``.key_id``.
        """
        master, slave = _check_pair(pair)
        kids = [key_id_text(kid) for kid in _check_requests(key_ids, "key_ids")]
        if len(set(kids)) != len(kids):
            raise ParameterError("the same key ID is asked for twice")

        def body(conn: sqlite3.Connection) -> list[bytes]:
            now = self._clock()
            out: list[bytes] = []
            for kid in kids:
                row = conn.execute("SELECT master, slave, state FROM keys WHERE key_id = ?", (kid,)).fetchone()
                if row is None or (row[0], row[1]) != (master, slave) or row[2] == ISSUED:
                    missing = KeyNotFoundError(f"no key {kid} for pair {master}->{slave}")
                    missing.key_id = kid
                    raise missing
                if row[2] == DELIVERED:
                    again = KeyAlreadyDeliveredError(f"key {kid} for pair {master}->{slave} was already delivered")
                    again.key_id = kid
                    raise again
                buf = _take_key(conn, kid, master, slave, now)
                out.append(bytes(buf))
                buf[:] = bytes(len(buf))
            return out

        result: list[bytes] = self._write(f"taking {len(kids)} key(s) for {master}->{slave}", body)
        return result

    def key_state(self, pair: tuple[str, str], key_id: uuid.UUID) -> str | None:
        """``"issued"`` (S), ``"collectable"`` or ``"delivered"`` (D), or ``None`` if unknown for the pair."""
        master, slave = _check_pair(pair)
        kid = key_id_text(key_id)
        row = self._read(
            "reading a key's state",
            lambda conn: conn.execute(
                "SELECT state FROM keys WHERE key_id = ? AND master = ? AND slave = ?", (kid, master, slave)
            ).fetchone(),
        )
        return None if row is None else str(row[0])

    def forget(self, before: float) -> int:
        """Drop ledger rows of issued (S) and delivered (D) keys, and unit tombstones, older than ``before``.

        Returns how many rows went. Afterwards S cannot push those records again, D answers
        "not found" instead of "already delivered" for those keys, and a forgotten unit ID
        would be accepted again: keep ``before`` well behind anything still in flight.
        """
        cutoff = _check_time(before, "before")

        def body(conn: sqlite3.Connection) -> int:
            old = [
                row[0]
                for row in conn.execute(
                    "SELECT key_id FROM keys WHERE ((state = ? AND created < ?) OR (state = ? AND delivered < ?))"
                    " AND key_id NOT IN (SELECT key_id FROM prepared)",
                    (ISSUED, cutoff, DELIVERED, cutoff),
                )
            ]
            for kid in old:
                conn.execute("DELETE FROM key_ranges WHERE key_id = ?", (kid,))
                conn.execute("DELETE FROM keys WHERE key_id = ?", (kid,))
            gone = conn.execute("DELETE FROM gone_units WHERE at < ?", (cutoff,)).rowcount
            return len(old) + int(gone)

        result: int = self._write("forgetting old ledger rows", body)
        return result


# -- helpers run inside a write transaction ----------------------------------------------------


def _apply_record(
    conn: sqlite3.Connection, master: str, slave: str, kid: str, wanted: tuple[Range, ...], now: float
) -> bool:
    """``KeyStore.apply_issue`` inside a write transaction."""
    known = conn.execute("SELECT master, slave FROM keys WHERE key_id = ?", (kid,)).fetchone()
    if known is not None:
        if tuple(known) == (master, slave) and _ranges_of(conn, kid) == wanted:
            return False
        raise _mismatch(kid, None, f"key {kid} is already recorded here with other ranges or another pair")
    _claim_role(conn, master, slave, _DESTINATION, key_id=kid)
    for i, (uid, start, length) in enumerate(wanted):
        row = conn.execute("SELECT master, slave, state, size, used FROM units WHERE unit_id = ?", (uid,)).fetchone()
        where = f"key {kid}, range {i}: unit {_hex(uid)}"
        if row is None:
            gone = conn.execute("SELECT reason FROM gone_units WHERE unit_id = ?", (uid,)).fetchone()
            what = "is unknown here" if gone is None else f"is gone here ({gone[0]})"
            raise _mismatch(kid, uid, f"{where} {what}")
        u_master, u_slave, state, size, used = row
        if (u_master, u_slave) != (master, slave):
            raise _mismatch(kid, uid, f"{where} belongs to another pair here")
        if state != READY:
            raise _mismatch(kid, uid, f"{where} is {state} here, not ready")
        if start != used:
            raise _mismatch(kid, uid, f"{where} starts at byte {start}, but its next unused byte here is {used}")
        if start + length > size:
            raise _mismatch(kid, uid, f"{where} ends at byte {start + length}, past its {size} bytes")
        conn.execute("UPDATE units SET used = used + ? WHERE unit_id = ?", (length, uid))
    _record_key(conn, kid, master, slave, COLLECTABLE, list(wanted), now)
    return True


def _take_key(conn: sqlite3.Connection, kid: str, master: str, slave: str, now: float) -> bytearray:
    """A collectable key's bytes, overwritten in the store; the key becomes delivered (inside a transaction)."""
    buf = bytearray()
    for uid, start, length in _ranges_of(conn, kid):
        unit = conn.execute("SELECT id, size, taken FROM units WHERE unit_id = ?", (uid,)).fetchone()
        if unit is None:
            raise StoreError(f"key {kid}: its unit {_hex(uid)} is missing from the key store")
        rid, size, taken = unit
        with conn.blobopen("units", "material", rid) as blob:
            blob.seek(start)
            buf += blob.read(length)
            blob.seek(start)
            blob.write(bytes(length))
        conn.execute("UPDATE units SET taken = taken + ? WHERE id = ?", (length, rid))
        if taken + length == size:
            _finish(conn, rid, uid, master, slave, size, CONSUMED, now)
    conn.execute("UPDATE keys SET state = ?, delivered = ? WHERE key_id = ?", (DELIVERED, now, kid))
    return buf


def _unit_error(cls: type[UnitNotFoundError] | type[UnitStateError], uid: bytes, message: str) -> StoreError:
    error = cls(message)
    error.unit_id = _hex(uid)
    return error


def _missing_unit(conn: sqlite3.Connection, uid: bytes) -> StoreError:
    gone = conn.execute("SELECT reason FROM gone_units WHERE unit_id = ?", (uid,)).fetchone()
    why = "was never added" if gone is None else f"is gone ({gone[0]})"
    return _unit_error(UnitNotFoundError, uid, f"unit {_hex(uid)} {why}")


def _mismatch(kid: str, uid: bytes | None, message: str) -> LedgerMismatchError:
    error = LedgerMismatchError(f"{message}: S and D disagree on this pair's ledger; nothing applied")
    error.key_id = kid
    error.unit_id = None if uid is None else _hex(uid)
    return error


def _claim_role(conn: sqlite3.Connection, master: str, slave: str, role: str, *, key_id: str | None = None) -> None:
    """Record that this store is ``role`` (S or D) for the pair, or refuse if it is the other end."""
    row = conn.execute("SELECT role FROM pair_roles WHERE master = ? AND slave = ?", (master, slave)).fetchone()
    if row is None:
        conn.execute("INSERT INTO pair_roles (master, slave, role) VALUES (?, ?, ?)", (master, slave, role))
    elif row[0] != role:
        here = "source (S)" if row[0] == _SOURCE else "destination (D)"
        message = f"pair {master}->{slave}: this key store is its {here} end"
        if key_id is not None:
            raise _mismatch(key_id, None, message)
        raise StoreError(message)


def _finish(
    conn: sqlite3.Connection, rid: int, uid: bytes, master: str, slave: str, size: int, reason: str, at: float
) -> None:
    """Overwrite a unit's material, delete its row (secure_delete zeroes the freed space), tombstone and count it."""
    conn.execute("UPDATE units SET material = zeroblob(?) WHERE id = ?", (size, rid))
    conn.execute("DELETE FROM units WHERE id = ?", (rid,))
    conn.execute(
        "INSERT INTO gone_units (unit_id, master, slave, reason, at) VALUES (?, ?, ?, ?, ?)",
        (uid, master, slave, reason, at),
    )
    conn.execute(
        "INSERT INTO discards (master, slave, reason, count) VALUES (?, ?, ?, 1)"
        " ON CONFLICT (master, slave, reason) DO UPDATE SET count = count + 1",
        (master, slave, reason),
    )


def _fresh_key_id(conn: sqlite3.Connection) -> str:
    while True:
        kid = str(uuid.uuid4())
        if conn.execute("SELECT 1 FROM keys WHERE key_id = ?", (kid,)).fetchone() is None:
            return kid


def _record_key(
    conn: sqlite3.Connection, kid: str, master: str, slave: str, state: str, ranges: list[Range], now: float
) -> int:
    """Record a key and its ranges in the ledger; returns its ``seq``."""
    seq = conn.execute(
        "INSERT INTO keys (key_id, master, slave, state, nbytes, created) VALUES (?, ?, ?, ?, ?, ?)",
        (kid, master, slave, state, sum(r.length for r in ranges), now),
    ).lastrowid
    assert seq is not None  # an INSERT into a rowid table always sets it
    conn.executemany(
        "INSERT INTO key_ranges (key_id, idx, unit_id, start, length) VALUES (?, ?, ?, ?, ?)",
        [(kid, i, r.unit_id, r.start, r.length) for i, r in enumerate(ranges)],
    )
    return seq


def _ranges_of(conn: sqlite3.Connection, kid: str) -> tuple[Range, ...]:
    rows = conn.execute(
        "SELECT unit_id, start, length FROM key_ranges WHERE key_id = ? ORDER BY idx", (kid,)
    ).fetchall()
    return tuple(Range(bytes(uid), start, length) for uid, start, length in rows)
