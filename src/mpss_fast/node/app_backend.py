"""The node's ETSI 014 backend toward its applications: keys made by MPSS, stored until collected.

:class:`NodeKeyBackend` is a :class:`~mpss_fast.node.etsi014_backend.StoreBackend` that
knows which end of each application pair lives at this node: ``enc_keys`` is served only
to a master SAE whose node this is (the key is relayed to the slave's node), ``dec_keys``
only to a slave SAE here. A ``dec_keys`` for a key still on its way waits for it, up to
``dec_wait_s``, instead of answering "unknown" a millisecond too early.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

from ..exceptions import (
    Etsi014BadRequestError,
    Etsi014UnauthorizedError,
    Etsi014UnavailableError,
    KeyAlreadyDeliveredError,
    KeyNotFoundError,
    KeyPoolExhaustedError,
    StoreError,
)
from .config import AppPair
from .etsi014 import KeyLimits, KeyList, KeyStatus, sae_pair
from .etsi014_backend import StoreBackend
from .store import NodeStore

COMMITTED_MEMORY = 100_000
"""Key IDs remembered as committed (so ``dec_keys`` need not ask the store); older ones are looked up."""

MakeKey = Callable[[AppPair, int], tuple[uuid.UUID, bytes]]


class NodeKeyBackend(StoreBackend):
    """ETSI 014 keys of the application pairs with an end at node ``node`` (see the module docstring)."""

    def __init__(
        self,
        store: NodeStore,
        node: str,
        pairs: tuple[AppPair, ...],
        make_key: MakeKey,
        *,
        dec_wait_s: float,
        limits: KeyLimits | None = None,
        record_issued: Callable[[str, list[uuid.UUID]], None] | None = None,
    ) -> None:
        self.node = node
        self.record_issued = record_issued
        self.app_pairs = {(p.master, p.slave): p for p in pairs}
        self.make_key = make_key
        self.dec_wait_s = dec_wait_s
        self._arrivals: dict[uuid.UUID, asyncio.Event] = {}
        self._takes: list[tuple[list[uuid.UUID], str, asyncio.Future[list[bytes] | StoreError]]] = []
        self._taker: asyncio.Task[None] | None = None
        self._committed: dict[uuid.UUID, None] = {}  # committed since start, not yet asked for (insertion order)
        super().__init__(
            store,
            self._factory,
            kme_id=node,
            pairs={(p.master, p.slave): (p.slave_node if p.master_node == node else p.master_node) for p in pairs},
            limits=limits,
        )

    async def _record_issued(self, peer: str, key_ids: list[uuid.UUID]) -> None:
        # The node records issued IDs in its group commit, off the request's path: the record is
        # bookkeeping (the key's shares have already left), so enc_keys need not wait for a flush.
        if self.record_issued is None:
            await super()._record_issued(peer, key_ids)
        else:
            self.record_issued(peer, key_ids)

    def _pair(self, master: str, slave: str, side: str) -> AppPair:
        pair = self.app_pairs.get((master, slave))
        if pair is None:
            raise Etsi014UnauthorizedError(f"SAE {master} is not paired with SAE {slave} (master, slave) here")
        at = pair.master_node if side == "master" else pair.slave_node
        if at != self.node:
            raise Etsi014UnauthorizedError(f"SAE {master if side == 'master' else slave} is not at node {self.node}")
        return pair

    def _factory(self, master: str, slave: str, size_bits: int) -> tuple[uuid.UUID, bytes]:
        try:
            return self.make_key(self._pair(master, slave, "master"), size_bits)
        except KeyPoolExhaustedError as exc:
            raise Etsi014UnavailableError(f"not enough link key to relay a key to SAE {slave} now ({exc})") from None

    async def status(self, master: str, slave: str) -> KeyStatus:
        self._pair(master, slave, "master")
        return await super().status(master, slave)

    async def enc_keys(self, master: str, slave: str, number: int, size_bits: int) -> KeyList:
        self._pair(master, slave, "master")
        return await super().enc_keys(master, slave, number, size_bits)

    async def dec_keys(self, slave: str, master: str, key_ids: list[uuid.UUID]) -> KeyList:
        self._pair(master, slave, "slave")
        peer = sae_pair(master, slave)
        missing = [kid for kid in key_ids if kid not in self._committed]
        if missing:  # keys from before a restart, or not here yet: ask the store once, off the event loop
            states = await asyncio.to_thread(lambda: [self.store.key_state(kid, peer=peer) for kid in missing])
            missing = [kid for kid, state in zip(missing, states, strict=True) if state is None]
        deadline = time.monotonic() + self.dec_wait_s
        for kid in missing:
            while kid not in self._committed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break  # the store backend answers 400 "unknown"
                event = self._arrivals.setdefault(kid, asyncio.Event())
                try:
                    await asyncio.wait_for(event.wait(), left)
                except TimeoutError:  # asyncio.TimeoutError since Python 3.11
                    break
                finally:
                    if self._arrivals.get(kid) is event:
                        del self._arrivals[kid]
        try:
            return await self._take(peer, key_ids)
        finally:
            for kid in key_ids:
                self._committed.pop(kid, None)

    async def _take(self, peer: str, key_ids: list[uuid.UUID]) -> KeyList:
        """Deliver ``key_ids`` (all or none), committed together with the other requests waiting now:
        one transaction for all of them, so concurrent ``dec_keys`` do not queue behind each other's fsync."""
        if len(set(key_ids)) != len(key_ids):
            raise Etsi014BadRequestError("the same key_ID is asked for twice")
        done: asyncio.Future[list[bytes] | StoreError] = asyncio.get_running_loop().create_future()
        self._takes.append((key_ids, peer, done))
        if self._taker is None or self._taker.done():
            self._taker = asyncio.create_task(self._take_waiting())
        result = await done
        if isinstance(result, KeyAlreadyDeliveredError):
            raise Etsi014BadRequestError(f"key_ID {result.key_id} was already delivered")
        if isinstance(result, KeyNotFoundError):
            raise Etsi014BadRequestError(f"key_ID {result.key_id} is unknown")
        if isinstance(result, StoreError):
            raise result
        return list(zip(key_ids, result, strict=True))

    async def _take_waiting(self) -> None:
        while self._takes:
            batch, self._takes = self._takes, []
            results: list[list[bytes] | StoreError]
            try:
                results = list(
                    await asyncio.to_thread(self.store.take_keys_many, [(ids, peer) for ids, peer, _ in batch])
                )
            except StoreError as exc:  # nothing of the batch was delivered
                results = [exc] * len(batch)
            for (_, _, done), result in zip(batch, results, strict=True):
                if not done.done():
                    done.set_result(result)

    def arrived(self, key_id: uuid.UUID) -> None:
        """Note that ``key_id`` is committed, and wake a ``dec_keys`` waiting for it."""
        self._committed[key_id] = None
        while len(self._committed) > COMMITTED_MEMORY:  # keys nobody collects: forget the oldest (the store has them)
            self._committed.pop(next(iter(self._committed)))
        event = self._arrivals.get(key_id)
        if event is not None:
            event.set()

    def pair_from(self, source_node: str) -> AppPair | None:
        """The pair whose master is at ``source_node`` and slave here."""
        for pair in self.app_pairs.values():
            if pair.master_node == source_node and pair.slave_node == self.node:
                return pair
        return None
