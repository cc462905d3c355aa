"""The node-to-node API: link key announcements from neighbours, and the node's counters.

The caller is the one CN of its client certificate (``identity.request_identity``; mutual
TLS against the node CA only, so an application's certificate fails the handshake), or,
with plain HTTP for development, the ``X-MPSS-Node`` header. Roles (``docs/node.md``):

* ``POST /mpss/v1/links/{sender}/keys`` with ``{"start": int, "key_IDs": [uuid, ...], "size": bits}``:
  the neighbour ``sender`` announces a batch of link key for the direction
  ``sender>this node`` (``node.linkkeys``). Only ``sender`` itself may call it. Answer:
  ``{"status": "added" | "have" | "lost" | "gap" | "fault", ...}``; 503 when this node's KME cannot
  answer now.
* ``POST /mpss/v1/links/{receiver}/position`` with ``{"position": int}``: the neighbour
  ``receiver`` restarted and resumes its incoming stream of ``this node>receiver`` at
  ``position`` (its committed, leased position); this node skips its outgoing pool to
  there, so shares are not sent at offsets the receiver will refuse. Answer
  ``{"skipped": bytes}``. Only ``receiver`` itself may call it.
* ``GET /mpss/v1/node/stats``: counters (no secrets, but stream positions that help an
  attacker), for the operators listed in the configuration (``peer.operators``) only.
* ``POST /mpss/v1/pairs/{master}/{slave}/proofs`` with ``{"units": [{"unit_ID": uuid,
  "proof": base64}, ...]}``: the slave's node proves units it rebuilt (``node.keyflow``);
  answer ``{"verdicts": ["ready" | "mismatch" | "unknown", ...]}``, ready units committed
  first. Only the pair's slave node may call it.
* ``POST /mpss/v1/pairs/{master}/{slave}/records`` with ``{"records": [{"key_ID": uuid,
  "ranges": [[unit uuid, start, length], ...]}, ...], "void": [...]}``: the master's node
  pushes its ledger; answer ``{"applied": n}`` once committed, 409 when a record does not
  fit this node's store. Only the pair's master node may call it.

A caller that is not a neighbour gets 403 on the link routes, whatever link it names; a
neighbour's identity seen from two client addresses at once is logged as a warning
(``identity.DuplicateWatch``). Errors are ``{"message": ...}`` with 400 (any malformed
body), 401 (no identity), 403, 413 or 503.
"""

from __future__ import annotations

import base64
import binascii
import logging
import ssl
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from aiohttp import web

from ..exceptions import (
    Etsi014Error,
    HttpBadRequestError,
    HttpUnauthorizedError,
    MpssError,
    PeerApiError,
    PeerUnreachableError,
    StoreError,
)
from ..https.identity import DUPLICATE_WINDOW_S, DuplicateWatch, request_identity
from ..https.jsonbody import parse_json, read_json
from ..https.server import REQUIRE_CLIENT_CERT, error_response, json_errors
from .keyflow import KeyFlow, UnitMissingError
from .linkkeys import LinkKeyReceiver
from .store import LedgerMismatchError, Range

log = logging.getLogger("mpss_fast.node")

PEER_PREFIX = "/mpss/v1"
NODE_HEADER = "X-MPSS-Node"
"""Development only (plain HTTP): the calling node's name."""

MAX_BODY_BYTES = 1 << 20
"""Largest request body accepted."""

_RECEIVERS = web.AppKey("receivers", dict)
_STATS = web.AppKey("stats", object)
_SKIP = web.AppKey("skip", object)
_PLAIN = web.AppKey("plain", bool)
_OPERATORS = web.AppKey("operators", frozenset)
_WATCH = web.AppKey("watch", DuplicateWatch)
_FLOW = web.AppKey("flow", object)

MAX_ITEMS = 4096
"""Most units or records in one pair request."""


def _caller(request: web.Request) -> str:
    """The caller's identity (401 without one)."""
    caller = request_identity(request, dev_header=NODE_HEADER if request.app[_PLAIN] else None)
    if caller is None:
        raise HttpUnauthorizedError("no client certificate (mutual TLS is required)")
    return caller


