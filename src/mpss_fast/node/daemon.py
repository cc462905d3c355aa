"""``mpss node``: one asyncio process per QKD node, acting as source, relay and destination.

:class:`Node` wires the parts together (``docs/node.md``):

* the stores: ``LinkStore`` (link key streams, consumed positions) and the key store
  (``KeyStore``: per application pair, confirmed key material and the key ledger);
* link keys: per neighbour, a :class:`~mpss_fast.node.linkkeys.LinkKeyFeeder` for the
  outgoing direction (ETSI 014 ``enc_keys`` at the link's KME) and a receiver for the
  incoming one (``dec_keys``), synchronised over the peer API;
* shares (:class:`~mpss_fast.node.shares.ShareNode`) over the transport (tun on real SRv6,
  or UDP);
* the key flow (:class:`~mpss_fast.node.keyflow.KeyFlow`): the key stores filled ahead of
  demand and confirmed end to end, over the peer API to each pair's other node;
* the ETSI 014 server toward applications (:class:`FlowBackend`), on the key stores.

Log lines go to the ``mpss_fast.node`` logger; they carry key IDs, unit IDs and offsets, never key bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import asdict
from typing import Any, NamedTuple

from .._selftest import selftest
from ..etsi014.client import Etsi014Client
from ..etsi014.server import make_app
from ..exceptions import KeyPoolExhaustedError, NodeError, PeerApiError
from ..https.server import start_server
from ..https.stopping import stop_on_signals
from ..https.tls import check_separate_cas, ssl_client_context, ssl_server_context
from .app_backend import FlowBackend
from .config import NodeConfig
from .keyflow import KeyFlow
from .linkkeys import LinkKeyFeeder, LinkKeyReceiver, link_name
from .peer_api import PeerClient, make_peer_app
from .shares import ShareNode
from .store import KeyStore, LinkStore, keystore_path
from .supervisor import Supervisor
from .transport import Transport, TunTransport, UdpTransport

log = logging.getLogger("mpss_fast.node")

RESUME_RETRY_S = 0.2
"""Seconds between tries to tell a neighbour where this node resumed its incoming stream."""

EXPIRE_INTERVAL_S = 0.02
"""How often sessions past their collection time are delivered or reported."""
LEDGER_KEEP_S = 86400.0
"""How long the key store keeps the ledger rows of keys handed out (a repeated dec_keys for one says
"already delivered") and the IDs of units gone; after that they are dropped, so the store does not grow
with every key ever delivered."""
MAINTENANCE_INTERVAL_S = 60.0
"""How often the stores are maintained (``Node._maintain``): old ledger rows dropped, write-ahead logs
checkpointed."""

RESTART_DELAY_S = 0.5
"""A crashed background task is restarted after this long, doubled per crash in a row (``supervisor``)."""

RESTART_DELAY_MAX_S = 30.0
"""The longest wait before a restart."""

TASK_MAX_CRASHES = 8
"""After this many crashes in a row of one task (none of its runs lasting ``TASK_HEALTHY_S``), the node stops."""

TASK_HEALTHY_S = 60.0
"""A run this long resets its task's count of crashes in a row."""


class _TlsContexts(NamedTuple):
    peer_client: ssl.SSLContext | None
    """Toward neighbours' peer APIs: the node certificate; trusts ``tls.node_ca``."""
    kme_client: ssl.SSLContext | None
    """Toward the link KMEs: the node certificate; trusts ``tls.kme_ca``."""
    peer_server: ssl.SSLContext | None
    """The peer API: client certificates from ``tls.node_ca`` only (nodes and operators)."""
    api_server: ssl.SSLContext | None
    """The ETSI 014 server: client certificates from ``tls.app_ca`` only (applications)."""


