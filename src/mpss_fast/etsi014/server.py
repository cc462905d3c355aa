"""The ETSI GS QKD 014 REST server (aiohttp): status, enc_keys and dec_keys over mutual TLS.

``make_app(backend)`` builds the application; the calling SAE is the one subject CN of its
client certificate (``identity.request_identity``: a certificate with several CNs is
refused), checked against the CA by the TLS handshake (``https.tls.ssl_server_context``
requires a client certificate, TLS 1.2 or newer). Every error is ``{"message": "..."}`` with 400,
401 or 503 (404/405 for unknown paths and methods, 500 for a backend fault); a malformed
body of any shape is 400 (``jsonbody``); no message carries key bytes. See ``docs/etsi014.md``.

Plain HTTP is for development only: ``make_app(backend, require_client_cert=False)``, and
then a caller without a certificate names itself in the ``X-SAE-ID`` header (anyone can).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..exceptions import Etsi014BadRequestError, Etsi014UnauthorizedError, ParameterError
from ..https.identity import request_identity
from ..https.jsonbody import read_json
from ..https.server import REQUIRE_CLIENT_CERT, json_errors
from .backend import KeyBackend
from .model import API_PREFIX, check_key_ids, check_sae_id, key_ids_from_json, keys_to_json, parse_key_id

DEV_SAE_HEADER = "X-SAE-ID"
"""Development only (``require_client_cert=False``): the caller's SAE ID when it has no certificate."""

MAX_BODY_BYTES = 1 << 20
"""Largest request body accepted."""

_BACKEND = web.AppKey("etsi014_backend", KeyBackend)


def _caller(request: web.Request) -> str:
    """The calling SAE: its certificate's one subject CN (or, without one in development mode, the header)."""
    backend = request.app[_BACKEND]
    sae = request_identity(request, dev_header=None if request.app[REQUIRE_CLIENT_CERT] else DEV_SAE_HEADER)
    if sae is None:
        raise Etsi014UnauthorizedError("no client certificate (mutual TLS is required)")
    if not backend.is_known_sae(sae):
        raise Etsi014UnauthorizedError("the client certificate's CN is not a known SAE")
    return sae


def _path_sae(request: web.Request) -> str:
    return check_sae_id(request.match_info["sae_id"], "the SAE ID in the path")


def _query_int(request: web.Request, name: str) -> int | None:
    values = request.query.getall(name, [])
    if not values:
        return None
    if len(values) > 1 or not values[0].isascii() or not values[0].isdigit() or len(values[0]) > 9:
        raise Etsi014BadRequestError(f"{name} must be one decimal integer")
    return int(values[0])


async def _json_body(request: web.Request) -> dict[str, Any]:
    data = await read_json(request, max_bytes=MAX_BODY_BYTES, empty={})
    if not isinstance(data, dict):
        raise Etsi014BadRequestError("the request body must be a JSON object")
    return data


async def _status(request: web.Request) -> web.Response:
    master = _caller(request)
    slave = _path_sae(request)
    status = await request.app[_BACKEND].status(master, slave)
    return web.json_response(status.to_json())


async def _enc_keys(request: web.Request) -> web.Response:
    master = _caller(request)
    slave = _path_sae(request)
    backend = request.app[_BACKEND]
    limits = backend.limits
    if request.method == "POST":
        body = await _json_body(request)
        number = body.get("number", 1)
        size = body.get("size", limits.key_size)
        if body.get("additional_slave_SAE_IDs"):
            raise Etsi014BadRequestError("additional_slave_SAE_IDs are not supported (max_SAE_ID_count is 0)")
        if body.get("extension_mandatory"):
            raise Etsi014BadRequestError("no extension is supported, and extension_mandatory lists one")
    else:
        number = _query_int(request, "number")
        size = _query_int(request, "size")
        number = 1 if number is None else number
        size = limits.key_size if size is None else size
    keys = await backend.enc_keys(master, slave, limits.check_number(number), limits.check_size(size))
    return web.json_response(keys_to_json(keys))


async def _dec_keys(request: web.Request) -> web.Response:
    slave = _caller(request)
    master = _path_sae(request)
    backend = request.app[_BACKEND]
    if request.method == "POST":
        key_ids = key_ids_from_json(await _json_body(request), backend.limits)
    else:
        values = request.query.getall("key_ID", [])
        if not values:
            raise Etsi014BadRequestError("the key_ID query parameter is missing")
        key_ids = check_key_ids([parse_key_id(value) for value in values], backend.limits)
    keys = await backend.dec_keys(slave, master, key_ids)
    return web.json_response(keys_to_json(keys))


def make_app(backend: KeyBackend, *, require_client_cert: bool = True) -> web.Application:
    """The ETSI 014 application over ``backend``.

    With ``require_client_cert`` (the default) a request without a client certificate is
    401 (and a server started with :func:`ssl_server_context` refuses it in the handshake).
    ``require_client_cert=False`` is for development: plain HTTP is allowed and a caller
    without a certificate is identified by its ``X-SAE-ID`` header.
    """
    if not isinstance(backend, KeyBackend):
        raise ParameterError("backend must implement KeyBackend (limits, is_known_sae, status, enc_keys, dec_keys)")
    app = web.Application(middlewares=[json_errors], client_max_size=MAX_BODY_BYTES)
    app[_BACKEND] = backend
    app[REQUIRE_CLIENT_CERT] = bool(require_client_cert)
    app.router.add_get(API_PREFIX + "/{sae_id}/status", _status)
    for name, handler in (("enc_keys", _enc_keys), ("dec_keys", _dec_keys)):
        app.router.add_get(f"{API_PREFIX}/{{sae_id}}/{name}", handler)
        app.router.add_post(f"{API_PREFIX}/{{sae_id}}/{name}", handler)
    return app
