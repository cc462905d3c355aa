"""Confirmed key delivery: per-pair key stores filled ahead of demand, keys handed out only when both ends hold them.

For each application pair (master SAE at the source node S, slave SAE at the destination
node D) the flow is, top-down:

1. **Refill (S).** While the pair's ready material plus what is in flight is below the
   configured depth, S relays a new *unit* (a random number of ``unit_bytes``) by MPSS and
   keeps its material pending, in memory. At most ``window`` units per pair are in flight,
   so the transport is paced by the confirmations coming back; when a first link lacks key
   S backs off (10 ms doubling to 0.5 s).
2. **Proof (D).** D rebuilds the number, keeps the unit pending in memory and sends S a
   proof (``node.confirm``) over the mutually authenticated node channel, many units per
   request.
3. **Confirmation (S, then D).** S checks each proof against its copy: equal, the unit is
   committed to S's key store as ready *before* S answers "ready"; different, both copies
   are wiped and the pair's paths are named as suspects; unknown (expired, or S restarted),
   D wipes its copy. D commits the units S called ready. Pending units of either end expire
   after ``pending_s`` and are wiped: they were never handed out, so their loss costs link
   key only.
4. **Issue (S).** ``enc_keys`` carves the keys from S's ready material (``KeyStore.issue``:
   all or nothing, committed), pushes the ledger records to D, and answers only once D has
   committed them (``KeyStore.apply_issues``). Requests that arrive together share one
   commit and one push. Short of material: nothing is taken (503, Retry-After). D did not
   confirm the push: the keys are burnt at S and the request gets 503; a 200 always means
   D holds every key in it. **Prepared keys:** between requests S carves keys of the default
   size ahead (``stores.prepared_keys``, on top of the depth) and pushes them the same way;
   a request for such keys takes them with one local commit (``KeyStore.hand_out``: only
   keys at or below the push mark, which D committed). The pair's one issuer task does all
   carving and pushing, so pushes and marks never interleave.
5. **Collect (D).** ``dec_keys`` takes the keys from D's key store at once, each once ever.

A record that names a unit still pending at D (S's "ready" answer to D's proof has not
arrived yet) promotes it: S only carves confirmed units, and the record comes over the
same authenticated channel as that answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..etsi014.model import KeyLimits
from ..exceptions import KeyPoolExhaustedError, MpssError, StoreError
from ..relay.pool import wipe
from .config import AppPair, StoreSettings
from .confirm import proof, verify
from .logsummary import LogSummary
from .store import KeyStore, NotEnoughKeyError, Range
from .store.keys import IssuedKey

log = logging.getLogger("mpss_fast.node")

READY, MISMATCH, UNKNOWN = "ready", "mismatch", "unknown"
"""S's verdicts on D's proofs."""

BACKOFF_MIN_S, BACKOFF_MAX_S = 0.01, 0.5
"""Refill back-off while a first link lacks key."""
PROOF_BATCH = 256
"""Most units per proof request."""
VOID_PER_PUSH = 1024
"""Most void records in one push (the peer API takes 4096 items and 1 MiB per request)."""
RETRY_S = 0.2
"""Wait before a proof request or a push that failed on the network is tried again."""
DEFAULT_KEY_BYTES = KeyLimits().key_size // 8
"""The ETSI 014 default key size in bytes: the size keys are prepared in, unless the flow is told another."""
PREPARE_BATCH = 64
"""Most keys S prepares (carves and pushes) in one go; requests waiting go first between batches."""
PREPARE_RETRY_S = 1.0
"""After a preparation D did not confirm (its keys burnt), none for this long."""

Pair = tuple[str, str]
"""(master SAE, slave SAE): the key store's name for an application pair."""


class PairChannel(Protocol):
    """The authenticated channel to the other end of a pair (``peer_api.PeerClient``)."""

    async def confirm(self, pair: Pair, proofs: Sequence[tuple[uuid.UUID, bytes]]) -> list[str]:
        """D -> S: proofs of units; S's verdict for each (``ready``, ``mismatch``, ``unknown``)."""
        ...

    async def push(
        self,
        pair: Pair,
        records: Sequence[tuple[uuid.UUID, Sequence[Range]]],
        void: Sequence[tuple[uuid.UUID, Sequence[Range]]] = (),
    ) -> None:
        """S -> D: ledger records, and earlier ones whose keys were never handed out (``void``: D wipes
        them); returns once D committed all (raises otherwise)."""
        ...


