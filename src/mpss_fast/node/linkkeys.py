"""Link keys: both ends of a link direction build the same key stream from their KME.

For the direction ``A>B`` (A sends shares to B), A is the ETSI 014 master:

1. A asks the link's KME for keys (``enc_keys``) and **stages** them in its store,
   outside the stream (never handed out yet).
2. A **announces** ``(start, key IDs)`` to B's peer API; ``start`` is the offset the batch
   will begin at, A's stream end.
3. B fetches the same keys (``dec_keys``) and appends them at ``start`` (``added``); a
   batch it already holds is answered ``have``; keys the KME no longer has for it (B
   crashed between fetching and recording them) are answered ``lost``; keys unlike those
   announced (another number or size, other or repeated key IDs) are answered ``fault``.
4. On ``added`` or ``have`` A **commits** the batch to its stream; on ``lost`` or ``fault``
   it drops it.

A batch is in A's stream only once B has it, so both streams are always the same bytes
at the same offsets, whichever side is killed at whichever step; an unconfirmed batch is
announced again after a restart. Key IDs travel, key bytes never do.

**Faults.** A KME answer unlike the request, at either end (``KmeFaultError``, or a size
check here), is never used: nothing is staged or appended, the end that saw it marks the
link direction faulty (``fault``, ``faults``: in the node's stats) and logs it once at
ERROR, and the feeder tries again every ``FAULT_RETRY_S``. The first batch that goes
through again clears ``fault``; ``faults`` keeps counting.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from ..etsi014.client import Etsi014Client
from ..etsi014.model import KeyList
from ..exceptions import (
    Etsi014BadRequestError,
    Etsi014Error,
    KmeFaultError,
    ParameterError,
    PeerApiError,
    StoreError,
    UnknownLinkError,
)
from ..relay.pool import wipe
from .store import LinkStore

log = logging.getLogger("mpss_fast.node")

ADDED, HAVE, LOST, FAULT = "added", "have", "lost", "fault"
"""The receiver's answers to an announcement."""

FAULT_RETRY_S = 5.0
"""Seconds between refill tries on a link direction marked faulty (each try costs the KME a batch)."""

Announce = Callable[[int, list[uuid.UUID], int], Awaitable[str]]
"""``announce(start, key_ids, size) -> "added" | "have" | "lost" | "fault"`` (``size``: bits per key);
raises when the neighbour cannot answer now."""


def link_name(sender: str, receiver: str) -> str:
    """The name of one link direction in the store: ``"A>B"``."""
    return f"{sender}>{receiver}"


class _FaultRecord:
    """Whether one end of a link direction saw a KME fault: ``fault`` (the reason, ``None`` once key
    flows again) and ``faults`` (how many, ever). Logged once per episode, at ERROR."""

    def __init__(self, link: str) -> None:
        self.link = link
        self.faults = 0
        self.fault: str | None = None

    def _faulty(self, reason: str, consequence: str) -> None:
        self.faults += 1
        if self.fault is None:
            log.error("link %s: marked faulty: %s; %s", self.link, reason, consequence)
        self.fault = reason

    def _healthy(self) -> None:
        if self.fault is not None:
            log.info("link %s: key flows again after a fault (%d faults so far)", self.link, self.faults)
            self.fault = None


