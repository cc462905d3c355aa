"""Roles on the node's HTTP interfaces, and malformed request bodies: each test is an attack.

* An application certificate reads the node's stats or calls the peer API.
* A node that is not a neighbour calls the peer API; a neighbour reads the stats.
* A node certificate calls the ETSI 014 server meant for applications.
* A certificate with two CNs is read as one identity by one server and another by the other.
* One node certificate is used from two places at once (a copied key): a warning, once.
* A deeply nested JSON body (``"[" * 100000``) makes a server fail with 500.

Everything runs on 127.0.0.1 (and 127.0.0.2, a second client address) with ephemeral ports,
in-process aiohttp servers and real mutual TLS from ``tests.pki.NodePki`` (one CA per role).
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import ssl
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

aiohttp = pytest.importorskip("aiohttp")

from mpss_fast.etsi014 import kme_sim  # noqa: E402
from mpss_fast.etsi014.server import make_app  # noqa: E402
from mpss_fast.exceptions import NodeConfigError, NodeError  # noqa: E402
from mpss_fast.https.server import start_server  # noqa: E402
from mpss_fast.https.tls import ssl_client_context, ssl_server_context  # noqa: E402
from mpss_fast.node.config import parse_config  # noqa: E402
from mpss_fast.node.daemon import Node  # noqa: E402
from mpss_fast.node.peer_api import NODE_HEADER, PEER_PREFIX, make_peer_app  # noqa: E402

from . import nodelab  # noqa: E402
from .pki import NodePki  # noqa: E402

OPERATOR = "noc"
Cert = tuple[Path, Path]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> NodePki:
    return NodePki(tmp_path_factory.mktemp("roles-pki"))


@dataclass
class Answer:
    status: int
    content_type: str
    text: str

    @property
    def json(self) -> Any:
        return json.loads(self.text)


REFUSED = None
"""What :func:`_request` returns when the TLS layer refused the client."""


async def _request(
    method: str,
    url: str,
    *,
    cert: Cert | None = None,
    trust: Path | None = None,
    body: Any = None,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    local: str | None = None,
) -> Answer | None:
    """One request presenting ``cert`` and trusting ``trust`` (https), from address ``local``;
    ``None`` when the TLS handshake refused the client (TLS 1.3: seen on the first read)."""
    ctx: ssl.SSLContext | bool = False
    if url.startswith("https"):
        assert trust is not None
        if cert is None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.load_verify_locations(cafile=trust)
        else:
            ctx = ssl_client_context(cert[0], cert[1], trust)
    connector = aiohttp.TCPConnector(local_addr=(local, 0) if local else None, force_close=True)
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=5)) as session:
            async with session.request(method, url, json=body, data=data, headers=headers, ssl=ctx) as response:
                return Answer(response.status, response.content_type, await response.text())
    except (aiohttp.ClientError, ssl.SSLError, ConnectionError):
        return REFUSED


# -- a node S with mutual TLS (a diamond of two paths: neighbours R1 and R2; D is not one) --------


@dataclass
class RunningS:
    node: Node
    peer: str
    api: str
    pki: NodePki


@asynccontextmanager
async def _node_s(tmp_path: Path, pki: NodePki, **tls_changes: str) -> AsyncIterator[RunningS]:
    """Node S and the links' KME, both with mutual TLS; S's neighbours are not running."""
    kme_cert, kme_key = pki.kme()
    backend = kme_sim.KmeSimBackend(nodelab.kme_pairs(2))
    kme = await kme_sim.start(backend, "127.0.0.1", 0, cert=str(kme_cert), key=str(kme_key), ca=str(pki.nodes.path))
    names = nodelab.node_names(2)
    ports = dict(zip(names, nodelab.free_ports(len(names)), strict=True))
    configs = nodelab.diamond(
        2,
        db=lambda n: str(tmp_path / f"{n}.db"),
        peer_url=lambda me, nb: f"https://127.0.0.1:{ports[nb]}",  # nothing listens there
        kme_url=lambda me, nb: f"https://127.0.0.1:{kme.port}",
        peer_listen=lambda n: "127.0.0.1:0",
        api_listen=lambda n: "127.0.0.1:0",
        udp={n: f"127.0.0.1:{p}" for n, p in ports.items()},
        tls=lambda n: {**pki.tls_section(n), **tls_changes},
        operators=[OPERATOR],
        extra=lambda n: {"keys": {"batch": 4, "key_bits": 1024, "refill_interval_s": 0.5}},
    )
    node = Node(parse_config(configs["S"]))
    try:
        await node.start()
        yield RunningS(node, f"https://127.0.0.1:{node.peer_port}", f"https://127.0.0.1:{node.api_port}", pki)
    finally:
        await node.close()
        await kme.close()


def _run(tmp_path: Path, pki: NodePki, body: Callable[[RunningS], Awaitable[None]]) -> None:
    async def main() -> None:
        async with _node_s(tmp_path, pki) as s:
            await asyncio.wait_for(body(s), 30)

    asyncio.run(main())


def test_an_application_certificate_cannot_read_stats_or_call_the_peer_api(tmp_path: Path, pki: NodePki) -> None:
    async def body(s: RunningS) -> None:
        app = pki.app(nodelab.MASTER)
        stats = await _request("GET", f"{s.peer}{PEER_PREFIX}/node/stats", cert=app, trust=pki.nodes.path)
        assert stats is REFUSED or stats.status == 401, stats
        report = await _request(
            "POST", f"{s.peer}{PEER_PREFIX}/links/R1/position", cert=app, trust=pki.nodes.path, body={"position": 0}
        )
        assert report is REFUSED or report.status == 401, report
        # the same application is served on the ETSI 014 interface, so the refusal is the role's
        status = await _request("GET", f"{s.api}/api/v1/keys/{nodelab.SLAVE}/status", cert=app, trust=pki.nodes.path)
        assert status is not None and status.status == 200, status

    _run(tmp_path, pki, body)


def test_only_operators_read_the_stats(tmp_path: Path, pki: NodePki) -> None:
    async def body(s: RunningS) -> None:
        url = f"{s.peer}{PEER_PREFIX}/node/stats"
        ok = await _request("GET", url, cert=pki.operator(OPERATOR), trust=pki.nodes.path)
        assert ok is not None and ok.status == 200 and ok.json["node"] == "S"
        for name in ("R1", "D"):  # a neighbour, and a node that is not one
            answer = await _request("GET", url, cert=pki.node(name), trust=pki.nodes.path)
            assert answer is not None and answer.status == 403, (name, answer)
            assert answer.json == {"message": f"{name} is not an operator of this node (peer.operators)"}

    _run(tmp_path, pki, body)


def test_node_certificates_cannot_call_the_etsi014_server(tmp_path: Path, pki: NodePki) -> None:
    async def body(s: RunningS) -> None:
        url = f"{s.api}/api/v1/keys/{nodelab.SLAVE}/status"
        for who in (pki.node("R1"), pki.operator(OPERATOR)):
            answer = await _request("GET", url, cert=who, trust=pki.nodes.path)
            assert answer is REFUSED or answer.status == 401, answer

    _run(tmp_path, pki, body)


def test_a_neighbour_may_call_the_peer_api_for_its_own_link_only(tmp_path: Path, pki: NodePki) -> None:
    async def body(s: RunningS) -> None:
        r1 = pki.node("R1")
        own = await _request(
            "POST", f"{s.peer}{PEER_PREFIX}/links/R1/position", cert=r1, trust=pki.nodes.path, body={"position": 0}
        )
        assert own is not None and (own.status, own.json) == (200, {"skipped": 0})
        other = await _request(
            "POST", f"{s.peer}{PEER_PREFIX}/links/R2/position", cert=r1, trust=pki.nodes.path, body={"position": 0}
        )
        assert other is not None and other.status == 403
        assert other.json == {"message": "only node R2 may report its position on its link from this node"}
        d = pki.node("D")
        for path, what in (
            ("links/D/keys", {"start": 0, "key_IDs": [str(uuid.uuid4())]}),
            ("links/R1/position", {"position": 5}),
        ):
            answer = await _request("POST", f"{s.peer}{PEER_PREFIX}/{path}", cert=d, trust=pki.nodes.path, body=what)
            assert answer is not None and answer.status == 403, (path, answer)
            assert answer.json == {"message": "node D is not a neighbour of this node"}

    _run(tmp_path, pki, body)


# -- the configuration ---------------------------------------------------------------------


def _s_config(tmp_path: Path, pki: NodePki, tls: dict[str, str], **peer: Any) -> dict[str, Any]:
    configs = nodelab.diamond(
        2,
        db=lambda n: str(tmp_path / f"{n}.db"),
        peer_url=lambda me, nb: "https://127.0.0.1:1",
        kme_url=lambda me, nb: "https://127.0.0.1:1",
        peer_listen=lambda n: "127.0.0.1:0",
        api_listen=lambda n: "127.0.0.1:0",
        udp={n: "127.0.0.1:0" for n in nodelab.node_names(2)},
        tls=lambda n: tls,
    )
    configs["S"]["peer"].update(peer)
    return configs["S"]


def test_the_single_ca_of_old_is_refused_naming_the_new_keys(tmp_path: Path, pki: NodePki) -> None:
    section = pki.tls_section("S")
    old = {"cert": section["cert"], "key": section["key"], "ca": section["node_ca"]}
    with pytest.raises(NodeConfigError, match=r"^tls\.ca is no longer accepted: .*tls\.node_ca .*tls\.app_ca"):
        parse_config(_s_config(tmp_path, pki, old))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"app_ca": "NODE"}, r"^tls\.node_ca and tls\.app_ca must be different CA files"),
        ({"app_ca": None}, r"^tls\.app_ca is required at a node serving applications \(api\.listen\)"),
        ({"node_ca": None}, r"^tls: missing key\(s\) node_ca$"),
        ({"colour": "blue"}, r"^tls: unknown key\(s\) colour \(allowed: app_ca, cert, key, kme_ca, node_ca\)"),
    ],
)
def test_bad_trust_settings_are_refused(
    tmp_path: Path, pki: NodePki, change: dict[str, str | None], message: str
) -> None:
    tls: dict[str, Any] = pki.tls_section("S")
    for key, value in change.items():
        if value is None:
            del tls[key]
        else:
            tls[key] = tls["node_ca"] if value == "NODE" else value
    with pytest.raises(NodeConfigError, match=message):
        parse_config(_s_config(tmp_path, pki, tls))


@pytest.mark.parametrize(
    ("operators", "message"),
    [
        (["R1"], r"^peer\.operators: 'R1' is a node of the topology; an operator's identity must not be a node's"),
        (["noc", "noc"], r"^peer\.operators: 'noc' is listed twice"),
        ("noc", r"^peer\.operators must be a list of certificate identities \(CNs\), not str"),
        ([""], r"^peer\.operators\[0\] must be a non-empty string"),
    ],
)
def test_bad_operator_lists_are_refused(tmp_path: Path, pki: NodePki, operators: Any, message: str) -> None:
    with pytest.raises(NodeConfigError, match=message):
        parse_config(_s_config(tmp_path, pki, pki.tls_section("S"), operators=operators))


def test_one_ca_under_two_file_names_is_refused_at_start(tmp_path: Path, pki: NodePki) -> None:
    tls = pki.tls_section("S")
    copy = tmp_path / "same-as-node-ca.pem"
    shutil.copy(tls["node_ca"], copy)
    tls["app_ca"] = str(copy)
    node = Node(parse_config(_s_config(tmp_path, pki, tls)))

    async def main() -> None:
        try:
            await node.start()
        finally:
            await node.close()

    with pytest.raises(NodeError, match=r"tls\.node_ca and tls\.app_ca share a CA certificate"):
        asyncio.run(main())


# -- the peer API and the ETSI 014 server on their own ------------------------------------------


class _Receiver:
    """Stands for a LinkKeyReceiver: accepts every announcement."""

    async def receive(self, start: int, ids: list[uuid.UUID], *more: Any) -> dict[str, str]:
        return {"status": "added"}


@asynccontextmanager
async def _peer_s(pki: NodePki | None, **kw: Any) -> AsyncIterator[str]:
    """S's peer API alone (neighbours R1 and R2), TLS with the node CA, or plain HTTP; yields its URL."""

    async def skip(receiver: str, position: int) -> int:
        return 0

    def stats() -> dict[str, Any]:
        return {"node": "S"}

    receivers: Any = {"R1": _Receiver(), "R2": _Receiver()}
    app = make_peer_app(receivers, stats, skip, plain_http=pki is None, **kw)
    ctx = None
    if pki is not None:
        cert, key = pki.node("S")
        ctx = ssl_server_context(cert, key, pki.nodes.path)
    server = await start_server(app, "127.0.0.1", 0, ssl_context=ctx)
    try:
        yield f"{'http' if pki is None else 'https'}://127.0.0.1:{server.port}"
    finally:
        await server.close()


