"""ETSI GS QKD 014: the server over mutual TLS, the client, the KME simulator and ``mpss kme-sim``.

Every test makes its own CA and certificates (``cryptography``) and serves on 127.0.0.1
with an ephemeral port; nothing leaves the loopback interface.
"""

from __future__ import annotations

import asyncio
import base64
import os
import queue
import ssl
import subprocess
import sys
import threading
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mpss_fast import cli
from mpss_fast.etsi014.backend import KeyBackend
from mpss_fast.etsi014.client import Etsi014Client
from mpss_fast.etsi014.kme_sim import KmeSimBackend, parse_sae_pair
from mpss_fast.etsi014.model import KeyLimits, KeyList, KeyStatus
from mpss_fast.etsi014.server import make_app
from mpss_fast.exceptions import (
    Etsi014BadRequestError,
    Etsi014ConnectionError,
    Etsi014UnauthorizedError,
    Etsi014UnavailableError,
    ParameterError,
)
from mpss_fast.https.server import parse_listen, start_server
from mpss_fast.https.tls import ssl_client_context, ssl_server_context

from .pki import Ca

ROOT = Path(__file__).resolve().parents[1]
STATUS_FIELDS = {
    "source_KME_ID",
    "target_KME_ID",
    "master_SAE_ID",
    "slave_SAE_ID",
    "key_size",
    "stored_key_count",
    "max_key_count",
    "max_key_per_request",
    "max_key_size",
    "min_key_size",
    "max_SAE_ID_count",
}

# -- certificates -----------------------------------------------------------------------


@dataclass
class Pki:
    ca: Path
    server: tuple[Path, Path]
    clients: dict[str, tuple[Path, Path]]
    foreign: tuple[Path, Path]
    """A client certificate with CN "A" signed by another CA."""

    def client_ctx(self, cn: str | None) -> ssl.SSLContext:
        if cn is None:  # trusts the server, presents no certificate
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.load_verify_locations(cafile=self.ca)
            return ctx
        cert, key = self.foreign if cn == "foreign" else self.clients[cn]
        return ssl_client_context(cert, key, self.ca)

    def client(self, url: str, cn: str) -> Etsi014Client:
        return Etsi014Client(url, ssl_context=self.client_ctx(cn), timeout=5)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = Ca(directory, "ca")
    other = Ca(directory, "other-ca")
    return Pki(
        ca=ca.path,
        server=ca.issue("kme", server=True, client=False),
        clients={cn: ca.issue(cn) for cn in ("A", "B", "C", "stranger")},
        foreign=other.issue("A"),
    )


# -- harness ----------------------------------------------------------------------------


def _serve(
    pki: Pki, backend: KeyBackend, body: Callable[[str], Awaitable[None]], *, tls: bool = True, **app_kw: Any
) -> None:
    """Serve ``backend`` on 127.0.0.1:0 while ``body(base_url)`` runs."""

    async def main() -> None:
        app = make_app(backend, **app_kw)
        ctx = ssl_server_context(pki.server[0], pki.server[1], pki.ca) if tls else None
        server = await start_server(app, "127.0.0.1", 0, ssl_context=ctx)
        try:
            await asyncio.wait_for(body(f"{'https' if tls else 'http'}://127.0.0.1:{server.port}"), 10)
        finally:
            await server.close()

    asyncio.run(main())


async def _call(
    pki: Pki, cn: str | None, method: str, url: str, *, json: Any = None, data: bytes | None = None, **kw: Any
) -> tuple[int, Any]:
    """One raw request as SAE ``cn``: (status, parsed JSON body)."""
    ctx: ssl.SSLContext | bool = pki.client_ctx(cn) if url.startswith("https") else False
    async with aiohttp.ClientSession() as session:
        async with session.request(method, url, json=json, data=data, ssl=ctx, **kw) as response:
            assert response.content_type == "application/json"
            return response.status, await response.json()


