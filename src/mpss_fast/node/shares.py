"""What a node does with shares, whatever carries them: send as a source, relay, collect as a destination.

:class:`ShareNode` is transport-agnostic: it is given packet bytes (``on_packet``) and
a ``send(packet, next_node)`` function. The roles follow from each packet's SRH: a
packet addressed to this node's SID with Segments Left > 0 is relayed to the next
segment, which must be a neighbour; with Segments Left = 0 it is a share for this node
as the destination. Link key pools come from the node's store (``A>B`` per direction).
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
import os
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..e2e import derive_key
from ..engine import Engine
from ..exceptions import (
    KeyPoolExhaustedError,
    KeyReuseError,
    MpssError,
    RelayError,
    RouteError,
    TagError,
    TopologyError,
    UnknownLinkError,
    WireError,
)
from ..kmp import disjoint_paths
from ..kmp.paths import Path
from ..relay import (
    CHECK_BYTES,
    Destination,
    first_hop_packet,
    first_hop_route,
    message_of,
    open_into,
    relay,
    seal,
    seal_shares,
)
from ..relay.hop import hop_key_bytes
from ..relay.pool import LinkKeyPool, wipe
from ..relay.session import Arrival, Delivery, Failure
from ..wire import Packet, address, advance, encode_packet, forward_packet, parse_packet, route_bytes
from .config import AppPair, NodeConfig
from .linkkeys import link_name
from .logsummary import LogSummary
from .store import LinkStore

log = logging.getLogger("mpss_fast.node")

MAX_REPORTS = 100
"""Most recent tamper and route reports kept in the stats (older ones are counted, not kept)."""

MAX_ROUTES = 65536
"""Most sessions whose paths a destination remembers for its reports (the oldest is forgotten first)."""


@dataclass
class ShareStats:
    """Counters a node reports (``GET /mpss/v1/node/stats``); no secrets."""

    keys_sent: int = 0
    shares_relayed: int = 0
    shares_received: int = 0
    keys_delivered: int = 0
    keys_failed: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    tampered: list[dict[str, Any]] = field(default_factory=list)
    """The latest :data:`MAX_REPORTS` shares found altered (``tamper_reports`` counts them all)."""
    refused: list[dict[str, Any]] = field(default_factory=list)
    """The latest :data:`MAX_REPORTS` authenticated shares refused for their route (``refused_reports``: all)."""
    tamper_reports: int = 0
    refused_reports: int = 0
    link_drops: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per link, the shares dropped for a bad tag, a refused route, a replayed or late offset (the incoming link
    the packet names) or for want of key (the link that lacked it): where forgeries come from. Keyed by links
    between nodes of the topology, so bounded."""

    def drop(self, why: str, link: str | None = None) -> None:
        self.dropped[why] = self.dropped.get(why, 0) + 1
        if link is not None:
            counts = self.link_drops.setdefault(link, {})
            counts[why] = counts.get(why, 0) + 1

    def report_tamper(self, entry: dict[str, Any]) -> None:
        self.tamper_reports += 1
        _keep_latest(self.tampered, entry)

    def report_refused(self, entry: dict[str, Any]) -> None:
        self.refused_reports += 1
        _keep_latest(self.refused, entry)


def _keep_latest(reports: list[dict[str, Any]], entry: dict[str, Any]) -> None:
    reports.append(entry)
    if len(reports) > MAX_REPORTS:
        del reports[: len(reports) - MAX_REPORTS]


UnitSink = Callable[[uuid.UUID, bytes, str], None]
"""``sink(unit_id, material, source_node)``: a unit rebuilt at this node (its material derived from the
number under the unit ID), for the key flow of its application pair."""


def _sid_text(raw: bytes) -> str:
    return str(ipaddress.IPv6Address(raw))


