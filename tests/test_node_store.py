"""The link store: link pads recorded before use and never reused across crashes; its schema migrated forward."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mpss_fast.exceptions import (
    InputTypeError,
    KeyPoolExhaustedError,
    KeyReuseError,
    ParameterError,
    StoreClosedError,
    StoreError,
    StoreLockedError,
    StoreVersionError,
    UnknownLinkError,
)
from mpss_fast.node.store import CHUNK_BYTES, SCHEMA_VERSION, LinkStore

from .rng import seeded_rng


def accept(material: memoryview) -> None:
    """A tag check that passes: these tests are about key positions, not tags."""


LINK = "A->B"
STREAM = seeded_rng(b"node store stream")(3 * CHUNK_BYTES + 123)


def _recorded(path: Path, link: str = LINK) -> int:
    """The position committed in the file, read by a connection of its own."""
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT position FROM links WHERE link = ?", (link,)).fetchone()[0])
    finally:
        conn.close()


def test_resume_after_reopen(tmp_path: Path) -> None:
    db = tmp_path / "node.db"
    with LinkStore(db) as store:
        store.add_key(LINK, STREAM[:5000])
        store.add_key(LINK, STREAM[5000:])
        pool = store.pool(LINK)
        assert store.pool(LINK) is pool  # one live pool per link
        assert (pool.position, pool.available) == (0, len(STREAM))
        k1, m1 = pool.take(100)
        k2, m2 = pool.take(4100)  # crosses a stored row boundary
        assert (k1, bytes(m1), k2, bytes(m2)) == (0, STREAM[:100], 100, STREAM[100:4200])
        assert pool.take_at(4300, 10, accept) == STREAM[4300:4310]  # 100 bytes skipped
        assert store.links() == {LINK: (4310, len(STREAM))}
    with LinkStore(db) as store:
        pool = store.pool(LINK)
        assert (pool.position, pool.available) == (4310, len(STREAM) - 4310)
        with pytest.raises(KeyReuseError):
            pool.take_at(4300, 10, accept)
        key_id, material = pool.take(len(STREAM) - 4310)
        assert (key_id, bytes(material)) == (4310, STREAM[4310:])
        store.add_key(LINK, b"more")  # key added later reaches the live pool
        assert pool.take(4) == (len(STREAM), bytearray(b"more"))
    with LinkStore(db) as store:
        assert store.pool(LINK).available == 0
        assert store.links() == {LINK: (len(STREAM) + 4, len(STREAM) + 4)}


def test_position_is_committed_before_material_is_returned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "node.db"
    store = LinkStore(db)
    store.add_key(LINK, STREAM)
    pool = store.pool(LINK)
    seen: list[tuple[int, int]] = []
    record = store._record_position

    def spy(link: str, new_position: int) -> None:
        record(link, new_position)
        seen.append((new_position, _recorded(db)))  # what another reader (or a restart) sees now

    monkeypatch.setattr(store, "_record_position", spy)
    pool.take(10)
    pool.take_at(50, 5, accept)
    assert seen == [(10, 10), (55, 55)]
    store.close()


def test_recording_failure_withholds_the_material_and_never_reuses_it(tmp_path: Path) -> None:
    db = tmp_path / "node.db"
    store = LinkStore(db)
    store.add_key(LINK, STREAM)
    pool = store.pool(LINK)
    pool.take(10)
    # A real failure inside SQLite: the UPDATE of the position aborts and the transaction rolls back.
    store._conn.execute(
        "CREATE TEMP TRIGGER fail_position BEFORE UPDATE ON links BEGIN SELECT RAISE(ABORT, 'injected'); END"
    )
    with pytest.raises(StoreError, match="injected"):
        pool.take(20)  # material 10..30 is wiped, not returned
    assert _recorded(db) == 10
    assert pool.position == 30
    assert bytes(pool._buf[: pool._head]) == bytes(pool._head)
    store._conn.execute("DROP TRIGGER fail_position")
    key_id, material = pool.take(5)
    assert (key_id, bytes(material)) == (30, STREAM[30:35])  # never 10..30 again
    with pytest.raises(KeyReuseError):
        pool.take_at(10, 20, accept)
    store.close()
    with LinkStore(db) as store:
        assert store.pool(LINK).position == 35


def test_closed_store_hands_out_nothing(tmp_path: Path) -> None:
    store = LinkStore(tmp_path / "node.db")
    store.add_key(LINK, STREAM)
    pool = store.pool(LINK)
    store.close()
    store.close()  # idempotent
    assert pool.available == 0 and bytes(pool._buf) == bytes(len(pool._buf))  # wiped on close
    with pytest.raises(KeyPoolExhaustedError):
        pool.take(1)
    pool.add(b"not from the store")
    with pytest.raises(StoreClosedError):
        pool.take(1)  # the position cannot be recorded: nothing is handed out
    for call in (lambda: store.add_key(LINK, b"x"), lambda: store.pool(LINK), lambda: store.links()):
        with pytest.raises(StoreClosedError):
            call()


CHILD = r"""
import sys
from mpss_fast.node.store import LinkStore

