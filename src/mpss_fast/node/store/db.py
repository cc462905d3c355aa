"""One SQLite file of key material: private to its owner, held by one process, WAL and fsync, a versioned schema.

Both of a node's stores (``links.LinkStore``: link key streams; ``keys.KeyStore``: the
key stores of application pairs) open their file through here, so the rules live once:

* the directory is ``0700`` and every file ``0600`` whatever the umask, and a directory or
  file that group or others may use is refused with the ``chmod`` that fixes it;
* a ``flock`` on ``<path>-lock`` keeps a second process (or object) off the file;
* ``journal_mode=WAL`` with ``synchronous=FULL`` (every commit fsynced before it returns),
  ``secure_delete=ON`` and ``journal_size_limit=0`` (freed content zeroed, the WAL truncated);
* the schema's version in a table of its own: created when the file is new, migrated
  forward in the opening transaction, a newer one refused (never downgraded);
* each write is one ``BEGIN IMMEDIATE`` transaction, rolled back on any error.
"""

from __future__ import annotations

import os
import shlex
import sqlite3
import stat
import sys
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ...exceptions import (
    InputTypeError,
    StoreClosedError,
    StoreError,
    StoreLockedError,
    StorePermissionError,
    StoreVersionError,
)

if sys.platform != "win32":
    import fcntl

    def lock_file(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

else:  # pragma: no cover - the node daemon runs on Linux; Windows gets no exclusive lock

    def lock_file(fd: int) -> bool:
        return True


PRIVATE_MODES = os.name == "posix"
"""Whether the store checks and sets permission bits (Windows has none to check)."""

SIDE_FILES = ("-wal", "-shm", "-journal")
"""Files SQLite keeps next to the database; each may hold key material."""


def refusal(path: str, mode: int, *, directory: bool) -> StorePermissionError:
    """The one-line error for a store directory or file that group or others may use."""
    what = "directory" if directory else "file"
    if directory and mode & stat.S_ISVTX:  # a shared directory like /tmp: chmod would break it
        fix = "keep the store in a directory of its own, made with mkdir -m 700"
    else:
        fix = f"run chmod {'700' if directory else '600'} {shlex.quote(path)}"
    return StorePermissionError(
        f"node store {what} {path} is open to group or others (mode {mode:04o}) and would expose key material: {fix}"
    )


def check_private(path: str, *, directory: bool) -> None:
    """Refuse ``path`` if it exists and group or others have any permission on it."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(f"cannot check node store {path}: {exc.strerror or exc}") from exc
    if mode & 0o077:
        raise refusal(path, mode, directory=directory)


def prepare_location(path: str) -> str:
    """Create the store's directory (0700) if missing, then refuse a directory or file open to others.

    Returns the database's real path (SQLite resolves symbolic links and keeps ``-wal``
    and ``-shm`` next to the real file). Nothing is created if a check fails.
    """
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, mode=0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise StoreError(f"cannot create the node store directory {directory}: {exc.strerror or exc}") from exc
    else:
        os.chmod(directory, 0o700)  # exactly 0700, whatever the umask took away
    real = os.path.realpath(path)
    for folder in dict.fromkeys((directory, os.path.dirname(real))):
        check_private(folder, directory=True)
    for name in dict.fromkeys((path + "-lock", real, *(real + suffix for suffix in SIDE_FILES))):
        check_private(name, directory=False)
    return real


def open_private(path: str) -> int:
    """Open ``path`` read-write, creating it 0600 if missing; refuse it if group or others may use it."""
    flags = os.O_RDWR | getattr(os, "O_CLOEXEC", 0)
    try:
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            fd = os.open(path, flags)
        else:
            if PRIVATE_MODES:
                os.fchmod(fd, 0o600)  # the umask may have taken the owner's bits; never adds others'
    except OSError as exc:
        raise StoreError(f"cannot open node store file {path}: {exc.strerror or exc}") from exc
    if PRIVATE_MODES:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        if mode & 0o077:  # changed since the check
            os.close(fd)
            raise refusal(path, mode, directory=False)
    return fd


@dataclass(frozen=True)
class Schema:
    """One store's schema: what :func:`open_schema` creates in a new file and migrates an older one to."""

    table: str
    """The table holding the schema's version (one row)."""
    version: int
    """The version the statements create."""
    statements: Sequence[str]
    """The statements creating the schema in a new file (the version table among them)."""
    migrations: Mapping[int, Sequence[str]]
    """Statements taking the schema from version v to v + 1."""
    name: str
    """How errors name the version ("schema version")."""
    foreign_keys: bool = False
    """Whether SQLite enforces the schema's foreign keys."""


