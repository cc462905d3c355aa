"""The two ends of an MPSS relay session: the source seals n shares, the destination opens and combines them."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._gf256 import POLY_AES
from .._validate import as_bytes_view
from ..engine import Engine
from ..exceptions import BadFieldError, ParameterError, ReplayError, ShareError
from ..wire import MpssOption
from .hop import ShareMessage, _engine, open_into, seal
from .pool import LinkKeyPool


def seal_shares(
    secret: Any,
    k: int,
    pools: Sequence[LinkKeyPool],
    *,
    session_id: bytes | uuid.UUID | None = None,
    path_ids: Sequence[int] | None = None,
    poly: int = POLY_AES,
    engine: Engine | None = None,
) -> list[ShareMessage]:
    """Split ``secret`` k-of-n (n = ``len(pools)``) and seal share i for the first link of path i.

    Share i has x = i + 1 and path ID ``path_ids[i]`` (default i); ``session_id`` (16
    bytes or a UUID) defaults to a random UUID. The share values live in one array that
    is zeroed before returning; only ciphertexts leave.
    """
    eng = _engine(engine)
    n = len(pools)
    view = as_bytes_view(secret, "secret")
    if path_ids is None:
        path_ids = range(n)
    elif len(path_ids) != n:
        raise ParameterError(f"got {len(path_ids)} path IDs for {n} paths")
    sid = uuid.uuid4().bytes if session_id is None else session_id
    shares = np.empty((n, 1, view.nbytes), dtype=np.uint8)
    try:
        eng.split_array(np.frombuffer(view, dtype=np.uint8).reshape(1, -1), k, n, poly=poly, out=shares)
        messages = []
        for i, pool in enumerate(pools):
            option = MpssOption(
                poly=poly,
                k=k,
                n=n,
                x=i + 1,
                path_id=path_ids[i],
                share_len=view.nbytes,
                session_id=sid,  # type: ignore[arg-type]
            )
            messages.append(seal(option, shares[i, 0], pool, engine=eng))
        return messages
    finally:
        shares.fill(0)


@dataclass
class _Session:
    k: int
    n: int
    poly: int
    share_len: int
    shares: dict[int, bytearray] = field(default_factory=dict)
    paths: dict[int, int] = field(default_factory=dict)


class Destination:
    """The receiving end: opens last-hop messages, refuses replays, rebuilds each session's number.

    Thread-safe. A second message for the same session and share index raises
    ``ReplayError`` (its key material is still consumed); messages whose k, n, field or
    length disagree with the session's first message raise ``BadFieldError``.
    """

    def __init__(self, *, engine: Engine | None = None) -> None:
        self._engine = _engine(engine)
        self._sessions: dict[bytes, _Session] = {}
        self._lock = threading.Lock()

    def open(self, message: ShareMessage, pool_in: LinkKeyPool) -> int:
        """Verify, decrypt and store one share; returns how many distinct shares the session has now."""
        option = message.option
        y = bytearray(option.share_len)
        open_into(message, pool_in, y, engine=self._engine)
        with self._lock:
            session = self._sessions.get(option.session_id)
            if session is None:
                session = _Session(option.k, option.n, option.poly, option.share_len)
                self._sessions[option.session_id] = session
            elif (session.k, session.n, session.poly, session.share_len) != (
                option.k,
                option.n,
                option.poly,
                option.share_len,
            ):
                _wipe(y)
                raise BadFieldError(
                    f"share x={option.x} of session {option.session_uuid} disagrees with the session's "
                    f"k={session.k}, n={session.n}, field or share length"
                )
            if option.x in session.shares:
                _wipe(y)
                raise ReplayError(
                    f"share x={option.x} of session {option.session_uuid} arrived twice (path {option.path_id}); "
                    "the second copy is dropped"
                )
            session.shares[option.x] = y
            session.paths[option.x] = option.path_id
            return len(session.shares)

    def ready(self, session_id: bytes | uuid.UUID) -> bool:
        """Whether the session has at least k shares."""
        with self._lock:
            session = self._sessions.get(_sid(session_id))
            return session is not None and len(session.shares) >= session.k

    def rebuild(self, session_id: bytes | uuid.UUID) -> bytes:
        """Combine k shares of the session into its number and forget the session (its shares are wiped)."""
        sid = _sid(session_id)
        with self._lock:
            session = self._sessions.get(sid)
            if session is None:
                raise ShareError(f"no shares for session {uuid.UUID(bytes=sid)}")
            if len(session.shares) < session.k:
                raise ShareError(
                    f"session {uuid.UUID(bytes=sid)} has {len(session.shares)} of the {session.k} shares it needs"
                )
            del self._sessions[sid]
        try:
            xs = sorted(session.shares)[: session.k]
            ys = np.stack([np.frombuffer(session.shares[x], dtype=np.uint8) for x in xs]).reshape(
                session.k, 1, session.share_len
            )
            number = self._engine.combine_array(ys, xs, poly=session.poly)
            ys.fill(0)
            return number.tobytes()
        finally:
            for y in session.shares.values():
                _wipe(y)

    def discard(self, session_id: bytes | uuid.UUID) -> None:
        """Drop a session's shares (wiped), e.g. after a timeout."""
        with self._lock:
            session = self._sessions.pop(_sid(session_id), None)
        if session is not None:
            for y in session.shares.values():
                _wipe(y)


def _sid(session_id: bytes | uuid.UUID) -> bytes:
    if isinstance(session_id, uuid.UUID):
        return session_id.bytes
    if type(session_id) is not bytes or len(session_id) != 16:
        raise ParameterError("session_id must be 16 bytes or a uuid.UUID")
    return session_id


def _wipe(buf: bytearray) -> None:
    buf[:] = bytes(len(buf))
