"""The node-to-node API: link key announcements from neighbours, and the node's counters.

* ``POST /mpss/v1/links/{sender}/keys`` with ``{"start": int, "key_IDs": [uuid, ...]}``:
  the neighbour ``sender`` announces a batch of link key for the direction
  ``sender>this node`` (``node.linkkeys``). Only ``sender`` itself may call it: the
  caller is the CN of its client certificate (mutual TLS), or, with plain HTTP for
  development, the ``X-MPSS-Node`` header. Answer: ``{"status": "added" | "have" |
  "lost" | "gap", ...}``; 503 when this node's KME cannot answer now.
* ``POST /mpss/v1/links/{receiver}/position`` with ``{"position": int}``: the neighbour
  ``receiver`` restarted and resumes its incoming stream of ``this node>receiver`` at
  ``position`` (its committed, leased position); this node skips its outgoing pool to
  there, so shares are not sent under key IDs the receiver will refuse. Answer
  ``{"skipped": bytes}``. Only ``receiver`` itself may call it.
* ``GET /mpss/v1/node/stats``: counters (no secrets), for operators and tests.

Errors are ``{"message": ...}`` with 400, 401, 404 or 503.
"""

from __future__ import annotations

import json
import logging
import ssl
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from ..exceptions import Etsi014Error, MpssError
from .etsi014_server import REQUIRE_CLIENT_CERT
from .linkkeys import LinkKeyReceiver

log = logging.getLogger("mpss_fast.node")

PEER_PREFIX = "/mpss/v1"
NODE_HEADER = "X-MPSS-Node"
"""Development only (plain HTTP): the calling node's name."""

_RECEIVERS = web.AppKey("receivers", dict)
_STATS = web.AppKey("stats", object)
_SKIP = web.AppKey("skip", object)
_PLAIN = web.AppKey("plain", bool)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status)


def _caller(request: web.Request) -> str | None:
    cert = request.transport.get_extra_info("peercert") if request.transport is not None else None
    if cert:
        for rdn in cert.get("subject", ()):
            for name, value in rdn:
                if name == "commonName":
                    return str(value)
        return None
    if request.app[_PLAIN]:
        return request.headers.get(NODE_HEADER)
    return None


async def _announce(request: web.Request) -> web.Response:
    sender = request.match_info["sender"]
    receivers = request.app[_RECEIVERS]
    if sender not in receivers:
        return _error(404, f"no link from {sender} to this node")
    if _caller(request) != sender:
        return _error(401, f"only node {sender} may announce key for its link to this node")
    try:
        body = json.loads(await request.read())
        start = body["start"]
        ids = [uuid.UUID(text) for text in body["key_IDs"]]
        if isinstance(start, bool) or not isinstance(start, int) or start < 0 or not ids:
            raise ValueError("start must be an int >= 0 and key_IDs non-empty")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return _error(400, f"malformed announcement: {exc}")
    try:
        answer = await receivers[sender].receive(start, ids)
    except Etsi014Error as exc:
        return _error(503, f"cannot fetch the announced key from the KME now: {exc.message}")
    except MpssError as exc:
        log.warning("link %s>this node: announcement refused: %s", sender, exc)
        return _error(503, str(exc))
    return web.json_response(answer)


async def _position(request: web.Request) -> web.Response:
    receiver = request.match_info["receiver"]
    if receiver not in request.app[_RECEIVERS]:
        return _error(404, f"no link from this node to {receiver}")
    if _caller(request) != receiver:
        return _error(401, f"only node {receiver} may report its position on its link from this node")
    try:
        position = json.loads(await request.read())["position"]
        if isinstance(position, bool) or not isinstance(position, int) or position < 0:
            raise ValueError("position must be an int >= 0")
    except (ValueError, KeyError, TypeError) as exc:
        return _error(400, f"malformed position report: {exc}")
    skip: Callable[[str, int], Awaitable[int]] = request.app[_SKIP]  # type: ignore[assignment]
    try:
        skipped = await skip(receiver, position)
    except MpssError as exc:
        return _error(503, str(exc))
    return web.json_response({"skipped": skipped})


async def _stats(request: web.Request) -> web.Response:
    if _caller(request) is None:
        return _error(401, "no client certificate (mutual TLS is required)")
    stats: Callable[[], dict[str, Any]] = request.app[_STATS]  # type: ignore[assignment]
    return web.json_response(stats())


def make_peer_app(
    receivers: Mapping[str, LinkKeyReceiver],
    stats: Callable[[], dict[str, Any]],
    skip: Callable[[str, int], Awaitable[int]],
    *,
    plain_http: bool,
) -> web.Application:
    """The peer API over ``receivers`` (neighbour -> the receiver of its link to this node), a
    ``stats()`` function and ``skip(neighbour, position)`` for this node's link to the neighbour."""
    app = web.Application(client_max_size=1 << 20)
    app[_RECEIVERS] = dict(receivers)
    app[_STATS] = stats
    app[_SKIP] = skip
    app[_PLAIN] = plain_http
    app[REQUIRE_CLIENT_CERT] = not plain_http
    app.router.add_post(PEER_PREFIX + "/links/{sender}/keys", _announce)
    app.router.add_post(PEER_PREFIX + "/links/{receiver}/position", _position)
    app.router.add_get(PEER_PREFIX + "/node/stats", _stats)
    return app


class PeerClient:
    """Announces link key to one neighbour's peer API (``announce`` fits ``linkkeys.Announce``)."""

    def __init__(self, base_url: str, me: str, *, ssl_context: ssl.SSLContext | None, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.me = me
        self._ssl = ssl_context if ssl_context is not None else False
        self._timeout = timeout
        self._session: Any = None

    async def announce(self, start: int, key_ids: list[uuid.UUID]) -> str:
        """Announce a batch of link key (``linkkeys``); returns the neighbour's answer."""
        data = await self._post("keys", {"start": start, "key_IDs": [str(kid) for kid in key_ids]}, "status")
        answer: str = data["status"]
        return answer

    async def report_position(self, position: int) -> int:
        """Tell the neighbour where this node resumes its incoming stream; returns the bytes it skipped."""
        data = await self._post("position", {"position": position}, "skipped")
        skipped: int = data["skipped"]
        return skipped

    async def _post(self, what: str, body: dict[str, Any], field: str) -> dict[str, Any]:
        import aiohttp

        if self._session is None:
            headers = {NODE_HEADER: self.me} if self._ssl is False else {}
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout), headers=headers)
        url = f"{self.base_url}{PEER_PREFIX}/links/{self.me}/{what}"
        try:
            async with self._session.post(url, json=body, ssl=self._ssl) as response:
                raw = await response.read()
                status = response.status
        except (aiohttp.ClientError, ssl.SSLError, TimeoutError, OSError) as exc:
            raise Etsi014Error(f"neighbour {self.base_url} did not answer: {type(exc).__name__}: {exc}") from None
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            data = {"message": raw[:200].decode(errors="replace")}
        if status != 200 or not isinstance(data, dict) or field not in data:
            message = data.get("message") if isinstance(data, dict) else None
            raise Etsi014Error(f"neighbour {self.base_url} refused {what}: HTTP {status}: {message}")
        return data

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