def _check_neighbour(request: web.Request, link_of: str, refusal: str) -> None:
    """The caller must be a neighbour (403), and the neighbour ``link_of`` (403 with ``refusal``)."""
    caller = _caller(request)
    if caller not in request.app[_RECEIVERS]:
        raise PeerApiError(f"node {caller} is not a neighbour of this node", 403)
    request.app[_WATCH].seen(caller, request.remote or "an unknown address")
    if caller != link_of:
        raise PeerApiError(refusal, 403)


async def _announce(request: web.Request) -> web.Response:
    sender = request.match_info["sender"]
    _check_neighbour(request, sender, f"only node {sender} may announce key for its link to this node")
    receivers = request.app[_RECEIVERS]
    try:
        body = await read_json(request, max_bytes=MAX_BODY_BYTES)
        start = body["start"]
        ids = [uuid.UUID(text) for text in body["key_IDs"]]
        if isinstance(start, bool) or not isinstance(start, int) or start < 0 or not ids:
            raise ValueError("start must be an int >= 0 and key_IDs non-empty")
        size = body["size"]  # bits per key: the receiver checks its KME's keys against it (linkkeys)
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0 or size % 8:
            raise ValueError("size must be a positive multiple of 8 (bits per key)")
    except HttpBadRequestError as exc:
        return error_response(400, f"malformed announcement: {exc.message}")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return error_response(400, f"malformed announcement: {exc}")
    try:
        answer = await receivers[sender].receive(start, ids, size)
    except Etsi014Error as exc:
        return error_response(503, f"cannot fetch the announced key from the KME now: {exc.message}")
    except MpssError as exc:
        log.warning("link %s>this node: announcement refused: %s", sender, exc)
        return error_response(503, str(exc))
    return web.json_response(answer)


async def _position(request: web.Request) -> web.Response:
    receiver = request.match_info["receiver"]
    _check_neighbour(request, receiver, f"only node {receiver} may report its position on its link from this node")
    try:
        position = (await read_json(request, max_bytes=MAX_BODY_BYTES))["position"]
        if isinstance(position, bool) or not isinstance(position, int) or position < 0:
            raise ValueError("position must be an int >= 0")
    except HttpBadRequestError as exc:
        return error_response(400, f"malformed position report: {exc.message}")
    except (ValueError, KeyError, TypeError) as exc:
        return error_response(400, f"malformed position report: {exc}")
    skip: Callable[[str, int], Awaitable[int]] = request.app[_SKIP]  # type: ignore[assignment]
    try:
        skipped = await skip(receiver, position)
    except MpssError as exc:
        return error_response(503, str(exc))
    return web.json_response({"skipped": skipped})


def _items(body: Any, name: str) -> list[Any]:
    items = body.get(name, []) if isinstance(body, dict) else None
    if not isinstance(items, list) or len(items) > MAX_ITEMS:
        raise ValueError(f"{name} must be a list of at most {MAX_ITEMS} items")
    return items


def _parse_proofs(body: Any) -> list[tuple[uuid.UUID, bytes]]:
    proofs = []
    for item in _items(body, "units"):
        text = item["proof"]
        if not isinstance(text, str) or len(text) > 64:
            raise ValueError("proof must be base64 text of 32 bytes")
        proofs.append((uuid.UUID(item["unit_ID"]), base64.b64decode(text, validate=True)))
    return proofs


def _parse_records(body: Any, name: str) -> list[tuple[uuid.UUID, tuple[Range, ...]]]:
    records = []
    for item in _items(body, name):
        ranges = item["ranges"]
        if not isinstance(ranges, list) or not 0 < len(ranges) <= MAX_ITEMS:
            raise ValueError("ranges must be a non-empty list")
        parsed = []
        for unit, start, length in ranges:
            if any(isinstance(v, bool) or not isinstance(v, int) for v in (start, length)):
                raise ValueError("range start and length must be ints")
            parsed.append(Range(uuid.UUID(unit).bytes, start, length))
        records.append((uuid.UUID(item["key_ID"]), tuple(parsed)))
    return records