def open_file(path: str, schema: Schema, *, kind: str, owner: str) -> tuple[sqlite3.Connection, int]:
    """(connection, lock fd) of the store file at ``path``: checked private, locked, configured, its schema
    current (see the module docstring). ``kind`` ("link store") and ``owner`` ("LinkStore") word the errors:
    ``StorePermissionError``, ``StoreLockedError``, ``StoreVersionError``, ``StoreError``."""
    real = prepare_location(path) if PRIVATE_MODES else path
    lock_fd = open_private(path + "-lock")
    if not lock_file(lock_fd):
        os.close(lock_fd)
        raise StoreLockedError(f"{path} is already open in another {owner}")
    try:
        os.close(open_private(real))  # 0600 before SQLite creates it (and -wal, -shm with its mode)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
        try:
            configure(conn, path, foreign_keys=schema.foreign_keys)
            open_schema(conn, path, schema, kind=kind)
        except BaseException:
            conn.close()
            raise
    except sqlite3.Error as exc:
        os.close(lock_fd)
        raise StoreError(f"cannot open {kind} {path}: {exc}") from exc
    except BaseException:
        os.close(lock_fd)
        raise
    return conn, lock_fd


def configure(conn: sqlite3.Connection, path: str, *, foreign_keys: bool = False) -> None:
    """WAL, fsync at every commit, freed content zeroed, the WAL truncated at checkpoints."""
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise StoreError(f"{path}: SQLite refused WAL mode (got {mode!r})")
    conn.execute("PRAGMA synchronous=FULL")  # fsync the WAL at every commit: a commit is durable on return
    conn.execute("PRAGMA secure_delete=ON")  # zero deleted content (consumed pads, keys handed out, units gone)
    conn.execute("PRAGMA journal_size_limit=0")  # truncate the WAL when it is reset after a checkpoint
    if foreign_keys:
        conn.execute("PRAGMA foreign_keys=ON")