store = LinkStore(sys.argv[1], lease_bytes=int(sys.argv[3]))
pool = store.pool(sys.argv[2])
size = 1
out = sys.stdout
while True:
    key_id, material = pool.take(size)   # recorded durably before it returns
    out.write(f"{key_id} {size} {bytes(material[:4]).hex()}\n")  # reported only once "used"
    out.flush()
    size = size % 97 + 1
"""


@pytest.mark.parametrize(("lease", "cycles"), [(0, 10), (700, 6)], ids=["no-lease", "lease"])
def test_kill_9_at_random_moments_never_reuses_a_pad(tmp_path: Path, lease: int, cycles: int) -> None:
    db = tmp_path / "node.db"
    rng = random.Random(20240611 + lease)
    stream = seeded_rng(b"crash stream")(1 << 20)
    with LinkStore(db) as store:
        store.add_key(LINK, stream)
    used_until = 0  # end of the last range any child reported as used
    position = 0
    lost = reported = 0
    for _cycle in range(cycles):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(db), LINK, str(lease)], stdout=subprocess.PIPE, text=True, bufsize=1
        )
        assert child.stdout is not None
        target, lines = rng.randint(1, 300), []
        while len(lines) < target:
            line = child.stdout.readline()
            if not line:
                break
            lines.append(line)
        time.sleep(rng.uniform(0, 0.005))
        child.send_signal(signal.SIGKILL)
        lines += child.stdout.readlines()  # whatever it reported before dying
        child.wait()
        assert child.returncode == -signal.SIGKILL, f"child ended on its own: {lines[-3:]}"
        for line in lines:
            if not line.endswith("\n"):
                continue  # a report cut by the kill: that material counts as unreported
            key_id, size, head = line.split()
            key_id, size = int(key_id), int(size)
            assert key_id >= used_until, "a pad handed out twice"
            assert bytes.fromhex(head) == stream[key_id : key_id + min(size, 4)]
            used_until = key_id + size
            reported += size
        with LinkStore(db) as store:
            resumed = store.pool(LINK)
            assert resumed.position >= used_until  # everything reported is behind the resume point
            assert resumed.position >= position  # positions only move forward
            # lost: at most the lease plus the one take a kill can catch between recording and reporting
            assert resumed.position - used_until <= lease + 97
            lost += resumed.position - used_until
            position = used_until = resumed.position
            assert bytes(resumed.take(3)[1]) == stream[position : position + 3]
            position = used_until = position + 3
    print(f"\n{cycles} kill -9 cycles, lease {lease}: {reported} bytes reported used, {lost} lost, 0 reused")
    assert reported > 0


def _scan(directory: Path, needle: bytes) -> list[str]:
    return [p.name for p in directory.iterdir() if p.is_file() and needle in p.read_bytes()]


def test_consumed_material_is_gone_from_the_files(tmp_path: Path) -> None:
    db = tmp_path / "node.db"
    records = [b"PAD-%011d|" % i for i in range(2000)]  # 16 bytes each: record i is key IDs 16i..16i+15
    material = b"".join(records)
    with LinkStore(db) as store:
        store.add_key(LINK, material)
        store.checkpoint()
        assert _scan(tmp_path, records[0]) == ["node.db"]  # the scan does find stored material
        pool = store.pool(LINK)
        pool.take(16 * 1000 + 5)  # records 0..999 consumed, record 1000 partly
        pool.take_at(16 * 1500, 16, accept)  # 1001..1499 skipped (lost messages), 1500 consumed
        store.checkpoint()
        names = {p.name for p in tmp_path.iterdir()}
        leftovers = [i for i in range(1501) if any(records[i] in (tmp_path / n).read_bytes() for n in names)]
        assert leftovers == []
        assert _scan(tmp_path, records[1501]) == ["node.db"]  # unconsumed material is still there
    assert not (tmp_path / "node.db-wal").exists() or (tmp_path / "node.db-wal").stat().st_size == 0


def test_threads_share_one_store(tmp_path: Path) -> None:
    store = LinkStore(tmp_path / "node.db")
    store.add_key(LINK, STREAM[:1000])
    pool = store.pool(LINK)
    taken: list[tuple[int, bytes]] = []
    errors: list[BaseException] = []
    guard = threading.Lock()

    def taker() -> None:
        try:
            for _ in range(40):
                while True:
                    try:
                        key_id, material = pool.take(13)
                        break
                    except Exception as exc:  # exhausted: the feeder is behind
                        if "requested" not in str(exc):
                            raise
                        time.sleep(0.001)
                with guard:
                    taken.append((key_id, bytes(material)))
        except BaseException as exc:
            errors.append(exc)

    def feeder() -> None:
        try:
            for offset in range(1000, len(STREAM), 700):
                store.add_key(LINK, STREAM[offset : offset + 700])
        except BaseException as exc:
            errors.append(exc)

    def reader() -> None:
        try:
            for _ in range(30):
                position, end = store.links()[LINK]
                assert 0 <= position <= end
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=taker) for _ in range(4)]
    threads += [threading.Thread(target=feeder)] + [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(k for k, _ in taken) == [13 * i for i in range(160)]  # no overlap, no gap
    assert all(m == STREAM[k : k + 13] for k, m in taken)
    assert store.links()[LINK][0] == 13 * 160
    store.close()


BAD_CALLS: list[tuple[str, Any, type[Exception]]] = [
    ("unknown link", lambda s: s.pool("C->D"), UnknownLinkError),
    ("empty link", lambda s: s.add_key("", b"x"), ParameterError),
    ("link not str", lambda s: s.add_key(b"A->B", b"x"), InputTypeError),
    ("empty material", lambda s: s.add_key(LINK, b""), ParameterError),
    ("str material", lambda s: s.add_key(LINK, "key"), InputTypeError),
    ("int material", lambda s: s.add_key(LINK, 5), InputTypeError),
    ("negative start", lambda s: s.add_key(LINK, b"x", start=-1), ParameterError),
    ("bool start", lambda s: s.add_key(LINK, b"x", start=True), ParameterError),
    ("str start", lambda s: s.add_key(LINK, b"x", start="0"), ParameterError),
    ("start past the end", lambda s: s.add_key(LINK, b"x", start=1), StoreError),
    ("stream_end link not str", lambda s: s.stream_end(b"A->B"), InputTypeError),
    ("empty key_ids", lambda s: s.stage_batch(LINK, [], b"k"), ParameterError),
    ("str key_ids", lambda s: s.stage_batch(LINK, [str(uuid.uuid4())], b"k"), InputTypeError),
    ("one bad key_id", lambda s: s.stage_batch(LINK, [uuid.uuid4(), 7], b"k"), InputTypeError),
    ("empty batch material", lambda s: s.stage_batch(LINK, [uuid.uuid4()], b""), ParameterError),
    ("str batch material", lambda s: s.stage_batch(LINK, [uuid.uuid4()], "k"), InputTypeError),
    ("batch link not str", lambda s: s.stage_batch(None, [uuid.uuid4()], b"k"), InputTypeError),
    ("unknown batch", lambda s: s.commit_batch(LINK, 1), StoreError),
    ("commit link not str", lambda s: s.commit_batch(1, 1), InputTypeError),
    ("drop empty link", lambda s: s.drop_batch("", 1), ParameterError),
]


@pytest.mark.parametrize(("call", "error"), [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS])
def test_bad_inputs_raise_specific_errors(tmp_path: Path, call: Any, error: type[Exception]) -> None:
    with LinkStore(tmp_path / "node.db") as store:
        with pytest.raises(error):
            call(store)
        assert store.links() == {}  # nothing was written
        assert store.staged_batches(LINK) == []


def test_one_store_per_file(tmp_path: Path) -> None:
    with LinkStore(tmp_path / "node.db"), pytest.raises(StoreLockedError):
        LinkStore(tmp_path / "node.db")
    LinkStore(tmp_path / "node.db").close()  # released on close


def test_newer_schema_and_foreign_databases_are_refused(tmp_path: Path) -> None:
    db = tmp_path / "node.db"
    LinkStore(db).close()
    conn = sqlite3.connect(db)
    conn.execute("UPDATE schema_version SET version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(StoreVersionError, match="99, newer"):
        LinkStore(db)
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    other.chmod(0o600)  # private, or it is refused for that first (tests/test_store_permissions.py)
    with pytest.raises(StoreVersionError, match="not an mpss link store"):
        LinkStore(other)
    LinkStore(tmp_path / "fresh.db").close()  # and the lock was released after each refusal
    with pytest.raises(StoreVersionError):
        LinkStore(db)


# -- leases: the committed position runs ahead of use ---------------------------------


def _recordings(store: LinkStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The position-recording transactions ``store`` commits from now on (each one an fsync)."""
    seen: list[str] = []
    write = store._write

    def spy(what: str, body: Any) -> Any:
        result = write(what, body)
        if what.startswith("recording"):
            seen.append(what)
        return result

    monkeypatch.setattr(store, "_write", spy)
    return seen


