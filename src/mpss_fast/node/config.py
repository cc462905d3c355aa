"""The node's configuration file (``mpss node --config FILE``): JSON, or TOML by its ``.toml`` suffix.

Every key is documented in ``docs/node.md``; unknown keys are refused so a typo is not
silently ignored. :func:`load_config` returns a validated, frozen :class:`NodeConfig`
or raises :class:`~mpss_fast.exceptions.NodeConfigError` naming the key.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..etsi014.model import check_sae_id
from ..exceptions import MpssError, NodeConfigError
from ..https.server import parse_listen
from ..kmp import Topology, max_disjoint_paths
from ..kmp.files import from_dict as topology_from_dict
from ..kmp.files import load as load_topology
from .store.links import MAX_LEASE_BYTES
from .transport import DEFAULT_UDP_RCVBUF_BYTES

MIN_UDP_RCVBUF_BYTES = 65536
"""The smallest ``udp_rcvbuf_bytes``: room for one datagram of the largest size."""

MAX_UDP_RCVBUF_BYTES = 1 << 30
"""The largest ``udp_rcvbuf_bytes`` (Linux doubles it into a signed int)."""

MAX_SECONDS = 3600.0
"""The longest interval or wait a configuration may set."""

TRANSPORTS = ("srv6", "udp")
"""``srv6``: real IPv6 packets through a tun device bound to the node's SID (Linux, root).
``udp``: each packet carried in a UDP datagram to the next node's ``udp`` endpoint (no privileges)."""


@dataclass(frozen=True)
class Tls:
    """The node's TLS identity (its certificate, CN = node name, and key) and whom it trusts, one CA
    per role (``docs/node.md``, "Roles"): a certificate's role is told by the CA that signed it."""

    cert: Path
    key: Path
    node_ca: Path
    """Signs node and operator certificates: the only CA of the peer API, and the one the node
    checks its neighbours' peer API servers against."""
    app_ca: Path | None
    """Signs application certificates: the only CA of the ETSI 014 server (``None`` at a node
    without applications)."""
    kme_ca: Path
    """Signs the link KMEs' server certificates (default: ``node_ca``)."""


@dataclass(frozen=True)
class LinkConfig:
    """One QKD link of this node: the neighbour, where its peer API is, and the KME serving the link."""

    neighbour: str
    peer_url: str
    """The neighbour node's peer API (link key announcements), e.g. ``https://[fd00:1::2]:7443``."""
    kme_url: str
    """The link's KME (ETSI GS QKD 014), e.g. ``https://[fd00:ff::1]:8443``."""
    sae_id: str
    """This node's SAE ID at that KME (with TLS, the CN of ``tls.cert`` must match)."""
    neighbour_sae_id: str
    """The neighbour's SAE ID at that KME."""


@dataclass(frozen=True)
class AppPair:
    """An ETSI 014 application pair: ``master`` at ``master_node`` gets keys for ``slave`` at ``slave_node``."""

    master: str
    slave: str
    master_node: str
    slave_node: str
    peer_url: str = ""
    """The peer API of the pair's other node (``keyflow``: proofs and ledger records travel there)."""


@dataclass(frozen=True)
class StoreSettings:
    """How the per-pair key stores are filled (``stores`` in the configuration; ``keyflow``)."""

    unit_bytes: int = 1024
    """Bytes of one relayed number (one unit of key material)."""
    depth_bytes: int = 1 << 20
    """Ready material kept per pair (ETSI ``max_key_count`` is this over the default key size)."""
    window: int = 64
    """Units in flight (sent, not yet confirmed) per pair."""
    pending_s: float = 5.0
    """A unit not confirmed within this is wiped at both ends."""
    prepared_keys: int = 256
    """Default-size keys S carves from ready material and has D commit ahead of requests, on top of
    ``depth_bytes``, so an ``enc_keys`` of default-size keys is answered from S's store alone (0:
    every request carves its keys and waits for D's commit)."""


MIN_UNIT_BYTES, MAX_UNIT_BYTES = 32, 4096
"""A unit is one share payload: at most 4 KiB keeps every packet under a 9000-byte MTU (1024, the default,
under 1500)."""
MAX_DEPTH_BYTES = 1 << 30
MAX_PREPARED_KEYS = 1 << 16


