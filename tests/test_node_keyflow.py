"""Confirmed key delivery between two ends wired in-process: nothing handed out that the other end cannot hand out.

The "relay" here is a function: what ``make_unit`` sends reaches D through ``deliver``,
which a test can make lose or alter units; the channel between the ends can be cut. The
stores are real key stores on disk.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import pytest

from mpss_fast.node.config import AppPair, StoreSettings
from mpss_fast.node.keyflow import FlowUnavailableError, KeyFlow, UnitMissingError
from mpss_fast.node.store.keys import KeyStore, LedgerMismatchError, Range

APP = AppPair("app-S", "app-D", "S", "D")
PAIR = (APP.master, APP.slave)
SETTINGS = StoreSettings(unit_bytes=64, depth_bytes=64 * 32, window=8, pending_s=0.5, prepared_keys=0)
ONE_UNIT = StoreSettings(unit_bytes=64, depth_bytes=64, window=1, pending_s=30, prepared_keys=0)


class Channel:
    """S and D's calls to each other, as the peer API would carry them (cuttable)."""

    def __init__(self, me: str) -> None:
        self.me = me
        self.flow: KeyFlow | None = None
        self.cut = False
        self.pushes = 0

    async def confirm(self, pair: tuple[str, str], proofs: Sequence[tuple[uuid.UUID, bytes]]) -> list[str]:
        assert self.flow is not None
        if self.cut:
            raise ConnectionError("cut")
        return await self.flow.on_proofs(self.me, pair, proofs)

    async def push(
        self,
        pair: tuple[str, str],
        records: Sequence[tuple[uuid.UUID, Sequence[Range]]],
        void: Sequence[tuple[uuid.UUID, Sequence[Range]]] = (),
    ) -> None:
        assert self.flow is not None
        if self.cut:
            raise ConnectionError("cut")
        self.pushes += 1
        try:
            await self.flow.on_push(self.me, pair, records, void)
        except LedgerMismatchError as exc:  # as the peer API answers it (409 naming the unit)
            raise UnitMissingError(str(exc), exc.unit_id or "") from None


