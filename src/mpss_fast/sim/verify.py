"""Real bytes for sampled sessions: each share's journey replayed through real pools, ``seal`` and ``relay``.

Every link direction has a real sender and receiver :class:`~mpss_fast.relay.pool.LinkKeyPool`.
When a verified share is resolved (delivered or lost), the hops it took key for are
replayed at once: fresh OS-random key material (standing in for QKD output) is given to
both ends of a direction just before the sender takes it; the source seals, an honest
relay calls ``relay`` (verify, fused re-encryption, new tag), a compromised relay opens
the share (the adversary's view, in real bytes), alters it if tampering, and seals it
anew; the destination opens it. The replay is atomic in simulated time, so key IDs stay
in step however sessions interleave. The caller compares the outcome with the counter
model.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from .._gf256 import POLY_AES
from ..engine import Engine
from ..relay.hop import ShareMessage, hop_key_bytes, open_into, relay, seal
from ..relay.pool import LinkKeyPool
from ..wire import MpssOption
from .adversary import tampered


@dataclass
class Journey:
    """What the real pipeline made of one share. Its ``repr`` omits the share values."""

    delivered: bytes | None = field(repr=False)
    """The share value the destination opened, or None if it never arrived."""
    seen: list[bytes] = field(default_factory=list, repr=False)
    """The plaintext values compromised relays opened, in path order."""


class RealPools:
    """Real sender and receiver pools per link direction, created on first use."""

    def __init__(self, names: Sequence[tuple[str, str]], engine: Engine) -> None:
        self._names = names
        self._engine = engine
        self._tx: dict[int, LinkKeyPool] = {}
        self._rx: dict[int, LinkKeyPool] = {}
        self.shares = 0
        self.hops = 0

    def _feed(self, d: int, nbytes: int) -> LinkKeyPool:
        if d not in self._tx:
            name = "{}->{}".format(*self._names[d])
            self._tx[d], self._rx[d] = LinkKeyPool(name), LinkKeyPool(name)
        material = os.urandom(nbytes)
        self._tx[d].add(material)
        self._rx[d].add(material)
        self.hops += 1
        return self._tx[d]

    @property
    def consumed(self) -> int:
        """Bytes the senders took, over all directions."""
        return sum(pool.position for pool in self._tx.values())

    def journey(
        self,
        option: MpssOption,
        y: bytes,
        nodes: Sequence[str],
        dirs: Sequence[int],
        completed: int,
        compromised: frozenset[str],
        tamper: bool,
    ) -> Journey:
        """Replay a share that took key on ``dirs`` (one per hop, from the source) and crossed ``completed`` hops."""
        self.shares += 1
        result = Journey(None)
        if not dirs:
            return result
        need = hop_key_bytes(option.share_len)
        message = seal(option, y, self._feed(dirs[0], need), engine=self._engine)
        for j in range(1, completed + 1):
            node, pool_in = nodes[j], self._rx[dirs[j - 1]]
            if j == len(nodes) - 1:
                result.delivered = self._open(message, pool_in)
            elif node in compromised:
                value = self._open(message, pool_in)
                result.seen.append(value)
                if j < len(dirs):
                    value = tampered(value) if tamper else value
                    message = seal(message.option, value, self._feed(dirs[j], need), engine=self._engine)
            elif j < len(dirs):
                message = relay(message, pool_in, self._feed(dirs[j], need), engine=self._engine)
            else:
                self._open(message, pool_in)  # the relay takes and verifies, then has nowhere to send it
        return result

    def _open(self, message: ShareMessage, pool_in: LinkKeyPool) -> bytes:
        out = bytearray(message.option.share_len)
        open_into(message, pool_in, out, engine=self._engine)
        return bytes(out)


def share_option(session: int, k: int, n: int, x: int, share_len: int) -> MpssOption:
    """The MPSS option of share ``x`` of a simulated session (the session ID is its number; it is not secret)."""
    return MpssOption(POLY_AES, k, n, x, x - 1, share_len, session.to_bytes(16, "big"))
