"""The adversary: compromised relays that record every share they see, and may alter what they forward.

Whether the adversary can rebuild a session's key is decided by what it holds, and
checked with the real share arithmetic: holding ``>= k`` distinct shares of a session,
``combine`` on ``k`` of them must give the shared value exactly; holding fewer, it holds
fewer than ``k`` (and, from two up, combining them must not give the value). A
violation raises :class:`InvariantError`.
"""

from __future__ import annotations

from ..engine import Engine


class InvariantError(AssertionError):
    """A simulator invariant failed: a bug in the simulator or the library, never a user error."""


def tampered(y: bytes) -> bytes:
    """What a tampering relay forwards instead of ``y``: the first byte inverted (any change would do)."""
    return bytes([y[0] ^ 0xFF]) + y[1:]


class Adversary:
    """The compromised relays (fixed at the start) and the shares they saw, per session."""

    def __init__(self, relays: frozenset[str], engine: Engine, *, tamper: bool = False) -> None:
        self.relays = relays
        self.tamper = tamper
        self._engine = engine
        self._seen: dict[int, dict[int, bytes]] = {}

    def observe(self, session: int, x: int, y: bytes) -> None:
        """A compromised relay decrypted share ``x`` of ``session`` (the first value seen for an ``x`` is kept)."""
        self._seen.setdefault(session, {}).setdefault(x, y)

    def held(self, session: int) -> dict[int, bytes]:
        """The shares of ``session`` the adversary holds, ``{x: y}``."""
        return dict(self._seen.get(session, {}))

    def judge(self, session: int, k: int, value: bytes) -> tuple[int, bool]:
        """``(shares held, exposed)`` for a finished session whose shared value was ``value``; forgets the session.

        Exposed exactly when ``>= k`` distinct shares are held, checked by combining them.
        """
        held = self._seen.pop(session, {})
        shares = [bytes([x]) + y for x, y in sorted(held.items())]
        if len(shares) >= k:
            if self._engine.combine(shares[:k]) != value:
                raise InvariantError(f"session {session}: {len(shares)} >= k={k} shares held but combine failed")
            return len(shares), True
        if len(shares) >= 2 and self._engine.combine(shares) == value:
            raise InvariantError(f"session {session}: {len(shares)} < k={k} shares rebuilt the value")
        return len(shares), False
