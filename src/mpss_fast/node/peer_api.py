"""The node-to-node API: link key announcements from neighbours, and the node's counters.

* ``POST /mpss/v1/links/{sender}/keys`` with ``{"start": int, "key_IDs": [uuid, ...]}``:
  the neighbour ``sender`` announces a batch of link key for the direction
  ``sender>this node`` (``node.linkkeys``). Only ``sender`` itself may call it: the
  caller is the CN of its client certificate (mutual TLS), or, with plain HTTP for
  development, the ``X-MPSS-Node`` header. Answer: ``{"status": "added" | "have" |
  "lost" | "gap", ...}``; 503 when this node's KME cannot answer now.
* ``GET /mpss/v1/node/stats``: counters (no secrets), for operators and tests.

Errors are ``{"message": ...}`` with 400, 401, 404 or 503.
"""

from __future__ import annotations

import json
import logging
import ssl
import uuid
from collections.abc import Callable, Mapping
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


async def _stats(request: web.Request) -> web.Response:
    if _caller(request) is None:
        return _error(401, "no client certificate (mutual TLS is required)")
    stats: Callable[[], dict[str, Any]] = request.app[_STATS]  # type: ignore[assignment]
    return web.json_response(stats())


def make_peer_app(
    receivers: Mapping[str, LinkKeyReceiver], stats: Callable[[], dict[str, Any]], *, plain_http: bool
) -> web.Application:
    """The peer API over ``receivers`` (sender node -> its link's receiver) and a ``stats()`` function."""
    app = web.Application(client_max_size=1 << 20)
    app[_RECEIVERS] = dict(receivers)
    app[_STATS] = stats
    app[_PLAIN] = plain_http
    app[REQUIRE_CLIENT_CERT] = not plain_http
    app.router.add_post(PEER_PREFIX + "/links/{sender}/keys", _announce)
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
        import aiohttp

        if self._session is None:
            headers = {NODE_HEADER: self.me} if self._ssl is False else {}
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout), headers=headers)
        url = f"{self.base_url}{PEER_PREFIX}/links/{self.me}/keys"
        body = {"start": start, "key_IDs": [str(kid) for kid in key_ids]}
        try:
            async with self._session.post(url, json=body, ssl=self._ssl) as response:
                data = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, ssl.SSLError, TimeoutError, OSError, ValueError) as exc:
            raise Etsi014Error(f"neighbour {self.base_url} did not answer: {type(exc).__name__}: {exc}") from None
        if status != 200 or not isinstance(data, dict) or not isinstance(data.get("status"), str):
            message = data.get("message") if isinstance(data, dict) else None
            raise Etsi014Error(f"neighbour {self.base_url} refused the announcement: HTTP {status}: {message}")
        answer: str = data["status"]
        return answer

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