def _sim(**kw: Any) -> KmeSimBackend:
    return KmeSimBackend([("A", "B")], kme_id="kme-1", **kw)


def _check_container(body: Any, number: int, size_bits: int) -> list[tuple[uuid.UUID, bytes]]:
    """The key container exactly as the standard has it; returns the keys."""
    assert set(body) == {"keys"} and isinstance(body["keys"], list) and len(body["keys"]) == number
    keys = []
    for item in body["keys"]:
        assert set(item) == {"key_ID", "key"}
        assert item["key_ID"] == str(uuid.UUID(item["key_ID"]))  # canonical lower-case UUID text
        key = base64.b64decode(item["key"], validate=True)
        assert base64.b64encode(key).decode() == item["key"] and len(key) * 8 == size_bits
        keys.append((uuid.UUID(item["key_ID"]), key))
    return keys


# -- server: the exchange ---------------------------------------------------------------


def test_enc_keys_then_dec_keys_post(pki: Pki) -> None:
    async def body(url: str) -> None:
        api = url + "/api/v1/keys"
        status, data = await _call(pki, "A", "POST", f"{api}/B/enc_keys", json={"number": 3, "size": 256})
        assert status == 200
        keys = _check_container(data, 3, 256)
        assert len({key for _, key in keys}) == 3
        ids = {"key_IDs": [{"key_ID": str(kid)} for kid, _ in keys]}
        status, data = await _call(pki, "B", "POST", f"{api}/A/dec_keys", json=ids)
        assert status == 200 and _check_container(data, 3, 256) == keys
        # delivered once
        status, data = await _call(pki, "B", "POST", f"{api}/A/dec_keys", json={"key_IDs": ids["key_IDs"][:1]})
        assert status == 400 and set(data) == {"message"} and "already delivered" in data["message"]
        for _, key in keys:
            assert base64.b64encode(key).decode() not in data["message"] and key.hex() not in data["message"]
        # the master cannot collect its own keys as slave, and a third SAE gets nothing
        status, data = await _call(pki, "A", "POST", f"{api}/B/dec_keys", json=ids)
        assert status == 400 and "unknown" in data["message"]

    _serve(pki, _sim(), body)


def test_get_forms_and_status(pki: Pki) -> None:
    async def body(url: str) -> None:
        api = url + "/api/v1/keys"
        status, data = await _call(pki, "A", "GET", f"{api}/B/status")
        assert status == 200 and set(data) == STATUS_FIELDS
        assert data["source_KME_ID"] == data["target_KME_ID"] == "kme-1"
        assert (data["master_SAE_ID"], data["slave_SAE_ID"]) == ("A", "B")
        assert (data["key_size"], data["max_key_count"], data["max_SAE_ID_count"]) == (256, 100_000, 0)
        assert data["stored_key_count"] == 100_000
        assert KeyStatus.from_json(data).to_json() == data
        status, data = await _call(pki, "A", "GET", f"{api}/B/enc_keys", params={"number": "2", "size": "128"})
        assert status == 200
        keys = _check_container(data, 2, 128)
        status, data = await _call(pki, "A", "GET", f"{api}/B/enc_keys")  # defaults: one key of key_size
        assert status == 200
        _check_container(data, 1, 256)
        status, data = await _call(pki, "A", "GET", f"{api}/B/status")
        assert data["stored_key_count"] == 100_000 - 3
        status, data = await _call(pki, "B", "GET", f"{api}/A/dec_keys", params={"key_ID": str(keys[1][0])})
        assert status == 200 and _check_container(data, 1, 128) == [keys[1]]
        status, data = await _call(pki, "B", "GET", f"{api}/A/dec_keys", params={"key_ID": str(keys[1][0])})
        assert status == 400 and "already delivered" in data["message"]
        # B may be the master too (each pair works both ways); its keys are separate
        status, data = await _call(pki, "B", "GET", f"{api}/A/enc_keys")
        assert status == 200
        (kid, key), *_ = _check_container(data, 1, 256)
        status, data = await _call(pki, "A", "GET", f"{api}/B/dec_keys", params={"key_ID": str(kid)})
        assert status == 200 and _check_container(data, 1, 256) == [(kid, key)]

    _serve(pki, _sim(), body)


