"""The node store: link pads recorded before use and never reused across crashes; e2e keys delivered once."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from mpss_fast.exceptions import (
    DuplicateKeyError,
    InputTypeError,
    KeyAlreadyDeliveredError,
    KeyNotFoundError,
    KeyPoolExhaustedError,
    KeyReuseError,
    ParameterError,
    StoreClosedError,
    StoreError,
    StoreLockedError,
    StoreVersionError,
    UnknownLinkError,
)
from mpss_fast.node import CHUNK_BYTES, NodeStore

from .rng import seeded_rng

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
    with NodeStore(db) as store:
        store.add_key(LINK, STREAM[:5000])
        store.add_key(LINK, STREAM[5000:])
        pool = store.pool(LINK)
        assert store.pool(LINK) is pool  # one live pool per link
        assert (pool.position, pool.available) == (0, len(STREAM))
        k1, m1 = pool.take(100)
        k2, m2 = pool.take(4100)  # crosses a stored row boundary
        assert (k1, bytes(m1), k2, bytes(m2)) == (0, STREAM[:100], 100, STREAM[100:4200])
        assert pool.take_at(4300, 10) == STREAM[4300:4310]  # 100 bytes skipped
        assert store.links() == {LINK: (4310, len(STREAM))}
    with NodeStore(db) as store:
        pool = store.pool(LINK)
        assert (pool.position, pool.available) == (4310, len(STREAM) - 4310)
        with pytest.raises(KeyReuseError):
            pool.take_at(4300, 10)
        key_id, material = pool.take(len(STREAM) - 4310)
        assert (key_id, bytes(material)) == (4310, STREAM[4310:])
        store.add_key(LINK, b"more")  # key added later reaches the live pool
        assert pool.take(4) == (len(STREAM), bytearray(b"more"))
    with NodeStore(db) as store:
        assert store.pool(LINK).available == 0
        assert store.links() == {LINK: (len(STREAM) + 4, len(STREAM) + 4)}


def test_position_is_committed_before_material_is_returned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "node.db"
    store = NodeStore(db)
    store.add_key(LINK, STREAM)
    pool = store.pool(LINK)
    seen: list[tuple[int, int]] = []
    record = store._record_position

    def spy(link: str, new_position: int) -> None:
        record(link, new_position)
        seen.append((new_position, _recorded(db)))  # what another reader (or a restart) sees now

    monkeypatch.setattr(store, "_record_position", spy)
    pool.take(10)
    pool.take_at(50, 5)
    assert seen == [(10, 10), (55, 55)]
    store.close()


def test_recording_failure_withholds_the_material_and_never_reuses_it(tmp_path: Path) -> None:
    db = tmp_path / "node.db"
    store = NodeStore(db)
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
        pool.take_at(10, 20)
    store.close()
    with NodeStore(db) as store:
        assert store.pool(LINK).position == 35


def test_closed_store_hands_out_nothing(tmp_path: Path) -> None:
    store = NodeStore(tmp_path / "node.db")
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
    for call in (lambda: store.add_key(LINK, b"x"), lambda: store.pool(LINK), lambda: store.pending_keys("p")):
        with pytest.raises(StoreClosedError):
            call()


CHILD = r"""
import sys
from mpss_fast.node import NodeStore

store = NodeStore(sys.argv[1])
pool = store.pool(sys.argv[2])
size = 1
out = sys.stdout
while True:
    key_id, material = pool.take(size)   # recorded durably before it returns
    out.write(f"{key_id} {size} {bytes(material[:4]).hex()}\n")  # reported only once "used"
    out.flush()
    size = size % 97 + 1