def _flow_and_pair(request: web.Request) -> tuple[KeyFlow, str, tuple[str, str]]:
    flow = request.app[_FLOW]
    if not isinstance(flow, KeyFlow):
        raise PeerApiError("this node has no application pairs", 404)
    return flow, _caller(request), (request.match_info["master"], request.match_info["slave"])


async def _proofs(request: web.Request) -> web.Response:
    flow, caller, pair = _flow_and_pair(request)
    try:
        proofs = _parse_proofs(await read_json(request, max_bytes=MAX_BODY_BYTES))
    except HttpBadRequestError as exc:
        return error_response(400, f"malformed proofs: {exc.message}")
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
        return error_response(400, f"malformed proofs: {exc}")
    try:
        verdicts = await flow.on_proofs(caller, pair, proofs)
    except PermissionError as exc:
        return error_response(403, str(exc))
    return web.json_response({"verdicts": verdicts})


async def _records(request: web.Request) -> web.Response:
    flow, caller, pair = _flow_and_pair(request)
    try:
        body = await read_json(request, max_bytes=MAX_BODY_BYTES)
        records, void = _parse_records(body, "records"), _parse_records(body, "void")
    except HttpBadRequestError as exc:
        return error_response(400, f"malformed records: {exc.message}")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return error_response(400, f"malformed records: {exc}")
    try:
        applied = await flow.on_push(caller, pair, records, void)
    except PermissionError as exc:
        return error_response(403, str(exc))
    except LedgerMismatchError as exc:
        log.error("pair %s->%s: records from %s refused: %s", *pair, caller, exc)
        return web.json_response({"message": str(exc), "unit_ID": exc.unit_id}, status=409)
    except StoreError as exc:
        return error_response(503, f"cannot commit the records now: {exc}")
    return web.json_response({"applied": applied})


async def _stats(request: web.Request) -> web.Response:
    caller = _caller(request)
    if caller not in request.app[_OPERATORS]:
        raise PeerApiError(f"{caller} is not an operator of this node (peer.operators)", 403)
    stats: Callable[[], dict[str, Any]] = request.app[_STATS]  # type: ignore[assignment]
    return web.json_response(stats())


def make_peer_app(
    receivers: Mapping[str, LinkKeyReceiver],
    stats: Callable[[], dict[str, Any]],
    skip: Callable[[str, int], Awaitable[int]],
    *,
    plain_http: bool,
    operators: Iterable[str] = (),
    duplicate_window_s: float = DUPLICATE_WINDOW_S,
    flow: KeyFlow | None = None,
) -> web.Application:
    """The peer API over ``receivers`` (neighbour -> the receiver of its link to this node; its
    keys are the only callers of the link routes), a ``stats()`` function (for the identities in
    ``operators`` only) and ``skip(neighbour, position)`` for this node's link to the neighbour.
    A neighbour seen from two addresses within ``duplicate_window_s`` is warned about. ``flow``
    serves the pair routes (the other end of each application pair is their only caller)."""
    app = web.Application(middlewares=[json_errors], client_max_size=MAX_BODY_BYTES)
    app[_RECEIVERS] = dict(receivers)
    app[_STATS] = stats
    app[_SKIP] = skip
    app[_PLAIN] = plain_http
    app[_OPERATORS] = frozenset(operators)
    app[_WATCH] = DuplicateWatch(window_s=duplicate_window_s)
    app[REQUIRE_CLIENT_CERT] = not plain_http
    app.router.add_post(PEER_PREFIX + "/links/{sender}/keys", _announce)
    app.router.add_post(PEER_PREFIX + "/links/{receiver}/position", _position)
    app.router.add_get(PEER_PREFIX + "/node/stats", _stats)
    app[_FLOW] = flow
    app.router.add_post(PEER_PREFIX + "/pairs/{master}/{slave}/proofs", _proofs)
    app.router.add_post(PEER_PREFIX + "/pairs/{master}/{slave}/records", _records)
    return app