# -- server: identities -----------------------------------------------------------------


def test_no_client_certificate_is_refused_in_the_handshake(pki: Pki) -> None:
    async def body(url: str) -> None:
        with pytest.raises((aiohttp.ClientError, ssl.SSLError, ConnectionError)):
            await _call(pki, None, "GET", f"{url}/api/v1/keys/B/status")

    _serve(pki, _sim(), body)


def test_certificate_from_another_ca_is_refused(pki: Pki) -> None:
    async def body(url: str) -> None:
        with pytest.raises((aiohttp.ClientError, ssl.SSLError, ConnectionError)):
            await _call(pki, "foreign", "GET", f"{url}/api/v1/keys/B/status")
        async with pki.client(url, "foreign") as client:
            with pytest.raises(Etsi014ConnectionError) as info:
                await client.status("B")
            assert info.value.status is None

    _serve(pki, _sim(), body)


def test_unknown_or_unpaired_sae_is_401(pki: Pki) -> None:
    sim = KmeSimBackend([("A", "B"), ("B", "C")])

    async def body(url: str) -> None:
        api = url + "/api/v1/keys"
        for method, path in (("GET", "B/status"), ("POST", "B/enc_keys"), ("GET", "A/dec_keys")):
            status, data = await _call(pki, "stranger", method, f"{api}/{path}")
            assert status == 401 and set(data) == {"message"}, path
        status, data = await _call(pki, "A", "GET", f"{api}/C/status")  # known, but not paired with C
        assert status == 401 and "not paired" in data["message"]

    _serve(pki, sim, body)


def test_require_client_cert_and_plain_http(pki: Pki) -> None:
    async def refuse_plain() -> None:
        with pytest.raises(ParameterError, match="plain HTTP"):
            await start_server(make_app(_sim()), "127.0.0.1", 0, ssl_context=None)
        loose = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with pytest.raises(ParameterError, match="client certificates"):
            await start_server(make_app(_sim()), "127.0.0.1", 0, ssl_context=loose)

    asyncio.run(refuse_plain())
    with pytest.raises(ParameterError, match="KeyBackend"):
        make_app(object())  # type: ignore[arg-type]

    async def body(url: str) -> None:  # development mode: no certificate -> the X-SAE-ID header
        api = url + "/api/v1/keys"
        status, data = await _call(pki, None, "GET", f"{api}/B/status")
        assert status == 401 and "no client certificate" in data["message"]
        status, data = await _call(pki, None, "GET", f"{api}/B/status", headers={"X-SAE-ID": "stranger"})
        assert status == 401
        status, data = await _call(pki, None, "GET", f"{api}/B/status", headers={"X-SAE-ID": "A"})
        assert status == 200 and data["master_SAE_ID"] == "A"

    _serve(pki, _sim(), body, tls=False, require_client_cert=False)


# -- server: malformed requests and exhaustion ------------------------------------------