class Ends:
    """S and D with their stores, the in-process relay and channels."""

    def __init__(self, tmp: Path, settings: StoreSettings = SETTINGS) -> None:
        self.s_store = KeyStore(tmp / "S.keys.db")
        self.d_store = KeyStore(tmp / "D.keys.db")
        self.to_s, self.to_d = Channel("D"), Channel("S")  # to_s: D's calls to S (the caller is D)
        self.deliver: Callable[[uuid.UUID, bytes], bytes | None] = lambda uid, material: material
        self.link_short = False
        self.s = KeyFlow(
            "S", [APP], self.s_store, {"D": self.to_d}, self._make_unit, settings=settings,
            paths_of=lambda app: [["S", "R1", "D"], ["S", "R2", "D"]],
        )  # fmt: skip
        self.d = KeyFlow("D", [APP], self.d_store, {"S": self.to_s}, self._no_units, settings=settings)
        self.to_s.flow, self.to_d.flow = self.s, self.d

    def _make_unit(self, app: AppPair, size_bits: int) -> tuple[uuid.UUID, bytes]:
        from mpss_fast.exceptions import KeyPoolExhaustedError

        if self.link_short:
            raise KeyPoolExhaustedError("link S>R1 lacks key", link="S>R1")
        unit_id, material = uuid.uuid4(), os.urandom(size_bits // 8)
        arriving = self.deliver(unit_id, material)
        if arriving is not None:
            asyncio.get_running_loop().call_soon(self.d.arrived, unit_id, arriving, "S")
        return unit_id, material

    @staticmethod
    def _no_units(app: AppPair, size_bits: int) -> tuple[uuid.UUID, bytes]:
        raise AssertionError("D never makes units")

    async def run(self, body: Callable[[Ends], Awaitable[None]]) -> None:
        await self.s.load()
        await self.d.load()
        tasks = [asyncio.ensure_future(fn()) for _, fn in (*self.s.tasks(), *self.d.tasks())]
        try:
            await body(self)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.s.close()
            self.d.close()
            self.s_store.close()
            self.d_store.close()


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


def full(ends: Ends) -> bool:
    return ends.s.ready_count(PAIR, 1) >= SETTINGS.depth_bytes and ends.d.ready_count(PAIR, 1) >= SETTINGS.depth_bytes


def test_stores_fill_to_depth_and_keys_match_at_both_ends(tmp_path: Path) -> None:
    async def body(ends: Ends) -> None:
        await until(lambda: full(ends))
        assert ends.s_store.ready_bytes(PAIR) == ends.d_store.ready_bytes(PAIR) == SETTINGS.depth_bytes
        keys = await ends.s.issue(PAIR, [32, 100, 32])  # 100 bytes span two 64-byte units
        got = await ends.d.take(PAIR, [kid for kid, _ in keys])
        assert got == [key for _, key in keys]
        assert [len(k) for k in got] == [32, 100, 32]
        with pytest.raises(Exception, match="already delivered"):
            await ends.d.take(PAIR, [keys[0][0]])
        await until(lambda: full(ends))  # refilled after the issue
        assert ends.s.stats.units_sent <= SETTINGS.depth_bytes // 64 + 3 + SETTINGS.window

    asyncio.run(Ends(tmp_path).run(body))


def test_requests_that_arrive_together_share_one_push(tmp_path: Path) -> None:
    async def body(ends: Ends) -> None:
        await until(lambda: full(ends))
        results = await asyncio.gather(*(ends.s.issue(PAIR, [16]) for _ in range(20)))
        assert ends.to_d.pushes < 20
        ids = [kid for keys in results for kid, _ in keys]
        assert len(set(ids)) == 20
        assert await ends.d.take(PAIR, ids) == [key for keys in results for _, key in keys]

    asyncio.run(Ends(tmp_path).run(body))


def test_short_of_material_takes_nothing_and_says_when_to_retry(tmp_path: Path) -> None:
    async def body(ends: Ends) -> None:
        await until(lambda: full(ends))
        before = ends.s_store.ready_bytes(PAIR)
        with pytest.raises(FlowUnavailableError) as info:
            await ends.s.issue(PAIR, [before + 1])
        assert info.value.retry_after >= 1
        assert ends.s_store.ready_bytes(PAIR) == before
        assert ends.s.stats.keys_refused == 1

    asyncio.run(Ends(tmp_path).run(body))


def test_a_unit_rebuilt_differently_is_discarded_at_both_ends_and_its_paths_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def body(ends: Ends) -> None:
        ends.deliver = lambda uid, material: bytes([material[0] ^ 1]) + material[1:]  # a relay altered it
        await until(lambda: ends.s.stats.mismatches >= 3 and ends.d.stats.mismatches >= 3)
        assert ends.s_store.ready_bytes(PAIR) == ends.d_store.ready_bytes(PAIR) == 0
        with pytest.raises(FlowUnavailableError):
            await ends.s.issue(PAIR, [16])
        report = ends.s.stats.mismatch_reports[-1]
        assert report["paths"] == [["S", "R1", "D"], ["S", "R2", "D"]]

    with caplog.at_level("WARNING", logger="mpss_fast.node"):
        asyncio.run(Ends(tmp_path).run(body))
    assert "suspected paths: S > R1 > D; S > R2 > D" in caplog.text


def test_lost_units_expire_and_free_the_window(tmp_path: Path) -> None:
    async def body(ends: Ends) -> None:
        lost: set[uuid.UUID] = set()

        def lose_the_first_window(uid: uuid.UUID, material: bytes) -> bytes | None:
            if len(lost) < SETTINGS.window:
                lost.add(uid)
                return None
            return material

        ends.deliver = lose_the_first_window
        await until(lambda: full(ends), timeout=10)
        assert ends.s.stats.units_expired == SETTINGS.window
        assert ends.s.snapshot()["pending"] == 0

    asyncio.run(Ends(tmp_path).run(body))


def test_a_push_d_does_not_confirm_burns_the_keys_and_answers_unavailable(tmp_path: Path) -> None:
    async def body(ends: Ends) -> None:
        await until(lambda: full(ends))
        ends.to_d.cut = True
        with pytest.raises(FlowUnavailableError, match="did not confirm"):
            await ends.s.issue(PAIR, [32, 16])  # 48 bytes: the first unit partly used
        assert ends.s.stats.keys_burnt == 2
        assert ends.d_store.collectable_count(PAIR) == 0
        ends.to_d.cut = False
        keys = await ends.s.issue(PAIR, [16, 64])  # D's ledger catches up first: the burnt ranges are void
        assert await ends.d.take(PAIR, [kid for kid, _ in keys]) == [key for _, key in keys]
        assert ends.d_store.collectable_count(PAIR) == 0  # the burnt keys were wiped at D, not left to collect

    asyncio.run(Ends(tmp_path).run(body))


def test_a_push_whose_answer_was_lost_is_voided_at_d(tmp_path: Path) -> None:
    """D committed the records but S never heard: S answered 503, so D must not keep those keys collectable."""

    async def body(ends: Ends) -> None:
        await until(lambda: full(ends))
        real = ends.to_d.push

        async def lost_answer(pair, records, void=()):  # type: ignore[no-untyped-def]
            await real(pair, records, void)
            raise ConnectionError("the answer was lost")

        ends.to_d.push = lost_answer  # type: ignore[method-assign]
        with pytest.raises(FlowUnavailableError):
            await ends.s.issue(PAIR, [24])
        ends.to_d.push = real  # type: ignore[method-assign]
        keys = await ends.s.issue(PAIR, [8])
        assert ends.d_store.collectable_count(PAIR) == 1
        assert await ends.d.take(PAIR, [keys[0][0]]) == [keys[0][1]]

    asyncio.run(Ends(tmp_path).run(body))


def test_proofs_while_s_is_unreachable_are_retried(tmp_path: Path) -> None:
    async def body(ends: Ends) -> None:
        ends.to_s.cut = True
        await until(lambda: ends.s.snapshot()["pending"] == SETTINGS.window)
        await asyncio.sleep(0.1)
        assert ends.s_store.ready_bytes(PAIR) == 0
        ends.to_s.cut = False
        await until(lambda: full(ends), timeout=10)

    asyncio.run(Ends(tmp_path).run(body))


def test_in_flight_never_exceeds_the_window(tmp_path: Path) -> None:
    async def body(ends: Ends) -> None:
        seen: list[int] = []

        def count(uid: uuid.UUID, material: bytes) -> bytes:
            seen.append(ends.s._in_flight[PAIR] + 1)  # this unit included
            return material

        ends.deliver = count
        await until(lambda: full(ends))
        assert max(seen) == SETTINGS.window  # the window is used, never exceeded

    asyncio.run(Ends(tmp_path).run(body))


def test_no_link_key_backs_off_and_resumes(tmp_path: Path) -> None:
    async def body(ends: Ends) -> None:
        ends.link_short = True
        await asyncio.sleep(0.3)
        tries = ends.s.stats.link_key_short
        assert 3 <= tries <= 20  # 10 ms doubling to 0.5 s: a handful, not a busy loop
        ends.link_short = False
        await until(lambda: full(ends), timeout=10)

    asyncio.run(Ends(tmp_path).run(body))


def test_a_record_for_a_unit_d_still_holds_pending_promotes_it(tmp_path: Path) -> None:
    async def body(ends: Ends) -> None:
        unit, material = uuid.uuid4(), os.urandom(64)
        assert ends.d.arrived(unit, material, "S")
        ends.d._proofs.clear()  # S's verdict has not come back: the unit is pending at D
        ends.s_store.add_ready(PAIR, [(unit, material)])  # S verified it
        (key,) = ends.s_store.issue(PAIR, [40])
        assert await ends.d.on_push("S", PAIR, [(key.key_id, key.ranges)]) == 1
        assert await ends.d.take(PAIR, [key.key_id]) == [key.key] == [material[:40]]

    asyncio.run(
        Ends(tmp_path, StoreSettings(unit_bytes=64, depth_bytes=64, window=1, pending_s=30, prepared_keys=0)).run(body)
    )


def test_a_verdict_and_a_record_committing_one_unit_at_once_count_it_once(tmp_path: Path) -> None:
    """S's "ready" verdict and a record naming the same unit reach D together: both want to commit it.
    The second waits for the first, finds it committed, and D's ready count moves by the unit once."""

    async def body(ends: Ends) -> None:
        ends.link_short = True  # S relays nothing else meanwhile
        unit, material = uuid.uuid4(), os.urandom(64)
        assert ends.d.arrived(unit, material, "S")
        ends.d._proofs.clear()  # D's proof is sent below, by hand, concurrently with the push
        ends.s_store.add_ready(PAIR, [(unit, material)])
        ends.s._confirmed[unit] = PAIR  # S's verdict on a repeated proof: ready
        (key,) = ends.s_store.issue(PAIR, [40])
        proved, pushed = await asyncio.gather(
            ends.d._prove(APP, [unit]), ends.d.on_push("S", PAIR, [(key.key_id, key.ranges)])
        )
        assert proved and pushed == 1
        assert ends.d.stats.units_confirmed == 1 and ends.d_store.ready_bytes(PAIR) == 24
        assert ends.d.ready_count(PAIR, 1) == ends.d_store.ready_bytes(PAIR), "D's ready count drifted"

    asyncio.run(
        Ends(tmp_path, StoreSettings(unit_bytes=64, depth_bytes=64, window=1, pending_s=30, prepared_keys=0)).run(body)
    )


def test_only_the_other_end_may_prove_or_push(tmp_path: Path) -> None:
    async def body(ends: Ends) -> None:
        with pytest.raises(PermissionError):
            await ends.s.on_proofs("R1", PAIR, [])
        with pytest.raises(PermissionError):
            await ends.d.on_push("R1", PAIR, [])
        with pytest.raises(PermissionError):
            await ends.s.on_proofs("D", ("app-X", "app-D"), [])
        assert not ends.d.arrived(uuid.uuid4(), b"x" * 64, "R1")  # no pair relays from R1 to here

    asyncio.run(Ends(tmp_path).run(body))


def test_unknown_and_replayed_proofs_are_refused(tmp_path: Path) -> None:
    async def body(ends: Ends) -> None:
        await until(lambda: full(ends))
        assert await ends.s.on_proofs("D", PAIR, [(uuid.uuid4(), bytes(32))]) == ["unknown"]

    asyncio.run(Ends(tmp_path).run(body))


def test_a_proof_sent_again_after_a_lost_answer_is_still_ready(tmp_path: Path) -> None:
    async def body(ends: Ends) -> None:
        await until(lambda: full(ends))
        confirmed = next(iter(ends.s._confirmed))
        assert await ends.s.on_proofs("D", PAIR, [(confirmed, bytes(32))]) == ["ready"]

    asyncio.run(Ends(tmp_path).run(body))


def test_a_commit_that_fails_at_d_is_retried_and_nothing_is_lost(tmp_path: Path) -> None:
    from mpss_fast.exceptions import StoreError

    async def body(ends: Ends) -> None:
        real = ends.d_store.add_ready
        failures: list[int] = []

        def failing(pair: tuple[str, str], units: list[tuple[bytes, bytes]]) -> int:
            if len(failures) < 3:
                failures.append(len(units))
                raise StoreError("disk full (simulated)")
            return real(pair, units)

        ends.d_store.add_ready = failing  # type: ignore[method-assign]
        await until(lambda: full(ends), timeout=10)
        assert len(failures) == 3 and ends.d.stats.commit_failures == 3
        keys = await ends.s.issue(PAIR, [64] * 20)  # every unit S confirmed is at D too
        assert await ends.d.take(PAIR, [kid for kid, _ in keys]) == [key for _, key in keys]

    asyncio.run(Ends(tmp_path).run(body))


def test_a_unit_d_lost_is_dropped_at_s_and_the_flow_recovers(tmp_path: Path) -> None:
    async def body(ends: Ends) -> None:
        await until(lambda: full(ends))
        probe = ends.s_store.issue(PAIR, [1])[0]  # carve a byte to learn the oldest unit
        oldest = probe.ranges[0].unit_id
        await ends.d.on_push("S", PAIR, [], [(probe.key_id, probe.ranges)])  # voided at D
        ends.d_store.discard(oldest, "lost")  # D loses it (a store restored from an old backup, say)
        with pytest.raises(FlowUnavailableError):
            await ends.s.issue(PAIR, [16])  # names the lost unit: D says so, S drops it
        assert ends.s.stats.units_missing_at_d == 1
        keys = await ends.s.issue(PAIR, [16, 16])
        assert await ends.d.take(PAIR, [kid for kid, _ in keys]) == [key for _, key in keys]

    asyncio.run(Ends(tmp_path).run(body))


def test_records_d_never_confirmed_before_s_restarted_are_voided_at_d(tmp_path: Path) -> None:
    """S died between its issue and the push: the new S finds those records past its push mark and voids them."""

    async def body(ends: Ends) -> None:
        await until(lambda: full(ends))
        ends.to_d.cut = True
        with pytest.raises(FlowUnavailableError):
            await ends.s.issue(PAIR, [40])  # the first unit used up to byte 40 at S only
        restarted = KeyFlow("S", [APP], ends.s_store, {"D": ends.to_d}, ends._make_unit, settings=SETTINGS)
        await restarted.load()
        assert [len(r) for _, r in restarted._void[PAIR]] == [1]  # found on disk, not in memory
        ends.to_d.cut = False
        keys = await restarted.issue(PAIR, [16, 40])
        assert await ends.d.take(PAIR, [kid for kid, _ in keys]) == [key for _, key in keys]
        again = KeyFlow("S", [APP], ends.s_store, {"D": ends.to_d}, ends._make_unit, settings=SETTINGS)
        await again.load()
        assert again._void[PAIR] == []  # the mark moved: nothing answered is ever voided

    asyncio.run(Ends(tmp_path).run(body))


def test_the_refill_stops_on_one_cancel_even_as_it_is_woken(tmp_path: Path) -> None:
    """A cancel that lands as the refill's wake-up event is set must still stop it (the node's stop awaits it)."""

    async def body(ends: Ends) -> None:
        await until(lambda: full(ends))  # the refill now waits for its wake-up
        for _ in range(50):
            task = asyncio.ensure_future(ends.s._refill(PAIR))
            await asyncio.sleep(0.002)  # waiting on the event
            ends.s._wake[PAIR].set()
            task.cancel()  # in the same turn as the wake-up
            done, _ = await asyncio.wait({task}, timeout=1.0)
            assert done, "the refill survived its cancellation"
            ends.s._wake[PAIR].clear()

    asyncio.run(Ends(tmp_path).run(body))


# -- prepared keys: default-size keys carved and committed at D ahead of requests --------------------

PREPARED = StoreSettings(unit_bytes=64, depth_bytes=64 * 32, window=8, pending_s=0.5, prepared_keys=16)


async def quiet(ends: Ends) -> None:
    """No new units from here on, and none in flight: the stores and the counters hold still."""
    ends.link_short = True
    await until(lambda: ends.s.snapshot()["pending"] == 0 and ends.d.snapshot()["pending"] == 0)
    await asyncio.sleep(0.05)  # the last commits land


def prepared_full(ends: Ends) -> bool:
    return ends.s.snapshot()["pairs"][f"{PAIR[0]}->{PAIR[1]}"]["prepared_keys"] == PREPARED.prepared_keys


def test_default_size_keys_come_from_prepared_keys_without_a_push(tmp_path: Path) -> None:
    """S carves 16 keys of the default size ahead of demand and has D commit them; an enc_keys of such keys
    is then answered from S's store alone (no push), D hands out the same keys, and S prepares more."""

    async def body(ends: Ends) -> None:
        await until(lambda: prepared_full(ends) and ends.s.ready_count(PAIR, 64) >= 16)
        await quiet(ends)
        assert ends.s.ready_count(PAIR, 32) == ends.s_store.ready_bytes(PAIR) // 32 + 16  # stored_key_count
        ends.link_short = False
        assert ends.d_store.collectable_count(PAIR) == 16  # D holds them already
        pushes = ends.to_d.pushes
        keys = await ends.s.issue(PAIR, [32] * 10)
        assert ends.to_d.pushes == pushes, "a prepared key waited for a push"
        assert await ends.d.take(PAIR, [kid for kid, _ in keys]) == [key for _, key in keys]
        assert len({key for _, key in keys}) == 10 and ends.s.stats.keys_issued == 10
        other = await ends.s.issue(PAIR, [48])  # not the default size: carved and pushed on demand
        assert ends.to_d.pushes > pushes
        assert await ends.d.take(PAIR, [other[0][0]]) == [other[0][1]]
        await until(lambda: prepared_full(ends))  # topped up again
        assert ends.s.stats.keys_prepared >= 26

    asyncio.run(Ends(tmp_path, PREPARED).run(body))


def test_prepared_keys_d_did_not_confirm_are_burnt_and_never_handed_out(tmp_path: Path) -> None:
    async def body(ends: Ends) -> None:
        ends.to_d.cut = True  # every push fails; proofs still reach S
        await until(lambda: ends.s.stats.keys_burnt > 0)
        assert ends.s_store.prepared_count(PAIR, 32) == 0
        burnt = ends.s.stats.keys_burnt
        await asyncio.sleep(0.3)
        assert ends.s.stats.keys_burnt == burnt, "preparation burnt more keys while D was not confirming"
        with pytest.raises(FlowUnavailableError):  # nothing prepared: the carving path, whose push fails
            await ends.s.issue(PAIR, [32])
        ends.to_d.cut = False
        await until(lambda: prepared_full(ends), timeout=5)
        keys = await ends.s.issue(PAIR, [32] * 4)
        assert await ends.d.take(PAIR, [kid for kid, _ in keys]) == [key for _, key in keys]

    asyncio.run(Ends(tmp_path, PREPARED).run(body))


def test_prepared_keys_survive_a_restart_of_s_and_unconfirmed_ones_are_voided(tmp_path: Path) -> None:
    """S restarts holding prepared keys D committed (handed out after the restart) and prepared keys whose
    push was never marked (voided at D, dropped at S)."""

    async def body(ends: Ends) -> None:
        await until(lambda: prepared_full(ends))
        await quiet(ends)  # no more units: what S holds is what it had
        ends.s_store.issue(PAIR, [32] * 3, prepare=True)  # as if S died before pushing these
        restarted = KeyFlow(
            "S", [APP], ends.s_store, {"D": ends.to_d}, ends._make_unit, settings=PREPARED, key_bytes=32
        )
        await restarted.load()
        assert (
            ends.s_store.prepared_count(PAIR, 32)
            == 16
            == restarted.ready_count(PAIR, 32) - (ends.s_store.ready_bytes(PAIR) // 32)
        )
        keys = await restarted.issue(PAIR, [32] * 16)
        assert await ends.d.take(PAIR, [kid for kid, _ in keys]) == [key for _, key in keys]
        restarted.close()

    asyncio.run(Ends(tmp_path, PREPARED).run(body))


def test_a_long_void_backlog_is_not_marked_before_the_keys_carved_with_it_reach_d(tmp_path: Path) -> None:
    """S restarted with more void records than one push carries. It sends them in bounded pushes and
    dies (here: the push fails) before the push with its newly prepared keys: nothing may be marked
    pushed, or after the next restart those prepared keys (never at D) would be handed out."""

    async def body(ends: Ends) -> None:
        ends.link_short = True
        units = [(uuid.uuid4(), os.urandom(64)) for _ in range(600)]
        ends.s_store.add_ready(PAIR, units)
        ends.d_store.add_ready(PAIR, units)
        for _ in range(3):  # 1,200 records S carved and never pushed (it died each time before pushing)
            ends.s_store.issue(PAIR, [16] * 400)
        real, calls = ends.to_d.push, []

        async def dies_after_the_first(pair, records, void=()):  # type: ignore[no-untyped-def]
            calls.append((len(records), len(void)))
            if len(calls) > 1:
                raise ConnectionError("S died")
            await real(pair, records, void)

        ends.to_d.push = dies_after_the_first  # type: ignore[method-assign]
        restarted = KeyFlow(
            "S", [APP], ends.s_store, {"D": ends.to_d}, ends._make_unit, settings=PREPARED, key_bytes=32
        )
        await restarted.load()  # 1,200 records past the mark: void; prepared keys wanted: the issuer starts
        assert len(restarted._void[PAIR]) == 1200
        await restarted._issuers[PAIR]  # it prepared 16 keys, pushed 1,024 void records, then "died"
        assert calls == [(0, 1024), (16, 176)]
        assert ends.s_store.pushed(PAIR) == 0, "marked before the carved keys reached D"
        assert ends.s_store.prepared_count(PAIR, 32) == 0
        ends.to_d.push = real  # type: ignore[method-assign]
        again = KeyFlow("S", [APP], ends.s_store, {"D": ends.to_d}, ends._make_unit, settings=PREPARED, key_bytes=32)
        await again.load()  # the next restart voids everything past the mark, prepared keys included
        assert ends.s_store.prepared_count(PAIR, 32) == 0
        assert await again._prepare(PAIR)  # and the flow recovers: D in step, the new keys collectable
        keys = await again.issue(PAIR, [32] * 4)
        assert await ends.d.take(PAIR, [kid for kid, _ in keys]) == [key for _, key in keys]
        restarted.close()
        again.close()

    asyncio.run(Ends(tmp_path, PREPARED).run(body))


def test_a_prepared_key_whose_bytes_could_not_be_dropped_is_never_marked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A preparation's push fails and the store then fails to drop the keys' kept bytes: the next push, which
    would mark past their void records, must drop them first or not happen."""
    from mpss_fast.exceptions import StoreError

    async def body(ends: Ends) -> None:
        await until(lambda: prepared_full(ends))
        ends.link_short = True
        before = ends.s_store.prepared_count(PAIR, 32)
        await ends.s.issue(PAIR, [32] * PREPARED.prepared_keys)  # empty the prepared keys: S prepares more
        ends.to_d.cut = True
        real_drop = ends.s_store.drop_prepared
        monkeypatch.setattr(ends.s_store, "drop_prepared", lambda pair, ids: (_ for _ in ()).throw(StoreError("disk")))
        await until(lambda: ends.s.stats.keys_burnt > 0)
        ends.to_d.cut = False
        with pytest.raises(FlowUnavailableError):  # the next push cannot drop them first: it does not happen
            await ends.s.issue(PAIR, [48])
        assert ends.s_store.prepared_count(PAIR, 32) == 0
        monkeypatch.setattr(ends.s_store, "drop_prepared", real_drop)
        ends.link_short = False  # units again: the burnt material is made up
        await until(lambda: prepared_full(ends), timeout=5)
        keys = await ends.s.issue(PAIR, [32] * PREPARED.prepared_keys)
        assert await ends.d.take(PAIR, [kid for kid, _ in keys]) == [key for _, key in keys]
        assert before == PREPARED.prepared_keys

    asyncio.run(Ends(tmp_path, PREPARED).run(body))