class Node:
    """A running node: ``await node.start()``, then ``await node.close()`` (or :func:`run`)."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.store: LinkStore | None = None
        self.keystore: KeyStore | None = None
        self.shares: ShareNode | None = None
        self.flow: KeyFlow | None = None
        self.backend: FlowBackend | None = None
        self.transport: Transport | None = None
        self.feeders: dict[str, LinkKeyFeeder] = {}
        self.receivers: dict[str, LinkKeyReceiver] = {}
        self._peers: list[PeerClient] = []  # one per link, in the order of config.links
        self._stack = contextlib.AsyncExitStack()  # everything started, closed in reverse by close()
        self.supervisor = Supervisor(
            delay_s=RESTART_DELAY_S,
            max_delay_s=RESTART_DELAY_MAX_S,
            max_crashes=TASK_MAX_CRASHES,
            healthy_s=TASK_HEALTHY_S,
        )
        self.api_port: int | None = None
        self.peer_port: int | None = None

    # -- start and stop -----------------------------------------------------------------

    async def start(self) -> None:
        """Check the kernels, open the stores, start the transport, the link key exchange, the key flow and
        both HTTP servers. Each part, once started, is put on the exit stack, so a failure part-way (and
        :meth:`close`) stops exactly what was started, in reverse order: tasks, servers, clients, the key
        flow, the transport, the key store, the link store last."""
        cfg = self.config
        stack = self._stack
        try:
            # Known answers of every kernel tier and keystream this CPU runs (a few ms): a node whose
            # arithmetic is wrong must not relay or hand out anything (SelfTestError, exit 1).
            await asyncio.to_thread(selftest)
            tls = self._tls_contexts()  # certificate files read once, one context per role
            self.store = stack.enter_context(LinkStore(cfg.db, lease_bytes=cfg.lease_bytes))
            if cfg.pairs:
                self.keystore = stack.enter_context(await asyncio.to_thread(KeyStore, keystore_path(cfg.db)))
            self.transport = self._transport()
            stack.callback(self.transport.close)
            self.shares = ShareNode(cfg, self.store, self.transport.send, self._arrived)
            if self.keystore is not None:
                self.flow = await self._key_flow(tls.peer_client)
                self.backend = FlowBackend(self.flow, cfg.node, cfg.pairs)
            await self.transport.start(self.shares.on_packet)
            for link in cfg.links:
                kme = Etsi014Client(link.kme_url, ssl_context=tls.kme_client, sae_id=self._dev_id(link.sae_id))
                stack.push_async_callback(kme.close)
                self.receivers[link.neighbour] = LinkKeyReceiver(
                    self.store, link_name(link.neighbour, cfg.node), kme, link.neighbour_sae_id
                )
                peer = PeerClient(link.peer_url, cfg.node, ssl_context=tls.peer_client)
                stack.push_async_callback(peer.close)
                self._peers.append(peer)
                self.feeders[link.neighbour] = LinkKeyFeeder(
                    self.store,
                    link_name(cfg.node, link.neighbour),
                    kme,
                    link.neighbour_sae_id,
                    peer.announce,
                    batch=cfg.key_batch,
                    key_bits=cfg.key_bits,
                    low_water=cfg.low_water_bytes,
                    interval=cfg.refill_interval_s,
                )
            peer_app = make_peer_app(
                self.receivers, self.stats, self._skip, plain_http=cfg.plain_http, operators=cfg.operators,
                flow=self.flow,
            )  # fmt: skip
            peer_server = await start_server(peer_app, *cfg.peer_listen, ssl_context=tls.peer_server)
            stack.push_async_callback(peer_server.close)
            self.peer_port = peer_server.port
            if self.backend is not None and cfg.api_listen is not None:
                api = make_app(self.backend, require_client_cert=not cfg.plain_http)
                api_server = await start_server(api, *cfg.api_listen, ssl_context=tls.api_server)
                stack.push_async_callback(api_server.close)
                self.api_port = api_server.port
            # Supervised: a task that raises is logged and restarted; one that keeps raising stops the node.
            stack.push_async_callback(self.supervisor.close)
            for feeder in self.feeders.values():
                self.supervisor.spawn(f"link key {feeder.link}", feeder.run)
            self.supervisor.spawn("resume links", self._resume_all)
            self.supervisor.spawn("expire sessions", self._expire)
            self.supervisor.spawn("store maintenance", self._maintain)
            if self.flow is not None:
                for name, work in self.flow.tasks():
                    self.supervisor.spawn(name, work)
        except BaseException:
            await self.close()
            raise
        log.info(
            "node %s: up (SID %s, %s transport, ETSI 014 on port %s, peer API on port %s, %d links)",
            cfg.node, cfg.sid, cfg.transport, self.api_port, self.peer_port, len(cfg.links),
        )  # fmt: skip

    async def _key_flow(self, peer_tls: ssl.SSLContext | None) -> KeyFlow:
        """The key flow of this node's application pairs, with one S-D channel per other end of a pair."""
        cfg = self.config
        assert self.keystore is not None and self.shares is not None
        channels: dict[str, PeerClient] = {}
        for pair in cfg.pairs:
            other = pair.slave_node if pair.master_node == cfg.node else pair.master_node
            if other not in channels:
                channels[other] = PeerClient(pair.peer_url, cfg.node, ssl_context=peer_tls)
                self._stack.push_async_callback(channels[other].close)
        flow = KeyFlow(
            cfg.node,
            cfg.pairs,
            self.keystore,
            channels,
            self.shares.make_unit,
            settings=cfg.stores,
            paths_of=self.shares.path_nodes,
        )
        self._stack.callback(flow.close)  # units in flight are wiped: never handed out
        await flow.load()
        return flow

    def _transport(self) -> Transport:
        cfg = self.config
        if cfg.transport == "srv6":
            return TunTransport(cfg.tun, cfg.sid)
        return UdpTransport(cfg.udp[cfg.node], cfg.udp, rcvbuf_bytes=cfg.udp_rcvbuf_bytes)

    def _tls_contexts(self) -> _TlsContexts:
        """One TLS context per role (none with plain HTTP): the peer API trusts only the node CA, the
        ETSI 014 server only the application CA, and the two may not share a CA certificate."""
        tls = self.config.tls
        if tls is None:
            return _TlsContexts(None, None, None, None)
        peer_client = ssl_client_context(tls.cert, tls.key, tls.node_ca)
        kme_client = peer_client if tls.kme_ca == tls.node_ca else ssl_client_context(tls.cert, tls.key, tls.kme_ca)
        peer_server = ssl_server_context(tls.cert, tls.key, tls.node_ca)
        api_server = None if tls.app_ca is None else ssl_server_context(tls.cert, tls.key, tls.app_ca)
        if api_server is not None:
            check_separate_cas(("tls.node_ca", peer_server), ("tls.app_ca", api_server))
            check_separate_cas(("tls.kme_ca", kme_client), ("tls.app_ca", api_server))
        return _TlsContexts(peer_client, kme_client, peer_server, api_server)

    def _dev_id(self, sae_id: str) -> str | None:
        return sae_id if self.config.plain_http else None

    async def close(self) -> None:
        """Stop everything started, in reverse order; keys rebuilt so far are committed; the stores are
        closed last (idempotent)."""
        try:
            await self._stack.aclose()
        finally:
            self.transport = None
            self.keystore = None
            self.store = None
            self._peers.clear()

    # -- running ------------------------------------------------------------------------

    async def _skip(self, receiver: str, position: int) -> int:
        """The neighbour ``receiver`` restarted at ``position``: skip this node's pool for it to there."""
        assert self.shares is not None
        try:
            pool = self.shares.pool(self.config.node, receiver)
        except KeyPoolExhaustedError:
            return 0  # no key sent on this link yet: nothing to skip
        skipped = await asyncio.to_thread(pool.skip_to, position)
        if skipped:
            log.info(
                "link %s>%s: the neighbour resumed at offset %d; %d bytes skipped",
                self.config.node,
                receiver,
                position,
                skipped,
            )
        return skipped

    async def _resume_all(self) -> None:
        neighbours = [link.neighbour for link in self.config.links]
        await asyncio.gather(*(self._resume(name, peer) for name, peer in zip(neighbours, self._peers, strict=True)))
        log.info("node %s: every neighbour resumes sending where this node resumed", self.config.node)

    async def _resume(self, neighbour: str, peer: PeerClient) -> None:
        """After a start: tell ``neighbour`` where this node resumes the stream it sends here (retried until told)."""
        assert self.store is not None
        link = link_name(neighbour, self.config.node)
        position = self.store.links().get(link, (0, 0))[0]
        while True:
            try:
                await peer.report_position(position)
                return
            except (PeerApiError, OSError):
                await asyncio.sleep(RESUME_RETRY_S)

    async def _expire(self) -> None:
        while True:
            await asyncio.sleep(EXPIRE_INTERVAL_S)
            if self.shares is not None:
                self.shares.expire()

    async def _maintain(self) -> None:
        """Every ``MAINTENANCE_INTERVAL_S``: drop the key store's ledger rows and unit tombstones older than
        ``LEDGER_KEEP_S``, and checkpoint both stores' write-ahead logs (consumed link material and wiped
        keys leave the WAL files, which otherwise keep them until the next checkpoint SQLite chooses)."""
        while True:
            await asyncio.sleep(MAINTENANCE_INTERVAL_S)
            if self.flow is not None:
                forgotten = await self.flow.maintain(LEDGER_KEEP_S)
                if forgotten:
                    log.info(
                        "node %s: %d ledger rows older than %g s dropped", self.config.node, forgotten, LEDGER_KEEP_S
                    )
            if self.store is not None:
                await asyncio.to_thread(self.store.checkpoint)

    def _arrived(self, unit_id: uuid.UUID, material: bytes, source: str) -> None:
        """A number rebuilt here: a unit of the pair it came for (its proof goes to the source node)."""
        if self.flow is None or not self.flow.arrived(unit_id, material, source):
            log.warning(
                "node %s: unit %s from node %s: no application pair for it here; dropped",
                self.config.node,
                unit_id,
                source,
            )

    def stats(self) -> dict[str, Any]:
        """Counters: shares, keys, drops (the share logic's and the transport's, by reason), tamper reports,
        link key streams, refills, link faults and task restarts (no secrets)."""
        shares = asdict(self.shares.stats) if self.shares is not None else {}
        if self.transport is not None:
            shares["dropped"] = {**shares.get("dropped", {}), **self.transport.drops()}
        links = {}
        if self.store is not None:
            for link, (position, end) in self.store.links().items():
                pool = self.store.pool(link)  # the live pool: the committed position runs ahead by the lease
                links[link] = {
                    "position": position,
                    "end": end,
                    "window": pool.position,
                    "high": pool.high,
                    "available": pool.available,
                    "discarded": pool.discarded,
                }
        feeders = {
            f.link: {
                "committed_batches": f.committed_batches,
                "dropped_batches": f.dropped_batches,
                "error": f.last_error,
                "faults": f.faults,
                "fault": f.fault,
            }
            for f in self.feeders.values()
        }
        incoming = {
            r.link: {"added_batches": r.added_batches, "faults": r.faults, "fault": r.fault}
            for r in self.receivers.values()
        }
        return {
            "node": self.config.node,
            **shares,
            "keyflow": self.flow.snapshot() if self.flow is not None else {},
            "links": links,
            "refill": feeders,
            "incoming": incoming,
            "task_restarts": dict(self.supervisor.restarts),
        }


async def run(config: NodeConfig, *, ready: Callable[[Node], None] | None = None) -> None:
    """Run a node until SIGTERM or SIGINT (or cancellation); ``ready(node)`` once it is up.

    Raises :class:`NodeError` when a background task keeps crashing (``Supervisor``).
    """
    node = Node(config)
    try:
        async with stop_on_signals() as stop:
            await node.start()
            if ready is not None:
                ready(node)
            await _first(stop.wait(), node.supervisor.failed.wait())
            if node.supervisor.failure is not None:
                raise NodeError(f"node {config.node}: stopped: {node.supervisor.failure}")
    except OSError as exc:
        raise NodeError(f"node {config.node}: {exc}") from None
    finally:
        await node.close()


async def _first(*waits: Coroutine[Any, Any, Any]) -> None:
    """Wait until the first of ``waits`` is done; cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