def test_a_node_that_is_not_a_neighbour_is_refused_by_the_peer_api(pki: NodePki) -> None:
    async def main() -> None:
        async with _peer_s(pki) as url:
            d = pki.node("D")
            for path, what in (
                ("links/D/keys", {"start": 0, "key_IDs": [str(uuid.uuid4())]}),
                ("links/D/position", {"position": 0}),
            ):
                answer = await _request("POST", f"{url}{PEER_PREFIX}/{path}", cert=d, trust=pki.nodes.path, body=what)
                assert answer is not None and answer.status == 403, (path, answer)
            stats = await _request("GET", f"{url}{PEER_PREFIX}/node/stats", cert=d, trust=pki.nodes.path)
            assert stats is not None and stats.status == 403, stats

    asyncio.run(main())


def test_a_certificate_with_two_cns_is_refused_by_both_servers(pki: NodePki) -> None:
    async def main() -> None:
        # the peer API: CN=R1 (a neighbour) first, CN=evil after
        two = pki.nodes.issue("R1", more_cns=("evil",))
        async with _peer_s(pki) as url:
            answer = await _request(
                "POST", f"{url}{PEER_PREFIX}/links/R1/position", cert=two, trust=pki.nodes.path, body={"position": 0}
            )
            assert answer is not None and answer.status == 401, answer
            assert answer.json == {"message": "the client certificate must name exactly one CN; it names 2"}
        # the ETSI 014 server: CN=stranger first, CN=A (a known SAE) last
        cert, key = pki.node("kme-1")
        app = make_app(kme_sim.KmeSimBackend([("A", "B")], kme_id="kme-1"))
        server = await start_server(app, "127.0.0.1", 0, ssl_context=ssl_server_context(cert, key, pki.apps.path))
        try:
            other = pki.apps.issue("stranger", more_cns=("A",))
            answer = await _request(
                "GET", f"https://127.0.0.1:{server.port}/api/v1/keys/B/status", cert=other, trust=pki.nodes.path
            )
            assert answer is not None and answer.status == 401, answer
            assert answer.json == {"message": "the client certificate must name exactly one CN; it names 2"}
        finally:
            await server.close()

    asyncio.run(main())


