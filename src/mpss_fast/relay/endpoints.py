"""The two ends of an MPSS relay session: the source seals n shares, the destination opens and combines them.

The number travels with a check: by default the source shares ``number || check`` with
``check`` = the first :data:`CHECK_BYTES` bytes of SHA-256(number), and the destination,
configured alike (``Destination(check=True)``, the default), verifies it after rebuilding.
The option has no field for this: both ends must be configured the same way.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import math
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import robust
from .._gf256 import POLY_AES
from .._validate import as_bytes_view
from ..engine import Engine
from ..exceptions import (
    BadFieldError,
    ConflictError,
    IntegrityError,
    MpssError,
    ParameterError,
    RouteError,
    SessionError,
    SessionTimeoutError,
    ShareError,
    UncorrectableError,
)
from ..wire import MpssOption
from .hop import ShareMessage, _engine, open_into, seal
from .pool import LinkKeyPool, wipe
from .session import Arrival, Delivery, Failure, Receipt, Session

CHECK_BYTES = 16
"""Bytes of SHA-256(number) shared after the number when the check is on."""

MAX_SUBSETS = 4096
"""Most k-subsets the check-guided search tries (``Destination`` with ``check``)."""

DEFAULT_TIMEOUT = 10.0
"""Seconds a destination session collects shares, from its first share."""

MAX_SESSIONS = 65536
"""Most sessions a destination collects at once; a share that would open one more is refused (``SessionError``).
Only authenticated shares open sessions, so this bounds what a compromised neighbour can make a destination hold;
ended sessions are remembered (so late shares are told apart) for one timeout, and at most this many of them."""


def number_check(number: Any) -> bytes:
    """The check carried with a number: the first :data:`CHECK_BYTES` bytes of SHA-256(number)."""
    return hashlib.sha256(number).digest()[:CHECK_BYTES]


def seal_shares(
    secret: Any,
    k: int,
    pools: Sequence[LinkKeyPool],
    *,
    session_id: bytes | uuid.UUID | None = None,
    path_ids: Sequence[int] | None = None,
    poly: int = POLY_AES,
    engine: Engine | None = None,
    check: bool = True,
    routes: Sequence[bytes] | None = None,
) -> list[ShareMessage]:
    """Split ``secret`` k-of-n (n = ``len(pools)``) and seal share i for the first link of path i.

    ``routes[i]``: the routing fields share i's packet carries (``first_hop_route``), which
    its tag covers; default none (shares not carried in packets).

    Share i has x = i + 1 and path ID ``path_ids[i]`` (default i); ``session_id`` (16
    bytes or a UUID) defaults to a random UUID. With ``check`` (the default) the value
    shared is ``secret || number_check(secret)``, so ``share_len = len(secret) + 16``; the
    destination must be built with the same ``check``. The shared value and the shares
    live in arrays that are zeroed before returning; only ciphertexts leave.
    """
    eng = _engine(engine)
    n = len(pools)
    view = as_bytes_view(secret, "secret")
    if type(check) is not bool:
        raise ParameterError(f"check must be True or False, not {check!r}")
    if view.nbytes == 0:
        raise ParameterError("secret must not be empty")
    if path_ids is None:
        path_ids = range(n)
    elif len(path_ids) != n:
        raise ParameterError(f"got {len(path_ids)} path IDs for {n} paths")
    if routes is None:
        routes = [b""] * n
    elif len(routes) != n:
        raise ParameterError(f"got {len(routes)} routes for {n} paths")
    sid = uuid.uuid4().bytes if session_id is None else session_id
    length = view.nbytes + (CHECK_BYTES if check else 0)
    data = np.empty((1, length), dtype=np.uint8)
    shares = np.empty((n, 1, length), dtype=np.uint8)
    try:
        data[0, : view.nbytes] = np.frombuffer(view, dtype=np.uint8)
        if check:
            data[0, view.nbytes :] = np.frombuffer(number_check(view), dtype=np.uint8)
        eng.split_array(data, k, n, poly=poly, out=shares)
        messages = []
        for i, pool in enumerate(pools):
            option = MpssOption(
                poly=poly,
                k=k,
                n=n,
                x=i + 1,
                path_id=path_ids[i],
                share_len=length,
                session_id=sid,  # type: ignore[arg-type]
            )
            messages.append(seal(option, shares[i, 0], pool, route=routes[i], engine=eng))
        return messages
    finally:
        data.fill(0)
        shares.fill(0)


class Destination:
    """The receiving end: opens last-hop messages, collects each session's shares, delivers its number.

    - ``check``: whether the shares carry :func:`number_check` (must match the source's
      ``seal_shares(check=...)``; default True).
    - ``timeout``: seconds a session collects shares, from its first one. After that,
      new shares for it are late; :meth:`expire` (or :meth:`deliver`) ends it.
    - ``clock``: a monotonic clock in seconds (injectable for tests).

    :meth:`open` never raises for a duplicate, a conflicting copy or a late share: it
    returns a :class:`Receipt` that says which. Thread-safe (one lock; a rebuild holds it).

    Routes: a session accepts at most one share per incoming link (``pool_in.link``), and,
    where :meth:`open` is told each share's relays and source, only shares whose paths are
    node-disjoint and that name one source; anything else raises ``RouteError`` naming the
    link. So a single relay, even one that holds its link keys, contributes one share.
    """

    def __init__(
        self,
        *,
        engine: Engine | None = None,
        check: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if type(check) is not bool:
            raise ParameterError(f"check must be True or False, not {check!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ParameterError(f"timeout must be a number of seconds > 0, not {timeout!r}")
        if not callable(clock):
            raise ParameterError("clock must be callable")
        self._engine = _engine(engine)
        self._check = check
        self._timeout = float(timeout)
        self._clock = clock
        self._sessions: dict[bytes, Session] = {}
        self._finished: dict[bytes, float] = {}  # session ID -> when to forget it (insertion = time order)
        self._routes: dict[bytes, _Routes] = {}  # session ID -> how its shares came
        self._lock = threading.Lock()

    @property
    def check(self) -> bool:
        """Whether shares carry the check."""
        return self._check

    @property
    def timeout(self) -> float:
        """Seconds a session collects shares."""
        return self._timeout

    def open(
        self,
        message: ShareMessage,
        pool_in: LinkKeyPool,
        *,
        relays: Sequence[str] | None = None,
        source: str | None = None,
        refuse: str | None = None,
    ) -> Receipt:
        """Verify, decrypt and file one share; returns what was done with it.

        ``relays`` (the nodes the share's authenticated route passed, in any order) and
        ``source`` (its authenticated source) let the session check that its shares came
        over node-disjoint paths from one source. Raises what :func:`open_into` raises
        (``TagError``, ``KeyReuseError``, ...: nothing is consumed then), ``RouteError`` for
        a route the session cannot accept (see the class docstring; the share's pad is
        consumed, it authenticated), and ``BadFieldError`` for a share whose k, n, field
        or length disagrees with its session or whose index exceeds n. ``refuse``: a reason
        the caller found to refuse the share's route (say, a segment list that is not a path
        of its topology): the share is authenticated first, so a forgery (``TagError``) is
        told apart from a relay that lies (``RouteError`` with that reason), then refused.
        """
        relay_set = None if relays is None else frozenset(relays)
        option = message.option
        y = bytearray(option.share_len)
        open_into(message, pool_in, y, engine=self._engine)
        kept = False
        try:
            with self._lock:
                now = self._clock()
                self._forget(now)
                sid = option.session_id
                session = self._sessions.get(sid)
                if session is None and sid not in self._finished:
                    self._check_new(option)
                    if len(self._sessions) >= MAX_SESSIONS:
                        raise SessionError(
                            f"share x={option.x} of session {option.session_uuid} refused: {MAX_SESSIONS} sessions "
                            "are being collected already"
                        )
                    _Routes().admit(option, pool_in.link, relay_set, source, refuse)  # a first share may be refused too
                    session = Session(option.k, option.n, option.poly, option.share_len, now + self._timeout)
                    self._sessions[sid] = session
                if session is None or now >= session.deadline:
                    return _receipt(Arrival.LATE, option, session)
                if (session.k, session.n, session.poly, session.share_len) != (
                    option.k,
                    option.n,
                    option.poly,
                    option.share_len,
                ):
                    raise BadFieldError(
                        f"share x={option.x} of session {option.session_uuid} disagrees with the session's "
                        f"k={session.k}, n={session.n}, field or share length"
                    )
                if option.x > session.n:
                    raise BadFieldError(
                        f"share x={option.x} of session {option.session_uuid} exceeds the session's n={session.n}"
                    )
                routes = self._routes.setdefault(sid, _Routes())
                routes.admit(option, pool_in.link, relay_set, source, refuse)
                status, earlier = session.add(option.x, y, option.path_id)
                kept = status in (Arrival.NEW, Arrival.CONFLICT)
                return _receipt(status, option, session, earlier)
        finally:
            if not kept:
                wipe(y)

    def ready(self, session_id: bytes | uuid.UUID) -> bool:
        """Whether the session holds at least k usable shares."""
        with self._lock:
            session = self._sessions.get(_sid(session_id))
            return session is not None and len(session.usable()) >= session.k

    def pending(self) -> tuple[uuid.UUID, ...]:
        """The sessions being collected (not yet delivered, discarded or expired)."""
        with self._lock:
            return tuple(uuid.UUID(bytes=sid) for sid in self._sessions)

    def deliver(self, session_id: bytes | uuid.UUID) -> Delivery:
        """Rebuild and verify the session's number from every usable share it holds, then forget the session.

        With more than k usable shares, up to ``(m - k) // 2`` corrupted ones are
        corrected (:mod:`mpss_fast.robust`) and the paths that delivered them are named in
        ``Delivery.bad_paths``. Errors: ``ShareError`` (fewer than k usable shares so far;
        the session stays), ``ConflictError`` (k indices arrived but conflicts leave fewer
        than k usable), ``UncorrectableError``, ``IntegrityError`` (the check fails; with
        exactly k shares nothing can be corrected). After an error the session stays, to
        collect more shares, unless it is past its deadline or every index has arrived:
        then it is wiped (``SessionTimeoutError`` when it had fewer than k usable shares).
        """
        sid = _sid(session_id)
        with self._lock:
            now = self._clock()
            session = self._sessions.get(sid)
            if session is None:
                what = "was already delivered, discarded or expired" if sid in self._finished else "has no shares"
                raise ShareError(f"session {uuid.UUID(bytes=sid)} {what}")
            return self._deliver_locked(sid, session, now)

    def rebuild(self, session_id: bytes | uuid.UUID) -> bytes:
        """The number only: ``deliver(session_id).number``."""
        return self.deliver(session_id).number

    def expire(self) -> list[Delivery | Failure]:
        """End every session past its deadline: deliver it if it can be, else wipe it and report why.

        Call this periodically. A session that waited for all n shares gets rebuilt here
        from whatever arrived in time.
        """
        results: list[Delivery | Failure] = []
        with self._lock:
            now = self._clock()
            self._forget(now)
            due = [(sid, s) for sid, s in self._sessions.items() if now >= s.deadline]
            for sid, session in due:
                try:
                    results.append(self._deliver_locked(sid, session, now))
                except MpssError as exc:
                    results.append(Failure(uuid.UUID(bytes=sid), exc))
        return results

    def discard(self, session_id: bytes | uuid.UUID) -> None:
        """Drop a session's shares (wiped); later shares for it are late."""
        sid = _sid(session_id)
        with self._lock:
            session = self._sessions.get(sid)
            if session is not None:
                self._finish(sid, session, self._clock())

    # -- internals (under the lock) ---------------------------------------------------------------

    def _check_new(self, option: MpssOption) -> None:
        if self._check and option.share_len <= CHECK_BYTES:
            raise BadFieldError(
                f"share x={option.x} of session {option.session_uuid} is {option.share_len} bytes, too short to "
                f"carry the {CHECK_BYTES}-byte check this destination expects"
            )

    def _forget(self, now: float) -> None:
        while self._finished:
            sid, until = next(iter(self._finished.items()))
            if until > now:
                break
            del self._finished[sid]

    def _finish(self, sid: bytes, session: Session, now: float) -> None:
        del self._sessions[sid]
        self._routes.pop(sid, None)
        session.wipe()
        self._finished.pop(sid, None)
        self._finished[sid] = now + self._timeout
        if len(self._finished) > MAX_SESSIONS:
            del self._finished[next(iter(self._finished))]

    def _deliver_locked(self, sid: bytes, session: Session, now: float) -> Delivery:
        name = uuid.UUID(bytes=sid)
        over = now >= session.deadline
        usable = session.usable()
        if len(usable) < session.k:
            conflicts = sorted(session.conflicting())
            note = f" ({len(conflicts)} index(es) with conflicting copies set aside)" if conflicts else ""
            if over:
                self._finish(sid, session, now)
                raise SessionTimeoutError(
                    f"session {name} timed out with {len(usable)} of the {session.k} usable shares it needs{note}; "
                    "its shares are wiped"
                )
            if conflicts and len(session.copies) >= session.k:
                raise ConflictError(
                    f"session {name} has {len(usable)} usable shares of the {session.k} it needs: indices "
                    f"{conflicts} arrived with different values and are not used"
                )
            raise ShareError(f"session {name} has {len(usable)} of the {session.k} shares it needs{note}")
        try:
            delivery = self._rebuild(name, session, usable)
        except (IntegrityError, UncorrectableError) as exc:
            if over or len(session.copies) == session.n:
                self._finish(sid, session, now)
                raise type(exc)(f"{exc}; the session is wiped") from None
            raise type(exc)(f"{exc}; the session is kept for more shares") from None
        self._finish(sid, session, now)
        return delivery

    def _search(self, xs: list[int], ys: np.ndarray, k: int, poly: int) -> tuple[np.ndarray, tuple[int, ...]] | None:
        """Check-guided decoding, when more shares are corrupt than the code corrects.

        Every k-subset (at most :data:`MAX_SUBSETS`) is interpolated; of those whose
        number passes its check, the polynomial agreeing with the most shares wins and the
        shares off it are bad. With k = 2, n = 3 this finds the one bad share, which
        Berlekamp-Welch cannot. A subset holding a corrupt share passes the check only if
        the corruption vanishes at x = 0, which one corrupt share cannot do and colluding
        ones can only without knowing the number; so the number is right, but when two
        polynomials tie (k >= 3, two or more colluding paths) every share off either is
        named: suspects, not proof (docs/relay.md).
        """
        if math.comb(len(xs), k) > MAX_SUBSETS:
            return None
        length = ys.shape[1]
        best: np.ndarray | None = None
        agree_best: set[int] = set()
        suspects: set[int] = set()
        for subset in itertools.combinations(range(len(xs)), k):
            picked = ys[list(subset)]
            sub_xs = [xs[i] for i in subset]
            try:
                data = self._engine.combine_array(picked.reshape(k, 1, length), sub_xs, poly=poly).reshape(length)
                if not _passes_check(data):
                    data.fill(0)
                    continue
                others = [i for i in range(len(xs)) if i not in subset]
                expected = robust.reencode(sub_xs, picked, [xs[i] for i in others], poly=poly)
                try:
                    agree = set(sub_xs) | {
                        xs[i]
                        for row, i in zip(expected, others, strict=True)
                        if hmac.compare_digest(row.data, ys[i].data)
                    }
                finally:
                    expected.fill(0)
            finally:
                picked.fill(0)
            off = set(xs) - agree
            if best is None or len(agree) > len(agree_best):
                if best is not None:
                    best.fill(0)
                best, agree_best, suspects = data, agree, off
            else:
                if len(agree) == len(agree_best) and agree != agree_best:
                    suspects |= off | (set(xs) - agree_best)
                data.fill(0)
        if best is None:
            return None
        return best, tuple(sorted(suspects))

    def _rebuild(self, name: uuid.UUID, session: Session, usable: dict[int, Any]) -> Delivery:
        k, length = session.k, session.share_len
        xs = sorted(usable)
        ys = np.empty((len(xs), length), dtype=np.uint8)
        data: np.ndarray | None = None
        try:
            for row, x in zip(ys, xs, strict=True):
                row[:] = np.frombuffer(usable[x].value, dtype=np.uint8)
            if len(xs) == k:
                data = self._engine.combine_array(ys.reshape(k, 1, length), xs, poly=session.poly).reshape(length)
                bad: tuple[int, ...] = ()
            else:
                try:
                    data, bad = robust.decode_array(xs, ys, k, poly=session.poly)
                except UncorrectableError as exc:
                    data = None
                    found = self._search(xs, ys, k, session.poly) if self._check else None
                    if found is None:
                        raise UncorrectableError(f"session {name}: {exc}") from None
                    data, bad = found
                if self._check and not _passes_check(data):
                    found = self._search(xs, ys, k, session.poly)
                    if found is not None:
                        data.fill(0)
                        data, bad = found
            number = data
            if self._check:
                number = data[: length - CHECK_BYTES]
                if not _passes_check(data):
                    why = (
                        f"a share is corrupt, and exactly {k} shares cannot correct it"
                        if len(xs) == k
                        else f"more of the {len(xs)} shares are corrupt than they can correct"
                    )
                    raise IntegrityError(f"session {name}: the rebuilt number fails its check: {why}")
            good = [i for i, x in enumerate(xs) if x not in bad]
            bad_paths = {p for x in bad for p in usable[x].paths}
            conflicts = session.conflicting()
            if conflicts:
                bad_paths |= _judge(conflicts, [xs[i] for i in good[:k]], ys[good[:k]], session.poly)
            return Delivery(
                number=number.tobytes(),
                session_id=name,
                bad_paths=tuple(sorted(bad_paths)),
                used_xs=tuple(xs[i] for i in good),
                bad_xs=bad,
                conflicts=tuple(sorted(conflicts)),
                duplicates=session.duplicates,
            )
        finally:
            ys.fill(0)
            if data is not None:
                data.fill(0)


