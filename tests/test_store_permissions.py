"""Attack 5: key material at rest must not be readable by other local users.

The store's directory is 0700 and its files (database, -wal, -shm, -lock) are 0600 whatever
the umask; an existing store that group or others can read or write is refused, in one line
that says how to fix it, and ``mpss node`` exits with that line and no traceback.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mpss_fast import exceptions
from mpss_fast.exceptions import StoreError
from mpss_fast.node.store import LinkStore

from . import nodelab

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")

SUFFIXES = ("", "-wal", "-shm", "-lock")


@pytest.fixture
def umask() -> Iterator[None]:
    """Run the test under the usual default umask (group and others may read new files)."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _fill(store: LinkStore) -> None:
    store.add_key("A->B", bytes(range(256)) * 8)
    store.pool("A->B").take(16)
    store.stage_batch("A->B", [uuid.UUID(int=1)], b"k" * 32)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o000], ids=oct)
def test_a_new_store_is_private_whatever_the_umask(tmp_path: Path, mask: int) -> None:
    state = tmp_path / "state" / "node"  # neither directory exists yet
    db = state / "node.db"
    old = os.umask(mask)
    try:
        with LinkStore(db) as store:
            _fill(store)
            for suffix in SUFFIXES:  # all four exist while the store is open (WAL mode)
                path = Path(f"{db}{suffix}")
                assert _mode(path) == 0o600, (path, oct(_mode(path)))
            assert _mode(state) == 0o700
        with LinkStore(db) as store:  # reopened: still private, still accepted
            assert store.staged_batches("A->B") == [(1, [uuid.UUID(int=1)], 32)]
            for suffix in SUFFIXES:
                assert _mode(Path(f"{db}{suffix}")) == 0o600
    finally:
        os.umask(old)


def test_a_store_in_an_existing_private_directory_opens(tmp_path: Path, umask: None) -> None:
    assert _mode(tmp_path) & 0o077 == 0  # pytest's tmp_path is private: the other tests rely on it
    db = tmp_path / "node.db"
    with LinkStore(db) as store:
        _fill(store)
        modes = {suffix: oct(_mode(Path(f"{db}{suffix}"))) for suffix in SUFFIXES}
    assert modes == dict.fromkeys(SUFFIXES, "0o600")
    assert _mode(db) == 0o600


def _refused(db: Path) -> str:
    with pytest.raises(exceptions.StorePermissionError) as info:
        LinkStore(db)
    assert isinstance(info.value, StoreError)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o606, 0o601], ids=oct)
def test_a_store_file_open_to_group_or_others_is_refused(tmp_path: Path, umask: None, suffix: str, mode: int) -> None:
    db = tmp_path / "node.db"
    with LinkStore(db) as store:
        _fill(store)
    path = Path(f"{db}{suffix}")
    path.touch()  # -wal and -shm are removed on close: an old one left behind
    path.chmod(mode)
    message = _refused(db)
    assert str(path) in message and f"chmod 600 {path}" in message
    path.chmod(0o600)  # fixed as told: the store opens, nothing was lost, the lock was released
    with LinkStore(db) as store:
        assert store.staged_batches("A->B") == [(1, [uuid.UUID(int=1)], 32)]


@pytest.mark.parametrize("mode", [0o755, 0o750, 0o711, 0o770, 0o705, 0o1777], ids=oct)
def test_a_store_directory_open_to_group_or_others_is_refused(tmp_path: Path, umask: None, mode: int) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    db = state / "node.db"
    with LinkStore(db) as store:
        _fill(store)
    state.chmod(mode)
    message = _refused(db)
    assert str(state) in message
    if mode & stat.S_ISVTX:  # a shared directory like /tmp: the store belongs elsewhere
        assert "chmod" not in message and "directory of its own" in message
    else:
        assert f"chmod 700 {state}" in message
    state.chmod(0o700)
    with LinkStore(db) as store:
        assert store.staged_batches("A->B") == [(1, [uuid.UUID(int=1)], 32)]


def test_a_new_store_in_an_open_directory_is_refused_before_any_file_is_made(tmp_path: Path, umask: None) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    message = _refused(state / "node.db")
    assert f"chmod 700 {state}" in message
    assert list(state.iterdir()) == []  # no key file (not even the lock) was created there


def test_a_database_made_by_another_program_is_checked_too(tmp_path: Path, umask: None) -> None:
    import sqlite3

    db = tmp_path / "node.db"
    sqlite3.connect(db).close()  # 0644 under this umask
    assert _mode(db) == 0o644
    assert f"chmod 600 {db}" in _refused(db)


def _node_config(tmp_path: Path, db: Path) -> Path:
    configs = nodelab.diamond(
        2,
        db=lambda n: str(db),
        peer_url=lambda me, nb: "http://127.0.0.1:9",
        kme_url=lambda me, nb: "http://127.0.0.1:9",
        peer_listen=lambda n: "127.0.0.1:0",
        api_listen=lambda n: "127.0.0.1:0",
        udp={n: "127.0.0.1:9" for n in nodelab.node_names(2)},
    )
    path = tmp_path / "S.json"
    path.write_text(json.dumps({**configs["S"], "plain_http": True}))
    return path


def test_mpss_node_refuses_an_open_store_in_one_line(tmp_path: Path, umask: None) -> None:
    pytest.importorskip("aiohttp")
    pytest.importorskip("networkx")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    db = state / "S.db"
    LinkStore(db).close()
    db.chmod(0o644)
    proc = subprocess.run(
        [sys.executable, "-m", "mpss_fast", "node", "--config", str(_node_config(tmp_path, db))],
        capture_output=True,
        timeout=60,
        check=False,
    )
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("mpss: error: ") and f"chmod 600 {db}" in err
