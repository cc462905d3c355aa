"""The node's ETSI 014 backend toward its applications: keys from the per-pair key stores of ``keyflow``.

:class:`FlowBackend` serves the application pairs with an end at this node. ``enc_keys``
(a master SAE here) hands out confirmed keys only, all or nothing, and answers only once
the slave's node has committed them too: a 200 means the slave can collect every key in
it. When the pair's ready material is short the answer is 503 with ``Retry-After``.
``dec_keys`` (a slave SAE here) answers at once from the store, each key once ever.
``stored_key_count`` is the number of default-size keys the pair's ready material holds plus
the keys S prepared ahead (``stores.prepared_keys``), ``max_key_count`` that of a full store.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

from ..etsi014.model import KeyLimits, KeyList, KeyStatus
from ..exceptions import (
    Etsi014BadRequestError,
    Etsi014UnauthorizedError,
    Etsi014UnavailableError,
    KeyAlreadyDeliveredError,
    KeyNotFoundError,
    ParameterError,
    StoreError,
)
from .config import AppPair
from .keyflow import FlowUnavailableError, KeyFlow


class FlowBackend:
    """ETSI 014 over a :class:`KeyFlow` (see the module docstring); fits ``etsi014.backend.KeyBackend``."""

    def __init__(
        self, flow: KeyFlow, node: str, pairs: tuple[AppPair, ...], *, limits: KeyLimits | None = None
    ) -> None:
        self.flow = flow
        self.node = node
        self.app_pairs = {(p.master, p.slave): p for p in pairs}
        base = limits if limits is not None else KeyLimits(key_size=flow.key_bytes * 8)  # the size it prepares
        self.limits = KeyLimits(
            key_size=base.key_size,
            min_key_size=base.min_key_size,
            max_key_size=base.max_key_size,
            max_key_per_request=base.max_key_per_request,
            max_key_count=flow.max_count(base.key_size // 8),
        )
        self._saes = {sae for p in pairs for sae in (p.master, p.slave)}

    def __repr__(self) -> str:
        return f"FlowBackend(node={self.node!r}, pairs={len(self.app_pairs)})"

    def is_known_sae(self, sae_id: str) -> bool:
        return sae_id in self._saes

    def _pair(self, master: str, slave: str, side: str) -> AppPair:
        pair = self.app_pairs.get((master, slave))
        if pair is None:
            raise Etsi014UnauthorizedError(f"SAE {master} is not paired with SAE {slave} (master, slave) here")
        at = pair.master_node if side == "master" else pair.slave_node
        if at != self.node:
            raise Etsi014UnauthorizedError(f"SAE {master if side == 'master' else slave} is not at node {self.node}")
        return pair

    async def status(self, master: str, slave: str) -> KeyStatus:
        pair = self._pair(master, slave, "master")
        return KeyStatus.build(
            self.limits,
            source_kme=pair.master_node,
            target_kme=pair.slave_node,
            master=master,
            slave=slave,
            stored=self.flow.ready_count((master, slave), self.limits.key_size // 8),
        )

    async def enc_keys(self, master: str, slave: str, number: int, size_bits: int) -> KeyList:
        self._pair(master, slave, "master")
        try:
            return await self.flow.issue((master, slave), [size_bits // 8] * number)
        except FlowUnavailableError as exc:
            raise Etsi014UnavailableError(str(exc), retry_after=exc.retry_after) from None
        except StoreError as exc:
            raise Etsi014UnavailableError(f"the key store cannot issue keys now: {exc}", retry_after=1.0) from None

    async def dec_keys(self, slave: str, master: str, key_ids: list[uuid.UUID]) -> KeyList:
        self._pair(master, slave, "slave")
        with delivery_errors():
            keys = await self.flow.take((master, slave), key_ids)
        return list(zip(key_ids, keys, strict=True))


@contextlib.contextmanager
def delivery_errors() -> Iterator[None]:
    """A key store's refusals of a ``dec_keys`` as ETSI 014 400s: already delivered, unknown, malformed."""
    try:
        yield
    except KeyAlreadyDeliveredError as exc:
        raise Etsi014BadRequestError(f"key_ID {exc.key_id} was already delivered") from None
    except KeyNotFoundError as exc:
        raise Etsi014BadRequestError(f"key_ID {exc.key_id} is unknown") from None
    except ParameterError as exc:
        raise Etsi014BadRequestError(str(exc)) from None