class FlowUnavailableError(MpssError):
    """Not enough confirmed key for a request now (ETSI 014 503); ``retry_after`` in seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UnitMissingError(MpssError):
    """D refused S's records because a unit they name is not ready there (a commit D lost): ``unit_id`` (hex)."""

    def __init__(self, message: str, unit_id: str) -> None:
        super().__init__(message)
        self.unit_id = unit_id


CONFIRMED_MEMORY = 65536
"""Unit IDs S remembers as confirmed, so that a proof D sends again (S's answer was lost) is answered ready."""


@dataclass
class _Unit:
    pair: AppPair
    material: bytearray
    created: float


@dataclass
class _Request:
    sizes: list[int]
    done: asyncio.Future[list[tuple[uuid.UUID, bytes]]]


@dataclass
class FlowStats:
    """Counters of the key flow (no secrets)."""

    units_sent: int = 0
    units_confirmed: int = 0
    units_expired: int = 0
    units_unknown: int = 0
    mismatches: int = 0
    link_key_short: int = 0
    keys_issued: int = 0
    keys_refused: int = 0
    keys_burnt: int = 0
    """Keys carved at S whose push D did not confirm: never handed out, lost."""
    keys_prepared: int = 0
    """Default-size keys S carved ahead of requests and D committed (handed out later from S's store)."""
    units_missing_at_d: int = 0
    """Units S held ready that D had lost (a failed commit there): dropped at S."""
    commit_failures: int = 0
    records_applied: int = 0
    mismatch_reports: list[dict[str, object]] = field(default_factory=list)


MakeUnit = Callable[[AppPair, int], tuple[uuid.UUID, bytes]]
"""``make_unit(pair, size_bits) -> (unit_id, material)``: relay a new number to the slave's node."""
PathsOf = Callable[[AppPair], list[list[str]]]
"""The node lists of the pair's paths (for naming suspects)."""


