"""Serving an aiohttp application over mutual TLS: errors as JSON, start and stop, ``HOST:PORT``.

Both of a node's servers (the ETSI 014 API for applications, the peer API for neighbours)
and the KME simulator are built on these: a handler raises
:class:`~mpss_fast.exceptions.HttpError` and :func:`json_errors` answers its status with
``{"message": ...}``; :func:`start_server` refuses to serve an app that requires client
certificates without a TLS context that demands them.
"""

from __future__ import annotations

import logging
import math
import ssl
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..exceptions import HttpError, ParameterError

_log = logging.getLogger("mpss_fast.https")

REQUIRE_CLIENT_CERT = web.AppKey("require_client_cert", bool)
"""Set on an app to say whether :func:`start_server` must insist on mutual TLS (default: it must)."""


def error_response(status: int, message: str) -> web.Response:
    """A refusal as every server here answers it: ``{"message": ...}`` with ``status``."""
    return web.json_response({"message": message}, status=status)


@web.middleware
async def json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every refusal as ``{"message": ...}`` (``HttpError``: its status; anything else: 500, logged)."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except HttpError as exc:
        response = error_response(exc.status or 500, exc.message)
        if exc.retry_after is not None:
            response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
        return response
    except web.HTTPException as exc:
        if exc.status >= 400:
            return error_response(exc.status, exc.reason)
        raise
    except Exception:
        _log.exception("request %s %s failed", request.method, request.path)
        return error_response(500, "internal error")


@dataclass
class RunningServer:
    """A started server: its ``port`` (useful with port 0) and :meth:`close`."""

    runner: web.AppRunner
    host: str
    port: int

    async def close(self) -> None:
        """Stop listening and finish."""
        await self.runner.cleanup()


async def start_server(
    app: web.Application, host: str, port: int, *, ssl_context: ssl.SSLContext | None
) -> RunningServer:
    """Serve ``app`` on ``host:port`` (port 0: an ephemeral one) until ``close()``.

    ``ssl_context=None`` (plain HTTP) is refused unless the app sets
    ``app[REQUIRE_CLIENT_CERT] = False``; a context that does not require client
    certificates is refused for an app that requires them.
    """
    if app.get(REQUIRE_CLIENT_CERT, True):
        if ssl_context is None:
            raise ParameterError("plain HTTP needs an app made with require_client_cert=False (development only)")
        if ssl_context.verify_mode != ssl.CERT_REQUIRED:
            raise ParameterError("the TLS context must require client certificates (see ssl_server_context)")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        await site.start()
        addresses = runner.addresses  # what was bound: (host, port, ...) tuples
        bound = addresses[0][1] if addresses else port
    except BaseException:
        await runner.cleanup()
        raise
    return RunningServer(runner, host, int(bound))


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT`` -> (host, port); ``ParameterError`` otherwise."""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isascii() or not port.isdigit() or int(port) > 65535:
        raise ParameterError(f"--listen must be HOST:PORT or [IPv6]:PORT, not {text!r}")
    return host, int(port)
