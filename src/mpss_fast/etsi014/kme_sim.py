"""A simulated QKD KME serving ETSI GS QKD 014, for link keys in tests and demos (``mpss kme-sim``).

One simulator stands for the two KMEs of a QKD link: both SAEs (the two nodes at the
ends of the link) connect to it. For each configured SAE pair, either SAE may act as
master: its ``enc_keys`` draws fresh random keys (``os.urandom``) and remembers them for
the other, whose ``dec_keys`` returns each exactly once. At most ``limits.max_key_count``
keys wait per (master, slave); with ``rate`` (keys per second) the simulated QKD link
produces key at that pace, from a full buffer. Not enough key: 503. See ``docs/etsi014.md``.
"""

from __future__ import annotations

import os
import ssl
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..exceptions import Etsi014BadRequestError, Etsi014UnauthorizedError, Etsi014UnavailableError, ParameterError
from ..https.server import RunningServer, start_server
from ..https.stopping import stop_on_signals
from ..https.tls import ssl_server_context
from .model import KeyLimits, KeyList, KeyStatus, check_sae_id
from .server import make_app

DELIVERED_MEMORY = 100_000
"""Delivered key IDs remembered per pair, so a repeat is told "already delivered" rather than "unknown"."""


@dataclass
class _PairState:
    outstanding: OrderedDict[uuid.UUID, bytes] = field(default_factory=OrderedDict, repr=False)  # key bytes
    delivered: OrderedDict[uuid.UUID, None] = field(default_factory=OrderedDict)
    tokens: float = 0.0
    refilled: float = 0.0


class KmeSimBackend:
    """The simulator's key store, a :class:`~mpss_fast.etsi014.backend.KeyBackend`.

    ``pairs``: unordered SAE pairs ``(a, b)``; each allows both ``(a, b)`` and ``(b, a)`` as
    (master, slave). ``rate``: keys per second the simulated link produces (``None``:
    as fast as asked, bounded only by ``limits.max_key_count`` keys waiting for the slave).
    """

    def __init__(
        self,
        pairs: Iterable[tuple[str, str]],
        *,
        kme_id: str = "kme-sim",
        limits: KeyLimits | None = None,
        rate: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kme_id = check_sae_id(kme_id, "KME ID")
        self.limits = limits if limits is not None else KeyLimits()
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0):
            raise ParameterError(f"rate must be a positive number of keys per second, not {rate!r}")
        self.rate = rate
        self._clock = clock
        self._state: dict[tuple[str, str], _PairState] = {}
        now = clock()
        for a, b in pairs:
            a, b = check_sae_id(a), check_sae_id(b)
            if a == b:
                raise ParameterError(f"an SAE pair needs two different SAEs, not {a} twice")
            for master, slave in ((a, b), (b, a)):
                self._state[(master, slave)] = _PairState(tokens=float(self.limits.max_key_count), refilled=now)
        if not self._state:
            raise ParameterError("the KME simulator needs at least one SAE pair")
        self._saes = {sae for pair in self._state for sae in pair}

    def is_known_sae(self, sae_id: str) -> bool:
        return sae_id in self._saes

    def _pair(self, master: str, slave: str) -> _PairState:
        state = self._state.get((master, slave))
        if state is None:
            raise Etsi014UnauthorizedError(f"SAE {master} is not paired with SAE {slave} in this KME")
        return state

    def _available(self, state: _PairState) -> int:
        room = self.limits.max_key_count - len(state.outstanding)
        if self.rate is None:
            return room
        now = self._clock()
        state.tokens = min(float(self.limits.max_key_count), state.tokens + (now - state.refilled) * self.rate)
        state.refilled = now
        return max(0, min(room, int(state.tokens)))

    async def status(self, master: str, slave: str) -> KeyStatus:
        state = self._pair(master, slave)
        return KeyStatus.build(
            self.limits,
            source_kme=self.kme_id,
            target_kme=self.kme_id,
            master=master,
            slave=slave,
            stored=self._available(state),
        )

    async def enc_keys(self, master: str, slave: str, number: int, size_bits: int) -> KeyList:
        state = self._pair(master, slave)
        available = self._available(state)
        if number > available:
            raise Etsi014UnavailableError(f"not enough key for SAE {slave}: {available} available, {number} asked")
        keys: KeyList = []
        for _ in range(number):
            kid, key = uuid.uuid4(), os.urandom(size_bits // 8)
            state.outstanding[kid] = key
            keys.append((kid, key))
        state.tokens -= number
        return keys

    async def dec_keys(self, slave: str, master: str, key_ids: list[uuid.UUID]) -> KeyList:
        state = self._pair(master, slave)
        for kid in key_ids:  # all or nothing: a request with one bad ID delivers none
            if kid not in state.outstanding:
                why = "was already delivered" if kid in state.delivered else "is unknown"
                raise Etsi014BadRequestError(f"key_ID {kid} {why}")
        keys = [(kid, state.outstanding.pop(kid)) for kid in key_ids]
        for kid in key_ids:
            state.delivered[kid] = None
        while len(state.delivered) > DELIVERED_MEMORY:
            state.delivered.popitem(last=False)
        return keys


def parse_sae_pair(text: str) -> tuple[str, str]:
    """``A,B`` -> ("A", "B"), two different SAE IDs; ``ParameterError`` otherwise."""
    parts = text.split(",")
    if len(parts) != 2 or parts[0] == parts[1]:
        raise ParameterError(f"--sae must be two different SAE IDs A,B, not {text!r}")
    try:
        return check_sae_id(parts[0]), check_sae_id(parts[1])
    except Etsi014BadRequestError as exc:
        raise ParameterError(f"--sae {text!r}: {exc.message}") from None


async def start(
    backend: KmeSimBackend,
    host: str,
    port: int,
    *,
    cert: str | None = None,
    key: str | None = None,
    ca: str | None = None,
    plain_http: bool = False,
) -> RunningServer:
    """Start serving ``backend``: mutual TLS with ``cert``/``key``/``ca``, or plain HTTP (development only)."""
    tls = (cert, key, ca)
    if plain_http:
        if any(item is not None for item in tls):
            raise ParameterError("plain HTTP takes no certificate, key or CA")
        return await start_server(make_app(backend, require_client_cert=False), host, port, ssl_context=None)
    if cert is None or key is None or ca is None:
        raise ParameterError("the KME simulator needs a certificate, its key and the CA of the SAE certificates")
    try:
        context = ssl_server_context(cert, key, ca)
    except (OSError, ssl.SSLError) as exc:
        raise ParameterError(f"cannot load the TLS certificate, key or CA: {exc}") from None
    return await start_server(make_app(backend), host, port, ssl_context=context)


async def serve(
    backend: KmeSimBackend,
    host: str,
    port: int,
    *,
    cert: str | None = None,
    key: str | None = None,
    ca: str | None = None,
    plain_http: bool = False,
    ready: Callable[[RunningServer], None] | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT (or cancellation); ``ready(server)`` is called once listening."""
    server = await start(backend, host, port, cert=cert, key=key, ca=ca, plain_http=plain_http)
    try:
        async with stop_on_signals() as stop:
            if ready is not None:
                ready(server)
            await stop.wait()
    finally:
        await server.close()