class KeyFlow:
    """The key flow of one node for every pair with an end here (see the module docstring)."""

    def __init__(
        self,
        node: str,
        pairs: Sequence[AppPair],
        store: KeyStore,
        channels: Mapping[str, PairChannel],
        make_unit: MakeUnit,
        *,
        settings: StoreSettings | None = None,
        paths_of: PathsOf | None = None,
        key_bytes: int = DEFAULT_KEY_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.node = node
        self.store = store
        self.channels = channels
        self.make_unit = make_unit
        self.settings = settings if settings is not None else StoreSettings()
        self.paths_of = paths_of
        self.key_bytes = key_bytes
        """The default key size (ETSI ``key_size`` / 8): the size keys are prepared in."""
        self.clock = clock
        self.stats = FlowStats()
        self.sources = {(p.master, p.slave): p for p in pairs if p.master_node == node}
        self.destinations = {(p.master, p.slave): p for p in pairs if p.slave_node == node}
        self._by_source_node = {p.master_node: p for p in self.destinations.values()}
        self._pending: dict[uuid.UUID, _Unit] = {}
        self._in_flight: dict[Pair, int] = dict.fromkeys(self.sources, 0)
        self._ready: dict[Pair, int] = {}
        self._wake: dict[Pair, asyncio.Event] = {pair: asyncio.Event() for pair in self.sources}
        self._requests: dict[Pair, list[_Request]] = {pair: [] for pair in self.sources}
        self._issuers: dict[Pair, asyncio.Task[None]] = {}
        self._void: dict[Pair, list[tuple[uuid.UUID, tuple[Range, ...]]]] = {pair: [] for pair in self.sources}
        self._pushed: dict[Pair, int] = dict.fromkeys(self.sources, 0)  # S: the ledger seq D confirmed
        self._prepared: dict[Pair, int] = dict.fromkeys(self.sources, 0)  # S: keys hand_out may give now
        self._prepare_after: dict[Pair, float] = {}  # S: no preparation before (after a failed push)
        self._closed = False
        self.log_summary = LogSummary(log, f"node {node}")
        self._proofs: list[uuid.UUID] = []
        self._proofs_ready = asyncio.Event()
        self._confirmed: dict[uuid.UUID, Pair] = {}  # S: recently confirmed units (insertion order)
        self._uncommitted: list[tuple[uuid.UUID, _Unit]] = []  # D: ready at S, not yet committed here
        self._committing = asyncio.Lock()  # D: one commit of ready units at a time

    # -- set-up and background tasks --------------------------------------------------------

    async def load(self) -> None:
        """At start: read the ready bytes of every pair, and at S the records D never confirmed.

        S marks a push (``KeyStore.mark_pushed``) before it answers ``enc_keys``, so records
        after the mark were never answered 200 (S died between its issue and the push, or
        the push failed): they go to D as void with the next push, so D's ledger keeps step.
        """
        for pair in (*self.sources, *self.destinations):
            self._ready[pair] = await asyncio.to_thread(self.store.ready_bytes, pair)
        for pair in self.sources:
            self._pushed[pair] = await asyncio.to_thread(self.store.pushed, pair)
            backlog = await asyncio.to_thread(self.store.records, pair, after=self._pushed[pair])
            self._void[pair] = [(r.key_id, r.ranges) for r in backlog]
            for at in range(0, len(backlog), VOID_PER_PUSH):  # prepared among them: never handed out
                await asyncio.to_thread(
                    self.store.drop_prepared, pair, [r.key_id for r in backlog[at : at + VOID_PER_PUSH]]
                )
            self._prepared[pair] = await asyncio.to_thread(self.store.prepared_count, pair, self.key_bytes)
            if self._prepared[pair] < self.settings.prepared_keys:
                self._kick(pair)

    def tasks(self) -> list[tuple[str, Callable[[], Awaitable[None]]]]:
        """(name, coroutine function) of the background work: one refill per source pair, the prover, expiry."""
        work: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            (f"refill {m}->{s}", _bind(self._refill, (m, s))) for m, s in self.sources
        ]
        if self.destinations:
            work.append(("send proofs", self._send_proofs))
        work.append(("expire units", self._expire))
        return work

    def close(self) -> None:
        """Stop issuing (requests still waiting are cancelled: nothing of theirs was answered) and wipe every
        unit in flight (it was never handed out)."""
        self._closed = True
        for issuer in self._issuers.values():
            issuer.cancel()
        for unit in self._pending.values():
            wipe(unit.material)
        self._pending.clear()

    # -- S: refill ---------------------------------------------------------------------------

    def _wanted(self, pair: Pair) -> bool:
        flight = self._in_flight[pair]
        have = self._ready.get(pair, 0) + flight * self.settings.unit_bytes  # prepared keys come on top
        return flight < self.settings.window and have < self.settings.depth_bytes

    async def _refill(self, pair: Pair) -> None:
        app = self.sources[pair]
        backoff = BACKOFF_MIN_S
        wake = self._wake[pair]
        while True:
            sent = 0
            while self._wanted(pair):
                try:
                    unit_id, material = self.make_unit(app, self.settings.unit_bytes * 8)
                except KeyPoolExhaustedError:
                    self.stats.link_key_short += 1
                    await asyncio.sleep(backoff)
                    backoff = min(BACKOFF_MAX_S, backoff * 2)
                    continue
                backoff = BACKOFF_MIN_S
                self._pending[unit_id] = _Unit(app, bytearray(material), self.clock())
                self._in_flight[pair] += 1
                self.stats.units_sent += 1
                sent += 1
                if sent % 16 == 0:
                    await asyncio.sleep(0)  # let the proofs and requests in
            wake.clear()
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
                # lands as the event is set, and a refill that survives close() hangs the node's stop
                async with asyncio.timeout(self.settings.pending_s):
                    await wake.wait()
            except TimeoutError:
                pass

    def _left(self, unit_id: uuid.UUID) -> _Unit | None:
        """Take a unit out of flight (the caller wipes its material)."""
        unit = self._pending.pop(unit_id, None)
        if unit is not None:
            self._landed(unit.pair)
        return unit

    def _landed(self, app: AppPair) -> None:
        """One unit of ``app`` no longer in flight here (counted ready first, if it is): refill may go on."""
        if app.master_node == self.node:
            key = (app.master, app.slave)
            self._in_flight[key] -= 1
            self._wake[key].set()

    # -- S: D's proofs -----------------------------------------------------------------------

    async def on_proofs(self, caller: str, pair: Pair, proofs: Sequence[tuple[uuid.UUID, bytes]]) -> list[str]:
        """S: verdicts on D's proofs; units proved equal are committed as ready before this returns.

        ``caller`` is the authenticated node: only the pair's slave node may prove its units
        (``PermissionError`` otherwise).
        """
        app = self.sources.get(pair)
        if app is None or caller != app.slave_node:
            raise PermissionError(f"node {caller} does not hold the slave end of pair {pair[0]}->{pair[1]} from here")
        verdicts: list[str] = []
        good: list[tuple[uuid.UUID, _Unit]] = []
        for unit_id, claimed in proofs:
            unit = self._pending.get(unit_id)
            if unit is None or unit.pair != app:
                # D asks again when S's answer was lost: a unit confirmed already is still ready
                verdicts.append(READY if self._confirmed.get(unit_id) == pair else UNKNOWN)
                continue
            del self._pending[unit_id]  # still counted in flight until counted ready: refill must not overshoot
            if verify(unit.material, unit_id, app.master_node, app.slave_node, claimed):
                verdicts.append(READY)
                good.append((unit_id, unit))
            else:
                verdicts.append(MISMATCH)
                wipe(unit.material)
                self._landed(app)
                self._mismatch(app, unit_id)
        if good:
            try:
                await asyncio.to_thread(self.store.add_ready, pair, [(uid, bytes(u.material)) for uid, u in good])
            except StoreError as exc:  # not committed: D must not keep them
                log.error("node %s: cannot commit %d confirmed units of %s->%s: %s", self.node, len(good), *pair, exc)
                verdicts = [UNKNOWN if v == READY else v for v in verdicts]
            else:
                self._ready[pair] = self._ready.get(pair, 0) + sum(len(u.material) for _, u in good)
                self.stats.units_confirmed += len(good)
                if self._prepared[pair] < self.settings.prepared_keys:
                    self._kick(pair)
                for uid, _ in good:
                    self._confirmed[uid] = pair
                while len(self._confirmed) > CONFIRMED_MEMORY:
                    self._confirmed.pop(next(iter(self._confirmed)))
            finally:
                for _, unit in good:
                    wipe(unit.material)
                    self._landed(app)
        return verdicts

    def _mismatch(self, app: AppPair, unit_id: uuid.UUID) -> None:
        self.stats.mismatches += 1
        paths = self.paths_of(app) if self.paths_of is not None else []
        report: dict[str, object] = {
            "unit_ID": str(unit_id),
            "source": app.master_node,
            "destination": app.slave_node,
            "paths": paths,
        }
        self.stats.mismatch_reports = [*self.stats.mismatch_reports[-99:], report]
        suspects = "; ".join(" > ".join(p) for p in paths) or "unknown"
        log.warning(
            "node %s: unit %s of %s->%s rebuilt differently at %s: discarded at both ends; suspected paths: %s",
            self.node, unit_id, app.master, app.slave, app.slave_node, suspects,
        )  # fmt: skip

    # -- S: issue ----------------------------------------------------------------------------

    def ready_count(self, pair: Pair, key_bytes: int) -> int:
        """Keys of ``key_bytes`` the pair's ready material and prepared keys can serve now (ETSI
        ``stored_key_count``)."""
        prepared = self._prepared.get(pair, 0) if key_bytes == self.key_bytes else 0
        return self._ready.get(pair, 0) // key_bytes + prepared

    def max_count(self, key_bytes: int) -> int:
        """Keys of ``key_bytes`` a full store holds (ETSI ``max_key_count``): the depth, plus the prepared
        keys for the default size."""
        prepared = self.settings.prepared_keys if key_bytes == self.key_bytes else 0
        return max(1, self.settings.depth_bytes // key_bytes + prepared)

    async def issue(self, pair: Pair, sizes: list[int]) -> list[tuple[uuid.UUID, bytes]]:
        """S (``enc_keys``): keys of ``sizes`` bytes that D has committed too; all or nothing.

        ``FlowUnavailableError`` when the pair's ready material is short, or when D did not
        confirm the push (the keys carved for it are then burnt, never handed out).
        """
        if pair not in self.sources:
            raise KeyError(pair)
        if self._preparable(pair, sizes):
            handed = await self._hand_out(pair, len(sizes))
            if handed is not None:
                return handed
        done: asyncio.Future[list[tuple[uuid.UUID, bytes]]] = asyncio.get_running_loop().create_future()
        self._requests[pair].append(_Request(sizes, done))
        self._kick(pair)
        return await done

    def _preparable(self, pair: Pair, sizes: list[int]) -> bool:
        """Whether prepared keys can serve a request of ``sizes`` (all of the default size, enough held)."""
        return bool(sizes) and all(n == self.key_bytes for n in sizes) and self._prepared[pair] >= len(sizes)

    async def _hand_out(self, pair: Pair, count: int) -> list[tuple[uuid.UUID, bytes]] | None:
        """Prepared keys (D committed them already): one local commit, no push. ``None`` when the store
        holds fewer than the counter said; the request then takes the carving path."""
        self._prepared[pair] -= count  # claimed before the await: two requests never count one key
        try:
            keys = await asyncio.to_thread(self.store.hand_out, pair, self.key_bytes, count)
        except NotEnoughKeyError:
            self._prepared[pair] = await asyncio.to_thread(self.store.prepared_count, pair, self.key_bytes)
            return None
        except BaseException:
            self._prepared[pair] += count  # not taken (the store rolled back)
            raise
        self.stats.keys_issued += count
        if self._prepared[pair] < self.settings.prepared_keys:
            self._kick(pair)
        return keys

    def _kick(self, pair: Pair) -> None:
        """Start the pair's issuer (requests waiting first, then preparation) unless it runs."""
        if self._closed:
            return
        issuer = self._issuers.get(pair)
        if issuer is None or issuer.done():
            self._issuers[pair] = asyncio.create_task(self._issue_waiting(pair))

    def _retry_after(self, pair: Pair, short: int) -> float:
        """Seconds until ``short`` more bytes may be ready, from the window and the pending time (at least 1)."""
        per_round = max(1, self.settings.window * self.settings.unit_bytes)
        return float(max(1, round(short / per_round * 0.05 + 0.5)))

    async def _issue_waiting(self, pair: Pair) -> None:
        """One commit and one push for every request of ``pair`` waiting now, in arrival order; with none
        waiting, prepared keys topped up. The pair's one pusher: its pushes and marks never interleave."""
        queue = self._requests[pair]
        while queue or await self._prepare(pair):
            if not queue:
                continue
            batch: list[_Request] = []
            total = 0
            ready = self._ready.get(pair, 0)
            while queue:
                need = sum(queue[0].sizes)
                if total + need > ready:
                    if not batch:  # the first one waiting does not fit: 503 now, others may fit
                        request = queue.pop(0)
                        if self._preparable(pair, request.sizes):
                            try:
                                handed = await self._hand_out(pair, len(request.sizes))
                            except StoreError as exc:
                                _fail(request.done, exc)
                                continue
                            if handed is not None:
                                if not request.done.done():
                                    request.done.set_result(handed)
                                continue
                        self.stats.keys_refused += len(request.sizes)
                        _fail(request.done, FlowUnavailableError(
                            f"{need} bytes of confirmed key asked for, {ready} ready for {pair[0]}->{pair[1]}",
                            self._retry_after(pair, need - ready),
                        ))  # fmt: skip
                        continue
                    break
                batch.append(queue.pop(0))
                total += need
            if batch:
                await self._issue_batch(pair, batch)

    async def _issue_batch(self, pair: Pair, batch: list[_Request]) -> None:
        sizes = [size for request in batch for size in request.sizes]
        try:
            keys = await asyncio.to_thread(self.store.issue, pair, sizes)
        except NotEnoughKeyError as exc:  # the counter ran ahead of the store: believe the store
            self._ready[pair] = exc.available
            for request in batch:
                self.stats.keys_refused += len(request.sizes)
                _fail(request.done, FlowUnavailableError(str(exc), 1.0))
            return
        except StoreError as exc:
            for request in batch:
                _fail(request.done, exc)
            return
        self._ready[pair] = max(0, self._ready.get(pair, 0) - sum(sizes))
        self._wake[pair].set()
        if not await self._push(pair, keys):
            slave_node = self.sources[pair].slave_node
            for request in batch:
                _fail(request.done, FlowUnavailableError(f"node {slave_node} did not confirm the keys", 1.0))
            return
        self.stats.keys_issued += len(keys)
        at = 0
        for request in batch:
            part = keys[at : at + len(request.sizes)]
            at += len(request.sizes)
            if not request.done.done():
                request.done.set_result([(k.key_id, k.key) for k in part])

    async def _prepare(self, pair: Pair) -> bool:
        """Carve up to :data:`PREPARE_BATCH` default-size keys ahead of requests and have D commit them;
        False when no more are wanted (or ready material is short, or D did not confirm)."""
        want = min(PREPARE_BATCH, self.settings.prepared_keys - self._prepared[pair])
        count = min(want, self._ready.get(pair, 0) // self.key_bytes)
        if count <= 0 or self.clock() < self._prepare_after.get(pair, 0.0):
            return False
        try:
            keys = await asyncio.to_thread(self.store.issue, pair, [self.key_bytes] * count, prepare=True)
        except NotEnoughKeyError as exc:
            self._ready[pair] = exc.available
            return False
        except StoreError as exc:
            log.error("node %s: cannot prepare keys for %s->%s: %s", self.node, *pair, exc)
            self._pause_preparation(pair)
            return False
        self._ready[pair] = max(0, self._ready.get(pair, 0) - count * self.key_bytes)
        self._wake[pair].set()
        if not await self._push(pair, keys):
            # their records wait as void; the next push drops their kept bytes first (see _push)
            self._pause_preparation(pair)  # D is not confirming: do not burn more
            return False
        self._prepared[pair] += count
        self.stats.keys_prepared += count
        return True

    def _pause_preparation(self, pair: Pair) -> None:
        self._prepare_after[pair] = self.clock() + PREPARE_RETRY_S
        asyncio.get_running_loop().call_later(PREPARE_RETRY_S, self._kick, pair)

    async def _push(self, pair: Pair, keys: list[IssuedKey]) -> bool:
        """Push the records of ``keys`` (and any void backlog first) to D and mark them pushed; False when
        D did not confirm: the keys are burnt (their records go to D as void with the next push)."""
        app = self.sources[pair]
        void = self._void[pair]
        channel = self.channels[app.slave_node]
        try:
            # A void key's kept bytes go before its record leaves: once marked, a prepared key is handed out.
            for at in range(0, len(void), VOID_PER_PUSH):
                await asyncio.to_thread(
                    self.store.drop_prepared, pair, [kid for kid, _ in void[at : at + VOID_PER_PUSH]]
                )
            sent = 0
            while len(void) - sent > VOID_PER_PUSH:  # a long backlog (after a restart) first, in bounded pushes
                await channel.push(pair, [], void[sent : sent + VOID_PER_PUSH])
                sent += VOID_PER_PUSH  # not marked yet: a void record D gets twice is skipped there
            await channel.push(pair, [(k.key_id, k.ranges) for k in keys], void[sent:])
            # Marked once everything carved so far reached D, before the answer: after a restart, records
            # past the mark were never answered 200.
            await asyncio.to_thread(self._mark_pushed, pair)
            del void[: len(void)]
        except Exception as exc:  # any failure means D may not hold them: never hand them out
            # D's ledger must still move past their bytes: the next push carries them as void
            void.extend((k.key_id, k.ranges) for k in keys)
            self.stats.keys_burnt += len(keys)
            if isinstance(exc, UnitMissingError):
                await self._drop_unit(pair, exc.unit_id)
            self.log_summary.note(
                f"keys burnt for {pair[0]}->{pair[1]}",
                f"{len(keys)} keys for {pair[0]}->{pair[1]} burnt: node {app.slave_node} did not confirm them ({exc})",
            )
            return False
        return True

    def _mark_pushed(self, pair: Pair) -> None:
        """S: D confirmed every record of the pair so far (its keys may now be answered)."""
        latest = self.store.records(pair, after=self._pushed[pair])
        if latest:
            self.store.mark_pushed(pair, latest[-1].seq)
            self._pushed[pair] = latest[-1].seq

    async def _drop_unit(self, pair: Pair, unit_hex: str) -> None:
        """S: D lacks a unit S holds ready (a commit D lost): carve nothing more from it."""
        try:
            unit_id = bytes.fromhex(unit_hex)
            size = await asyncio.to_thread(self._unit_left, pair, unit_id)
        except (ValueError, StoreError) as exc:
            log.error("node %s: cannot drop unit %s of %s->%s: %s", self.node, unit_hex, *pair, exc)
            return
        self._ready[pair] = max(0, self._ready.get(pair, 0) - size)
        self.stats.units_missing_at_d += 1
        log.warning("node %s: unit %s of %s->%s is missing at %s: dropped here too", self.node, unit_hex, *pair,
                    self.sources[pair].slave_node)  # fmt: skip

    def _unit_left(self, pair: Pair, unit_id: bytes) -> int:
        before = self.store.ready_bytes(pair)
        self.store.discard(unit_id, "missing-at-d")
        return before - self.store.ready_bytes(pair)

    # -- D: arrivals and proofs --------------------------------------------------------------

    def arrived(self, unit_id: uuid.UUID, material: bytes, source: str) -> bool:
        """D: a unit rebuilt here from ``source``; False when no pair relays from there to here."""
        app = self._by_source_node.get(source)
        if app is None or unit_id in self._pending:
            return False
        self._pending[unit_id] = _Unit(app, bytearray(material), self.clock())
        self._proofs.append(unit_id)
        self._proofs_ready.set()
        return True

    async def _send_proofs(self) -> None:
        while True:
            await self._proofs_ready.wait()
            self._proofs_ready.clear()
            waiting, self._proofs = self._proofs, []
            retry, self._uncommitted = self._uncommitted, []
            committed = True
            for app in {u.pair for _, u in retry}:
                committed &= await self._commit_ready(
                    (app.master, app.slave), [(i, u) for i, u in retry if u.pair == app]
                )
            by_pair: dict[AppPair, list[uuid.UUID]] = {}
            for unit_id in waiting:
                unit = self._pending.get(unit_id)
                if unit is not None:
                    by_pair.setdefault(unit.pair, []).append(unit_id)
            results = await asyncio.gather(
                *(
                    self._prove(app, ids[i : i + PROOF_BATCH])
                    for app, ids in by_pair.items()
                    for i in range(0, len(ids), PROOF_BATCH)
                )
            )
            if not committed or any(not ok for ok in results):
                await asyncio.sleep(RETRY_S)

    async def _prove(self, app: AppPair, ids: list[uuid.UUID]) -> bool:
        """One proof request; False (and the units queued again) when S could not be reached."""
        pair = (app.master, app.slave)
        units = [(uid, self._pending[uid]) for uid in ids if uid in self._pending]
        proofs = [(uid, proof(u.material, uid, app.master_node, app.slave_node)) for uid, u in units]
        try:
            verdicts = await self.channels[app.master_node].confirm(pair, proofs)
        except Exception as exc:  # unreachable or refused: try again until the units expire
            log.debug("node %s: proofs to %s not answered: %s", self.node, app.master_node, exc)
            self._proofs.extend(uid for uid, _ in units)
            self._proofs_ready.set()
            return False
        ready = [(uid, u) for (uid, u), verdict in zip(units, verdicts, strict=True) if verdict == READY]
        for (uid, u), verdict in zip(units, verdicts, strict=True):
            if verdict != READY and self._pending.pop(uid, None) is not None:
                wipe(u.material)
                if verdict == MISMATCH:
                    self.stats.mismatches += 1
                else:
                    self.stats.units_unknown += 1
        await self._commit_ready(pair, ready)
        return True

    async def _commit_ready(self, pair: Pair, units: list[tuple[uuid.UUID, _Unit]]) -> bool:
        """D: commit units S called ready (or a record showed ready), then wipe the copies in memory.

        When the store cannot commit them they stay in memory, out of expiry's reach, and are
        tried again with the next proofs (S holds them ready, so D must not lose them); False then.
        """
        # One commit at a time: a proof's verdict and a push naming the same unit may both bring it
        # here; the second finds it committed (gone from _pending) and counts it once.
        async with self._committing:
            return await self._commit_ready_now(pair, units)

    async def _commit_ready_now(self, pair: Pair, units: list[tuple[uuid.UUID, _Unit]]) -> bool:
        units = [(uid, u) for uid, u in units if self._pending.get(uid) is u]
        if not units:
            return True
        try:
            added = await asyncio.to_thread(self.store.add_ready, pair, [(uid, bytes(u.material)) for uid, u in units])
        except StoreError as exc:
            self.stats.commit_failures += 1
            log.error(
                "node %s: cannot commit %d ready units of %s->%s (%s); retrying", self.node, len(units), *pair, exc
            )
            for _, u in units:
                u.created = float("inf")  # confirmed at S: never expires here
            self._uncommitted.extend(units)
            self._proofs_ready.set()
            return False
        for uid, u in units:
            if self._pending.get(uid) is u:
                del self._pending[uid]
            self._ready[pair] = self._ready.get(pair, 0) + len(u.material)
            wipe(u.material)
        self.stats.units_confirmed += added
        return True

    async def on_push(
        self,
        caller: str,
        pair: Pair,
        records: Sequence[tuple[uuid.UUID, Sequence[Range]]],
        void: Sequence[tuple[uuid.UUID, Sequence[Range]]] = (),
    ) -> int:
        """D: S's ledger records, committed before this returns; how many were new.

        ``void`` are records of keys S never handed out (an earlier push it could not
        confirm): applied so that D's ledger keeps step with S's, then wiped at once.
        ``PermissionError`` unless ``caller`` is the pair's master node;
        ``LedgerMismatchError`` (nothing applied) when a record does not fit D's store.
        """
        app = self.destinations.get(pair)
        if app is None or caller != app.master_node:
            raise PermissionError(f"node {caller} does not hold the master end of pair {pair[0]}->{pair[1]} to here")
        ordered = [*void, *records]  # the void ones are older: S carved them first
        if not ordered:
            return 0
        named = {r.unit_id for _, ranges in ordered for r in ranges}
        promote = [(uid, u) for uid, u in self._pending.items() if uid.bytes in named and u.pair == app]
        if not await self._commit_ready(pair, promote):
            raise StoreError("cannot commit the units the records name now")
        if void:
            await asyncio.to_thread(self.store.apply_void, pair, list(void))
        applied = await asyncio.to_thread(self.store.apply_issues, pair, list(records)) if records else 0
        self._ready[pair] = max(0, self._ready.get(pair, 0) - sum(r.length for _, rs in ordered for r in rs))
        self.stats.records_applied += applied
        return applied

    async def take(self, pair: Pair, key_ids: list[uuid.UUID]) -> list[bytes]:
        """D (``dec_keys``): the keys, each once ever; all or nothing (the store's errors pass through)."""
        if pair not in self.destinations:
            raise KeyError(pair)
        keys: list[bytes] = await asyncio.to_thread(self.store.take, pair, key_ids)
        return keys

    # -- both: expiry ------------------------------------------------------------------------

    async def _expire(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.settings.pending_s / 4))
            self.expire()
            self.log_summary.flush()

    def expire(self) -> int:
        """Wipe units pending longer than ``pending_s``; returns how many."""
        limit = self.clock() - self.settings.pending_s
        old = [uid for uid, unit in self._pending.items() if unit.created < limit]
        for uid in old:
            unit = self._left(uid)
            if unit is not None:
                wipe(unit.material)
        self.stats.units_expired += len(old)
        return len(old)

    async def maintain(self, keep_s: float) -> int:
        """Drop the key store's ledger rows and unit tombstones older than ``keep_s`` seconds and checkpoint
        its write-ahead log; returns how many rows went. The flow is the key store's one writer: the node's
        maintenance goes through here too."""
        forgotten = await asyncio.to_thread(self.store.forget, time.time() - keep_s)
        await asyncio.to_thread(self.store.checkpoint)
        return forgotten

    def snapshot(self) -> dict[str, object]:
        """Counters and per-pair figures for the node's stats (no secrets)."""
        pairs = {
            f"{m}->{s}": {
                "end": "source" if (m, s) in self.sources else "destination",
                "ready_bytes": self._ready.get((m, s), 0),
                "prepared_keys": self._prepared.get((m, s), 0),
                "in_flight": self._in_flight.get((m, s), 0),
            }
            for m, s in (*self.sources, *self.destinations)
        }
        return {**{k: v for k, v in vars(self.stats).items()}, "pairs": pairs, "pending": len(self._pending)}


def _fail(done: asyncio.Future[list[tuple[uuid.UUID, bytes]]], exc: BaseException) -> None:
    if not done.done():
        done.set_exception(exc)


def _bind(fn: Callable[[Pair], Awaitable[None]], pair: Pair) -> Callable[[], Awaitable[None]]:
    return lambda: fn(pair)


__all__ = ["FlowStats", "FlowUnavailableError", "KeyFlow", "PairChannel", "UnitMissingError"]
