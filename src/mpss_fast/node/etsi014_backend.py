"""Where the ETSI 014 server gets its keys: the :class:`KeyBackend` protocol and :class:`StoreBackend`.

The server (``etsi014_server``) checks identities and request syntax, then calls a
backend. A backend raises :class:`~mpss_fast.exceptions.Etsi014Error` subclasses (400,
401, 503), which the server turns into ``{"message": ...}`` answers. The KME simulator
(``kme_sim``) is one backend; :class:`StoreBackend` (a node's applications, keys in a
:class:`~mpss_fast.node.NodeStore`) is another. No aiohttp here.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Protocol, runtime_checkable

from ..exceptions import (
    Etsi014BadRequestError,
    Etsi014Error,
    Etsi014UnauthorizedError,
    Etsi014UnavailableError,
    KeyAlreadyDeliveredError,
    KeyNotFoundError,
    KeyPoolExhaustedError,
    ParameterError,
)
from .etsi014 import KeyLimits, KeyList, KeyStatus, check_sae_id, sae_pair
from .store import NodeStore


@runtime_checkable
class KeyBackend(Protocol):
    """The keys behind an ETSI 014 server.

    ``limits`` bounds every request (the server checks number, size and key ID counts
    against it before calling). ``is_known_sae`` says whether a caller's identity (its
    certificate's CN) may use the server at all (401 otherwise). The three coroutines may
    raise ``Etsi014Error`` subclasses: ``Etsi014UnauthorizedError`` for an SAE pair the
    caller may not use, ``Etsi014BadRequestError`` for unknown or already delivered key IDs,
    ``Etsi014UnavailableError`` when not enough key is available.
    """

    limits: KeyLimits

    def is_known_sae(self, sae_id: str) -> bool:
        """Whether ``sae_id`` is an SAE this server serves."""
        ...

    async def status(self, master: str, slave: str) -> KeyStatus:
        """``GET status``: the caller ``master`` asks about keys shared with ``slave``."""
        ...

    async def enc_keys(self, master: str, slave: str, number: int, size_bits: int) -> KeyList:
        """``enc_keys``: ``number`` new keys of ``size_bits`` for ``master`` to share with ``slave``."""
        ...

    async def dec_keys(self, slave: str, master: str, key_ids: list[uuid.UUID]) -> KeyList:
        """``dec_keys``: the keys ``master`` obtained with these IDs, for ``slave``; each delivered once."""
        ...


KeyFactory = Callable[[str, str, int], tuple[uuid.UUID, bytes] | Awaitable[tuple[uuid.UUID, bytes]]]
"""``key_factory(master, slave, size_bits) -> (key_id, key)`` (or an awaitable of it): makes one
key for ``master`` and starts its way to ``slave``'s node; raises ``Etsi014UnavailableError`` or
``KeyPoolExhaustedError`` when there is not enough link key."""


class StoreBackend:
    """A node's applications, with keys recorded in a :class:`NodeStore`.

    * **Source side** (``enc_keys``, the master SAE at this node): each key comes from
      ``key_factory`` (the node relays it to the slave's node) and is recorded with
      ``store.issue_key`` under the peer name ``sae_pair(master, slave)`` before it is returned.
    * **Destination side** (``dec_keys``, the slave SAE at this node): keys rebuilt by the node
      were kept with ``store.put_key(key_id, key, peer=sae_pair(master, slave))``; each is
      returned once (``store.take_key``); a repeat is 400 "already delivered".

    ``pairs`` maps each allowed ``(master, slave)`` to the KME (node) ID of the slave's side
    (the status's ``target_KME_ID``). ``stored_key_count(master, slave)`` (optional) says how
    many keys ``enc_keys`` could give now; by default the status reports the keys pending for
    the pair in the store. Store calls run in a worker thread, one request at a time, so a
    ``dec_keys`` checks every ID before it delivers any.
    """

    def __init__(
        self,
        store: NodeStore,
        key_factory: KeyFactory,
        *,
        kme_id: str,
        pairs: Mapping[tuple[str, str], str],
        limits: KeyLimits | None = None,
        stored_key_count: Callable[[str, str], int] | None = None,
    ) -> None:
        if not pairs:
            raise ParameterError("StoreBackend needs at least one (master, slave) SAE pair")
        self.store = store
        self.key_factory = key_factory
        self.kme_id = check_sae_id(kme_id, "KME ID")
        self.pairs = {(check_sae_id(m), check_sae_id(s)): check_sae_id(t, "KME ID") for (m, s), t in pairs.items()}
        self.limits = limits if limits is not None else KeyLimits()
        self._stored_key_count = stored_key_count
        self._saes = {sae for pair in self.pairs for sae in pair}
        self._lock = asyncio.Lock()

    def is_known_sae(self, sae_id: str) -> bool:
        return sae_id in self._saes

    def _check_pair(self, master: str, slave: str) -> str:
        if (master, slave) not in self.pairs:
            raise Etsi014UnauthorizedError(f"SAE {master} is not paired with SAE {slave} (master, slave) here")
        return sae_pair(master, slave)

    async def status(self, master: str, slave: str) -> KeyStatus:
        peer = self._check_pair(master, slave)
        if self._stored_key_count is not None:
            stored = self._stored_key_count(master, slave)
        else:
            stored = len(await asyncio.to_thread(self.store.pending_keys, peer))
        return KeyStatus.build(
            self.limits,
            source_kme=self.kme_id,
            target_kme=self.pairs[(master, slave)],
            master=master,
            slave=slave,
            stored=stored,
        )

    async def enc_keys(self, master: str, slave: str, number: int, size_bits: int) -> KeyList:
        peer = self._check_pair(master, slave)
        keys: KeyList = []
        for _ in range(number):
            try:
                made = self.key_factory(master, slave, size_bits)
                kid, key = await made if inspect.isawaitable(made) else made
            except KeyPoolExhaustedError:
                raise Etsi014UnavailableError(f"not enough link key to relay a key to SAE {slave} now") from None
            if len(key) * 8 != size_bits:
                raise Etsi014Error("the key factory returned a key of the wrong size", 500)
            keys.append((kid, key))
        await self._record_issued(peer, [kid for kid, _ in keys])
        return keys

    async def _record_issued(self, peer: str, key_ids: list[uuid.UUID]) -> None:
        """Record issued key IDs: here one transaction per request, committed before the keys are returned."""
        await asyncio.to_thread(self.store.issue_keys, key_ids, peer=peer)

    async def dec_keys(self, slave: str, master: str, key_ids: list[uuid.UUID]) -> KeyList:
        peer = self._check_pair(master, slave)
        async with self._lock:
            return await asyncio.to_thread(self._take_all, peer, key_ids)

    def _take_all(self, peer: str, key_ids: list[uuid.UUID]) -> KeyList:
        # One transaction: a request with one bad ID delivers none (and loses none).
        with delivery_errors():
            keys = self.store.take_keys(key_ids, peer=peer)
        return list(zip(key_ids, keys, strict=True))


@contextlib.contextmanager
def delivery_errors() -> Iterator[None]:
    """A store's refusals of a ``dec_keys`` as ETSI 014 400s: already delivered, unknown, malformed."""
    try:
        yield
    except KeyAlreadyDeliveredError as exc:
        raise Etsi014BadRequestError(f"key_ID {exc.key_id} was already delivered") from None
    except KeyNotFoundError as exc:
        raise Etsi014BadRequestError(f"key_ID {exc.key_id} is unknown") from None
    except ParameterError as exc:
        raise Etsi014BadRequestError(str(exc)) from None