"""


def test_kill_9_at_random_moments_never_reuses_a_pad(tmp_path: Path) -> None:
    db = tmp_path / "node.db"
    rng = random.Random(20240611)
    stream = seeded_rng(b"crash stream")(1 << 20)
    with NodeStore(db) as store:
        store.add_key(LINK, stream)
    used_until = 0  # end of the last range any child reported as used
    position = 0
    lost = reported = 0
    for _cycle in range(10):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(db), LINK], stdout=subprocess.PIPE, text=True, bufsize=1
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
        with NodeStore(db) as store:
            resumed = store.pool(LINK)
            assert resumed.position >= used_until  # everything reported is behind the resume point
            assert resumed.position >= position  # positions only move forward
            lost += resumed.position - used_until
            position = used_until = resumed.position
            assert bytes(resumed.take(3)[1]) == stream[position : position + 3]
            position = used_until = position + 3
    print(f"\n10 kill -9 cycles: {reported} bytes reported used, {lost} recorded but unreported (lost), 0 reused")
    assert reported > 0


def _scan(directory: Path, needle: bytes) -> list[str]:
    return [p.name for p in directory.iterdir() if p.is_file() and needle in p.read_bytes()]


def test_consumed_material_is_gone_from_the_files(tmp_path: Path) -> None:
    db = tmp_path / "node.db"
    records = [b"PAD-%011d|" % i for i in range(2000)]  # 16 bytes each: record i is key IDs 16i..16i+15
    material = b"".join(records)
    with NodeStore(db) as store:
        store.add_key(LINK, material)
        store.checkpoint()
        assert _scan(tmp_path, records[0]) == ["node.db"]  # the scan does find stored material
        pool = store.pool(LINK)
        pool.take(16 * 1000 + 5)  # records 0..999 consumed, record 1000 partly
        pool.take_at(16 * 1500, 16)  # 1001..1499 skipped (lost messages), 1500 consumed
        store.checkpoint()
        names = {p.name for p in tmp_path.iterdir()}
        leftovers = [i for i in range(1501) if any(records[i] in (tmp_path / n).read_bytes() for n in names)]
        assert leftovers == []
        assert _scan(tmp_path, records[1501]) == ["node.db"]  # unconsumed material is still there
    assert not (tmp_path / "node.db-wal").exists() or (tmp_path / "node.db-wal").stat().st_size == 0


def test_e2e_keys_are_delivered_once_across_reopen(tmp_path: Path) -> None:
    db = tmp_path / "node.db"
    ids = [uuid.UUID(int=i + 1) for i in range(4)]
    clock = iter(range(100, 200))
    with NodeStore(db, clock=lambda: float(next(clock))) as store:
        for i, key_id in enumerate(ids):
            store.put_key(key_id, bytes([i]) * 32, peer="sae-a")
        store.issue_key(uuid.UUID(int=99), peer="sae-b")
        assert store.take_key(ids[0], peer="sae-a") == bytes(32)
        with pytest.raises(DuplicateKeyError):
            store.put_key(ids[0], b"again", peer="sae-a")  # even once delivered
        with pytest.raises(DuplicateKeyError):
            store.issue_key(ids[1], peer="sae-b")
    with NodeStore(db) as store:
        assert store.pending_keys("sae-a") == ids[1:]
        assert store.issued_keys("sae-b") == [uuid.UUID(int=99)]
        with pytest.raises(KeyAlreadyDeliveredError):
            store.take_key(ids[0], peer="sae-a")
        with pytest.raises(KeyNotFoundError):
            store.take_key(ids[1], peer="sae-b")  # stored for another peer
        with pytest.raises(KeyNotFoundError):
            store.take_key(uuid.UUID(int=99), peer="sae-b")  # issued keys are not delivered here
        with pytest.raises(KeyNotFoundError):
            store.take_key(uuid.uuid4(), peer="sae-a")
        assert store.take_key(ids[1], peer="sae-a") == bytes([1]) * 32
        assert [store.key_state(k, peer="sae-a") for k in ids] == ["delivered", "delivered", "pending", "pending"]
        assert store.key_state(ids[0], peer="nobody") is None
    with NodeStore(db) as store:
        assert store.pending_keys("sae-a") == ids[2:]
        with pytest.raises(KeyAlreadyDeliveredError):
            store.take_key(ids[1], peer="sae-a")
        assert store.forget_delivered(before=106.0) == 1  # ids[0], delivered at 105 (ids[1] at time.time())
        with pytest.raises(KeyNotFoundError):
            store.take_key(ids[0], peer="sae-a")
    raw = (tmp_path / "node.db").read_bytes()
    assert bytes([1]) * 32 not in raw and bytes([2]) * 32 in raw  # delivered bytes zeroed, pending kept


def test_threads_share_one_store(tmp_path: Path) -> None:
    store = NodeStore(tmp_path / "node.db")
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

    def keys(n: int) -> None:
        try:
            for i in range(30):
                key_id = uuid.UUID(int=n * 1000 + i)
                store.put_key(key_id, b"k" * 32, peer=f"p{n}")
                assert store.take_key(key_id, peer=f"p{n}") == b"k" * 32
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=taker) for _ in range(4)]
    threads += [threading.Thread(target=feeder)] + [threading.Thread(target=keys, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(k for k, _ in taken) == [13 * i for i in range(160)]  # no overlap, no gap
    assert all(m == STREAM[k : k + 13] for k, m in taken)
    assert store.links()[LINK][0] == 13 * 160
    assert store.pending_keys("p0") == store.pending_keys("p1") == []
    store.close()


BAD_CALLS: list[tuple[str, Any, type[Exception]]] = [
    ("unknown link", lambda s: s.pool("C->D"), UnknownLinkError),
    ("empty link", lambda s: s.add_key("", b"x"), ParameterError),
    ("link not str", lambda s: s.add_key(b"A->B", b"x"), InputTypeError),
    ("empty material", lambda s: s.add_key(LINK, b""), ParameterError),
    ("str material", lambda s: s.add_key(LINK, "key"), InputTypeError),
    ("int material", lambda s: s.add_key(LINK, 5), InputTypeError),
    ("str key_id", lambda s: s.put_key(str(uuid.uuid4()), b"k", peer="p"), InputTypeError),
    ("empty key", lambda s: s.put_key(uuid.uuid4(), b"", peer="p"), ParameterError),
    ("str key", lambda s: s.put_key(uuid.uuid4(), "k", peer="p"), InputTypeError),
    ("empty peer", lambda s: s.put_key(uuid.uuid4(), b"k", peer=""), ParameterError),
    ("peer not str", lambda s: s.take_key(uuid.uuid4(), peer=1), InputTypeError),
    ("bytes key_id", lambda s: s.take_key(uuid.uuid4().bytes, peer="p"), InputTypeError),
    ("bad before", lambda s: s.forget_delivered("yesterday"), InputTypeError),
]


@pytest.mark.parametrize(("call", "error"), [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS])
def test_bad_inputs_raise_specific_errors(tmp_path: Path, call: Any, error: type[Exception]) -> None:
    with NodeStore(tmp_path / "node.db") as store:
        with pytest.raises(error):
            call(store)
        assert store.links() == {}  # nothing was written


def test_one_store_per_file(tmp_path: Path) -> None:
    with NodeStore(tmp_path / "node.db"), pytest.raises(StoreLockedError):
        NodeStore(tmp_path / "node.db")
    NodeStore(tmp_path / "node.db").close()  # released on close


def test_newer_schema_and_foreign_databases_are_refused(tmp_path: Path) -> None:
    db = tmp_path / "node.db"
    NodeStore(db).close()
    conn = sqlite3.connect(db)
    conn.execute("UPDATE schema_version SET version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(StoreVersionError, match="99, newer"):
        NodeStore(db)
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreVersionError, match="not an mpss node store"):
        NodeStore(other)
    NodeStore(tmp_path / "fresh.db").close()  # and the lock was released after each refusal
    with pytest.raises(StoreVersionError):
        NodeStore(db)