BAD_REQUESTS: list[tuple[str, str, str, dict[str, Any]]] = [
    # (SAE, method, path, request keywords) -> 400
    ("A", "GET", "B/enc_keys", {"params": {"number": "0"}}),
    ("A", "GET", "B/enc_keys", {"params": {"number": "x"}}),
    ("A", "GET", "B/enc_keys", {"params": {"number": "-1"}}),
    ("A", "GET", "B/enc_keys", {"params": {"number": "129"}}),  # over max_key_per_request
    ("A", "GET", "B/enc_keys", {"params": {"size": "100"}}),  # not a multiple of 8
    ("A", "GET", "B/enc_keys", {"params": {"size": "8"}}),  # under min_key_size
    ("A", "GET", "B/enc_keys", {"params": {"size": "16384"}}),  # over max_key_size
    ("A", "POST", "B/enc_keys", {"json": {"number": "2"}}),
    ("A", "POST", "B/enc_keys", {"json": {"number": True}}),
    ("A", "POST", "B/enc_keys", {"json": {"size": 255}}),
    ("A", "POST", "B/enc_keys", {"json": {"number": 1, "additional_slave_SAE_IDs": ["C"]}}),
    ("A", "POST", "B/enc_keys", {"json": {"extension_mandatory": [{"x": 1}]}}),
    ("A", "POST", "B/enc_keys", {"data": b"{not json", "headers": {"Content-Type": "application/json"}}),
    ("A", "POST", "B/enc_keys", {"json": [1, 2]}),
    ("A", "GET", "bad%20id/status", {}),
    ("B", "GET", "A/dec_keys", {}),  # no key_ID
    ("B", "GET", "A/dec_keys", {"params": {"key_ID": "not-a-uuid"}}),
    ("B", "GET", "A/dec_keys", {"params": {"key_ID": str(uuid.uuid4())}}),  # unknown
    ("B", "POST", "A/dec_keys", {"json": {}}),
    ("B", "POST", "A/dec_keys", {"json": {"key_IDs": []}}),
    ("B", "POST", "A/dec_keys", {"json": {"key_IDs": ["x"]}}),
    ("B", "POST", "A/dec_keys", {"json": {"key_IDs": [{"key_ID": 5}]}}),
    ("B", "POST", "A/dec_keys", {"json": {"key_IDs": [{"key_ID": str(uuid.UUID(int=7))}] * 2}}),  # twice
    ("B", "POST", "A/dec_keys", {"json": {"key_IDs": [{"key_ID": str(uuid.uuid4())} for _ in range(129)]}}),
]


def test_malformed_requests_are_400_with_a_message(pki: Pki) -> None:
    async def body(url: str) -> None:
        api = url + "/api/v1/keys"
        for sae, method, path, kw in BAD_REQUESTS:
            status, data = await _call(pki, sae, method, f"{api}/{path}", **kw)
            assert status == 400, (method, path, kw, data)
            assert set(data) == {"message"} and isinstance(data["message"], str) and data["message"], (path, kw)
        # unknown paths and methods keep the {"message": ...} shape
        assert (await _call(pki, "A", "GET", f"{api}/B/nothing"))[0] == 404
        status, data = await _call(pki, "A", "DELETE", f"{api}/B/enc_keys")
        assert status == 405 and set(data) == {"message"}

    _serve(pki, _sim(), body)


def test_exhausted_is_503_and_a_bad_id_delivers_nothing(pki: Pki) -> None:
    async def body(url: str) -> None:
        api = url + "/api/v1/keys"
        status, data = await _call(pki, "A", "POST", f"{api}/B/enc_keys", json={"number": 3})
        keys = _check_container(data, 3, 256)
        status, data = await _call(pki, "A", "POST", f"{api}/B/enc_keys", json={"number": 2})
        assert status == 503 and "1 available" in data["message"]
        ids = [{"key_ID": str(kid)} for kid, _ in keys[:2]] + [{"key_ID": str(uuid.uuid4())}]
        status, data = await _call(pki, "B", "POST", f"{api}/A/dec_keys", json={"key_IDs": ids})
        assert status == 400 and "unknown" in data["message"]
        status, data = await _call(pki, "B", "POST", f"{api}/A/dec_keys", json={"key_IDs": ids[:2]})
        assert status == 200 and _check_container(data, 2, 256) == keys[:2]  # nothing was lost above
        status, data = await _call(pki, "A", "GET", f"{api}/B/status")
        assert data["stored_key_count"] == 3
        status, data = await _call(pki, "A", "POST", f"{api}/B/enc_keys", json={"number": 3})
        assert status == 200

    _serve(pki, _sim(limits=KeyLimits(max_key_count=4)), body)