def open_schema(conn: sqlite3.Connection, path: str, schema: Schema, *, kind: str) -> None:
    """Create the schema in a new file, or check its version table and migrate it forward, in one transaction.

    ``kind`` ("link store") and ``schema.name`` ("schema version") word the errors.
    """
    table, version, migrations, schema_name = schema.table, schema.version, schema.migrations, schema.name
    if not table.isidentifier():  # a name from the calling module's code, never from input
        raise ValueError(f"not a table name: {table!r}")
    conn.execute("BEGIN IMMEDIATE")
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            for statement in schema.statements:
                conn.execute(statement)
            conn.execute(f"INSERT INTO {table} (version) VALUES (?)", (version,))  # noqa: S608 - checked name
        elif table not in tables:
            raise StoreVersionError(f"{path} is an SQLite database but not an mpss {kind}")
        else:
            rows = conn.execute(f"SELECT version FROM {table}").fetchall()  # noqa: S608 - checked name
            if len(rows) != 1 or type(rows[0][0]) is not int:
                raise StoreVersionError(f"{path}: the {table} table is damaged ({rows!r})")
            found = rows[0][0]
            if found > version:
                raise StoreVersionError(
                    f"{path} has {schema_name} {found}, newer than this mpss_fast's "
                    f"{version}: upgrade mpss_fast (the store is never downgraded)"
                )
            while found < version:
                if found not in migrations:
                    raise StoreVersionError(f"{path}: no migration from {schema_name} {found}")
                for statement in migrations[found]:
                    conn.execute(statement)
                found += 1
                conn.execute(f"UPDATE {table} SET version = ?", (found,))  # noqa: S608 - checked name
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def write(conn: sqlite3.Connection, what: str, body: Callable[[sqlite3.Connection], Any]) -> Any:
    """``body(conn)`` in one committed ``BEGIN IMMEDIATE`` transaction; on any error roll back and raise
    (an SQLite error as ``StoreError("<what> failed: ...")``). The caller holds its lock."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        result = body(conn)
        conn.execute("COMMIT")
        return result
    except BaseException as exc:
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:  # pragma: no cover - the original error says more
                pass
        if isinstance(exc, sqlite3.Error):
            raise StoreError(f"{what} failed: {exc}") from exc
        raise


def key_id_text(value: Any, what: str = "key_id") -> str:
    """A key ID (``uuid.UUID``) as the text the stores keep; ``InputTypeError`` for anything else."""
    if not isinstance(value, uuid.UUID):
        raise InputTypeError(f"{what} must be a uuid.UUID, not {type(value).__name__}")
    return str(value)


class StoreFile:
    """One store's SQLite file, held open by this process: the plumbing both stores share.

    Opened with :func:`open_file` (so private, locked, WAL, versioned); one connection
    guarded by one lock (``_write`` and ``_read`` run a body under it); a context manager;
    :meth:`close` checkpoints, closes and releases the lock, once. ``kind`` words the
    errors ("link store", "key store").
    """

    kind = "store"

    def __init__(self, path: str | os.PathLike[str], schema: Schema) -> None:
        self.path = os.fspath(path)
        self._lock = threading.Lock()  # guards the connection
        self._closed = False
        self._conn, self._lock_fd = open_file(self.path, schema, kind=self.kind, owner=type(self).__name__)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r}{', closed' if self._closed else ''})"

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(f"{self.kind} {self.path} is closed")

    def _write(self, what: str, body: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``body`` in one committed write transaction; on any error roll back and raise."""
        with self._lock:
            self._check_open()
            return write(self._conn, f"{self.kind} {self.path}: {what}", body)

    def _read(self, what: str, body: Callable[[sqlite3.Connection], Any]) -> Any:
        with self._lock:
            self._check_open()
            try:
                return body(self._conn)
            except sqlite3.Error as exc:
                raise StoreError(f"{self.kind} {self.path}: {what} failed: {exc}") from exc

    def _close_file(self) -> bool:
        """Checkpoint and truncate the WAL, close the database, release the lock; False if already closed."""
        with self._lock:
            if self._closed:
                return False
            self._closed = True
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:  # pragma: no cover - closing anyway; the WAL is replayed on reopen
                pass
            finally:
                self._conn.close()
                os.close(self._lock_fd)
            return True

    def close(self) -> None:
        """Checkpoint and truncate the WAL, close the database and release the lock (idempotent)."""
        self._close_file()

    def checkpoint(self) -> None:
        """Copy the WAL into the database and truncate it to zero bytes.

        Until then the WAL may still hold page images with material overwritten or consumed
        since the last checkpoint (``close()`` does this too; SQLite checkpoints by itself
        every 1000 pages).
        """
        with self._lock:
            self._check_open()
            try:
                busy, _, _ = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            except sqlite3.Error as exc:
                raise StoreError(f"{self.kind} {self.path}: checkpoint failed: {exc}") from exc
            if busy:  # pragma: no cover - only one connection ever opens the file
                raise StoreError(f"{self.kind} {self.path}: checkpoint could not complete (database busy)")