def _chunk_starts(path: Path, link: str = LINK) -> list[int]:
    conn = sqlite3.connect(path)
    try:
        return [row[0] for row in conn.execute("SELECT start FROM link_chunks WHERE link = ? ORDER BY start", (link,))]
    finally:
        conn.close()


def test_lease_commits_ahead_so_most_takes_commit_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    counts = {}
    for lease in (0, 1000):
        db = tmp_path / f"lease-{lease}.db"
        with LinkStore(db, lease_bytes=lease) as store:
            assert store.lease_bytes == lease
            store.add_key(LINK, STREAM)
            commits = _recordings(store, monkeypatch)
            pool = store.pool(LINK)
            for _ in range(100):
                key_id, material = pool.take(10)
                assert bytes(material) == STREAM[key_id : key_id + 10]
                committed = _recorded(db)  # what a restart would resume at
                assert pool.position <= committed <= pool.position + lease  # every byte handed out is behind it
            assert store.links() == {LINK: (1000 + 10 * bool(lease), len(STREAM))}
            pool.take(10)  # to 1010: still inside the first lease
            pool.take(1)  # to 1011: a new lease, to 2011
            assert store.links()[LINK][0] == (2011 if lease else 1011)
            assert _chunk_starts(db)[0] == store.links()[LINK][0]  # leased material left the file too
            counts[lease] = len(commits)
    assert counts == {0: 102, 1000: 2}