def test_sim_rate_limit() -> None:
    now = [100.0]
    sim = KmeSimBackend([("A", "B")], limits=KeyLimits(max_key_count=10), rate=2.0, clock=lambda: now[0])

    async def main() -> None:
        assert (await sim.status("A", "B")).stored_key_count == 10  # starts full
        await sim.enc_keys("A", "B", 10, 256)
        with pytest.raises(Etsi014UnavailableError):
            await sim.enc_keys("A", "B", 1, 256)
        now[0] += 1.0  # two keys made, but the slave has not collected any: no room
        assert (await sim.status("A", "B")).stored_key_count == 0
        assert (await sim.status("B", "A")).stored_key_count == 10  # the other direction is separate

    asyncio.run(main())
    with pytest.raises(ParameterError):
        KmeSimBackend([("A", "A")])
    with pytest.raises(ParameterError):
        KmeSimBackend([("A", "B")], rate=0)
    with pytest.raises(ParameterError):
        KeyLimits(key_size=100)


# -- the client library -----------------------------------------------------------------


def test_client_against_server(pki: Pki) -> None:
    async def body(url: str) -> None:
        async with pki.client(url, "A") as a, pki.client(url, "B") as b:
            status = await a.status("B")
            assert (status.master_SAE_ID, status.slave_SAE_ID, status.max_key_count) == ("A", "B", 5)
            keys = await a.enc_keys("B", 4, 512)
            assert len(keys) == 4 and all(len(key) == 64 for _, key in keys)
            assert await b.dec_keys("A", [kid for kid, _ in reversed(keys)]) == keys[::-1]
            with pytest.raises(Etsi014BadRequestError) as bad:
                await b.dec_keys("A", [keys[0][0]])
            assert bad.value.status == 400 and "already delivered" in bad.value.message
            await a.enc_keys("B", 5)
            with pytest.raises(Etsi014UnavailableError) as unavailable:
                await a.enc_keys("B")
            assert unavailable.value.status == 503
            with pytest.raises(Etsi014BadRequestError):
                await a.enc_keys("B", 1, 100)
        async with pki.client(url, "stranger") as stranger:
            with pytest.raises(Etsi014UnauthorizedError) as unauthorized:
                await stranger.status("B")
            assert unauthorized.value.status == 401
        async with Etsi014Client(url, ssl_context=pki.client_ctx(None), timeout=5) as anonymous:
            with pytest.raises(Etsi014ConnectionError):
                await anonymous.status("B")

    _serve(pki, _sim(limits=KeyLimits(max_key_count=5)), body)

    async def refused() -> None:  # nothing listens there
        cert, key = pki.clients["A"]
        async with Etsi014Client("https://127.0.0.1:9", cert=cert, key=key, ca=pki.ca, timeout=2) as client:
            with pytest.raises(Etsi014ConnectionError):
                await client.status("B")

    asyncio.run(refused())
    with pytest.raises(ParameterError):
        Etsi014Client("ftp://127.0.0.1")
    with pytest.raises(ParameterError):
        Etsi014Client("https://127.0.0.1")  # no certificate
    with pytest.raises(ParameterError):
        Etsi014Client("http://127.0.0.1")  # plain HTTP needs sae_id


class _ShortBackend(KmeSimBackend):
    """A KME that is always short of key and says when to retry."""

    async def enc_keys(self, master: str, slave: str, number: int, size_bits: int) -> KeyList:
        raise Etsi014UnavailableError("no key now", retry_after=2.5)


