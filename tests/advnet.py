"""The adversary harness: an in-process MPSS network of real nodes, an attacker on every link, relays it owns.

Each node is the daemon's own share logic (``ShareNode``) over its own SQLite ``LinkStore``;
every directed link holds a random key stream that both of its ends were given. Packets
do not go through sockets: each one a node sends is handed to the attacker
(``Attacker.on_link``), which returns what the receiver gets (the packet, nothing,
something else, several packets), so a test can read, drop, reorder, rewrite, inject and
replay on any link. The attacker also owns a set of compromised relays: it knows their
link streams, so it reads every share they are sent, and it may make them misbehave.

The harness keeps the ground truth the nodes never reveal: every share S sent (decrypted
from S's first-hop packets with the link streams) and every key S made. From it,
:meth:`AdversaryNet.adversary_shares` says which true shares the attacker holds, and
:meth:`AdversaryNet.wrong_keys` which keys a destination delivered that differ from the
source's.
"""

from __future__ import annotations

import os
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mpss_fast.kmp import Topology, disjoint_paths
from mpss_fast.node.config import AppPair, NodeConfig
from mpss_fast.node.linkkeys import link_name
from mpss_fast.node.shares import ShareNode
from mpss_fast.node.store import LinkStore
from mpss_fast.relay import MAC_KEY_BYTES, Destination
from mpss_fast.wire import Packet, address, parse_packet

LINK_BYTES = 1 << 16
"""Key material per link direction."""


@dataclass
class Hop:
    """One packet on one link: who sent it to whom, and its bytes."""

    sender: str
    receiver: str
    data: bytes
    injected: bool = False
    """Made by the attacker, not by a node."""


class Attacker:
    """Plays the network. The default passes everything on; subclasses (or ``act``) change what a receiver gets."""

    def __init__(self, act: Callable[[AdversaryNet, Hop], Iterable[Hop]] | None = None) -> None:
        self._act = act

    def on_link(self, net: AdversaryNet, hop: Hop) -> Iterable[Hop]:
        """What arrives instead of ``hop``: ``[hop]`` passes it, ``[]`` drops it, anything else rewrites/injects."""
        return [hop] if self._act is None else self._act(net, hop)


@dataclass
class Truth:
    """What the source really sent in one session: x -> share value, and the key it made."""

    shares: dict[int, bytes] = field(default_factory=dict)
    key: bytes = b""
    source: str = ""


