"""Link keys: both ends of a link direction build the same key stream from their KME.

For the direction ``A>B`` (A sends shares to B), A is the ETSI 014 master:

1. A asks the link's KME for keys (``enc_keys``) and **stages** them in its store,
   outside the stream (never handed out yet).
2. A **announces** ``(start, key IDs)`` to B's peer API; ``start`` is the key ID the batch
   will begin at, A's stream end.
3. B fetches the same keys (``dec_keys``) and appends them at ``start`` (``added``); a
   batch it already holds is answered ``have``; keys the KME no longer has for it (B
   crashed between fetching and recording them) are answered ``lost``.
4. On ``added`` or ``have`` A **commits** the batch to its stream; on ``lost`` it drops it.

A batch is in A's stream only once B has it, so both streams are always the same bytes
at the same key IDs, whichever side is killed at whichever step; an unconfirmed batch is
announced again after a restart. Key IDs travel, key bytes never do.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from ..exceptions import Etsi014BadRequestError, Etsi014Error, StoreError, UnknownLinkError
from ..relay.pool import wipe
from .etsi014_client import Etsi014Client
from .store import NodeStore

log = logging.getLogger("mpss_fast.node")

ADDED, HAVE, LOST = "added", "have", "lost"
"""The receiver's answers to an announcement."""

Announce = Callable[[int, list[uuid.UUID]], Awaitable[str]]
"""``announce(start, key_ids) -> "added" | "have" | "lost"``; raises when the neighbour cannot answer now."""


def link_name(sender: str, receiver: str) -> str:
    """The name of one link direction in the store: ``"A>B"``."""
    return f"{sender}>{receiver}"


class LinkKeyFeeder:
    """Sender side of one link direction: keeps its stream above ``low_water`` bytes."""

    def __init__(
        self,
        store: NodeStore,
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
        self.store = store
        self.link = link
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
        """Forever: confirm staged batches, then fetch more key when short; errors are logged and retried."""
        while True:
            try:
                await self.step()
                self.last_error = None
            except (Etsi014Error, StoreError, OSError) as exc:
                if str(exc) != self.last_error:
                    log.warning("link %s: key refill paused: %s", self.link, exc)
                self.last_error = str(exc)
            await asyncio.sleep(self.interval)

    async def step(self) -> None:
        """One round: announce every staged batch in order, then stage and announce one more if short."""
        if self._unconfirmed:
            for batch, key_ids, _ in await asyncio.to_thread(self.store.staged_batches, self.link):
                await self._confirm(batch, key_ids)
            self._unconfirmed = False
        if self._available() < self.low_water:
            keys = await self.kme.enc_keys(self.neighbour_sae, self.batch, self.key_bits)
            material = bytearray()
            try:
                for _, key in keys:
                    material += key
                ids = [kid for kid, _ in keys]
                batch = await asyncio.to_thread(self.store.stage_batch, self.link, ids, material)
            finally:
                wipe(material)
            self._unconfirmed = True
            await self._confirm(batch, ids)
            self._unconfirmed = False

    def _available(self) -> int:
        """Key left in the outgoing pool (0 for a direction never fed)."""
        try:
            return self.store.pool(self.link).available
        except UnknownLinkError:
            return 0

    async def _confirm(self, batch: int, key_ids: list[uuid.UUID]) -> None:
        start = await asyncio.to_thread(self.store.stream_end, self.link)
        answer = await self.announce(start, key_ids)
        if answer in (ADDED, HAVE):
            await asyncio.to_thread(self.store.commit_batch, self.link, batch)
            self.committed_batches += 1
        elif answer == LOST:
            await asyncio.to_thread(self.store.drop_batch, self.link, batch)
            self.dropped_batches += 1
            log.warning(
                "link %s: the neighbour could not fetch batch %d from the KME; dropped on both sides", self.link, batch
            )
        else:
            raise StoreError(f"link {self.link}: the neighbour answered {answer!r} to an announcement")


class LinkKeyReceiver:
    """Receiver side: answers announcements of one link direction (one at a time)."""

    def __init__(self, store: NodeStore, link: str, kme: Etsi014Client, sender_sae: str) -> None:
        self.store = store
        self.link = link
        self.kme = kme
        self.sender_sae = sender_sae
        self._lock = asyncio.Lock()

    async def receive(self, start: int, key_ids: list[uuid.UUID]) -> dict[str, Any]:
        """Handle ``(start, key_ids)``: ``{"status": "added" | "have" | "lost"}`` or
        ``{"status": "gap", "end": ...}`` when ``start`` lies beyond this stream's end (a bug
        or a lost database: the sender must not continue). KME outages raise (the sender retries)."""
        async with self._lock:
            end = await asyncio.to_thread(self.store.stream_end, self.link)
            if start < end:
                return {"status": HAVE}
            if start > end:
                return {"status": "gap", "end": end}
            try:
                keys = await self.kme.dec_keys(self.sender_sae, key_ids)
            except Etsi014BadRequestError:
                return {"status": LOST}
            material = bytearray()
            try:
                for _, key in keys:
                    material += key
                await asyncio.to_thread(self.store.add_key, self.link, material, start=start)
            finally:
                wipe(material)
            return {"status": ADDED}