@dataclass(frozen=True)
class NodeConfig:
    """A validated node configuration (see ``docs/node.md`` for each field)."""

    node: str
    db: Path
    topology: Topology
    k: int
    n: int
    transport: str
    tun: str
    udp: dict[str, tuple[str, int]]
    links: tuple[LinkConfig, ...]
    tls: Tls | None
    peer_listen: tuple[str, int]
    api_listen: tuple[str, int] | None
    """Where the ETSI 014 server listens; ``None`` at a node without applications (a pure relay)."""
    pairs: tuple[AppPair, ...]
    operators: frozenset[str] = frozenset()
    """Identities (certificate CNs, signed by ``tls.node_ca``) that may read the stats on the peer API."""
    lease_bytes: int = 65536
    key_batch: int = 32
    key_bits: int = 8192
    low_water_bytes: int = 262144
    refill_interval_s: float = 0.05
    collect_s: float = 0.25
    stores: StoreSettings = StoreSettings()
    tamper: bool = False
    udp_rcvbuf_bytes: int = DEFAULT_UDP_RCVBUF_BYTES
    """The receive buffer the UDP share socket asks for (transport ``udp``)."""

    @property
    def plain_http(self) -> bool:
        """No TLS configured: every HTTP interface is plain (development only)."""
        return self.tls is None

    @property
    def sid(self) -> str:
        """This node's SID (from the topology)."""
        return self.topology.sid(self.node)

    def link(self, neighbour: str) -> LinkConfig:
        """The link to ``neighbour`` (``NodeConfigError`` if there is none)."""
        for link in self.links:
            if link.neighbour == neighbour:
                return link
        raise NodeConfigError(f"node {self.node} has no link to {neighbour}")


_TOP = {
    "node", "db", "topology", "k", "n", "transport", "tun", "udp", "udp_rcvbuf_bytes", "links", "tls", "plain_http",
    "peer", "api", "keys", "stores", "destination", "testing",
}  # fmt: skip
_REQUIRED = ("node", "db", "topology", "k", "n", "links", "peer")


def _keys(section: Any, where: str, allowed: set[str], required: tuple[str, ...] = ()) -> dict[str, Any]:
    if not isinstance(section, dict):
        raise NodeConfigError(f"{where} must be a table/object, not {type(section).__name__}")
    unknown = sorted(set(section) - allowed)
    if unknown:
        raise NodeConfigError(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})")
    missing = [key for key in required if key not in section]
    if missing:
        raise NodeConfigError(f"{where}: missing key(s) {', '.join(missing)}")
    return section


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise NodeConfigError(f"{where} must be a non-empty string, not {value!r}")
    return value


