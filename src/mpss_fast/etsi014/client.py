"""An async ETSI GS QKD 014 client (aiohttp): how a node fetches link keys from its KME.

``Etsi014Client(base_url, cert=..., key=..., ca=...)`` talks mutual TLS to a KME (the
client certificate's CN is this SAE's ID); ``status``, ``enc_keys`` and ``dec_keys``
return :class:`~mpss_fast.etsi014.model.KeyStatus` and ``(uuid.UUID, bytes)`` pairs. A
4xx/5xx answer raises the matching :class:`~mpss_fast.exceptions.Etsi014Error` subclass
(``.status``, ``.message``); no answer (refused, TLS failure, timeout) or a malformed one
raises :class:`~mpss_fast.exceptions.Etsi014ConnectionError`, and keys unlike the request
(another number or size, other or repeated key IDs) its subclass
:class:`~mpss_fast.exceptions.KmeFaultError`. See ``docs/etsi014.md``.
"""

from __future__ import annotations

import json
import ssl
import uuid
from collections.abc import Sequence
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
    KmeFaultError,
    ParameterError,
)
from ..https.tls import StrPath, ssl_client_context
from .model import API_PREFIX, KeyList, KeyStatus, check_sae_id, key_ids_to_json, keys_from_json

_ERRORS: dict[int, type[Etsi014Error]] = {
    400: Etsi014BadRequestError,
    401: Etsi014UnauthorizedError,
    503: Etsi014UnavailableError,
}


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
        # aiohttp's timeouts raise asyncio.TimeoutError: the builtin TimeoutError since Python 3.11 (the
        # floor in pyproject.toml); on 3.10 it was another class, which escaped here and ended tasks.
        try:
            async with self._session.request(method, url, json=body, ssl=self._ssl) as response:
                status = response.status
                raw = await response.read()
                retry_after = _retry_after(response.headers.get("Retry-After"))
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
            raise _ERRORS.get(status, Etsi014Error)(message, status, retry_after=retry_after)
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
        """``POST enc_keys``: ``number`` new keys of ``size`` bits (default: the KME's) shared with ``slave``.

        The answer must hold ``number`` keys with distinct key IDs, all of ``size`` bits (of one
        size when ``size`` is ``None``); otherwise :class:`KmeFaultError`.
        """
        body: dict[str, Any] = {"number": number}
        if size is not None:
            body["size"] = size
        keys = self._keys(await self._request("POST", self._url(slave, "enc_keys"), body))
        if len(keys) != number:
            raise self._fault(f"enc_keys answered {len(keys)} keys, not the {number} asked")
        _check_sizes("enc_keys", self.base_url, keys, size)
        if len({kid for kid, _ in keys}) != len(keys):
            raise self._fault("enc_keys answered with a key ID twice")
        return keys

    async def dec_keys(self, master: str, key_ids: Sequence[uuid.UUID], size: int | None = None) -> KeyList:
        """``POST dec_keys``: the keys ``master`` obtained under ``key_ids``, in the order asked.

        The answer must hold each asked key ID exactly once and no other, and with ``size``
        every key must have ``size`` bits; otherwise :class:`KmeFaultError`.
        """
        ids = list(key_ids)
        if not ids or not all(isinstance(kid, uuid.UUID) for kid in ids):
            raise ParameterError("key_ids must be a non-empty sequence of uuid.UUID")
        if len(set(ids)) != len(ids):
            raise ParameterError("key_ids lists a key ID twice")
        keys = self._keys(await self._request("POST", self._url(master, "dec_keys"), key_ids_to_json(ids)))
        by_id = dict(keys)
        if len(by_id) != len(keys) or set(by_id) != set(ids):
            raise self._fault("dec_keys answered with other key IDs than asked")
        if size is not None:
            _check_sizes("dec_keys", self.base_url, keys, size)
        return [(kid, by_id[kid]) for kid in ids]

    def _fault(self, what: str) -> KmeFaultError:
        return KmeFaultError(f"{self.base_url}: {what}", 200)

    def _keys(self, data: Any) -> KeyList:
        try:
            return keys_from_json(data)
        except ValueError as exc:
            raise Etsi014ConnectionError(f"{self.base_url}: malformed key container: {exc}", 200) from None


def _check_sizes(call: str, base_url: str, keys: KeyList, size: int | None) -> None:
    """Every key has ``size`` bits (one common size when ``size`` is ``None``), else :class:`KmeFaultError`."""
    sizes = sorted({len(key) * 8 for _, key in keys})
    if (size is None and len(sizes) > 1) or (size is not None and sizes not in ([], [size])):
        wanted = "one size" if size is None else f"{size} bits each"
        got = ", ".join(str(bits) for bits in sizes)
        raise KmeFaultError(f"{base_url}: {call} answered keys of {got} bits, not {wanted}", 200)


def _retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` of delay-seconds as a number (an HTTP date or anything else: ``None``)."""
    if value is None or not value.strip().isascii() or not value.strip().isdigit():
        return None
    return float(value.strip())
