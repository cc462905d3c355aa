"""The key store of confirmed delivery: ready units carved into keys at S, applied and taken once at D.

Material in these tests is recognisable: unit ``i`` is a run of 16-byte records
``U<i>@<offset>|``, so a scan of the raw files tells which bytes of which unit are still
there. Keys are checked against the material itself, not only against the other end.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import random
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from mpss_fast.exceptions import (
    InputTypeError,
    KeyAlreadyDeliveredError,
    KeyNotFoundError,
    ParameterError,
    StoreClosedError,
    StoreError,
    StoreLockedError,
    StorePermissionError,
    StoreVersionError,
)
from mpss_fast.node.store import LinkStore
from mpss_fast.node.store.keys import (
    CONSUMED,
    EXPIRED,
    KEYSTORE_SCHEMA_VERSION,
    MISMATCH,
    IssuedKey,
    KeyStore,
    LedgerMismatchError,
    NotEnoughKeyError,
    Range,
    UnitNotFoundError,
    UnitStateError,
    keystore_path,
)

PAIR = ("app-S", "app-D")
OTHER = ("app-X", "app-Y")


def uid(i: int) -> bytes:
    """Unit ``i``'s ID."""
    return b"unit" + i.to_bytes(12, "big")


def record(i: int, j: int) -> bytes:
    """The 16-byte record at bytes ``16j..16j+15`` of unit ``i``."""
    return b"U%03d@%010d|" % (i, j)