class _Routes:
    """How one session's shares came: incoming links, relays and source (under the destination's lock)."""

    __slots__ = ("links", "relays", "source")

    def __init__(self) -> None:
        self.links: set[str] = set()
        self.relays: set[str] = set()
        self.source: str | None = None

    def admit(
        self, option: MpssOption, link: str, relays: frozenset[str] | None, source: str | None, refuse: str | None
    ) -> None:
        """Record a share's route, or raise ``RouteError`` (recording nothing) if the session cannot accept it."""
        why = refuse if refuse is not None else self._objection(link, relays, source)
        if why is not None:
            raise RouteError(
                f"share x={option.x} (path {option.path_id}) of session {option.session_uuid} refused on link "
                f"{link}: {why}",
                link=link,
                session_id=option.session_id,
                path_id=option.path_id,
                x=option.x,
            )
        self.links.add(link)
        if relays is not None:
            self.relays |= relays
        if source is not None:
            self.source = source

    def _objection(self, link: str, relays: frozenset[str] | None, source: str | None) -> str | None:
        if link in self.links:
            return "a share of this session already came over that link (one share per incoming link)"
        if relays is not None and not relays.isdisjoint(self.relays):
            shared = ", ".join(sorted(relays & self.relays))
            return f"its path shares relay(s) {shared} with another share's path (paths must be node-disjoint)"
        if source is not None and self.source is not None and source != self.source:
            return f"it names source {source}, the session's other shares {self.source}"
        return None