def test_reopen_resumes_at_the_leased_position(tmp_path: Path) -> None:
    db = tmp_path / "node.db"
    with LinkStore(db, lease_bytes=500) as store:
        store.add_key(LINK, STREAM)
        pool = store.pool(LINK)
        pool.take(100)
        assert pool.take_at(150, 50, accept) == STREAM[150:200]
        assert (pool.high, store.links()) == (200, {LINK: (600, len(STREAM))})  # leased at the first take
        assert pool.position == 100  # 100..150 stays in the reordering window, in memory only
        assert pool.take(10) == (200, bytearray(STREAM[200:210]))  # this process still uses its lease
    with LinkStore(db, lease_bytes=500) as store:
        pool = store.pool(LINK)
        assert (pool.position, pool.available) == (600, len(STREAM) - 600)  # 210..600 leased, unused: lost
        for key_id in (0, 209, 210, 599):
            with pytest.raises(KeyReuseError):
                pool.take_at(key_id, 1, accept)
        assert pool.take(5) == (600, bytearray(STREAM[600:605]))
        assert store.links()[LINK][0] == 1105
    with LinkStore(db) as store:  # reopened without a lease: still behind every lease
        pool = store.pool(LINK)
        assert pool.position == 1105
        assert pool.take(1) == (1105, bytearray(STREAM[1105:1106]))
        assert store.links()[LINK][0] == 1106  # and no lease any more


def test_lease_is_capped_at_the_stream_end_and_renewed_after_more_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "node.db"
    with LinkStore(db, lease_bytes=1000) as store:
        store.add_key(LINK, STREAM[:100])
        commits = _recordings(store, monkeypatch)
        pool = store.pool(LINK)
        pool.take(10)
        assert store.links() == {LINK: (100, 100)} and len(commits) == 1  # capped, not 1010
        store.add_key(LINK, STREAM[100:150])
        assert pool.take(90) == (10, bytearray(STREAM[10:100]))  # inside the capped lease: no commit
        assert len(commits) == 1
        assert pool.take(1) == (100, bytearray(STREAM[100:101]))  # past it: a new lease, capped again
        assert len(commits) == 2 and store.links() == {LINK: (150, 150)}
        store.add_key(LINK, STREAM[150:5000])
        pool.take(49)
        assert len(commits) == 2
        assert pool.take_at(151, 1, accept) == STREAM[151:152]
        assert len(commits) == 3 and store.links() == {LINK: (1152, 5000)}
    with LinkStore(db, lease_bytes=1000) as store:
        pool = store.pool(LINK)
        assert (pool.position, pool.available) == (1152, 5000 - 1152)


def test_bad_lease_is_refused(tmp_path: Path) -> None:
    for bad in (-1, True, 1.5, "8", None):
        with pytest.raises(ParameterError):
            LinkStore(tmp_path / "node.db", lease_bytes=bad)
    assert list(tmp_path.iterdir()) == []  # refused before anything was opened