def _int(value: Any, where: str, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (maximum and value > maximum):
        bound = f" and <= {maximum}" if maximum else ""
        raise NodeConfigError(f"{where} must be an integer >= {minimum}{bound}, not {value!r}")
    return value


def _seconds(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_SECONDS:
        raise NodeConfigError(f"{where} must be a number of seconds in (0, {MAX_SECONDS}], not {value!r}")
    return float(value)


def _listen(value: Any, where: str) -> tuple[str, int]:
    text = _str(value, where)
    try:
        return parse_listen(text)
    except MpssError:
        raise NodeConfigError(f"{where} must be HOST:PORT or [IPv6]:PORT, not {text!r}") from None


def _sae(value: Any, where: str) -> str:
    try:
        return check_sae_id(_str(value, where))
    except MpssError as exc:
        raise NodeConfigError(f"{where}: {exc}") from None


def _path(value: Any, where: str, base: Path) -> Path:
    path = Path(_str(value, where))
    return path if path.is_absolute() else base / path


def _topology(value: Any, base: Path) -> Topology:
    try:
        if isinstance(value, str):
            return load_topology(_path(value, "topology", base))
        return topology_from_dict(value)
    except (MpssError, OSError) as exc:
        raise NodeConfigError(f"topology: {exc}") from None


_TLS_KEYS = {"cert", "key", "node_ca", "app_ca", "kme_ca"}


def _tls(section: Any, base: Path) -> Tls:
    if isinstance(section, dict) and "ca" in section:
        raise NodeConfigError(
            "tls.ca is no longer accepted: nodes and applications are trusted through separate CAs; set "
            "tls.node_ca (signs nodes and operators) and tls.app_ca (signs applications) instead (docs/node.md)"
        )
    section = _keys(section, "tls", _TLS_KEYS, ("cert", "key", "node_ca"))
    paths = {name: _path(section[name], f"tls.{name}", base) for name in sorted(section)}
    for other in ("node_ca", "kme_ca"):
        if "app_ca" in paths and other in paths and paths["app_ca"] == paths[other]:
            raise NodeConfigError(
                f"tls.{other} and tls.app_ca must be different CA files: an application's certificate must not "
                f"pass for a {'node' if other == 'node_ca' else 'KME'}'s"
            )
    return Tls(
        cert=paths["cert"],
        key=paths["key"],
        node_ca=paths["node_ca"],
        app_ca=paths.get("app_ca"),
        kme_ca=paths.get("kme_ca", paths["node_ca"]),
    )


def _operators(value: Any, topology: Topology) -> frozenset[str]:
    if not isinstance(value, list):
        raise NodeConfigError(
            f"peer.operators must be a list of certificate identities (CNs), not {type(value).__name__}"
        )
    names: set[str] = set()
    for i, item in enumerate(value):
        name = _str(item, f"peer.operators[{i}]")
        if name in topology.nodes:
            raise NodeConfigError(
                f"peer.operators: {name!r} is a node of the topology; an operator's identity must not be a node's"
            )
        if name in names:
            raise NodeConfigError(f"peer.operators: {name!r} is listed twice")
        names.add(name)
    return frozenset(names)


def _pair_name(pair: AppPair) -> str:
    return f"{pair.master} at {pair.master_node} -> {pair.slave} at {pair.slave_node}"


def _check_paths(topology: Topology, pair: AppPair, where: str, k: int, n: int) -> None:
    """Refuse a pair whose keys this node could never send: fewer node-disjoint paths to the slave's node
    than ``n`` (the node would start, then answer every ``enc_keys`` with an error)."""
    src, dst = pair.master_node, pair.slave_node
    count = max_disjoint_paths(topology, src, dst)  # as the source plans them (kmp.disjoint_paths)
    if count < n:
        fix = f"set n to at most {count}" if count >= 2 else "k-of-n sharing needs at least 2"
        raise NodeConfigError(
            f"{where} ({_pair_name(pair)}): k={k}, n={n} asks for {n} node-disjoint paths from {src} to {dst}, "
            f"but the topology has {count}; {fix}"
        )


def _stores(section: Any) -> StoreSettings:
    table = _keys(section, "stores", {"unit_bytes", "depth_bytes", "window", "pending_s", "prepared_keys"})
    default = StoreSettings()
    unit = _int(table.get("unit_bytes", default.unit_bytes), "stores.unit_bytes", MIN_UNIT_BYTES, MAX_UNIT_BYTES)
    depth = _int(table.get("depth_bytes", default.depth_bytes), "stores.depth_bytes", unit, MAX_DEPTH_BYTES)
    return StoreSettings(
        unit_bytes=unit,
        depth_bytes=depth,
        window=_int(table.get("window", default.window), "stores.window", 1, 4096),
        pending_s=_seconds(table.get("pending_s", default.pending_s), "stores.pending_s"),
        prepared_keys=_int(
            table.get("prepared_keys", default.prepared_keys), "stores.prepared_keys", 0, MAX_PREPARED_KEYS
        ),
    )


def parse_config(data: Any, *, base: Path = Path()) -> NodeConfig:
    """A :class:`NodeConfig` from parsed JSON/TOML data; relative paths are taken from ``base``."""
    cfg = _keys(data, "config", _TOP, _REQUIRED)
    node = _str(cfg["node"], "node")
    topology = _topology(cfg["topology"], base)
    if node not in topology.nodes:
        raise NodeConfigError(f"node {node!r} is not in the topology")
    k, n = _int(cfg["k"], "k", 2, 255), _int(cfg["n"], "n", 2, 255)
    if k > n:
        raise NodeConfigError(f"k={k} exceeds n={n}")
    transport = cfg.get("transport", "srv6")
    if transport not in TRANSPORTS:
        raise NodeConfigError(f"transport must be one of {', '.join(TRANSPORTS)}, not {transport!r}")
    tun = _str(cfg.get("tun", "mpss0"), "tun")
    if len(tun) > 15:
        raise NodeConfigError(f"tun: interface names have at most 15 characters, not {tun!r}")
    udp: dict[str, tuple[str, int]] = {}
    if transport == "udp":
        table = _keys(cfg.get("udp", {}), "udp", set(topology.nodes))
        for name in topology.nodes:
            if name not in table:
                raise NodeConfigError(f"udp: transport 'udp' needs an endpoint for every node; {name!r} has none")
            udp[name] = _listen(table[name], f"udp.{name}")
    elif "udp" in cfg:
        raise NodeConfigError("udp: endpoints are only used with transport 'udp'")
    if transport != "udp" and "udp_rcvbuf_bytes" in cfg:
        raise NodeConfigError("udp_rcvbuf_bytes: only used with transport 'udp'")
    udp_rcvbuf = _int(
        cfg.get("udp_rcvbuf_bytes", DEFAULT_UDP_RCVBUF_BYTES),
        "udp_rcvbuf_bytes",
        MIN_UDP_RCVBUF_BYTES,
        MAX_UDP_RCVBUF_BYTES,
    )

    plain = cfg.get("plain_http", False)
    if type(plain) is not bool:
        raise NodeConfigError(f"plain_http must be true or false, not {plain!r}")
    tls: Tls | None = None
    if "tls" in cfg:
        if plain:
            raise NodeConfigError("plain_http = true and a tls section exclude each other")
        tls = _tls(cfg["tls"], base)
        if tls.app_ca is None and isinstance(cfg.get("api"), dict) and "listen" in cfg["api"]:
            raise NodeConfigError(
                "tls.app_ca is required at a node serving applications (api.listen): the CA of their certificates"
            )
    elif not plain:
        raise NodeConfigError(
            "a tls section (cert, key, node_ca, app_ca) is required; plain_http = true is for development only"
        )

    links: list[LinkConfig] = []
    if not isinstance(cfg["links"], list) or not cfg["links"]:
        raise NodeConfigError("links must be a non-empty list")
    for i, entry in enumerate(cfg["links"]):
        where = f"links[{i}]"
        section = _keys(
            entry,
            where,
            {"neighbour", "peer_url", "kme_url", "sae_id", "neighbour_sae_id"},
            ("neighbour", "peer_url", "kme_url"),
        )
        neighbour = _str(section["neighbour"], f"{where}.neighbour")
        if neighbour not in topology.nodes:
            raise NodeConfigError(f"{where}: node {neighbour!r} is not in the topology")
        if not topology.has_link(node, neighbour):
            raise NodeConfigError(f"{where}: the topology has no link {node}-{neighbour}")
        if any(link.neighbour == neighbour for link in links):
            raise NodeConfigError(f"{where}: a second link to {neighbour}")
        scheme = "http://" if tls is None else "https://"
        urls = {name: _str(section[name], f"{where}.{name}") for name in ("peer_url", "kme_url")}
        for name, url in urls.items():
            if not url.startswith(scheme):
                why = "plain_http is set" if tls is None else "TLS is configured"
                raise NodeConfigError(f"{where}.{name} must start with {scheme} ({why}), not {url!r}")
        links.append(
            LinkConfig(
                neighbour=neighbour,
                peer_url=urls["peer_url"],
                kme_url=urls["kme_url"],
                sae_id=_sae(section.get("sae_id", node), f"{where}.sae_id"),
                neighbour_sae_id=_sae(section.get("neighbour_sae_id", neighbour), f"{where}.neighbour_sae_id"),
            )
        )

    peer = _keys(cfg["peer"], "peer", {"listen", "operators"}, ("listen",))
    operators = _operators(peer.get("operators", []), topology)
    api = _keys(cfg.get("api", {}), "api", {"listen", "pairs"})
    pairs: list[AppPair] = []
    if not isinstance(api.get("pairs", []), list):
        raise NodeConfigError(f"api.pairs must be a list of pairs, not {type(api['pairs']).__name__}")
    for i, entry in enumerate(api.get("pairs", [])):
        where = f"api.pairs[{i}]"
        section = _keys(
            entry,
            where,
            {"master", "slave", "master_node", "slave_node", "peer_url"},
            ("master", "slave", "master_node", "slave_node", "peer_url"),
        )
        peer_url = _str(section["peer_url"], f"{where}.peer_url")
        scheme = "http://" if tls is None else "https://"
        if not peer_url.startswith(scheme):
            why = "plain_http is set" if tls is None else "TLS is configured"
            raise NodeConfigError(f"{where}.peer_url must start with {scheme} ({why}), not {peer_url!r}")
        pair = AppPair(
            master=_sae(section["master"], f"{where}.master"),
            slave=_sae(section["slave"], f"{where}.slave"),
            master_node=_str(section["master_node"], f"{where}.master_node"),
            slave_node=_str(section["slave_node"], f"{where}.slave_node"),
            peer_url=peer_url,
        )
        named = f"{where} ({_pair_name(pair)})"
        for end in (pair.master_node, pair.slave_node):
            if end not in topology.nodes:
                raise NodeConfigError(f"{named}: node {end!r} is not in the topology")
        if pair.master_node == pair.slave_node:
            raise NodeConfigError(f"{where}: master and slave are at the same node; nothing to relay")
        if node not in (pair.master_node, pair.slave_node):
            raise NodeConfigError(f"{where}: neither end of the pair is at this node ({node})")
        if pair.master == pair.slave:
            raise NodeConfigError(f"{where}: master and slave must be different SAEs")
        if any((p.master_node, p.slave_node) == (pair.master_node, pair.slave_node) for p in pairs):
            raise NodeConfigError(f"{where}: one SAE pair per (master node, slave node) direction")
        if any((p.master, p.slave) == (pair.master, pair.slave) for p in pairs):
            raise NodeConfigError(f"{where}: SAE pair ({pair.master}, {pair.slave}) is already listed for other nodes")
        pairs.append(pair)
    if pairs and "listen" not in api:
        raise NodeConfigError("api.listen is required when api.pairs names applications at this node")
    for i, pair in enumerate(pairs):
        if pair.master_node == node:  # this node sources the pair's keys, each on n node-disjoint paths
            _check_paths(topology, pair, f"api.pairs[{i}]", k, n)

    keys = _keys(
        cfg.get("keys", {}), "keys", {"lease_bytes", "batch", "key_bits", "low_water_bytes", "refill_interval_s"}
    )
    if isinstance(cfg.get("destination"), dict) and "dec_wait_s" in cfg["destination"]:
        raise NodeConfigError(
            "destination.dec_wait_s is gone: dec_keys answers at once from the pair's key store (see stores)"
        )
    dest = _keys(cfg.get("destination", {}), "destination", {"collect_s"})
    stores = _stores(cfg.get("stores", {}))
    testing = _keys(cfg.get("testing", {}), "testing", {"tamper"})
    tamper = testing.get("tamper", False)
    if type(tamper) is not bool:
        raise NodeConfigError(f"testing.tamper must be true or false, not {tamper!r}")
    key_bits = _int(keys.get("key_bits", 8192), "keys.key_bits", 64, 65536)
    if key_bits % 8:
        raise NodeConfigError("keys.key_bits must be a multiple of 8")
    return NodeConfig(
        node=node,
        db=_path(cfg["db"], "db", base),
        topology=topology,
        k=k,
        n=n,
        transport=transport,
        tun=tun,
        udp=udp,
        links=tuple(links),
        tls=tls,
        peer_listen=_listen(peer["listen"], "peer.listen"),
        api_listen=_listen(api["listen"], "api.listen") if "listen" in api else None,
        pairs=tuple(pairs),
        operators=operators,
        lease_bytes=_int(keys.get("lease_bytes", 65536), "keys.lease_bytes", 0, MAX_LEASE_BYTES),
        key_batch=_int(keys.get("batch", 32), "keys.batch", 1, 1024),
        key_bits=key_bits,
        low_water_bytes=_int(keys.get("low_water_bytes", 262144), "keys.low_water_bytes", 1),
        refill_interval_s=_seconds(keys.get("refill_interval_s", 0.05), "keys.refill_interval_s"),
        collect_s=_seconds(dest.get("collect_s", 0.25), "destination.collect_s"),
        stores=stores,
        tamper=tamper,
        udp_rcvbuf_bytes=udp_rcvbuf,
    )


def load_config(path: str | os.PathLike[str]) -> NodeConfig:
    """Read and validate a node configuration file (``.toml``: TOML, otherwise JSON)."""
    file = Path(path)
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise NodeConfigError(f"cannot read the node configuration {file}: {exc.strerror}") from None
    if file.suffix == ".toml":
        try:
            import tomllib
        except ImportError:  # Python 3.10
            raise NodeConfigError(f"{file}: TOML configuration needs Python 3.11+; use JSON") from None
    try:
        data = tomllib.loads(raw.decode()) if file.suffix == ".toml" else json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: nested too deeply
        raise NodeConfigError(f"{file}: not valid {'TOML' if file.suffix == '.toml' else 'JSON'}: {exc}") from None
    return parse_config(data, base=file.parent)