class PeerClient:
    """Calls another node's peer API: link key announcements to a neighbour (``announce`` fits
    ``linkkeys.Announce``), and the pair channel to the other end of an application pair
    (``confirm``, ``push``: ``keyflow.PairChannel``)."""

    def __init__(self, base_url: str, me: str, *, ssl_context: ssl.SSLContext | None, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.me = me
        self._ssl = ssl_context if ssl_context is not None else False
        self._timeout = timeout
        self._session: Any = None

    async def announce(self, start: int, key_ids: list[uuid.UUID], size: int) -> str:
        """Announce a batch of link key (``linkkeys``); returns the neighbour's answer."""
        body = {"start": start, "key_IDs": [str(kid) for kid in key_ids], "size": size}
        data = await self._post("keys", body, "status")
        answer: str = data["status"]
        return answer

    async def report_position(self, position: int) -> int:
        """Tell the neighbour where this node resumes its incoming stream; returns the bytes it skipped."""
        data = await self._post("position", {"position": position}, "skipped")
        skipped: int = data["skipped"]
        return skipped

    async def _post(self, what: str, body: dict[str, Any], field: str, path: str | None = None) -> dict[str, Any]:
        status, data = await self._exchange(what, body, path)
        if status != 200 or not isinstance(data, dict) or field not in data:
            message = data.get("message") if isinstance(data, dict) else None
            raise PeerApiError(f"neighbour {self.base_url} refused {what}: HTTP {status}: {message}", status)
        return data

    async def _exchange(self, what: str, body: dict[str, Any], path: str | None) -> tuple[int, Any]:
        import aiohttp

        if self._session is None:
            headers = {NODE_HEADER: self.me} if self._ssl is False else {}
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout), headers=headers)
        url = f"{self.base_url}{PEER_PREFIX}{path or f'/links/{self.me}/{what}'}"
        try:
            async with self._session.post(url, json=body, ssl=self._ssl) as response:
                raw = await response.read()
                status = response.status
        except (aiohttp.ClientError, ssl.SSLError, TimeoutError, OSError) as exc:
            raise PeerUnreachableError(
                f"neighbour {self.base_url} did not answer: {type(exc).__name__}: {exc}"
            ) from None
        try:
            data = parse_json(raw)  # a neighbour's answer gets no more trust than a request
        except HttpBadRequestError:
            data = {"message": raw[:200].decode(errors="replace")}
        return status, data

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- the pair channel (keyflow.PairChannel), toward the other end of an application pair --

    async def confirm(self, pair: tuple[str, str], proofs: Sequence[tuple[uuid.UUID, bytes]]) -> list[str]:
        """D -> S: proofs of units; S's verdicts, one per proof."""
        body = {"units": [{"unit_ID": str(uid), "proof": base64.b64encode(p).decode()} for uid, p in proofs]}
        data = await self._post("proofs", body, "verdicts", f"/pairs/{pair[0]}/{pair[1]}/proofs")
        verdicts = data["verdicts"]
        if (
            not isinstance(verdicts, list)
            or len(verdicts) != len(proofs)
            or not all(v in ("ready", "mismatch", "unknown") for v in verdicts)
        ):
            raise PeerApiError(f"node {self.base_url} answered proofs with {len(proofs)} malformed verdicts")
        return verdicts

    async def push(
        self,
        pair: tuple[str, str],
        records: Sequence[tuple[uuid.UUID, Sequence[Range]]],
        void: Sequence[tuple[uuid.UUID, Sequence[Range]]] = (),
    ) -> None:
        """S -> D: ledger records (and void ones); returns once D committed them."""

        def encode(items: Sequence[tuple[uuid.UUID, Sequence[Range]]]) -> list[dict[str, Any]]:
            return [
                {"key_ID": str(kid), "ranges": [[str(uuid.UUID(bytes=r.unit_id)), r.start, r.length] for r in ranges]}
                for kid, ranges in items
            ]

        body = {"records": encode(records), "void": encode(void)}
        status, data = await self._exchange("records", body, f"/pairs/{pair[0]}/{pair[1]}/records")
        if status == 200 and isinstance(data, dict) and "applied" in data:
            return
        message = data.get("message") if isinstance(data, dict) else None
        unit = data.get("unit_ID") if isinstance(data, dict) else None
        if status == 409 and isinstance(unit, str) and len(unit) == 32:
            raise UnitMissingError(f"node {self.base_url} lacks unit {unit}: {message}", unit)
        raise PeerApiError(f"node {self.base_url} refused records: HTTP {status}: {message}", status)
