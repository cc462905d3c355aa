"""What the destination keeps per session, and what it reports: receipts, deliveries, failures.

A session collects the shares of one relayed number (one session ID). Each share index
``x`` may arrive more than once: a byte-identical copy is a *duplicate* (a retransmission,
counted and dropped); a copy with different bytes is a *conflict*, and every copy of that
index is set aside: a conflicting index is never used to rebuild the number, only judged
against it afterwards. See ``docs/relay.md`` (Sessions).
"""

from __future__ import annotations

import enum
import hmac
import uuid
from dataclasses import dataclass, field

from ..e2e import DEFAULT_INFO, derive_key
from ..exceptions import MpssError


class Arrival(enum.Enum):
    """What :meth:`Destination.open <mpss_fast.relay.Destination.open>` did with a share."""

    NEW = "new"
    """A share index the session did not have: stored."""
    DUPLICATE = "duplicate"
    """The same bytes as a copy already held for this index (a retransmission): counted, dropped."""
    CONFLICT = "conflict"
    """Different bytes than a copy already held for this index: every copy of the index is set aside."""
    LATE = "late"
    """The session was delivered, discarded or is past its deadline: the share is wiped, nothing changes."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """The outcome of opening one share at the destination (no share bytes)."""

    status: Arrival
    session_id: uuid.UUID
    """The session ID: the UUID both ends name the number by (the node calls it the unit ID)."""
    x: int
    path_id: int
    shares: int
    """Usable shares the session holds now: indices with exactly one distinct value."""
    arrived: int
    """Distinct share indices that have arrived, conflicting ones included."""
    k: int
    n: int
    earlier_paths: tuple[int, ...] = ()
    """For a duplicate or conflict: the paths of the copies of this index that arrived before."""

    @property
    def ready(self) -> bool:
        """The session can be delivered: it holds at least k usable shares."""
        return self.status is not Arrival.LATE and self.shares >= self.k

    @property
    def complete(self) -> bool:
        """Every index 1..n has arrived: no further share can help, deliver now."""
        return self.status is not Arrival.LATE and self.arrived == self.n


@dataclass(frozen=True, slots=True)
class Delivery:
    """A rebuilt and verified number. Its ``repr`` omits the number."""

    number: bytes = field(repr=False)
    session_id: uuid.UUID
    """The session ID, which names the number at both ends."""
    bad_paths: tuple[int, ...]
    """Paths whose share disagreed with the rebuilt number (corrected, or a conflicting copy), sorted."""
    used_xs: tuple[int, ...]
    """Indices of the shares the number was rebuilt from and that agree with it."""
    bad_xs: tuple[int, ...] = ()
    """Indices of shares that were corrected (they disagreed with the decoded polynomial)."""
    conflicts: tuple[int, ...] = ()
    """Indices that arrived with different values (set aside, judged afterwards)."""
    duplicates: int = 0
    """Byte-identical copies that were dropped."""

    def key(self, *, length: int = 32, info: bytes = DEFAULT_INFO) -> bytes:
        """The end-to-end key: :func:`mpss_fast.e2e.derive_key` of the number under its session ID."""
        return derive_key(self.number, self.session_id, length=length, info=info)


@dataclass(frozen=True, slots=True)
class Failure:
    """A session that ended without a number (returned by ``Destination.expire``)."""

    session_id: uuid.UUID
    error: MpssError
    """Why: ``SessionTimeoutError`` (too few shares), ``IntegrityError``, ``UncorrectableError``, ``ConflictError``."""


@dataclass
class Copy:
    """One distinct value received for a share index, and the paths that delivered it. Its ``repr`` omits the value."""

    value: bytearray = field(repr=False)
    paths: list[int]


@dataclass
class Session:
    """The shares of one session at the destination (held under the destination's lock)."""

    k: int
    n: int
    poly: int
    share_len: int
    deadline: float
    copies: dict[int, list[Copy]] = field(default_factory=dict)
    duplicates: int = 0

    def add(self, x: int, value: bytearray, path_id: int) -> tuple[Arrival, tuple[int, ...]]:
        """Store ``value`` for index ``x`` unless it repeats a copy; returns the status and earlier paths.

        The session takes ownership of ``value`` when the status is NEW or CONFLICT;
        otherwise the caller still owns (and wipes) it.
        """
        held = self.copies.get(x)
        if held is None:
            self.copies[x] = [Copy(value, [path_id])]
            return Arrival.NEW, ()
        earlier = tuple(p for c in held for p in c.paths)
        for copy in held:
            if hmac.compare_digest(copy.value, value):
                copy.paths.append(path_id)
                self.duplicates += 1
                return Arrival.DUPLICATE, earlier
        held.append(Copy(value, [path_id]))
        return Arrival.CONFLICT, earlier

    def usable(self) -> dict[int, Copy]:
        """Indices with exactly one distinct value."""
        return {x: held[0] for x, held in self.copies.items() if len(held) == 1}

    def conflicting(self) -> dict[int, list[Copy]]:
        """Indices with more than one distinct value."""
        return {x: held for x, held in self.copies.items() if len(held) > 1}

    def wipe(self) -> None:
        """Zero every copy held."""
        for held in self.copies.values():
            for copy in held:
                copy.value[:] = bytes(len(copy.value))
        self.copies.clear()