class LinkKeyFeeder(_FaultRecord):
    """Sender side of one link direction: keeps its stream above ``low_water`` bytes."""

    def __init__(
        self,
        store: LinkStore,
        link: str,
        kme: Etsi014Client,
        neighbour_sae: str,
        announce: Announce,
        *,
        batch: int,
        key_bits: int,
        low_water: int,
        interval: float,
    ) -> None:
        super().__init__(link)
        self.store = store
        self.kme = kme
        self.neighbour_sae = neighbour_sae
        self.announce = announce
        self.batch = batch
        self.key_bits = key_bits
        self.low_water = low_water
        self.interval = interval
        self.committed_batches = 0
        self.dropped_batches = 0
        self.last_error: str | None = None
        self._unconfirmed = True  # staged batches may wait (from before a start, or a failed announcement)

    async def run(self) -> None:
        """Forever: confirm staged batches, then fetch more key when short; outages are logged and retried,
        faults marked and retried every ``FAULT_RETRY_S``."""
        self._unconfirmed = True  # (re)started: staged batches first
        while True:
            try:
                await self.step()
                self.last_error = None
            except (Etsi014Error, PeerApiError, StoreError, OSError) as exc:
                if str(exc) != self.last_error:
                    log.warning("link %s: key refill paused: %s", self.link, exc)
                self.last_error = str(exc)
            await asyncio.sleep(self.interval if self.fault is None else max(self.interval, FAULT_RETRY_S))

    async def step(self) -> None:
        """One round: announce every staged batch in order, then stage and announce one more if short.

        A KME fault (an ``enc_keys`` answer unlike the request, or a ``fault`` answer from the
        neighbour) marks the link faulty and ends the round; nothing of it enters the stream.
        """
        if self._unconfirmed:
            for batch, key_ids, nbytes in await asyncio.to_thread(self.store.staged_batches, self.link):
                await self._confirm(batch, key_ids, nbytes * 8 // len(key_ids))
            self._unconfirmed = False
        if self._available() < self.low_water:
            try:
                keys = await self.kme.enc_keys(self.neighbour_sae, self.batch, self.key_bits)
                _check_keys(self.kme, "enc_keys", keys, self.batch, self.key_bits)
            except KmeFaultError as exc:
                self._faulty(str(exc), "nothing staged; retrying")
                return
            material = bytearray()
            try:
                for _, key in keys:
                    material += key
                ids = [kid for kid, _ in keys]
                batch = await asyncio.to_thread(self.store.stage_batch, self.link, ids, material)
            finally:
                wipe(material)
            self._unconfirmed = True
            await self._confirm(batch, ids, self.key_bits)
            self._unconfirmed = False

    def _available(self) -> int:
        """Key left in the outgoing pool (0 for a direction never fed)."""
        try:
            return self.store.pool(self.link).available
        except UnknownLinkError:
            return 0

    async def _confirm(self, batch: int, key_ids: list[uuid.UUID], size: int) -> None:
        start = await asyncio.to_thread(self.store.stream_end, self.link)
        answer = await self.announce(start, key_ids, size)
        if answer in (ADDED, HAVE):
            await asyncio.to_thread(self.store.commit_batch, self.link, batch)
            self.committed_batches += 1
            self._healthy()
        elif answer == FAULT:
            await asyncio.to_thread(self.store.drop_batch, self.link, batch)
            self.dropped_batches += 1
            self._faulty(
                f"the neighbour's KME answered dec_keys for batch {batch} unlike this end's enc_keys",
                "dropped on both sides; retrying",
            )
        elif answer == LOST:
            await asyncio.to_thread(self.store.drop_batch, self.link, batch)
            self.dropped_batches += 1
            log.warning(
                "link %s: the neighbour could not fetch batch %d from the KME; dropped on both sides", self.link, batch
            )
        else:
            raise StoreError(f"link {self.link}: the neighbour answered {answer!r} to an announcement")


class LinkKeyReceiver(_FaultRecord):
    """Receiver side: answers announcements of one link direction (one at a time)."""

    def __init__(self, store: LinkStore, link: str, kme: Etsi014Client, sender_sae: str) -> None:
        super().__init__(link)
        self.store = store
        self.kme = kme
        self.sender_sae = sender_sae
        self.added_batches = 0
        self._lock = asyncio.Lock()

    async def receive(self, start: int, key_ids: list[uuid.UUID], size: int) -> dict[str, Any]:
        """Handle ``(start, key_ids, size)`` (``size``: the bits of each key): ``{"status": "added" |
        "have" | "lost"}``; ``{"status": "fault"}`` when the KME's keys are unlike those announced
        (nothing is appended; the link is marked faulty); or ``{"status": "gap", "end": ...}`` when
        ``start`` lies beyond this stream's end (a bug or a lost database: the sender must not
        continue). KME outages raise (the sender retries)."""
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0 or size % 8:
            raise ParameterError(f"size must be a positive multiple of 8 bits, not {size!r}")
        async with self._lock:
            end = await asyncio.to_thread(self.store.stream_end, self.link)
            if start < end:
                return {"status": HAVE}
            if start > end:
                return {"status": "gap", "end": end}
            try:
                keys = await self.kme.dec_keys(self.sender_sae, key_ids, size)
                _check_keys(self.kme, "dec_keys", keys, len(key_ids), size, key_ids)
            except Etsi014BadRequestError:
                return {"status": LOST}
            except KmeFaultError as exc:
                self._faulty(str(exc), "nothing appended; the sender drops the batch")
                return {"status": FAULT}
            material = bytearray()
            try:
                for _, key in keys:
                    material += key
                await asyncio.to_thread(self.store.add_key, self.link, material, start=start)
            finally:
                wipe(material)
            self.added_batches += 1
            self._healthy()
            return {"status": ADDED}


def _check_keys(
    kme: Etsi014Client, call: str, keys: KeyList, number: int, size: int, key_ids: list[uuid.UUID] | None = None
) -> None:
    """What the link streams rely on, checked here too (whatever client ``kme`` is): ``number`` keys of
    ``size`` bits, distinct key IDs (``key_ids`` in that order when given); else :class:`KmeFaultError`."""
    ids = [kid for kid, _ in keys]
    if len(keys) != number or len(set(ids)) != number or (key_ids is not None and ids != list(key_ids)):
        raise KmeFaultError(f"{kme.base_url}: {call} answered other keys than asked", 200)
    if any(len(key) * 8 != size for _, key in keys):
        raise KmeFaultError(f"{kme.base_url}: {call} answered keys of another size than {size} bits", 200)