def _passes_check(data: np.ndarray) -> bool:
    """Whether a rebuilt ``number || check`` carries the right check."""
    cut = data.size - CHECK_BYTES
    return hmac.compare_digest(number_check(data[:cut]), data[cut:].data)


def _judge(conflicts: dict[int, Any], xs: list[int], ys: np.ndarray, poly: int) -> set[int]:
    """Paths of conflicting copies that disagree with the polynomial through the k shares ``(xs, ys)``."""
    points = sorted(conflicts)
    try:
        expected = robust.reencode(xs, ys, points, poly=poly)
    finally:
        ys.fill(0)  # the caller's copy of k rows
    try:
        bad: set[int] = set()
        for row, x in zip(expected, points, strict=True):
            for copy in conflicts[x]:
                if not hmac.compare_digest(row.data, copy.value):
                    bad.update(copy.paths)
        return bad
    finally:
        expected.fill(0)


def _receipt(status: Arrival, option: MpssOption, session: Session | None, earlier: tuple[int, ...] = ()) -> Receipt:
    shares = arrived = 0
    if session is not None:
        shares, arrived = len(session.usable()), len(session.copies)
    return Receipt(status, option.session_uuid, option.x, option.path_id, shares, arrived, option.k, option.n, earlier)


def _sid(session_id: bytes | uuid.UUID) -> bytes:
    if isinstance(session_id, uuid.UUID):
        return session_id.bytes
    if type(session_id) is not bytes or len(session_id) != 16:
        raise ParameterError("session_id must be 16 bytes or a uuid.UUID")
    return session_id