class ShareNode:
    """The share logic of one node (see the module docstring)."""

    def __init__(
        self,
        config: NodeConfig,
        store: LinkStore,
        send: Callable[[bytes, str], None],
        sink: UnitSink,
        *,
        engine: Engine | None = None,
    ) -> None:
        self.config = config
        self.me = config.node
        self.sid = config.sid
        self.topology = config.topology
        self.store = store
        self.send = send
        self.sink = sink
        self.engine = engine if engine is not None else Engine()
        self.destination = Destination(engine=self.engine, timeout=config.collect_s)
        self.stats = ShareStats()
        self.log_summary = LogSummary(log, f"node {config.node}")
        self._plans: dict[str, list[tuple[Path, tuple[bytes, ...], bytes]]] = {}
        # SIDs as the 16 bytes packets carry, so no packet needs address text parsed.
        self._node_of: dict[bytes, str] = {address(self.topology.sid(n)): n for n in self.topology.nodes}
        self._sid_bytes = address(self.sid)
        # session -> (source, path ID -> relays), for reports: bounded, and pruned as sessions end
        self._routes: OrderedDict[bytes, tuple[str, dict[int, tuple[str, ...]]]] = OrderedDict()
        if config.tamper:
            log.warning("node %s: testing.tamper is on: this relay alters every share it relays", self.me)

    # -- pools and paths ----------------------------------------------------------------

    def pool(self, sender: str, receiver: str) -> LinkKeyPool:
        """The store's pool for the direction ``sender>receiver`` (``KeyPoolExhaustedError`` if never fed)."""
        link = link_name(sender, receiver)
        try:
            return self.store.pool(link)
        except UnknownLinkError:
            raise KeyPoolExhaustedError(f"link {link} has no key yet", link=link) from None

    def _plan(self, destination: str) -> list[tuple[Path, tuple[bytes, ...], bytes]]:
        """The n node-disjoint paths to ``destination``, with their packed segments and the routing fields their
        first hop's tag covers (planned once; path ID = index)."""
        plan = self._plans.get(destination)
        if plan is None:
            paths = disjoint_paths(self.topology, self.me, destination, self.config.n)
            plan = []
            for path in paths:
                segments = tuple(address(sid) for sid in path.segments)
                plan.append((path, segments, first_hop_route(self._sid_bytes, segments)))
            self._plans[destination] = plan
        return plan

    def path_nodes(self, pair: AppPair) -> list[list[str]]:
        """The nodes of each path the pair's units take (source first): the suspects when one is rebuilt wrong."""
        return [list(path.nodes) for path, _, _ in self._plan(pair.slave_node)]

    def _node(self, sid: bytes) -> str:
        node = self._node_of.get(sid)
        if node is None:
            raise TopologyError(f"no node has SID {_sid_text(sid)}")
        return node

    # -- source -------------------------------------------------------------------------

    def make_unit(self, pair: AppPair, size_bits: int) -> tuple[uuid.UUID, bytes]:
        """Source: a new unit for ``pair`` (its ID and material), its shares sent on every path.
        ``KeyPoolExhaustedError`` if a first link lacks key (nothing is consumed then)."""
        size = size_bits // 8
        plan = self._plan(pair.slave_node)
        pools = [self.pool(self.me, path.nodes[1]) for path, _, _ in plan]
        need = hop_key_bytes(size + CHECK_BYTES)
        for (path, _, _), pool in zip(plan, pools, strict=True):
            if pool.available < need:
                link = link_name(self.me, path.nodes[1])
                raise KeyPoolExhaustedError(f"link {link} lacks key for a share now", link=link)
        unit_id = uuid.uuid4()  # the relay session's ID on the wire
        number = bytearray(os.urandom(size))
        try:
            routes = [route for _, _, route in plan]
            messages = seal_shares(number, self.config.k, pools, session_id=unit_id, engine=self.engine, routes=routes)
            material = derive_key(number, unit_id, length=size)
        finally:
            wipe(number)
        for (path, segments, _), message in zip(plan, messages, strict=True):
            self.send(first_hop_packet(message, self._sid_bytes, segments), path.nodes[1])
        self.stats.keys_sent += 1
        return unit_id, material

    # -- receiving ----------------------------------------------------------------------

    def on_packet(self, data: bytes) -> None:
        """One packet from the transport: relay it, or file its share; never raises for bad input."""
        try:
            packet = parse_packet(data)
        except WireError as exc:
            self.stats.drop("malformed")
            log.debug("node %s: malformed packet dropped: %s", self.me, exc)
            return
        srh = packet.srh
        left = srh.segments_left
        try:
            if srh.segments[left] != self._sid_bytes:
                self.stats.drop("not for this node")
                return
            earlier = srh.segments[left + 1] if left + 1 < len(srh.segments) else packet.src
            previous = self._node(earlier)
            if left:
                self._relay(packet, previous, self._node(srh.segments[left - 1]))
            else:
                self._arrive(packet, previous)
        except TagError as exc:
            self.stats.drop("bad tag", exc.link)
            self.log_summary.note(f"bad tags on link {exc.link}", str(exc))
        except RouteError as exc:
            self._refused(exc, packet)
        except KeyReuseError as exc:
            self.stats.drop("offset behind the pool (replay or restart)", exc.link)
        except KeyPoolExhaustedError as exc:
            self.stats.drop("no key", exc.link)
        except TopologyError:
            self.stats.drop("unknown SID")
        except (RelayError, WireError) as exc:
            self.stats.drop(type(exc).__name__)
            log.debug("node %s: share dropped: %s", self.me, exc)

    def _relay(self, packet: Packet, previous: str, following: str) -> None:
        if not self.topology.has_link(self.me, following) or not self.topology.has_link(previous, self.me):
            self.stats.drop("next segment is not a neighbour")
            return
        pool_in, pool_out = self.pool(previous, self.me), self.pool(self.me, following)
        message = message_of(packet)
        route_out = route_bytes(packet.src, advance(packet.srh))
        if self.config.tamper:
            out = self._tamper(message, pool_in, pool_out, route_out)
        else:
            out = relay(message, pool_in, pool_out, route_out=route_out, engine=self.engine)
        forwarded = forward_packet(packet, hop_key_id=out.option.hop_key_id, tag=out.option.tag, payload=out.ciphertext)
        self.send(encode_packet(forwarded), following)
        self.stats.shares_relayed += 1

    def _tamper(self, message: Any, pool_in: LinkKeyPool, pool_out: LinkKeyPool, route_out: bytes) -> Any:
        """A compromised relay (testing): it holds both link keys, so it alters the share and tags it validly."""
        share = bytearray(message.option.share_len)
        try:
            open_into(message, pool_in, share, engine=self.engine)
            share[0] ^= 0x01
            return seal(message.option, share, pool_out, route=route_out, engine=self.engine)
        finally:
            wipe(share)

    def _arrive(self, packet: Packet, previous: str) -> None:
        """A share for this node: accepted only over the last link of the path its authenticated segment list
        names, on a path of the topology, node-disjoint from its session's other shares, from one source."""
        message = message_of(packet)
        option = message.option
        source = self._node(packet.src)
        relays = tuple(self._node(s) for s in reversed(packet.srh.segments[1:]))
        hops = (source, *relays, self.me)
        strays = [f"{a}>{b}" for a, b in itertools.pairwise(hops) if not self.topology.has_link(a, b)]
        refuse = f"its segment list is not a path of the topology (no link {', '.join(strays)})" if strays else None
        if source == self.me:
            refuse = "it names this node as its source"
        receipt = self.destination.open(
            message, self.pool(previous, self.me), relays=relays, source=source, refuse=refuse
        )
        self.stats.shares_received += 1
        if receipt.status is Arrival.LATE:
            return
        route = self._routes.get(option.session_id)
        if route is None:
            route = self._routes[option.session_id] = (source, {})
            if len(self._routes) > MAX_ROUTES:
                self._routes.popitem(last=False)
        route[1][option.path_id] = relays
        if receipt.complete:
            self._finish(option.session_id)

    def _refused(self, exc: RouteError, packet: Packet) -> None:
        """An authenticated share whose route its session cannot accept: counted, reported, logged (rate-limited)."""
        self.stats.drop("route refused", exc.link)
        self.stats.report_refused(
            {
                "unit_ID": str(uuid.UUID(bytes=exc.session_id)),
                "link": exc.link,
                "path": exc.path_id,
                "x": exc.x,
                "segments": [_sid_text(s) for s in reversed(packet.srh.segments)],
            }
        )
        self.log_summary.note(f"shares refused for their route on link {exc.link}", str(exc))

    def _finish(self, session_id: bytes) -> None:
        try:
            delivery = self.destination.deliver(session_id)
        except MpssError as exc:
            if session_id not in {s.bytes for s in self.destination.pending()}:
                self._failed(session_id, exc)
            return
        self._delivered(delivery)

    def expire(self) -> None:
        """End sessions past their collection time (call periodically): deliver or report each."""
        for result in self.destination.expire():
            if isinstance(result, Failure):
                self._failed(result.session_id.bytes, result.error)
            else:
                self._delivered(result)
        self.log_summary.flush()

    def _delivered(self, delivery: Delivery) -> None:
        source, relays = self._routes.pop(delivery.session_id.bytes, ("?", {}))
        for path_id in delivery.bad_paths:
            path = list(relays.get(path_id, ()))
            self.stats.report_tamper(
                {"unit_ID": str(delivery.session_id), "source": source, "path": path_id, "relays": path}
            )
            self.log_summary.note(
                f"altered shares on path {path_id} from {source}",
                f"unit {delivery.session_id}: the share on path {path_id} (relays {', '.join(path) or '?'}) "
                "was altered; corrected from the others",
            )
        material = delivery.key(length=len(delivery.number))  # the session ID is the unit ID
        self.sink(delivery.session_id, material, source)
        self.stats.keys_delivered += 1

    def _failed(self, session_id: bytes, error: Exception) -> None:
        self._routes.pop(session_id, None)
        self.stats.keys_failed += 1
        self.log_summary.note("units not rebuilt", f"unit {uuid.UUID(bytes=session_id)} not rebuilt: {error}")
