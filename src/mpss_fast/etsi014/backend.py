"""Where the ETSI 014 server gets its keys: the :class:`KeyBackend` protocol.

The server (``etsi014.server``) checks identities and request syntax, then calls a
backend. A backend raises :class:`~mpss_fast.exceptions.Etsi014Error` subclasses (400,
401, 503), which the server turns into ``{"message": ...}`` answers. The KME simulator
(``etsi014.kme_sim``) is one backend; the node's ``FlowBackend`` (keys from its confirmed
key stores, ``mpss_fast.node.app_backend``) is another. No aiohttp here.
"""

from __future__ import annotations

import uuid
from typing import Protocol, runtime_checkable

from .model import KeyLimits, KeyList, KeyStatus


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
