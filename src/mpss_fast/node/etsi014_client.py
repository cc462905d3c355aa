"""An async ETSI GS QKD 014 client (aiohttp): how a node fetches link keys from its KME.

``Etsi014Client(base_url, cert=..., key=..., ca=...)`` talks mutual TLS to a KME (the
client certificate's CN is this SAE's ID); ``status``, ``enc_keys`` and ``dec_keys``
return :class:`~mpss_fast.node.etsi014.KeyStatus` and ``(uuid.UUID, bytes)`` pairs. A
4xx/5xx answer raises the matching :class:`~mpss_fast.exceptions.Etsi014Error` subclass
(``.status``, ``.message``); no answer (refused, TLS failure, timeout) or a malformed one
raises :class:`~mpss_fast.exceptions.Etsi014ConnectionError`. See ``docs/etsi014.md``.
"""

from __future__ import annotations

import json
import ssl
import uuid
from collections.abc import Sequence
from os import PathLike
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp

from ..exceptions import (
    Etsi014BadRequestError,
    Etsi014ConnectionError,
    Etsi014Error,
    Etsi014UnauthorizedError,
    Etsi014UnavailableError,
    ParameterError,
)
from .etsi014 import API_PREFIX, KeyList, KeyStatus, check_sae_id, key_ids_to_json, keys_from_json

StrPath = str | PathLike[str]

_ERRORS: dict[int, type[Etsi014Error]] = {
    400: Etsi014BadRequestError,
    401: Etsi014UnauthorizedError,
    503: Etsi014UnavailableError,
}


def ssl_client_context(cert: StrPath, key: StrPath, ca: StrPath) -> ssl.SSLContext:
    """A TLS 1.2+ client context presenting ``cert``/``key`` and trusting only ``ca`` (host name checked)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cafile=ca)
    ctx.load_cert_chain(cert, key)
    return ctx


class Etsi014Client:
    """An ETSI 014 client of one KME, e.g. ``Etsi014Client("https://kme-a:8443", cert=..., key=..., ca=...)``.

    Use as ``async with`` (or call :meth:`close`). ``ssl_context`` replaces ``cert``/``key``/
    ``ca``. For a plain-HTTP development server (``http://``), pass ``sae_id`` instead: it
    is sent in the ``X-SAE-ID`` header. ``timeout`` is the total seconds per request.
    """

    def __init__(
        self,
        base_url: str,
        *,
        cert: StrPath | None = None,
        key: StrPath | None = None,
        ca: StrPath | None = None,
        ssl_context: ssl.SSLContext | None = None,
        sae_id: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        base = base_url.rstrip("/")
        if base.startswith("https://"):
            if ssl_context is None:
                if cert is None or key is None or ca is None:
                    raise ParameterError("an https KME needs cert, key and ca (or ssl_context)")
                ssl_context = ssl_client_context(cert, key, ca)
        elif base.startswith("http://"):
            if ssl_context is not None or cert is not None:
                raise ParameterError("an http:// URL carries no TLS; use https:// with a certificate")
            if sae_id is None:
                raise ParameterError("a plain-HTTP (development) KME needs sae_id")
        else:
            raise ParameterError("base_url must start with https:// (or http:// for development)")
        self.base_url = base
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else False
        self._headers = {} if sae_id is None else {"X-SAE-ID": check_sae_id(sae_id)}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Etsi014Client:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connections (idempotent)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _url(self, sae_id: str, what: str) -> str:
        return f"{self.base_url}{API_PREFIX}/{quote(check_sae_id(sae_id), safe='')}/{what}"

    async def _request(self, method: str, url: str, body: dict[str, Any] | None = None) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout, headers=self._headers)
        try:
            async with self._session.request(method, url, json=body, ssl=self._ssl) as response:
                status = response.status
                raw = await response.read()
        except (aiohttp.ClientError, ssl.SSLError, TimeoutError, OSError) as exc:
            raise Etsi014ConnectionError(f"no answer from {self.base_url}: {type(exc).__name__}: {exc}") from None
        try:
            data = json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError):
            data = None
        if status >= 400:
            message = data.get("message") if isinstance(data, dict) else None
            if not isinstance(message, str):
                message = f"HTTP {status} without a message"
            raise _ERRORS.get(status, Etsi014Error)(message, status)
        if status != 200 or data is None:
            raise Etsi014ConnectionError(f"{self.base_url} answered HTTP {status} without a JSON body", status)
        return data

    async def status(self, slave: str) -> KeyStatus:
        """``GET status`` of the keys this SAE (the master) shares with ``slave``."""
        data = await self._request("GET", self._url(slave, "status"))
        try:
            return KeyStatus.from_json(data)
        except ValueError as exc:
            raise Etsi014ConnectionError(f"{self.base_url}: malformed status: {exc}", 200) from None

    async def enc_keys(self, slave: str, number: int = 1, size: int | None = None) -> KeyList:
        """``POST enc_keys``: ``number`` new keys of ``size`` bits (default: the KME's) shared with ``slave``."""
        body: dict[str, Any] = {"number": number}
        if size is not None:
            body["size"] = size
        keys = self._keys(await self._request("POST", self._url(slave, "enc_keys"), body))
        if len(keys) != number or (size is not None and any(len(key) * 8 != size for _, key in keys)):
            raise Etsi014ConnectionError(f"{self.base_url}: enc_keys answered with the wrong number or size", 200)
        return keys

    async def dec_keys(self, master: str, key_ids: Sequence[uuid.UUID]) -> KeyList:
        """``POST dec_keys``: the keys ``master`` obtained under ``key_ids``, in the order asked."""
        ids = list(key_ids)
        if not ids or not all(isinstance(kid, uuid.UUID) for kid in ids):
            raise ParameterError("key_ids must be a non-empty sequence of uuid.UUID")
        keys = self._keys(await self._request("POST", self._url(master, "dec_keys"), key_ids_to_json(ids)))
        by_id = dict(keys)
        if len(by_id) != len(keys) or set(by_id) != set(ids):
            raise Etsi014ConnectionError(f"{self.base_url}: dec_keys answered with other key IDs than asked", 200)
        return [(kid, by_id[kid]) for kid in ids]

    def _keys(self, data: Any) -> KeyList:
        try:
            return keys_from_json(data)
        except ValueError as exc:
            raise Etsi014ConnectionError(f"{self.base_url}: malformed key container: {exc}", 200) from None