def test_a_503_carries_retry_after_to_the_client(pki: Pki) -> None:
    """The server rounds ``retry_after`` up into the ``Retry-After`` header; the client reads it back."""

    async def body(url: str) -> None:
        async with pki.client(url, "A") as a:
            with pytest.raises(Etsi014UnavailableError) as short:
                await a.enc_keys("B")
        assert (short.value.status, short.value.retry_after, short.value.message) == (503, 3.0, "no key now")

    _serve(pki, _ShortBackend([("A", "B")], kme_id="kme-1"), body)


def test_client_plain_http_development(pki: Pki) -> None:
    async def body(url: str) -> None:
        async with Etsi014Client(url, sae_id="A") as a, Etsi014Client(url, sae_id="B") as b:
            keys = await a.enc_keys("B", 2)
            assert await b.dec_keys("A", [kid for kid, _ in keys]) == keys

    _serve(pki, _sim(), body, tls=False, require_client_cert=False)


# -- the KME simulator, end to end, and the command -------------------------------------


def test_parse_listen_and_pairs() -> None:
    assert parse_listen("127.0.0.1:8443") == ("127.0.0.1", 8443)
    assert parse_listen("[::1]:0") == ("::1", 0)
    for bad in ("127.0.0.1", "127.0.0.1:x", ":80", "h:70000"):
        with pytest.raises(ParameterError):
            parse_listen(bad)
    assert parse_sae_pair("node-a,node-b") == ("node-a", "node-b")
    for bad in ("A", "A,A", "A,B,C", "A,b/c"):
        with pytest.raises(ParameterError):
            parse_sae_pair(bad)


def test_cli_kme_sim_errors(pki: Pki, capsys: pytest.CaptureFixture[str]) -> None:
    key = pki.server[1]
    base = ["kme-sim", "--listen", "127.0.0.1:0", "--sae", "A,B"]
    assert cli.main(base) == 1
    assert "needs --cert, --key and --ca" in capsys.readouterr().err
    assert cli.main([*base, "--plain-http", "--ca", str(pki.ca)]) == 1
    assert "--plain-http takes no" in capsys.readouterr().err
    assert cli.main([*base[:2], "nowhere", *base[3:], "--plain-http"]) == 1
    assert "--listen must be" in capsys.readouterr().err
    assert cli.main([*base, "--cert", str(key), "--key", str(key), "--ca", str(pki.ca)]) == 1
    assert "cannot load" in capsys.readouterr().err


def _read_line(stream: Any, timeout: float) -> str:
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        pytest.fail("mpss kme-sim did not report its address in time")


def test_cli_kme_sim_serves_two_saes(pki: Pki) -> None:
    cert, key = pki.server
    command = [sys.executable, "-m", "mpss_fast", "kme-sim", "--listen", "127.0.0.1:0"]
    command += ["--cert", str(cert), "--key", str(key), "--ca", str(pki.ca), "--sae", "A,B", "--kme-id", "link-ab"]
    paths = [str(ROOT / "src"), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = _read_line(proc.stdout, 15)
        assert line.startswith("kme-sim: serving ETSI 014 on https://127.0.0.1:"), line
        url = line.split(" on ")[1].split()[0]

        async def exchange() -> None:
            async with pki.client(url, "A") as a, pki.client(url, "B") as b:
                assert (await a.status("B")).source_KME_ID == "link-ab"
                keys = await a.enc_keys("B", 2)
                assert await b.dec_keys("A", [kid for kid, _ in keys]) == keys
                with pytest.raises(Etsi014BadRequestError):
                    await b.dec_keys("A", [keys[0][0]])

        asyncio.run(asyncio.wait_for(exchange(), 10))
        proc.terminate()
        assert proc.wait(timeout=10) == 0  # SIGTERM: a clean stop
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_import_mpss_fast_does_not_import_aiohttp() -> None:
    code = (
        "import sys, mpss_fast, mpss_fast.cli, mpss_fast.node, mpss_fast.etsi014.model, mpss_fast.etsi014.backend\n"
        "assert 'aiohttp' not in sys.modules, 'aiohttp imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