@settings(max_examples=30, deadline=None)
@given(
    lease=st.sampled_from([0, 1, 97, 4096, 20000]),
    steps=st.lists(
        st.tuples(st.sampled_from(["take", "take_at", "add", "reopen"]), st.integers(1, 900)), min_size=1, max_size=25
    ),
)
@example(lease=4096, steps=[("take", 10), ("add", 500), ("take", 2400), ("reopen", 1), ("take", 1)])  # capped, renewed
@example(lease=97, steps=[("take", 5), ("take_at", 60), ("reopen", 1), ("take", 3), ("reopen", 1), ("take_at", 1)])
def test_random_takes_and_reopens_never_hand_out_a_byte_twice(lease: int, steps: list[tuple[str, int]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "node.db"
        handed = bytearray(len(STREAM))  # 1 at every key ID ever handed out
        end = 2000
        store = LinkStore(db, lease_bytes=lease)
        try:
            store.add_key(LINK, STREAM[:end])
            pool = store.pool(LINK)
            for kind, size in steps:
                if kind == "reopen":
                    committed = _recorded(db)
                    store.close()
                    store = LinkStore(db, lease_bytes=lease)
                    pool = store.pool(LINK)
                    assert pool.position == pool.high == committed  # no window survives a restart
                    assert not any(handed[committed:])
                    continue
                if kind == "add":
                    if end < len(STREAM):
                        store.add_key(LINK, STREAM[end : end + size])
                        end = min(end + size, len(STREAM))
                    continue
                skip = size % 61 if kind == "take_at" else 0
                if pool.high + skip + size > end:
                    with pytest.raises(KeyPoolExhaustedError):
                        pool.take(size) if kind == "take" else pool.take_at(pool.high + skip, size, accept)
                    continue
                if kind == "take":
                    key_id, material = pool.take(size)
                else:
                    key_id, material = pool.high + skip, pool.take_at(pool.high + skip, size, accept)
                assert not any(handed[key_id : key_id + size]), "a byte handed out twice"
                handed[key_id : key_id + size] = b"\x01" * size
                assert bytes(material) == STREAM[key_id : key_id + size]
                committed = _recorded(db)
                assert pool.high <= committed <= min(pool.high + lease, end)
        finally:
            store.close()


# -- schema version 2: migration from version 1 ------------------------------------------

V1_SCHEMA = (  # the statements of schema version 1, as released
    "CREATE TABLE schema_version (version INTEGER NOT NULL)",
    "CREATE TABLE links ("
    " link TEXT PRIMARY KEY,"
    " position INTEGER NOT NULL CHECK (position >= 0),"
    " stream_end INTEGER NOT NULL CHECK (stream_end >= position))",
    "CREATE TABLE link_chunks ("
    " link TEXT NOT NULL REFERENCES links (link),"
    " start INTEGER NOT NULL,"
    " material BLOB NOT NULL,"
    " PRIMARY KEY (link, start)) WITHOUT ROWID",
    "CREATE TABLE keys ("
    " key_id TEXT PRIMARY KEY,"
    " peer TEXT NOT NULL,"
    " state TEXT NOT NULL CHECK (state IN ('issued', 'pending', 'delivered')),"
    " key_bytes BLOB,"
    " created REAL NOT NULL,"
    " delivered REAL)",
    "CREATE INDEX keys_by_peer ON keys (peer, state, created)",
)


def _make_v1(path: Path, *extra: str) -> None:
    """A version-1 node store as version 1 left it: link A->B consumed up to 100, one key in the old per-key table."""
    conn = sqlite3.connect(path)
    try:
        for statement in (*V1_SCHEMA, *extra):
            conn.execute(statement)
        conn.execute("INSERT INTO schema_version (version) VALUES (1)")
        conn.execute("INSERT INTO links (link, position, stream_end) VALUES (?, 100, ?)", (LINK, len(STREAM)))
        conn.execute(
            "INSERT INTO link_chunks (link, start, material) VALUES (?, 100, ?)", (LINK, STREAM[100:CHUNK_BYTES])
        )
        conn.executemany(
            "INSERT INTO link_chunks (link, start, material) VALUES (?, ?, ?)",
            ((LINK, s, STREAM[s : s + CHUNK_BYTES]) for s in range(CHUNK_BYTES, len(STREAM), CHUNK_BYTES)),
        )
        conn.execute(
            "INSERT INTO keys (key_id, peer, state, key_bytes, created) VALUES (?, 'sae-1', 'pending', ?, 1.0)",
            (str(uuid.UUID(int=1)), b"k" * 32),
        )
        conn.commit()
    finally:
        conn.close()
    path.chmod(0o600)  # as LinkStore leaves its files (a store open to others is refused)


def _schema(path: Path) -> tuple[list[tuple[Any, ...]], set[str]]:
    conn = sqlite3.connect(path)
    try:
        version = conn.execute("SELECT version FROM schema_version").fetchall()
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return version, tables
    finally:
        conn.close()


def test_a_version_1_database_is_migrated_with_its_link_material(tmp_path: Path) -> None:
    """Version 1 -> 2 adds the batches table, 2 -> 3 drops the old per-key table (keys now live, confirmed,
    in the key store); the link material, the part a node cannot make again, comes through intact."""
    assert SCHEMA_VERSION == 3
    db = tmp_path / "node.db"
    _make_v1(db)
    assert _schema(db) == ([(1,)], {"schema_version", "links", "link_chunks", "keys"})
    with LinkStore(db) as store:
        assert _schema(db) == ([(3,)], {"schema_version", "links", "link_chunks", "link_batches"})
        assert store.links() == {LINK: (100, len(STREAM))}
        assert store.stream_end(LINK) == len(STREAM)
        pool = store.pool(LINK)
        assert pool.take(5000) == (100, bytearray(STREAM[100:5100]))  # across the hand-made rows
        batch = store.stage_batch(LINK, [uuid.UUID(int=7)], b"fresh key")
        assert store.staged_batches(LINK) == [(batch, [uuid.UUID(int=7)], 9)]
    with LinkStore(db) as store:  # reopened: no second migration, everything still there
        assert _schema(db)[0] == [(3,)]
        assert store.staged_batches(LINK) == [(batch, [uuid.UUID(int=7)], 9)]
        assert store.commit_batch(LINK, batch) == len(STREAM)
        pool = store.pool(LINK)
        assert pool.take(len(STREAM) - 5100 + 9)[1] == STREAM[5100:] + b"fresh key"


def test_a_failed_migration_leaves_version_1_untouched(tmp_path: Path) -> None:
    db = tmp_path / "node.db"
    _make_v1(db, "CREATE TABLE link_batches (x)")  # the migration's CREATE TABLE fails
    with pytest.raises(StoreError, match="link_batches"):
        LinkStore(db)
    assert _schema(db)[0] == [(1,)]  # rolled back as a whole
    conn = sqlite3.connect(db)
    conn.execute("DROP TABLE link_batches")
    conn.execute("UPDATE schema_version SET version = 0")
    conn.commit()
    conn.close()
    with pytest.raises(StoreVersionError, match="no migration from schema version 0"):
        LinkStore(db)
    conn = sqlite3.connect(db)
    conn.execute("UPDATE schema_version SET version = 1")
    conn.commit()
    conn.close()
    with LinkStore(db) as store:  # the lock was released after each refusal; now it migrates
        assert store.links() == {LINK: (100, len(STREAM))}
    assert _schema(db)[0] == [(3,)]


def test_a_new_database_gets_version_3(tmp_path: Path) -> None:
    db = tmp_path / "node.db"
    LinkStore(db).close()
    assert _schema(db) == ([(3,)], {"schema_version", "links", "link_chunks", "link_batches"})


# -- add_key(start=): the receiver side of the link key exchange -------------------------


def test_add_key_with_start_ignores_a_repeated_batch_and_refuses_a_gap_or_overlap(tmp_path: Path) -> None:
    db = tmp_path / "node.db"
    with LinkStore(db) as store:
        assert store.stream_end(LINK) == 0
        assert store.links() == {}  # asking does not create the link
        assert store.add_key(LINK, STREAM[:100], start=0) is True
        assert store.add_key(LINK, STREAM[100:300]) is True  # no start: appended wherever the end is
        pool = store.pool(LINK)
        assert store.add_key(LINK, STREAM[300:400], start=300) is True
        assert pool.available == 400  # fed to the live pool
        for start, size in ((0, 100), (100, 200), (300, 100), (50, 10), (399, 1), (0, 400)):  # already held
            assert store.add_key(LINK, STREAM[start : start + size], start=start) is False
        assert pool.available == 400 and store.stream_end(LINK) == 400  # neither the pool nor the file grew
        for start, size in ((399, 2), (0, 401), (401, 5), (1000, 1)):  # overlaps the end, or leaves a gap
            with pytest.raises(StoreError, match=f"batch at offset {start}"):
                store.add_key(LINK, STREAM[start : start + size] or b"x", start=start)
        assert store.stream_end(LINK) == 400
        assert pool.take(400)[1] == STREAM[:400]
        assert store.add_key(LINK, STREAM[0:50], start=350) is False  # consumed already: still "held"
    with LinkStore(db) as store:
        assert store.stream_end(LINK) == 400
        assert store.add_key(LINK, STREAM[400:450], start=400) is True
        assert store.links() == {LINK: (400, 450)}


# -- staged batches: the sender side ---------------------------------------------------


def test_staged_batches_are_not_key_until_committed(tmp_path: Path) -> None:
    db = tmp_path / "node.db"
    ids = [uuid.UUID(int=i) for i in range(1, 6)]
    with LinkStore(db) as store:
        first = store.stage_batch(LINK, ids[:2], STREAM[:64])
        assert store.staged_batches(LINK) == [(first, ids[:2], 64)]
        assert store.staged_batches("B->A") == []
        assert store.stream_end(LINK) == 0
        with pytest.raises(UnknownLinkError):
            store.pool(LINK)  # staged key is never handed out
        assert store.commit_batch(LINK, first) == 0
        assert store.staged_batches(LINK) == []
        assert store.links() == {LINK: (0, 64)}
        pool = store.pool(LINK)
        second = store.stage_batch(LINK, ids[2:4], STREAM[64:128])
        third = store.stage_batch(LINK, ids[4:], bytearray(STREAM[128:160]))
        assert second < third
        assert pool.available == 64  # staged: not in the live pool
        with pytest.raises(KeyPoolExhaustedError):
            pool.take(65)
    with LinkStore(db) as store:  # staged batches survive a restart, with their key IDs
        assert store.staged_batches(LINK) == [(second, ids[2:4], 64), (third, ids[4:], 32)]
        pool = store.pool(LINK)
        assert store.commit_batch(LINK, third) == 64  # in the order committed, not staged
        assert pool.available == 96  # committed: fed to the live pool
        assert store.commit_batch(LINK, second) == 96
        assert store.staged_batches(LINK) == []
        assert pool.take(160)[1] == STREAM[:64] + STREAM[128:160] + STREAM[64:128]
    with LinkStore(db) as store:
        assert store.links() == {LINK: (160, 160)}


def test_commit_and_drop_of_unknown_or_foreign_batches(tmp_path: Path) -> None:
    db = tmp_path / "node.db"
    with LinkStore(db) as store:
        batch = store.stage_batch(LINK, [uuid.UUID(int=1)], b"abc")
        with pytest.raises(StoreError, match=f"no staged batch {batch + 1}"):
            store.commit_batch(LINK, batch + 1)
        with pytest.raises(StoreError, match="no staged batch"):
            store.commit_batch("B->A", batch)  # staged for another link
        store.drop_batch("B->A", batch)  # a no-op: not that link's batch
        assert store.staged_batches(LINK) == [(batch, [uuid.UUID(int=1)], 3)]
        assert store.links() == {}
        assert store.commit_batch(LINK, batch) == 0
        with pytest.raises(StoreError, match="no staged batch"):
            store.commit_batch(LINK, batch)  # committed once only
        assert store.links() == {LINK: (0, 3)}
        dropped = store.stage_batch(LINK, [uuid.UUID(int=2)], b"def")
        store.drop_batch(LINK, dropped)
        store.drop_batch(LINK, dropped)  # idempotent
        with pytest.raises(StoreError, match="no staged batch"):
            store.commit_batch(LINK, dropped)
        assert store.links() == {LINK: (0, 3)}
    store = LinkStore(db)
    store.close()
    for call in (
        lambda: store.stage_batch(LINK, [uuid.UUID(int=3)], b"x"),
        lambda: store.staged_batches(LINK),
        lambda: store.commit_batch(LINK, 1),
        lambda: store.drop_batch(LINK, 1),
        lambda: store.stream_end(LINK),
    ):
        with pytest.raises(StoreClosedError):
            call()


def test_dropped_batches_leave_no_material_in_the_files(tmp_path: Path) -> None:
    db = tmp_path / "node.db"
    dropped, kept = b"DROPPED-BATCH-%04d|" % 1, b"KEPT-BATCH-%04d|" % 2
    with LinkStore(db) as store:
        a = store.stage_batch(LINK, [uuid.UUID(int=1)], dropped * 8)
        store.stage_batch(LINK, [uuid.UUID(int=2)], kept * 8)
        store.checkpoint()
        assert _scan(tmp_path, dropped) == ["node.db"]  # the scan does find staged material
        store.drop_batch(LINK, a)
        store.checkpoint()
        assert _scan(tmp_path, dropped) == []
        assert _scan(tmp_path, kept) == ["node.db"]


def test_batch_numbers_of_the_wrong_type_are_refused(tmp_path: Path) -> None:
    with LinkStore(tmp_path / "node.db") as store:
        batch = store.stage_batch(LINK, [uuid.UUID(int=1)], b"abc")
        for bad in (str(batch), True, float(batch)):
            with pytest.raises(InputTypeError):
                store.commit_batch(LINK, bad)  # SQLite's type affinity would take "1" and True as batch 1
            with pytest.raises(InputTypeError):
                store.drop_batch(LINK, bad)
        assert store.staged_batches(LINK) == [(batch, [uuid.UUID(int=1)], 3)]


def test_a_huge_lease_is_refused_or_works(tmp_path: Path) -> None:
    try:
        store = LinkStore(tmp_path / "node.db", lease_bytes=1 << 63)
    except ParameterError:
        return
    with store:
        store.add_key(LINK, STREAM[:10])
        assert store.pool(LINK).take(1) == (0, bytearray(STREAM[:1]))
        assert store.links() == {LINK: (10, 10)}


# -- two neighbours exchanging link key ------------------------------------------------


class _Kme:
    """A toy KME shared by both ends of a link: the sender gets fresh keys, the receiver the same ones once."""

    def __init__(self) -> None:
        self._rng = seeded_rng(b"toy kme")
        self._next = 0
        self._held: dict[uuid.UUID, bytes] = {}

    def enc_keys(self, count: int) -> tuple[list[uuid.UUID], bytes]:
        ids = []
        for _ in range(count):
            self._next += 1
            ids.append(uuid.UUID(int=self._next))
            self._held[ids[-1]] = self._rng(32)
        return ids, b"".join(self._held[i] for i in ids)

    def dec_keys(self, ids: list[uuid.UUID]) -> bytes:
        return b"".join(self._held.pop(i) for i in ids)

    def lose(self, ids: list[uuid.UUID]) -> None:
        for i in ids:
            del self._held[i]


def test_two_neighbours_hand_out_identical_pads_for_identical_key_ids(tmp_path: Path) -> None:
    plan = random.Random(424242)
    kme = _Kme()
    a_db, b_db = tmp_path / "a.db", tmp_path / "b.db"
    sender, receiver = LinkStore(a_db, lease_bytes=100), LinkStore(b_db)
    stream = bytearray()  # the link's stream as both ends must hold it
    dropped: list[bytes] = []
    pools: dict[str, Any] = {}
    pads = misses = 0

    def announce(batch: int, ids: list[uuid.UUID], start: int, *, repeat: bool) -> None:
        material = kme.dec_keys(ids)  # the neighbour fetches the announced key IDs
        assert receiver.add_key(LINK, material, start=start) is True
        if repeat:  # the confirmation was lost and the sender announced again: harmless
            assert receiver.add_key(LINK, material, start=start) is False
        assert sender.commit_batch(LINK, batch) == start
        stream.extend(material)

    try:
        for round_ in range(60):
            ids, material = kme.enc_keys(plan.randint(1, 4))
            batch = sender.stage_batch(LINK, ids, material)
            start = sender.stream_end(LINK)
            assert start == receiver.stream_end(LINK) == len(stream)
            fate = plan.random()
            if fate < 0.25:  # the neighbour could not get the key: the sender drops the batch
                kme.lose(ids)
                sender.drop_batch(LINK, batch)
                dropped.append(material)
            elif fate < 0.35:  # the sender restarts before the confirmation; it announces the staged batch again
                sender.close()
                sender = LinkStore(a_db, lease_bytes=100)
                pools.pop("a", None)
                [(again, again_ids, nbytes)] = sender.staged_batches(LINK)
                assert (again, again_ids, nbytes) == (batch, ids, len(material))
                announce(again, again_ids, sender.stream_end(LINK), repeat=False)
            else:
                announce(batch, ids, start, repeat=fate > 0.9)
            assert sender.staged_batches(LINK) == []
            assert sender.stream_end(LINK) == receiver.stream_end(LINK) == len(stream)
            if round_ % 17 == 16:  # the receiver restarts too
                receiver.close()
                receiver = LinkStore(b_db)
                pools.pop("b", None)
            if not stream:
                continue
            a = pools.setdefault("a", sender.pool(LINK))
            b = pools.setdefault("b", receiver.pool(LINK))
            for _ in range(plan.randint(0, 3)):
                size = plan.randint(1, 40)
                if a.available < size:
                    break
                key_id, pad = a.take(size)
                if plan.random() < 0.1:  # the message is lost: the receiver never sees this key ID
                    misses += 1
                    continue
                assert b.take_at(key_id, size, accept) == pad == stream[key_id : key_id + size]
                pads += 1
        a = sender.pool(LINK)
        b = receiver.pool(LINK)
        if a.available:  # what is left: the same bytes at the same key IDs on both ends
            key_id, pad = a.take(a.available)
            assert b.take_at(key_id, len(pad), accept) == pad == stream[key_id:]
    finally:
        sender.close()
        receiver.close()
    assert dropped and pads > 20 and misses
    assert all(bytes(m) not in stream for m in dropped)  # a dropped batch never entered either stream


def test_stage_batch_refuses_a_bare_id_and_repeated_ids(tmp_path: Path) -> None:
    with LinkStore(tmp_path / "node.db") as store:
        with pytest.raises(InputTypeError, match=r"list of uuid\.UUID"):
            store.stage_batch(LINK, uuid.UUID(int=1), b"abc")  # type: ignore[arg-type]
        with pytest.raises(ParameterError, match="same key ID twice"):
            store.stage_batch(LINK, [uuid.UUID(int=1), uuid.UUID(int=1)], b"abcd")
        assert store.staged_batches(LINK) == []