def material(i: int, size: int) -> bytes:
    """Unit ``i``'s recognisable material, ``size`` bytes (a multiple of 16 keeps every record whole)."""
    return b"".join(record(i, j) for j in range(-(-size // 16)))[:size]


def feed(
    stores: tuple[KeyStore, ...], i: int, size: int, *, pair: tuple[str, str] = PAIR, confirm: bool = True
) -> None:
    """Unit ``i`` added (and confirmed) at every store given, as S and D do."""
    for store in stores:
        store.add_pending(pair, uid(i), material(i, size), time.time())
    if confirm:
        for store in stores:
            store.confirm(uid(i))


def expected(key: IssuedKey, sizes: dict[bytes, int]) -> bytes:
    """The key's bytes read from the material by its ranges (``sizes``: unit ID -> unit size)."""
    return b"".join(material(int.from_bytes(u[4:], "big"), sizes[u])[s : s + n] for u, s, n in key.ranges)


@pytest.fixture
def ends(tmp_path: Path) -> Iterator[tuple[KeyStore, KeyStore]]:
    """(S, D): the two ends' key stores."""
    s, d = KeyStore(tmp_path / "S.keys.db"), KeyStore(tmp_path / "D.keys.db")
    try:
        yield s, d
    finally:
        s.close()
        d.close()


# -- carving ------------------------------------------------------------------------------------


def test_carving_across_units_and_partly_used_units(ends: tuple[KeyStore, KeyStore]) -> None:
    s, d = ends
    for i in range(3):
        feed((s, d), i, 64)
    sizes = {uid(i): 64 for i in range(3)}
    assert s.ready_bytes(PAIR) == 192 and s.ready_count(PAIR, 32) == 6 and s.ready_count(PAIR, 50) == 3

    (first,) = s.issue(PAIR, [40])
    assert first.ranges == (Range(uid(0), 0, 40),)
    second, third = s.issue(PAIR, [40, 30])  # continues at byte 40 of unit 0, then spans into unit 1
    assert second.ranges == (Range(uid(0), 40, 24), Range(uid(1), 0, 16))
    assert third.ranges == (Range(uid(1), 16, 30),)
    with pytest.raises(NotEnoughKeyError):
        s.issue(PAIR, [90])  # the worked example of docs/key-stores.md, row by row
    (fourth,) = s.issue(PAIR, [82])  # the rest of unit 1 and all of unit 2
    assert fourth.ranges == (Range(uid(1), 46, 18), Range(uid(2), 0, 64))
    keys = [first, second, third, fourth]
    for key in keys:
        assert key.key == expected(key, sizes) and key.key_id.version == 4
    assert len({key.key_id for key in keys}) == 4
    assert s.ready_bytes(PAIR) == 0 and s.discard_counts(PAIR) == {CONSUMED: 3}
    assert [r.key_id for r in s.records(PAIR)] == [key.key_id for key in keys]

    for key in keys:
        assert d.apply_issue(PAIR, key.key_id, key.ranges) is True
    assert d.ready_bytes(PAIR) == 0 and d.collectable_count(PAIR) == 4
    assert d.take(PAIR, [k.key_id for k in keys]) == [k.key for k in keys]
    assert d.discard_counts() == {CONSUMED: 3}  # every byte of every unit taken: all gone at D too


def test_units_are_carved_in_the_order_they_became_ready(ends: tuple[KeyStore, KeyStore]) -> None:
    s, _ = ends
    feed((s,), 0, 32, confirm=False)
    feed((s,), 1, 32, confirm=False)
    s.confirm(uid(1))
    s.confirm(uid(0))
    a, b = s.issue(PAIR, [20, 20])
    assert a.ranges == (Range(uid(1), 0, 20),)
    assert b.ranges == (Range(uid(1), 20, 12), Range(uid(0), 0, 8))


def test_all_or_nothing_when_short(ends: tuple[KeyStore, KeyStore]) -> None:
    s, _ = ends
    feed((s,), 0, 64)
    feed((s,), 1, 36)
    feed((s,), 2, 500, confirm=False)  # pending material never counts
    feed((s,), 3, 500, pair=OTHER)  # nor another pair's
    assert s.ready_bytes(PAIR) == 100 and s.pending_count(PAIR) == 1
    with pytest.raises(NotEnoughKeyError) as info:
        s.issue(PAIR, [60, 41])
    assert (info.value.needed, info.value.available) == (101, 100)
    assert "101" in str(info.value) and "100" in str(info.value)
    assert s.ready_bytes(PAIR) == 100 and s.records(PAIR) == [] and s.discard_counts() == {}
    a, b = s.issue(PAIR, [60, 40])  # exactly what is ready
    assert a.key == material(0, 64)[:60] and b.key == material(0, 64)[60:] + material(1, 36)
    assert s.ready_bytes(PAIR) == 0
    with pytest.raises(NotEnoughKeyError):
        s.issue(PAIR, [1])


# -- D applying S's records ----------------------------------------------------------------------


def test_d_refuses_a_record_that_does_not_fit(ends: tuple[KeyStore, KeyStore]) -> None:
    s, d = ends
    feed((s, d), 0, 64)
    feed((s, d), 1, 64)
    feed((s, d), 2, 64, confirm=False)
    feed((s, d), 3, 64, pair=OTHER)
    kid = uuid.uuid4()

    def refused(ranges: list[tuple[bytes, int, int]], unit: bytes | None, words: str) -> None:
        with pytest.raises(LedgerMismatchError) as info:
            d.apply_issue(PAIR, kid, ranges)
        assert info.value.key_id == str(kid)
        assert info.value.unit_id == (None if unit is None else unit.hex())
        assert str(kid) in str(info.value) and words in str(info.value)
        if unit is not None:
            assert unit.hex() in str(info.value)

    refused([(uid(0), 8, 16)], uid(0), "starts at byte 8, but its next unused byte here is 0")
    refused([(uid(2), 0, 16)], uid(2), "is pending here")
    refused([(uid(9), 0, 16)], uid(9), "unknown here")
    refused([(uid(3), 0, 16)], uid(3), "another pair")
    refused([(uid(0), 0, 65)], uid(0), "past its 64 bytes")
    refused([(uid(0), 0, 64), (uid(1), 4, 8)], uid(1), "starts at byte 4")  # the first range must not stick
    refused([(uid(0), 0, 32), (uid(0), 0, 32)], uid(0), "starts at byte 0, but its next unused byte here is 32")
    assert d.ready_bytes(PAIR) == 128 and d.collectable_count(PAIR) == 0  # nothing of any of them applied

    (key,) = s.issue(PAIR, [80])
    assert d.apply_issue(PAIR, key.key_id, list(key.ranges)) is True
    assert d.apply_issue(PAIR, key.key_id, key.ranges) is False  # pushed again: harmless
    with pytest.raises(LedgerMismatchError, match="other ranges"):
        d.apply_issue(PAIR, key.key_id, [(uid(1), 16, 8)])
    with pytest.raises(LedgerMismatchError, match="other ranges"):
        d.apply_issue(OTHER, key.key_id, key.ranges)
    assert d.take(PAIR, [key.key_id]) == [key.key]
    (rest,) = s.issue(PAIR, [48])
    d.discard(uid(1), MISMATCH)  # D lost the unit S still carves from: the record must be refused
    with pytest.raises(LedgerMismatchError, match=r"is gone here \(mismatch\)"):
        d.apply_issue(PAIR, rest.key_id, rest.ranges)


def test_each_store_is_one_end_of_a_pair(ends: tuple[KeyStore, KeyStore]) -> None:
    s, d = ends
    feed((s, d), 0, 64)
    (key,) = s.issue(PAIR, [16])
    with pytest.raises(LedgerMismatchError, match="source"):
        s.apply_issue(PAIR, uuid.uuid4(), [(uid(0), 16, 16)])
    d.apply_issue(PAIR, key.key_id, key.ranges)
    with pytest.raises(StoreError, match="destination"):
        d.issue(PAIR, [16])
    with pytest.raises(KeyNotFoundError):
        s.take(PAIR, [key.key_id])  # S's issued keys are not collectable at S
    assert d.ready_bytes(PAIR) == 48


def test_take_hands_each_key_out_once(tmp_path: Path, ends: tuple[KeyStore, KeyStore]) -> None:
    s, d = ends
    feed((s, d), 0, 96)
    a, b, c = s.issue(PAIR, [32, 32, 32])
    for key in (a, b, c):
        d.apply_issue(PAIR, key.key_id, key.ranges)
    assert d.key_state(PAIR, a.key_id) == "collectable" and s.key_state(PAIR, a.key_id) == "issued"
    assert d.take(PAIR, [b.key_id]) == [b.key]
    with pytest.raises(KeyAlreadyDeliveredError) as again:
        d.take(PAIR, [b.key_id])
    assert again.value.key_id == str(b.key_id)
    unknown = uuid.uuid4()
    with pytest.raises(KeyNotFoundError) as missing:
        d.take(PAIR, [a.key_id, unknown])  # all or nothing: a stays collectable
    assert missing.value.key_id == str(unknown)
    with pytest.raises(KeyAlreadyDeliveredError):
        d.take(PAIR, [a.key_id, b.key_id])
    with pytest.raises(KeyNotFoundError):
        d.take(OTHER, [a.key_id])  # another pair's application never sees it
    with pytest.raises(ParameterError):
        d.take(PAIR, [a.key_id, a.key_id])
    assert d.collectable_count(PAIR) == 2 and d.key_state(PAIR, b.key_id) == "delivered"
    d.close()
    with KeyStore(tmp_path / "D.keys.db") as reopened:
        assert reopened.take(PAIR, [c.key_id, a.key_id]) == [c.key, a.key]
        for key in (a, b, c):
            with pytest.raises(KeyAlreadyDeliveredError):
                reopened.take(PAIR, [key.key_id])
        assert reopened.discard_counts(PAIR) == {CONSUMED: 1}


def test_unit_life_cycle_errors(ends: tuple[KeyStore, KeyStore]) -> None:
    s, d = ends
    with pytest.raises(UnitNotFoundError, match="never added") as info:
        s.confirm(uid(7))
    assert info.value.unit_id == uid(7).hex()
    feed((s,), 0, 32, confirm=False)
    assert s.unit_state(uid(0)) == "pending" and s.pending_units(PAIR) == [uid(0)]
    assert s.pending_material(uid(0)) == material(0, 32)  # S checks D's proof against it
    s.confirm(uid(0))
    assert s.unit_state(uid(0)) == "ready" and s.pending_units(PAIR) == []
    with pytest.raises(UnitStateError, match="ready, not pending"):
        s.confirm(uid(0))
    with pytest.raises(UnitStateError, match="not readable"):
        s.pending_material(uid(0))  # ready material leaves only through issue
    with pytest.raises(UnitStateError, match="already in"):
        s.add_pending(PAIR, uid(0), material(0, 32), 0.0)
    s.issue(PAIR, [32])
    assert s.unit_state(uid(0)) is None
    with pytest.raises(UnitStateError, match="consumed earlier"):
        s.add_pending(PAIR, uid(0), material(0, 32), 0.0)  # a replayed unit never comes back
    with pytest.raises(UnitNotFoundError, match=r"is gone \(consumed\)"):
        s.confirm(uid(0))
    assert s.discard(uid(0), "lost") is False and s.discard(uid(5), "lost") is False

    feed((s, d), 1, 64)
    (key,) = s.issue(PAIR, [16])
    d.apply_issue(PAIR, key.key_id, key.ranges)
    with pytest.raises(UnitStateError, match="awaiting collection"):
        d.discard(uid(1), "lost")  # the collectable key would lose its bytes
    d.take(PAIR, [key.key_id])
    assert d.discard(uid(1), "lost") is True and d.discard_counts(PAIR) == {"lost": 1}
    assert s.discard(uid(1), "lost") is True  # a partly used ready unit at S
    assert s.discard_counts(PAIR) == {CONSUMED: 1, "lost": 1} and s.ready_bytes(PAIR) == 0


def test_expire_takes_only_old_pending_units(ends: tuple[KeyStore, KeyStore]) -> None:
    s, _ = ends
    s.add_pending(PAIR, uid(0), material(0, 32), 100.0)
    s.add_pending(PAIR, uid(1), material(1, 32), 100.0)
    s.add_pending(PAIR, uid(2), material(2, 32), 150.0)
    s.confirm(uid(1))  # ready units never expire
    assert s.expire(159.0, 10.0) == 1
    assert [s.unit_state(uid(i)) for i in range(3)] == [None, "ready", "pending"]
    assert s.expire(159.0, 10.0) == 0 and s.expire(161.0, 10.0) == 1
    assert s.discard_counts(PAIR) == {EXPIRED: 2} and s.pending_count(PAIR) == 0 and s.ready_bytes(PAIR) == 32


# -- material leaves the files -------------------------------------------------------------------


def _present(directory: Path, unit: int, records: int) -> set[int]:
    """The record numbers of unit ``unit`` found in any file of ``directory``."""
    blob = b"".join(p.read_bytes() for p in directory.iterdir() if p.is_file())
    return {j for j in range(records) if record(unit, j) in blob}


def test_discarded_expired_issued_and_taken_material_is_gone_from_the_files(tmp_path: Path) -> None:
    sdir, ddir = tmp_path / "s", tmp_path / "d"
    with KeyStore(sdir / "S.keys.db") as s, KeyStore(ddir / "D.keys.db") as d:
        for i in range(4):  # 256 records each; 4096 bytes: overflow pages. Unit 3 is the oldest
            for store in (s, d):
                store.add_pending(PAIR, uid(i), material(i, 4096), 0.0 if i == 3 else 1000.0)
        s.checkpoint()
        d.checkpoint()
        # The records the scan can find: a record cut by an overflow page's link is not (a few per unit).
        found = {(folder, i): _present(folder, i, 256) for folder in (sdir, ddir) for i in range(4)}
        assert all(len(seen) > 240 for seen in found.values())

        def left(folder: Path, i: int) -> set[int]:
            return _present(folder, i, 256)

        s.discard(uid(0), MISMATCH)  # S: the proof did not match
        assert s.expire(500.0, 100.0) == 1  # S: unit 3 waited too long for D's proof
        for i in (1, 2):
            s.confirm(uid(i))
            d.confirm(uid(i))
        d.discard(uid(0), MISMATCH)
        keys = s.issue(PAIR, [16 * 100, 16 * 200 + 8])  # unit 1 whole, 44 records and a half of unit 2
        for key in keys:
            d.apply_issue(PAIR, key.key_id, key.ranges)
        d.take(PAIR, [keys[0].key_id])  # unit 1's first 100 records at D
        s.checkpoint()
        d.checkpoint()
        assert left(sdir, 0) == left(sdir, 1) == left(sdir, 3) == set()
        assert left(sdir, 2) == set(range(45, 256)) & found[sdir, 2]  # record 44 was cut in half: its tail stays
        assert left(ddir, 0) == set()
        assert left(ddir, 1) == set(range(100, 256)) & found[ddir, 1]  # applied, not yet taken: still at D
        assert left(ddir, 2) == found[ddir, 2]
        d.take(PAIR, [keys[1].key_id])
        d.checkpoint()
        assert left(ddir, 1) == set() and left(ddir, 2) == set(range(45, 256)) & found[ddir, 2]
        assert left(ddir, 3) == found[ddir, 3]  # still pending at D; D's expiry will take it
        assert d.expire(500.0, 100.0) == 1
        d.checkpoint()
        assert left(ddir, 3) == set()
        for folder in (sdir, ddir):
            assert all(p.stat().st_size == 0 for p in folder.glob("*-wal"))


def test_secure_delete_is_on_for_the_connection(tmp_path: Path) -> None:
    with KeyStore(tmp_path / "k.db") as store:
        assert store._conn.execute("PRAGMA secure_delete").fetchone()[0] == 1
        assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# -- a simulated S and D, driven at random ----------------------------------------------------------


class TwoEnds(RuleBasedStateMachine):
    """S and D key stores driven at random: every key D hands out is the one S handed out, no byte serves two.

    S's confirmations, discards and ledger records reach D in order over one channel (as the
    wiring must deliver them); D may lag behind by any number of messages, S may push a
    record again, and either end may restart.
    """

    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.TemporaryDirectory()
        self.spath = Path(self.folder.name) / "S.keys.db"
        self.dpath = Path(self.folder.name) / "D.keys.db"
        self.s, self.d = KeyStore(self.spath), KeyStore(self.dpath)
        self.sizes: dict[bytes, int] = {}
        self.pending: list[bytes] = []  # at S
        self.channel: list[tuple[str, bytes | IssuedKey]] = []  # S -> D, in order
        self.issued: dict[uuid.UUID, IssuedKey] = {}
        self.applied: list[uuid.UUID] = []
        self.taken: set[uuid.UUID] = set()
        self.ready_at_s = 0

    @initialize(sizes=st.lists(st.integers(16, 120), min_size=1, max_size=4))
    def some_ready_units(self, sizes: list[int]) -> None:
        for size in sizes:
            self.new_unit(size, True)

    @rule(size=st.integers(1, 120), ready=st.booleans())
    def new_unit(self, size: int, ready: bool) -> None:
        i = len(self.sizes)
        self.sizes[uid(i)] = size
        self.s.add_pending(PAIR, uid(i), material(i, size), 0.0)
        self.d.add_pending(PAIR, uid(i), material(i, size), 0.0)
        self.pending.append(uid(i))
        if ready:
            self.verdict(len(self.pending) - 1, True)

    @precondition(lambda self: bool(self.pending))
    @rule(index=st.integers(0, 50), good=st.booleans())
    def verdict(self, index: int, good: bool) -> None:
        """S checks D's proof for a pending unit: confirmed, or discarded as a mismatch."""
        unit = self.pending.pop(index % len(self.pending))
        if good:
            self.s.confirm(unit)
            self.ready_at_s += self.sizes[unit]
            self.channel.append(("confirm", unit))
        else:
            assert self.s.discard(unit, MISMATCH) is True
            self.channel.append(("discard", unit))

    @rule(size=st.integers(1, 40))
    def issue_one(self, size: int) -> None:
        self.issue([size])

    @rule(sizes=st.lists(st.integers(1, 40), min_size=1, max_size=3))
    def issue(self, sizes: list[int]) -> None:
        if sum(sizes) > self.ready_at_s:
            with pytest.raises(NotEnoughKeyError):
                self.s.issue(PAIR, sizes)
            return
        for key in self.s.issue(PAIR, sizes):
            assert key.key == expected(key, self.sizes)
            self.issued[key.key_id] = key
            self.channel.append(("record", key))
        self.ready_at_s -= sum(sizes)

    @precondition(lambda self: bool(self.channel))
    @rule(count=st.integers(1, 8))
    def deliver(self, count: int) -> None:
        for kind, item in self.channel[:count]:
            if kind == "confirm":
                assert isinstance(item, bytes)
                self.d.confirm(item)
            elif kind == "discard":
                assert isinstance(item, bytes)
                assert self.d.discard(item, MISMATCH) is True
            else:
                assert isinstance(item, IssuedKey)
                assert self.d.apply_issue(PAIR, item.key_id, item.ranges) is True
                self.applied.append(item.key_id)
        del self.channel[:count]

    @precondition(lambda self: len(self.applied) > len(self.taken))
    @rule(count=st.integers(1, 3), newest_first=st.booleans())
    def take(self, count: int, newest_first: bool) -> None:
        waiting = [kid for kid in self.applied if kid not in self.taken]
        wanted = (waiting[::-1] if newest_first else waiting)[:count]
        assert self.d.take(PAIR, wanted) == [self.issued[kid].key for kid in wanted]
        self.taken.update(wanted)
        with pytest.raises(KeyAlreadyDeliveredError):
            self.d.take(PAIR, [wanted[0]])

    @precondition(lambda self: bool(self.applied))
    @rule(index=st.integers(0, 50))
    def push_again(self, index: int) -> None:
        again = self.issued[self.applied[index % len(self.applied)]]
        assert self.d.apply_issue(PAIR, again.key_id, again.ranges) is False

    @rule()
    def restart(self) -> None:
        self.s.close()
        self.d.close()
        self.s, self.d = KeyStore(self.spath), KeyStore(self.dpath)

    @invariant()
    def ready_bytes_match(self) -> None:
        assert self.s.ready_bytes(PAIR) == self.ready_at_s

    def teardown(self) -> None:
        try:
            # Drain the channel and collect everything: D hands out exactly what S did.
            if self.channel:
                self.deliver(len(self.channel))
            rest = [kid for kid in self.applied if kid not in self.taken]
            if rest:
                assert self.d.take(PAIR, rest) == [self.issued[kid].key for kid in rest]
            assert self.d.ready_bytes(PAIR) == self.s.ready_bytes(PAIR) == self.ready_at_s
            records = self.s.records(PAIR)
            assert [(r.key_id, r.ranges) for r in records] == [(k.key_id, k.ranges) for k in self.issued.values()]
            _assert_disjoint([r for key in self.issued.values() for r in key.ranges], self.sizes)
            issued_bytes = sum(len(k.key) for k in self.issued.values())
            assert issued_bytes + self.ready_at_s + sum(self.sizes[u] for u in self.pending) <= sum(self.sizes.values())
        finally:
            self.s.close()
            self.d.close()
            self.folder.cleanup()


TwoEnds.TestCase.settings = settings(max_examples=80, stateful_step_count=40, deadline=None)
test_random_runs_at_s_and_d_stay_consistent = TwoEnds.TestCase


def test_a_long_seeded_run_stays_consistent() -> None:
    """The same machine for 600 steps chosen by a seeded rng (hypothesis favours short runs)."""
    rng = random.Random(7)
    machine = TwoEnds()
    machine.some_ready_units([64, 100])
    steps = {"new_unit": 0, "verdict": 0, "issue": 0, "deliver": 0, "take": 0, "push_again": 0, "restart": 0}
    for _ in range(600):
        name = rng.choices(list(steps), weights=[3, 3, 4, 3, 2, 1, 0.2])[0]
        if name == "new_unit":
            machine.new_unit(rng.randint(1, 120), rng.random() < 0.5)
        elif name == "verdict" and machine.pending:
            machine.verdict(rng.randrange(50), rng.random() < 0.9)
        elif name == "issue":
            machine.issue([rng.randint(1, 40) for _ in range(rng.randint(1, 3))])
        elif name == "deliver" and machine.channel:
            machine.deliver(rng.randint(1, 8))
        elif name == "take" and len(machine.applied) > len(machine.taken):
            machine.take(rng.randint(1, 3), rng.random() < 0.5)
        elif name == "push_again" and machine.applied:
            machine.push_again(rng.randrange(50))
        elif name == "restart":
            machine.restart()
        else:
            continue
        steps[name] += 1
        machine.ready_bytes_match()
    multi = sum(len(k.ranges) > 1 for k in machine.issued.values())
    assert len(machine.issued) > 100 and len(machine.taken) > 50 and multi > 10 and steps["restart"] > 0
    machine.teardown()


def _assert_disjoint(ranges: list[Range], sizes: dict[bytes, int]) -> None:
    """No byte of any unit is in two ranges, and every range lies within its unit."""
    seen: dict[bytes, list[tuple[int, int]]] = {}
    for unit, start, length in ranges:
        assert 0 <= start and start + length <= sizes[unit]
        seen.setdefault(unit, []).append((start, start + length))
    for spans in seen.values():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end <= start, "a byte in two keys"


# -- durability ------------------------------------------------------------------------------------


def test_everything_committed_survives_a_reopen(tmp_path: Path) -> None:
    spath = tmp_path / "S.keys.db"
    with KeyStore(spath) as s:
        feed((s,), 0, 64)
        feed((s,), 1, 64, confirm=False)
        (first,) = s.issue(PAIR, [40])
        s.mark_pushed(PAIR, 1)
    with KeyStore(spath) as s:
        assert s.ready_bytes(PAIR) == 24 and s.pending_count(PAIR) == 1 and s.pushed(PAIR) == 1
        assert [r.key_id for r in s.records(PAIR)] == [first.key_id] and s.records(PAIR, after=1) == []
        s.confirm(uid(1))
        (second,) = s.issue(PAIR, [30])  # resumes at byte 40 of unit 0, never before it
        assert second.ranges == (Range(uid(0), 40, 24), Range(uid(1), 0, 6))
        s.mark_pushed(PAIR, 0)  # never moves back
        assert s.pushed(PAIR) == 1 and [r.seq for r in s.records(PAIR, after=s.pushed(PAIR))] == [2]
    s.close()
    with pytest.raises(StoreClosedError):
        s.ready_bytes(PAIR)


CHILD = r"""
import hashlib, os, random, sys, time
from mpss_fast.node.store.keys import KeyStore, NotEnoughKeyError

PAIR = ("app-S", "app-D")
def material(unit, size):
    return hashlib.shake_256(b"unit material" + unit).digest(size)

s, d = KeyStore(sys.argv[1]), KeyStore(sys.argv[2])
rng = random.Random(int(sys.argv[3]))
out = sys.stdout
# Restart: what a node pair does when it comes back. S's records D may have missed are pushed
# again (apply is idempotent); confirmations D may have missed are redelivered; units only one
# end knows are dropped.
pushed = 0
for rec in s.records(PAIR, after=s.pushed(PAIR)):
    pushed += d.apply_issue(PAIR, rec.key_id, rec.ranges)
    s.mark_pushed(PAIR, rec.seq)
for unit in d.pending_units(PAIR):
    state = s.unit_state(unit)
    if state == "ready":
        d.confirm(unit)
    elif state is None:
        d.discard(unit, "lost")
for unit in s.pending_units(PAIR):
    if d.unit_state(unit) is None:
        s.discard(unit, "lost")
    else:
        s.confirm(unit)
        d.confirm(unit)
out.write(f"restarted {pushed}\n")
out.flush()
while True:
    unit = os.urandom(16)
    size = rng.choice([32, 64, 200])
    s.add_pending(PAIR, unit, material(unit, size), time.time())
    d.add_pending(PAIR, unit, material(unit, size), time.time())
    s.confirm(unit)
    d.confirm(unit)
    try:
        keys = s.issue(PAIR, [rng.choice([16, 24, 40]) for _ in range(rng.randint(1, 3))])
    except NotEnoughKeyError:
        continue
    for key in keys:
        out.write(f"issued {key.key_id} {key.key.hex()}\n")  # the answer to enc_keys
    out.flush()
    for key in keys:
        d.apply_issue(PAIR, key.key_id, key.ranges)
    s.mark_pushed(PAIR, s.records(PAIR)[-1].seq)
    wanted = [key.key_id for key in keys if rng.random() < 0.7]  # the rest stays collectable
    if wanted:
        for kid, got in zip(wanted, d.take(PAIR, wanted)):
            out.write(f"taken {kid} {got.hex()}\n")  # the answer to dec_keys
        out.flush()
"""


def _from_material(ranges: tuple[Range, ...]) -> bytes:
    """A key's bytes recomputed from its units' material (the child's SHAKE-256 of the unit ID)."""
    return b"".join(hashlib.shake_256(b"unit material" + u).digest(st + n)[st:] for u, st, n in ranges)


def test_kill_9_between_operations_loses_nothing_committed(tmp_path: Path) -> None:
    spath, dpath = tmp_path / "S.keys.db", tmp_path / "D.keys.db"
    rng = random.Random(20250101)
    issued: dict[str, str] = {}  # key ID -> hex bytes, as the master application got them
    taken: dict[str, str] = {}  # as the slave application got them
    cycles, pushed_again = 8, 0
    for cycle in range(cycles):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(spath), str(dpath), str(cycle)],
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        assert child.stdout is not None
        first = child.stdout.readline().split()
        assert first[0] == "restarted", f"child failed to start: {first}"
        pushed_again += int(first[1])  # records a kill kept from D, applied now
        lines, target = [], rng.randint(5, 120)
        while len(lines) < target:
            line = child.stdout.readline()
            if not line:
                break
            lines.append(line)
        time.sleep(rng.uniform(0, 0.01))
        child.send_signal(signal.SIGKILL)
        lines += child.stdout.readlines()
        child.wait()
        assert child.returncode == -signal.SIGKILL, f"child ended on its own: {lines[-3:]}"
        for line in lines:
            if not line.endswith("\n"):
                continue  # cut by the kill: not an answer the application got
            kind, kid, value = line.split()
            book = issued if kind == "issued" else taken
            assert kid not in book, "a key handed out twice"
            book[kid] = value
        _check_after_kill(spath, dpath, issued, taken)
    assert len(issued) > 20 and len(taken) > 10
    # Finally bring D up to date (as a restarted pair does) and collect every key S ever issued.
    with KeyStore(spath) as s, KeyStore(dpath) as d:
        for rec in s.records(PAIR):
            d.apply_issue(PAIR, rec.key_id, rec.ranges)
        rest = [r for r in s.records(PAIR) if d.key_state(PAIR, r.key_id) == "collectable"]
        if rest:
            for rec, got in zip(rest, d.take(PAIR, [r.key_id for r in rest]), strict=True):
                assert got == _from_material(rec.ranges)
                assert got.hex() == issued.get(str(rec.key_id), got.hex())
    print(
        f"\n{cycles} kill -9 cycles: {len(issued)} keys issued, {len(taken)} taken, none twice; "
        f"{pushed_again} records pushed again after a kill"
    )


def _check_after_kill(spath: Path, dpath: Path, issued: dict[str, str], taken: dict[str, str]) -> None:
    with KeyStore(spath) as s, KeyStore(dpath) as d:
        records = s.records(PAIR)
        by_id = {str(r.key_id): r for r in records}
        for kid, value in issued.items():
            assert kid in by_id, "an answered enc_keys key is missing from S's ledger"
            assert value == _from_material(by_id[kid].ranges).hex()
        for kid, value in taken.items():
            assert value == issued[kid], "D handed out another key than S"
            assert d.key_state(PAIR, uuid.UUID(kid)) == "delivered"
            with pytest.raises(KeyAlreadyDeliveredError):
                d.take(PAIR, [uuid.UUID(kid)])
        _assert_disjoint(
            [rg for r in records for rg in r.ranges], {rg.unit_id: 200 for r in records for rg in r.ranges}
        )
        s.checkpoint()
        d.checkpoint()
    blob_s = spath.read_bytes()
    blob_d = dpath.read_bytes()
    for kid, value in issued.items():  # S overwrote every key it answered; D every key it handed out
        assert bytes.fromhex(value) not in blob_s
        if kid in taken:
            assert bytes.fromhex(value) not in blob_d


# -- files, permissions, versions -----------------------------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")
@pytest.mark.parametrize("mask", [0o022, 0o000], ids=oct)
def test_files_are_private_whatever_the_umask(tmp_path: Path, mask: int) -> None:
    state = tmp_path / "state"  # does not exist yet
    db = state / "S.keys.db"
    old = os.umask(mask)
    try:
        with KeyStore(db) as store:
            feed((store,), 0, 32)
            assert stat.S_IMODE(state.stat().st_mode) == 0o700
            for suffix in ("", "-wal", "-shm", "-lock"):
                assert stat.S_IMODE(Path(f"{db}{suffix}").stat().st_mode) == 0o600, suffix
    finally:
        os.umask(old)
    db.chmod(0o644)
    with pytest.raises(StorePermissionError, match="chmod 600"):
        KeyStore(db)
    db.chmod(0o600)
    state.chmod(0o750)
    with pytest.raises(StorePermissionError, match="chmod 700"):
        KeyStore(db)


def test_one_store_per_file_and_no_foreign_files(tmp_path: Path) -> None:
    db = tmp_path / "S.keys.db"
    with KeyStore(db):
        with pytest.raises(StoreLockedError):
            KeyStore(db)
    with LinkStore(tmp_path / "node.db"):
        pass
    with pytest.raises(StoreVersionError, match="not an mpss key store"):
        KeyStore(tmp_path / "node.db")
    with pytest.raises(StoreVersionError, match="not an mpss link store"):
        LinkStore(db)
    conn = sqlite3.connect(db)
    conn.execute("UPDATE keystore_version SET version = ?", (KEYSTORE_SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(StoreVersionError, match="newer"):
        KeyStore(db)


def test_keystore_path_sits_next_to_the_node_store() -> None:
    assert keystore_path("state/S.db") == os.path.join("state", "S.keys.db")
    assert keystore_path(Path("/var/lib/mpss/node")) == "/var/lib/mpss/node.keys.db"


def test_used_offsets_only_grow_even_for_raw_sql(tmp_path: Path) -> None:
    db = tmp_path / "S.keys.db"
    with KeyStore(db) as s:
        feed((s,), 0, 64)
        s.issue(PAIR, [10])
        with pytest.raises(sqlite3.IntegrityError, match="only grow"):
            s._conn.execute("UPDATE units SET used = 0")
        with pytest.raises(sqlite3.IntegrityError, match="never becomes pending"):
            s._conn.execute("UPDATE units SET state = 'pending', ready_seq = NULL")


# -- no material in reprs, errors or bad-argument messages ----------------------------------------------

SECRET = bytes(range(0x80, 0xC0))


def _shows(text: str) -> bool:
    head = SECRET[:6]
    return any(n in text for n in (repr(head)[2:-1], head.hex(), head.hex().upper(), ",".join(map(str, head))))


def test_no_material_in_reprs_or_errors(tmp_path: Path) -> None:
    with KeyStore(tmp_path / "S.keys.db") as s, KeyStore(tmp_path / "D.keys.db") as d:
        for store in (s, d):
            store.add_pending(PAIR, uid(0), SECRET, 0.0)
            store.confirm(uid(0))
        (key,) = s.issue(PAIR, [16])
        errors: list[BaseException] = []
        for call in (
            lambda: s.issue(PAIR, [1000]),
            lambda: d.apply_issue(PAIR, key.key_id, [(uid(0), 3, 16)]),
            lambda: s.add_pending(PAIR, uid(0), SECRET, 0.0),
            lambda: s.pending_material(uid(0)),
            lambda: d.take(PAIR, [key.key_id]),
            lambda: s.add_pending(PAIR, uid(1), SECRET.hex(), 0.0),
        ):
            with pytest.raises((StoreError, InputTypeError)) as info:
                call()
            errors.append(info.value)
        shown = [repr(x) for x in (s, d, key, [key], key.ranges, *errors)] + [str(x) for x in (key, *errors)]
        assert not [text for text in shown if _shows(text)]
        assert "16 bytes" in repr(key)


def test_bad_arguments(ends: tuple[KeyStore, KeyStore]) -> None:
    s, d = ends
    for call, error in (
        (lambda: s.add_pending("app-S->app-D", uid(0), b"x", 0.0), InputTypeError),
        (lambda: s.add_pending(("", "b"), uid(0), b"x", 0.0), ParameterError),
        (lambda: s.add_pending(PAIR, b"short", b"x", 0.0), ParameterError),
        (lambda: s.add_pending(PAIR, "unit", b"x", 0.0), InputTypeError),
        (lambda: s.add_pending(PAIR, uid(0), b"", 0.0), ParameterError),
        (lambda: s.add_pending(PAIR, uid(0), "text", 0.0), InputTypeError),
        (lambda: s.add_pending(PAIR, uid(0), b"x", "now"), InputTypeError),
        (lambda: s.issue(PAIR, []), ParameterError),
        (lambda: s.issue(PAIR, [0]), ParameterError),
        (lambda: s.issue(PAIR, [True]), InputTypeError),
        (lambda: s.issue(PAIR, 16), InputTypeError),
        (lambda: d.apply_issue(PAIR, uuid.uuid4(), []), ParameterError),
        (lambda: d.apply_issue(PAIR, uuid.uuid4(), [(uid(0), -1, 4)]), ParameterError),
        (lambda: d.apply_issue(PAIR, uuid.uuid4(), [(uid(0), 0)]), InputTypeError),
        (lambda: d.apply_issue(PAIR, "id", [(uid(0), 0, 4)]), InputTypeError),
        (lambda: d.take(PAIR, []), ParameterError),
        (lambda: s.discard(uid(0), "Not A Label"), ParameterError),
        (lambda: s.ready_count(PAIR, 0), ParameterError),
    ):
        with pytest.raises(error):
            call()
    s.add_pending(PAIR, uuid.UUID(bytes=uid(3)), bytearray(b"y" * 8), 0.0)  # a UUID and a bytearray do
    assert s.unit_state(uid(3)) == "pending"


def test_add_ready_commits_confirmed_units_in_one_go(ends: tuple[KeyStore, KeyStore]) -> None:
    """Units kept pending in memory enter as ready, in order; a repeat is skipped, a gone unit refuses all."""
    s, d = ends
    units = [(uid(i), material(i, 64)) for i in range(3)]
    assert s.add_ready(PAIR, units) == 3
    assert s.add_ready(PAIR, units[:1]) == 0  # the confirmation seen twice
    assert s.ready_bytes(PAIR) == 192
    d.add_pending(PAIR, uid(3), material(3, 64), 0.0)
    assert d.add_ready(PAIR, [*units, (uid(3), material(3, 64))]) == 4  # pending here: made ready
    keys = s.issue(PAIR, [100, 92])
    assert keys[0].key == material(0, 64) + material(1, 64)[:36]
    assert d.apply_issues(PAIR, [(k.key_id, k.ranges) for k in keys]) == 2
    assert d.take(PAIR, [k.key_id for k in keys]) == [k.key for k in keys]
    with pytest.raises(UnitStateError, match="consumed"):
        s.add_ready(PAIR, [(uid(9), material(9, 16)), units[0]])  # unit 0 was used up: nothing added
    assert s.unit_state(uid(9)) is None
    with pytest.raises(UnitStateError, match="another pair or size"):
        d.add_ready(PAIR, [(uid(3), material(3, 32))])


def test_apply_issues_is_all_or_nothing(ends: tuple[KeyStore, KeyStore]) -> None:
    s, d = ends
    feed((s, d), 0, 64)
    keys = s.issue(PAIR, [16, 16, 16])
    bad = (uuid.uuid4(), (Range(uid(0), 40, 8),))  # does not start at the unit's used offset
    with pytest.raises(LedgerMismatchError):
        d.apply_issues(PAIR, [(keys[0].key_id, keys[0].ranges), bad])
    assert d.key_state(PAIR, keys[0].key_id) is None  # the good record before it was rolled back too
    assert d.apply_issues(PAIR, [(k.key_id, k.ranges) for k in keys]) == 3
    assert d.apply_issues(PAIR, [(keys[2].key_id, keys[2].ranges)]) == 0  # pushed again: nothing new


def test_void_records_keep_d_in_step_and_skip_what_d_never_had(ends: tuple[KeyStore, KeyStore]) -> None:
    """S carved keys it never handed out: D moves past their bytes (wiped), skipping units it lacks."""
    s, d = ends
    feed((s, d), 0, 64)
    feed((s,), 1, 64)  # confirmed at S, lost at D
    feed((s, d), 2, 64)
    burnt = s.issue(PAIR, [48, 64])  # unit 0 bytes 0..48; then 0 48..64, 1 0..48
    applied = d.apply_issues(PAIR, [(burnt[0].key_id, burnt[0].ranges)])  # the first push arrived, its answer did not
    assert applied == 1
    assert d.apply_void(PAIR, [(k.key_id, k.ranges) for k in burnt]) == 16  # unit 0's last 16 bytes; unit 1 skipped
    assert d.key_state(PAIR, burnt[0].key_id) == "delivered"  # out of collection
    with pytest.raises(KeyAlreadyDeliveredError):
        d.take(PAIR, [burnt[0].key_id])
    assert d.apply_void(PAIR, [(k.key_id, k.ranges) for k in burnt]) == 0  # pushed again: nothing moves
    s.discard(uid(1), "missing-at-d")
    (key,) = s.issue(PAIR, [32])
    assert key.ranges == (Range(uid(2), 0, 32),)
    assert d.apply_issues(PAIR, [(key.key_id, key.ranges)]) == 1
    assert d.take(PAIR, [key.key_id]) == [material(2, 64)[:32]]
    with pytest.raises(LedgerMismatchError):  # bytes S never told D about
        d.apply_void(PAIR, [(uuid.uuid4(), (Range(uid(2), 40, 8),))])


# -- prepared keys: carved ahead of requests, handed out once D holds them --------------------


def test_prepared_keys_are_handed_out_only_once_d_applied_them_and_each_once(
    ends: tuple[KeyStore, KeyStore],
) -> None:
    s, d = ends
    for i in range(2):
        feed((s, d), i, 64)
    prepared = s.issue(PAIR, [16] * 6, prepare=True)
    assert s.prepared_count(PAIR, 16) == 0  # D has not applied their records: none to hand out
    with pytest.raises(NotEnoughKeyError) as short:
        s.hand_out(PAIR, 16, 1)
    assert (short.value.needed, short.value.available) == (1, 0)
    records = s.records(PAIR)
    d.apply_issues(PAIR, [(r.key_id, r.ranges) for r in records[:4]])
    s.mark_pushed(PAIR, records[3].seq)  # D applied the first four
    assert s.prepared_count(PAIR, 16) == 4 and s.prepared_count(PAIR, 32) == 0
    with pytest.raises(NotEnoughKeyError):
        s.hand_out(PAIR, 16, 5)  # all or nothing
    first = s.hand_out(PAIR, 16, 3)
    assert first == [(k.key_id, k.key) for k in prepared[:3]]  # oldest first, the bytes carved
    assert d.take(PAIR, [kid for kid, _ in first]) == [key for _, key in first]  # D holds the same
    assert s.hand_out(PAIR, 16, 1) == [(prepared[3].key_id, prepared[3].key)]
    assert s.prepared_count(PAIR, 16) == 0  # each once
    with pytest.raises(NotEnoughKeyError):
        s.hand_out(PAIR, 16, 1)


def test_prepared_keys_of_a_void_push_are_dropped_and_survive_a_reopen_otherwise(tmp_path: Path) -> None:
    s = KeyStore(tmp_path / "S.keys.db")
    try:
        feed((s,), 0, 64)
        kept, void = s.issue(PAIR, [16] * 2, prepare=True), s.issue(PAIR, [16] * 2, prepare=True)
        s.mark_pushed(PAIR, s.records(PAIR)[1].seq)
        assert s.drop_prepared(PAIR, [k.key_id for k in void]) == 2
        assert s.drop_prepared(PAIR, [k.key_id for k in void]) == 0  # already gone
        s.mark_pushed(PAIR, s.records(PAIR)[-1].seq)  # the void records went to D: the mark moves past them
        assert s.prepared_count(PAIR, 16) == 2
    finally:
        s.close()
    with KeyStore(tmp_path / "S.keys.db") as again:
        assert again.forget(time.time() + 10) >= 0  # the ledger trimmed: prepared keys stay
        assert again.hand_out(PAIR, 16, 2) == [(k.key_id, k.key) for k in kept]


def test_a_version_1_key_store_gains_the_prepared_table(tmp_path: Path) -> None:
    path = tmp_path / "S.keys.db"
    with KeyStore(path) as s:
        feed((s,), 0, 64)
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE prepared")
    conn.execute("UPDATE keystore_version SET version = 1")
    conn.commit()
    conn.close()
    with KeyStore(path) as s:
        assert s.ready_bytes(PAIR) == 64
        assert len(s.issue(PAIR, [16], prepare=True)) == 1
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT version FROM keystore_version").fetchall() == [(KEYSTORE_SCHEMA_VERSION,)] == [(2,)]
    conn.close()


def test_prepared_key_arguments_are_checked(ends: tuple[KeyStore, KeyStore]) -> None:
    s, _ = ends
    for call, error in (
        (lambda: s.issue(PAIR, [16], prepare=1), InputTypeError),
        (lambda: s.hand_out(PAIR, 0, 1), ParameterError),
        (lambda: s.hand_out(PAIR, 16, 0), ParameterError),
        (lambda: s.hand_out(PAIR, "16", 1), InputTypeError),
        (lambda: s.prepared_count(PAIR, -1), ParameterError),
        (lambda: s.drop_prepared(PAIR, []), ParameterError),
        (lambda: s.drop_prepared(PAIR, ["not a uuid"]), InputTypeError),
    ):
        with pytest.raises(error):
            call()