def test_one_identity_for_certificates_and_the_cn_rules() -> None:
    from mpss_fast.exceptions import HttpUnauthorizedError
    from mpss_fast.https.identity import cert_identity

    def cert(*rdns: tuple[tuple[str, str], ...]) -> dict[str, Any]:
        return {"subject": rdns}

    assert cert_identity(cert((("countryName", "CH"),), (("commonName", "R1"),))) == "R1"
    multi_valued_rdn = (("organizationName", "x"), ("commonName", "R1"))
    assert cert_identity(cert(multi_valued_rdn)) == "R1"
    for bad, why in (
        (cert((("commonName", "A"),), (("commonName", "B"),)), "exactly one CN; it names 2"),
        (
            cert(
                (("commonName", "A"), ("commonName", "B")),
            ),
            "exactly one CN; it names 2",
        ),
        (cert((("organizationName", "x"),)), "exactly one CN; it names 0"),
        (cert((("commonName", ""),)), "an empty CN"),
        ({}, "exactly one CN; it names 0"),
    ):
        with pytest.raises(HttpUnauthorizedError, match=why):
            cert_identity(bad)


def test_one_node_certificate_used_from_two_places_is_warned_about_once(
    pki: NodePki, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async with _peer_s(pki) as url:
            r1 = pki.node("R1")

            async def report(local: str) -> None:
                answer = await _request(
                    "POST",
                    f"{url}{PEER_PREFIX}/links/R1/position",
                    cert=r1,
                    trust=pki.nodes.path,
                    body={"position": 0},
                    local=local,
                )
                assert answer is not None and answer.status == 200, answer

            await report("127.0.0.1")
            await report("127.0.0.1")  # a second connection from the same place: nothing to say
            assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
            for _ in range(3):
                await report("127.0.0.2")
                await report("127.0.0.1")
            await report("127.0.0.2")

    caplog.set_level(logging.INFO, logger="mpss_fast")
    asyncio.run(main())
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "R1" in warnings[0] and "127.0.0.1" in warnings[0] and "127.0.0.2" in warnings[0]


def test_the_duplicate_watch_warns_once_per_episode(caplog: pytest.LogCaptureFixture) -> None:
    from mpss_fast.https.identity import DuplicateWatch

    now = [0.0]
    watch = DuplicateWatch(window_s=10.0, clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="mpss_fast")

    def warnings() -> int:
        return len([r for r in caplog.records if r.levelno >= logging.WARNING])

    assert not watch.seen("R1", "10.0.0.1")
    now[0] = 5.0
    assert watch.seen("R1", "10.0.0.9")  # within the window from a second place
    assert watch.seen("R1", "10.0.0.1") and warnings() == 1
    assert not watch.seen("R2", "10.0.0.9")  # another identity: its own history
    now[0] = 16.0  # 10.0.0.9 silent for more than the window: the episode is over
    assert not watch.seen("R1", "10.0.0.1") and warnings() == 1
    now[0] = 17.0
    assert watch.seen("R1", "10.0.0.7") and warnings() == 2  # a new episode, a new warning


# -- malformed bodies: 400 with a message, never 500 ------------------------------------------------

_NESTED = [b"[" * 100_000, b"{" * 100_000, b'{"a":' * 100_000, b"[" * 100_000 + b"]" * 100_000]


def _assert_400(answer: Answer | None, prefix: str = "") -> None:
    assert answer is not None
    assert answer.status == 400, (answer.status, answer.text[:300])
    assert answer.content_type == "application/json" and "Traceback" not in answer.text
    assert set(answer.json) == {"message"} and answer.json["message"].startswith(prefix)


@pytest.mark.parametrize("data", _NESTED, ids=["lists", "objects", "members", "closed"])
def test_deeply_nested_json_is_400_at_the_peer_api(data: bytes) -> None:
    async def main() -> None:
        async with _peer_s(None) as url:
            for what, prefix in (("keys", "malformed announcement: "), ("position", "malformed position report: ")):
                answer = await _request(
                    "POST", f"{url}{PEER_PREFIX}/links/R1/{what}", data=data, headers={NODE_HEADER: "R1"}
                )
                _assert_400(answer, prefix)

    asyncio.run(main())


@pytest.mark.parametrize("data", _NESTED, ids=["lists", "objects", "members", "closed"])
def test_deeply_nested_json_is_400_at_the_etsi014_server_and_the_kme_simulator(data: bytes) -> None:
    async def main() -> None:
        server = await kme_sim.start(kme_sim.KmeSimBackend([("A", "B")]), "127.0.0.1", 0, plain_http=True)
        try:
            for what in ("enc_keys", "dec_keys"):
                url = f"http://127.0.0.1:{server.port}/api/v1/keys/B/{what}"
                _assert_400(await _request("POST", url, data=data, headers={"X-SAE-ID": "A"}))
        finally:
            await server.close()

    asyncio.run(main())


def test_json_nested_deeper_than_any_request_needs_is_400() -> None:
    deep = {"number": 1}
    inner: Any = deep
    for _ in range(100):
        inner["x"] = {}
        inner = inner["x"]

    async def main() -> None:
        server = await kme_sim.start(kme_sim.KmeSimBackend([("A", "B")]), "127.0.0.1", 0, plain_http=True)
        try:
            url = f"http://127.0.0.1:{server.port}/api/v1/keys/B/enc_keys"
            answer = await _request("POST", url, body=deep, headers={"X-SAE-ID": "A"})
            _assert_400(answer, "the request body is nested deeper than")
            fine = await _request("POST", url, body={"number": 1}, headers={"X-SAE-ID": "A"})
            assert fine is not None and fine.status == 200
        finally:
            await server.close()
        async with _peer_s(None) as peer:
            body = {"position": 0, "x": deep}
            answer = await _request(
                "POST", f"{peer}{PEER_PREFIX}/links/R1/position", body=body, headers={NODE_HEADER: "R1"}
            )
            _assert_400(answer, "malformed position report: the request body is nested deeper than")

    asyncio.run(main())