class AdversaryNet:
    """Real share nodes on ``topology`` (see the module docstring)."""

    def __init__(
        self,
        topology: Topology,
        tmp: Path,
        *,
        k: int,
        n: int,
        attacker: Attacker | None = None,
        compromised: Iterable[str] = (),
        tamper: Iterable[str] = (),
        collect_s: float = 0.02,
        link_bytes: int = LINK_BYTES,
    ) -> None:
        self.topology = topology
        self.k, self.n = k, n
        self.attacker = attacker or Attacker()
        self.compromised = frozenset(compromised)
        self.streams: dict[str, bytes] = {}
        self.stores: dict[str, LinkStore] = {}
        self.nodes: dict[str, ShareNode] = {}
        self.delivered: dict[str, dict[uuid.UUID, tuple[bytes, str]]] = defaultdict(dict)
        self.truth: dict[uuid.UUID, Truth] = {}
        self.seen_by_adversary: list[Hop] = []
        self.injected_into: dict[str, int] = defaultdict(int)  # receiver -> packets the attacker made or changed
        self.queue: deque[Hop] = deque()
        self.now = 0.0
        """The destinations' clock: it stands still while packets travel; ``settle`` moves it on."""
        self.sent: list[Hop] = []
        tampering = frozenset(tamper)
        tmp.mkdir(mode=0o700, parents=True, exist_ok=True)
        for name in topology.nodes:
            self.stores[name] = LinkStore(tmp / f"{name}.db")
        for link in topology.links:
            for a, b in ((link.a, link.b), (link.b, link.a)):
                stream = os.urandom(link_bytes)
                self.streams[link_name(a, b)] = stream
                self.stores[a].add_key(link_name(a, b), stream)
                self.stores[b].add_key(link_name(a, b), stream)
        for name in topology.nodes:
            config = NodeConfig(
                node=name,
                db=tmp / f"{name}.db",
                topology=topology,
                k=k,
                n=n,
                transport="udp",
                tun="",
                udp={},
                links=(),
                tls=None,
                peer_listen=("127.0.0.1", 0),
                api_listen=None,
                pairs=(),
                collect_s=collect_s,
                tamper=name in tampering,
            )
            node = ShareNode(config, self.stores[name], self._sender(name), self._sink(name))
            # the destination runs on the harness's clock, so a loaded machine cannot make a share late
            node.destination = Destination(engine=node.engine, timeout=collect_s, clock=self.clock)
            self.nodes[name] = node

    def close(self) -> None:
        for store in self.stores.values():
            store.close()

    def __enter__(self) -> AdversaryNet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- driving ---------------------------------------------------------------------

    def paths(self, src: str, dst: str) -> list[list[str]]:
        """The node lists of the n paths a source plans (the node's own planner: the same call)."""
        return [list(p.nodes) for p in disjoint_paths(self.topology, src, dst, self.n)]

    def send_key(self, src: str, dst: str, size_bits: int = 256) -> uuid.UUID:
        """S makes a key for D (its shares queued on their first links); returns the key ID."""
        pair = AppPair(master=f"app-{src}", slave=f"app-{dst}", master_node=src, slave_node=dst)
        start = len(self.queue)
        key_id, key = self.nodes[src].make_unit(pair, size_bits)
        truth = self.truth.setdefault(key_id, Truth())
        truth.key, truth.source = key, src
        for hop in list(self.queue)[start:]:
            packet = parse_packet(hop.data)
            truth.shares[packet.option.x] = self.decrypt(hop.sender, hop.receiver, packet)
        return key_id

    def run(self, limit: int = 100_000) -> None:
        """Deliver queued packets (through the attacker) until none are left."""
        for _ in range(limit):
            if not self.queue:
                return
            hop = self.queue.popleft()
            for arrived in self.attacker.on_link(self, hop):
                self.deliver(arrived)
        raise AssertionError("the network did not settle")

    def deliver(self, hop: Hop) -> None:
        """Hand one packet to its receiver (what the attacker let through or made)."""
        if hop.receiver in self.compromised:
            self.seen_by_adversary.append(hop)
        if hop.injected:
            self.injected_into[hop.receiver] += 1
        self.nodes[hop.receiver].on_packet(hop.data)

    def clock(self) -> float:
        return self.now

    def settle(self) -> None:
        """Run the network, then move the clock past every collection time, so each session ends."""
        self.run()
        self.now += 2 * self.nodes[next(iter(self.nodes))].config.collect_s
        for node in self.nodes.values():
            node.expire()
        self.run()

    # -- what the attacker and the nodes ended with ----------------------------------------

    def decrypt(self, sender: str, receiver: str, packet: Packet) -> bytes:
        """The share value in a packet on ``sender>receiver``, read with that link's stream."""
        start = packet.option.hop_key_id + MAC_KEY_BYTES
        pad = self.streams[link_name(sender, receiver)][start : start + packet.option.share_len]
        return bytes(a ^ b for a, b in zip(packet.payload, pad, strict=False))

    def adversary_shares(self) -> dict[uuid.UUID, set[int]]:
        """Per session, the indices of true shares the adversary read (at its relays) or was sent."""
        held: dict[uuid.UUID, set[int]] = defaultdict(set)
        for hop in self.seen_by_adversary:
            try:
                packet = parse_packet(hop.data)
            except Exception:  # noqa: S112 - a malformed packet carries no share
                continue
            sid = packet.option.session_uuid
            truth = self.truth.get(sid)
            if truth is None:
                continue
            value = self.decrypt(hop.sender, hop.receiver, packet)
            for x, true_value in truth.shares.items():
                if value == true_value and packet.option.x == x:
                    held[sid].add(x)
        return held

    def wrong_keys(self) -> list[tuple[str, uuid.UUID]]:
        """(node, key ID) of every key a node delivered that is not the key its source made, or from another source."""
        wrong = []
        for node, keys in self.delivered.items():
            for key_id, (key, source) in keys.items():
                truth = self.truth.get(key_id)
                if truth is None or truth.key != key or truth.source != source:
                    wrong.append((node, key_id))
        return wrong

    def pool_state(self) -> dict[str, tuple[int, int]]:
        """(position, available) of every pool every node holds."""
        state = {}
        for name, store in self.stores.items():
            for link in store.links():
                pool = store.pool(link)
                state[f"{name}:{link}"] = (pool.position, pool.available)
        return state

    def stats(self, name: str) -> Any:
        return self.nodes[name].stats

    # -- internals -----------------------------------------------------------------------

    def _sender(self, name: str) -> Callable[[bytes, str], None]:
        def send(data: bytes, next_node: str) -> None:
            hop = Hop(name, next_node, bytes(data))
            self.sent.append(hop)
            self.queue.append(hop)

        return send

    def _sink(self, name: str) -> Callable[[uuid.UUID, bytes, str], None]:
        def sink(key_id: uuid.UUID, key: bytes, source: str) -> None:
            self.delivered[name][key_id] = (bytes(key), source)

        return sink


def sid_of(net: AdversaryNet, name: str) -> bytes:
    """A node's SID as the 16 bytes packets carry."""
    return address(net.topology.sid(name))
