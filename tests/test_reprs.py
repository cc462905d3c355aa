"""Attack 9, secrets in reprs: no ``repr()`` or ``str()`` shows the secret bytes an object holds.

A repr ends up in logs, tracebacks, debugger output and ``assert`` messages, so a share,
a number, a key, a pad or link key material must never appear in one. Every public class
of every ``mpss_fast`` module is either built by a scenario below holding a recognisable
secret, or listed in :data:`ALLOWED` with the reason it cannot show one. A new public class
that is neither makes :func:`test_every_public_class_is_looked_at` fail, so whoever adds it
has to decide. Exceptions count as classes too: the scenarios raise them from real library
paths with secret material in play and check their messages.

Failure messages name the class and the rendering found, never the bytes.
"""

from __future__ import annotations

import base64
import dataclasses
import importlib
import inspect
import os
import pkgutil
import tempfile
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import mpss_fast
from mpss_fast import CombineStream, Engine, SplitStream, robust
from mpss_fast.e2e import derive_key
from mpss_fast.etsi014.kme_sim import _PairState
from mpss_fast.etsi014.model import keys_from_json
from mpss_fast.exceptions import MpssError
from mpss_fast.node.store import LinkStore
from mpss_fast.node.store.keys import KeyStore
from mpss_fast.relay import Destination, LinkKeyPool, ShareMessage, open_into, seal_shares
from mpss_fast.relay.session import Copy, Delivery, Session
from mpss_fast.rtss import RtssShare, rtss_combine, rtss_split
from mpss_fast.sim.modes import _Session
from mpss_fast.sim.verify import Journey
from mpss_fast.wire import parse_packet

# -- the secret and how it could show ---------------------------------------------------------------

HEAD = 6
"""A rendering of the secret's first bytes is enough to count as a leak (a truncated repr is one too)."""


class Secret:
    """A recognisable random secret: 32 bytes with the top bit set, so any bytes repr escapes each one.

    Helpers take this holder, not the bytes, so a pytest traceback listing their arguments
    never prints the secret.
    """

    def __init__(self, nbytes: int = 32) -> None:
        self.bytes = bytes(b | 0x80 for b in os.urandom(nbytes))

    def __repr__(self) -> str:
        return f"Secret({len(self.bytes)} bytes)"

    def renderings(self) -> dict[str, str]:
        head = self.bytes[:HEAD]
        return {
            "bytes repr": repr(head)[2:-1],  # also inside bytearray(b'...') and b"..."
            "hex": head.hex(),
            "upper-case hex": head.hex().upper(),
            "base64": base64.b64encode(head).decode(),
            "url-safe base64": base64.urlsafe_b64encode(head).decode(),
            "list of ints": ",".join(map(str, head)),  # also a tuple, a numpy array, a memoryview.tolist()
        }


def _leaks(obj: Any, secret: Secret) -> list[str]:
    """How ``obj``'s repr and str show ``secret``: e.g. ``["repr: hex"]``; empty when they do not."""
    found = []
    for how, render in (("repr", repr), ("str", str)):
        text = "".join(render(obj).split())  # numpy and pprint pad and wrap
        found += [f"{how}: {name}" for name, needle in secret.renderings().items() if needle in text]
    return found


def _raised(call: Callable[[], Any], error: type[BaseException] = MpssError) -> BaseException:
    """The exception ``call()`` raises (a lambda, so no traceback lists secret arguments)."""
    with pytest.raises(error) as info:
        call()
    return info.value


def _maybe_raised(call: Callable[[], Any]) -> list[Any]:
    """``[the MpssError call() raises]``, or ``[]``: for refusals that depend on the destination's policy."""
    try:
        call()
    except MpssError as exc:
        return [exc]
    return []


def test_leaks_sees_every_rendering() -> None:
    """The detector itself: each way of printing the secret is caught, a fingerprint or a length is not."""
    secret = Secret()
    raw = secret.bytes
    shown = {
        "bytes": raw,
        "bytearray": bytearray(raw),
        "list of bytes": [raw],
        "hex": raw.hex(),
        "upper-case hex": raw.hex().upper(),
        "base64": base64.b64encode(raw).decode(),
        "url-safe base64": base64.urlsafe_b64encode(raw).decode(),
        "list of ints": list(raw),
        "tuple of ints": tuple(raw),
        "head in a dict": {"key": raw[:HEAD]},
    }
    missed = [name for name, obj in shown.items() if not _leaks(obj, secret)]
    assert not missed, f"renderings the detector misses: {missed}"
    fingerprint = derive_key(raw, uuid.uuid4())[:6].hex()
    false_alarms = [obj for obj in (f"fingerprint {fingerprint}", len(raw), secret) if _leaks(obj, secret)]
    assert not false_alarms


# -- scenarios: objects built holding the secret ---------------------------------------------------


Scenario = Callable[[Secret], list[Any]]
SCENARIOS: list[Scenario] = []


def scenario(fn: Scenario) -> Scenario:
    SCENARIOS.append(fn)
    return fn


def _build(build: Scenario, secret: Secret) -> list[Any]:
    """Run a scenario; if it fails, report it without a traceback (whose frames may hold the secret)."""
    try:
        return build(secret)
    except Exception as exc:
        message = "(withheld: it shows the secret)" if _leaks(exc, secret) else str(exc)
        failure = f"scenario {build.__name__} raised {type(exc).__name__}: {message}"
    pytest.fail(failure, pytrace=False)  # outside the except block: no chained traceback


def _pools(secret: Secret, count: int, first: int = 0) -> tuple[list[LinkKeyPool], list[LinkKeyPool]]:
    """Sender and receiver pools of ``count`` links, each holding the secret repeated as its key material."""
    material = secret.bytes * 16
    names = [f"s>r{i}" for i in range(first, first + count)]
    return [LinkKeyPool(name, material) for name in names], [LinkKeyPool(name, material) for name in names]


@scenario
def session_state(secret: Secret) -> list[Any]:
    """The destination's per-session state: a copy of a share value and the session holding it."""
    raw = secret.bytes
    session = Session(k=2, n=3, poly=0x11B, share_len=len(raw), deadline=1e9)
    session.add(1, bytearray(raw), 0)
    session.add(2, bytearray(raw), 1)
    session.add(2, bytearray(raw), 2)  # a duplicate
    session.add(3, bytearray(raw), 1)
    session.add(3, bytearray(raw[::-1]), 2)  # a conflict
    return [Copy(bytearray(raw), [0]), session, session.copies, session.usable(), session.conflicting()]


@scenario
def delivery(secret: Secret) -> list[Any]:
    return [Delivery(number=secret.bytes, session_id=uuid.uuid4(), bad_paths=(), used_xs=(1, 2))]


@scenario
def relay_round_trip(secret: Secret) -> list[Any]:
    """A number relayed 2-of-3: pools still holding the secret as material, messages, receipts, the delivery."""
    tx, rx = _pools(secret, 3)
    destination = Destination()
    messages = seal_shares(secret.bytes, 2, tx)
    receipts = [destination.open(m, pool) for m, pool in zip(messages, rx, strict=True)]
    held = [destination, *tx, *rx, *messages, *receipts]
    done = destination.deliver(messages[0].option.session_id)
    same = done.number == secret.bytes
    assert same, "the delivery does not carry the secret"
    return [*held, done]


@scenario
def relay_errors(secret: Secret) -> list[Any]:
    """Each error the relay raises while the secret is the key material, the share or the number."""
    raw = secret.bytes
    pool = LinkKeyPool("a>b", raw)
    errors = [_raised(lambda: pool.take(len(raw) + 1)), _raised(lambda: pool.skip_to(len(raw) + 1))]

    tx, rx = _pools(secret, 3)
    message = seal_shares(raw, 2, tx)[0]
    out = bytearray(message.option.share_len)
    flipped = ShareMessage(message.option, bytes(b ^ 1 for b in message.ciphertext))
    errors.append(_raised(lambda: open_into(flipped, rx[0], out)))  # a bad tag
    open_into(message, rx[0], out)
    errors.append(_raised(lambda: open_into(message, rx[0], out)))  # replayed
    errors.append(_raised(lambda: ShareMessage(message.option, raw)))  # a wrong length

    clock = [0.0]
    destination = Destination(clock=lambda: clock[0])
    tx, rx = _pools(secret, 3)
    tx2, rx2 = _pools(secret, 3, first=3)
    sid = uuid.uuid4()
    first = seal_shares(raw, 2, tx, session_id=sid)
    second = seal_shares(raw, 2, tx2, session_id=sid, path_ids=[3, 4, 5])  # another split, same session ID
    destination.open(first[0], rx[0])
    errors.append(_raised(lambda: destination.deliver(sid)))  # too few shares
    destination.open(second[1], rx2[1])
    errors.append(_raised(lambda: destination.deliver(sid)))  # x=1 and x=2 of two splits: the check fails
    destination.open(second[0], rx2[0])
    errors.append(_raised(lambda: destination.deliver(sid)))  # x=1 conflicts
    again = seal_shares(raw, 2, tx, session_id=sid)
    errors += _maybe_raised(lambda: destination.open(again[2], rx[0]))  # a second share over one link

    late = uuid.uuid4()
    destination.open(seal_shares(raw, 2, tx, session_id=late)[2], rx[2])
    clock[0] = 1e6
    errors.append(_raised(lambda: destination.deliver(late)))  # timed out
    destination.open(seal_shares(raw, 2, tx)[0], rx[0])  # a fresh session, expired below
    clock[0] = 2e6
    failures = destination.expire()
    return [*errors, *failures, *(f.error for f in failures)]


@scenario
def share_errors(secret: Secret) -> list[Any]:
    """Engine, robust decoding and e2e errors when the secret is the input."""
    raw = secret.bytes
    engine = Engine()
    shares = engine.split(raw, 2, 3)
    corrupt = [bytearray(s) for s in shares]
    corrupt[0][1] ^= 1
    xs = [s[0] for s in corrupt]
    ys = [bytes(s[1:]) for s in corrupt]
    return [
        _raised(lambda: engine.split(raw, 1, 3)),
        _raised(lambda: engine.split(raw.hex(), 2, 3)),
        _raised(lambda: engine.combine([shares[0]])),
        _raised(lambda: engine.combine([shares[0], shares[1][:-1]])),
        _raised(lambda: robust.decode(xs, ys, 2)),
        _raised(lambda: derive_key(raw, b"short")),
        _raised(lambda: derive_key(raw, uuid.uuid4(), length=0)),
        _raised(lambda: derive_key(raw.hex(), uuid.uuid4())),
    ]


@scenario
def streams(secret: Secret) -> list[Any]:
    """Split and combine streams holding the secret and its coefficients in their buffers, and their errors."""
    raw = secret.bytes
    split = SplitStream(2, 3, rng=lambda nbytes: raw[:nbytes])
    split.update(raw)  # buffered, not yet shared
    keyed = SplitStream(2, 3)
    ys = keyed.update(raw)
    combiner = CombineStream([1, 2])
    combiner.update([ys[0], ys[1]])
    finished = SplitStream(2, 2)
    finished.finish()
    return [
        split,
        keyed,
        combiner,
        _raised(lambda: finished.update(raw)),
        _raised(lambda: combiner.update([raw, raw[:-1]])),
        _raised(lambda: keyed.update_into(raw, [bytearray(1)] * 3)),
    ]


@scenario
def rtss(secret: Secret) -> list[Any]:
    """RTSS shares holding the secret as their value, and the errors of decoding and combining."""
    raw = secret.bytes
    identifier = bytes(16)
    share = RtssShare(identifier, 0, 2, 1, raw)
    encoded = rtss_split(raw, 2, 3, identifier=identifier)
    bad = bytearray(encoded[0])
    bad[-1] ^= 1
    other_value = bytearray(encoded[1])
    other_value[-1] ^= 1
    return [
        share,
        RtssShare.decode(share.encode()),
        _raised(lambda: RtssShare(identifier, 0, 2, 0, raw)),
        _raised(lambda: RtssShare.decode(raw)),
        _raised(lambda: rtss_combine([bytes(bad), encoded[1]])),
        _raised(lambda: rtss_combine([encoded[1], bytes(other_value)])),
    ]


@scenario
def node_store(secret: Secret) -> list[Any]:
    """The node's link store holding link key material (in its stream and staged in a batch), and its errors."""
    raw = secret.bytes
    objs: list[Any] = []
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "node.db")
        store = LinkStore(path)
        try:
            store.add_key("a>b", raw * 4)
            objs.append(_raised(lambda: store.add_key("a>b", raw, start=10**6)))
            pool = store.pool("a>b")
            batch = store.stage_batch("b>a", [uuid.uuid4()], raw)
            objs += [store, pool, _raised(lambda: store.stage_batch("b>a", [uuid.uuid4()], raw[:0]))]
            objs.append(_raised(lambda: LinkStore(path)))
            assert pool.take(len(raw))[1] == raw, "the store did not give back the material"
            objs.append(_raised(lambda: pool.take(len(raw) * 4)))
            objs.append(_raised(lambda: store.commit_batch("b>a", batch + 1)))
            objs.append(_raised(lambda: store.pool("nowhere")))
        finally:
            store.close()
        objs.append(_raised(lambda: store.add_key("a>b", raw)))
    return objs


@scenario
def etsi014_containers(secret: Secret) -> list[Any]:
    """A malformed key container carrying the secret: the error does not quote it."""
    key = base64.b64encode(secret.bytes).decode()
    kid = str(uuid.uuid4())
    return [
        _raised(lambda: keys_from_json({"keys": [{"key_ID": "nope", "key": key}]}), ValueError),
        _raised(lambda: keys_from_json({"keys": [{"key_ID": kid, "key": key + "!"}]}), ValueError),
        _raised(lambda: keys_from_json({"keys": [{"key_ID": kid, "key": secret.bytes}]}), ValueError),
    ]


@scenario
def wire_garbage(secret: Secret) -> list[Any]:
    """Parsing errors for packet bytes that are the secret (a packet carries none, but the parser must not echo)."""
    return [_raised(lambda n=n: parse_packet(secret.bytes * n)) for n in (1, 2, 4)]


@scenario
def simulator(secret: Secret) -> list[Any]:
    """The simulator's real-bytes replay: what a compromised relay saw, and the share delivered."""
    return [Journey(delivered=secret.bytes, seen=[secret.bytes])]


@scenario
def private_holders(secret: Secret) -> list[Any]:
    """Private classes that hold secrets (not walked, but a repr in a traceback would show them)."""
    raw = secret.bytes
    record = _Session(0, "a", "b", 0.0, 2, 3, (), True, raw, raw, [raw], [(1, raw)])
    return [record, _PairState(outstanding=OrderedDict({uuid.uuid4(): raw}))]


@scenario
def floor_keystream(secret: Secret) -> list[Any]:
    """The floor harness's keystream loop holds an AES-256 key (random in ``mpss bench``): where this CPU has one."""
    try:
        from mpss_fast import _floor
    except ImportError:  # an extension-less build: no such class to look at
        return []
    if not _floor.KEYSTREAM_ISAS:  # no AES instructions: ALLOWED covers it (default repr)
        return []
    return [_floor.Keystream(secret.bytes, bytearray(64), rows=2, length=64)]


@scenario
def key_store(secret: Secret) -> list[Any]:
    """Both ends' key stores holding a unit made of the secret, the keys and records carved from it, their errors."""
    raw = secret.bytes
    pair = ("app-s", "app-d")
    unit = uuid.uuid4().bytes
    objs: list[Any] = []
    with tempfile.TemporaryDirectory() as folder:
        s = KeyStore(os.path.join(folder, "S.keys.db"))
        d = KeyStore(os.path.join(folder, "D.keys.db"))
        try:
            for store in (s, d):
                store.add_pending(pair, unit, raw * 2, 0.0)
            objs.append(_raised(lambda: s.add_pending(pair, unit, raw, 0.0)))  # UnitStateError
            objs.append(_raised(lambda: s.confirm(uuid.uuid4().bytes)))  # UnitNotFoundError
            for store in (s, d):
                store.confirm(unit)
            keys = s.issue(pair, [len(raw)])  # the key is the secret itself
            objs += [s, d, *keys, *s.records(pair), *keys[0].ranges]
            objs.append(_raised(lambda: s.issue(pair, [len(raw) * 4])))  # NotEnoughKeyError
            objs.append(_raised(lambda: d.apply_issue(pair, keys[0].key_id, [(unit, 1, 8)])))  # LedgerMismatchError
            d.apply_issue(pair, keys[0].key_id, keys[0].ranges)
            taken = d.take(pair, [keys[0].key_id]) == [raw]
            assert taken, "the key store did not give back the key"
            objs.append(_raised(lambda: d.take(pair, [keys[0].key_id])))  # KeyAlreadyDeliveredError
            objs.append(_raised(lambda: d.take(pair, [uuid.uuid4()])))  # KeyNotFoundError
        finally:
            s.close()
            d.close()
    return objs


@scenario
def key_flow(secret: Secret) -> list[Any]:
    """A key flow holding a unit made of the secret in flight, its ETSI 014 backend and its errors."""
    from mpss_fast.node.app_backend import FlowBackend
    from mpss_fast.node.config import AppPair
    from mpss_fast.node.keyflow import FlowUnavailableError, KeyFlow, UnitMissingError

    app = AppPair("app-s", "app-d", "S", "D", "http://127.0.0.1:1")
    objs: list[Any] = []
    with tempfile.TemporaryDirectory() as folder:
        store = KeyStore(os.path.join(folder, "D.keys.db"))
        try:
            flow = KeyFlow("D", [app], store, {}, lambda pair, bits: (uuid.uuid4(), b""))
            assert flow.arrived(uuid.uuid4(), secret.bytes, "S")  # the unit waits for S's verdict, in memory
            objs += [flow, flow.stats, FlowBackend(flow, "D", (app,))]
            objs += [FlowUnavailableError("short", 1.0), UnitMissingError("lost", "00" * 16)]
        finally:
            store.close()
    return objs


@pytest.mark.parametrize("build", SCENARIOS, ids=lambda fn: fn.__name__)
def test_no_repr_shows_the_secret(build: Scenario) -> None:
    secret = Secret()
    objs = _build(build, secret)
    leaks = [f"{type(obj).__module__}.{type(obj).__qualname__} {how}" for obj in objs for how in _leaks(obj, secret)]
    assert not leaks, "secret bytes in repr/str of: " + "; ".join(leaks)


# -- every public class is looked at ---------------------------------------------------------------

DEFAULT_REPR = "holds secrets or objects that do, but keeps object's repr and str (checked below)"
PLAIN_FIELDS = "no field holds secret material"
BENCH = "benchmark workloads and reports: random test data and timings, no key material"
PUBLIC_WIRE = "holds what travels on the wire: public headers, key IDs, tags, ciphertext under a one-time pad"
MESSAGE_ONLY = "an exception raised with a message about arguments, state or names (no scenario raises it)"

ALLOWED: dict[str, str] = {
    # Default reprs: checked to stay object.__repr__ / object.__str__.
    "mpss_fast.benchmark.Peer": DEFAULT_REPR,
    "mpss_fast.benchmark.GaloisPeer": DEFAULT_REPR,
    "mpss_fast.benchmark.TssPeer": DEFAULT_REPR,
    "mpss_fast.benchmark.PycryptodomePeer": DEFAULT_REPR,
    "mpss_fast.benchmark.Workload": DEFAULT_REPR,
    "mpss_fast.benchmark.SplitArray": DEFAULT_REPR,
    "mpss_fast.benchmark.CombineArray": DEFAULT_REPR,
    "mpss_fast.benchmark.XorInto": DEFAULT_REPR,
    "mpss_fast.benchmark.ReencryptInto": DEFAULT_REPR,
    "mpss_fast.benchmark.SplitOne": DEFAULT_REPR,
    "mpss_fast.benchmark.Progress": DEFAULT_REPR,
    "mpss_fast.node.daemon.Node": DEFAULT_REPR,
    "mpss_fast.etsi014.backend.KeyBackend": DEFAULT_REPR,
    "mpss_fast.etsi014.client.Etsi014Client": DEFAULT_REPR,
    "mpss_fast.etsi014.kme_sim.KmeSimBackend": DEFAULT_REPR,
    "mpss_fast.node.linkkeys.LinkKeyFeeder": DEFAULT_REPR,
    "mpss_fast.node.linkkeys.LinkKeyReceiver": DEFAULT_REPR,
    "mpss_fast.node.supervisor.Supervisor": DEFAULT_REPR,
    "mpss_fast.node.peer_api.PeerClient": DEFAULT_REPR,
    "mpss_fast.node.shares.ShareNode": DEFAULT_REPR,
    "mpss_fast.node.transport.Transport": DEFAULT_REPR,
    "mpss_fast.node.transport.TunTransport": DEFAULT_REPR,
    "mpss_fast.node.transport.UdpTransport": DEFAULT_REPR,
    "mpss_fast.sim.adversary.Adversary": DEFAULT_REPR,
    "mpss_fast.sim.modes.MpssMode": DEFAULT_REPR,
    "mpss_fast.sim.modes.SinglePathMode": DEFAULT_REPR,
    "mpss_fast.sim.network.KeyLedger": DEFAULT_REPR,
    "mpss_fast.sim.network.LinkFailures": DEFAULT_REPR,
    "mpss_fast.sim.network.PlannerView": DEFAULT_REPR,
    "mpss_fast.sim.verify.RealPools": DEFAULT_REPR,
    "mpss_fast.kmp._flow.UnitFlow": DEFAULT_REPR,
    # No secret fields.
    "mpss_fast._native.Kernels": "a backend's kernel table: tier name and flags",
    "mpss_fast._selftest.CheckResult": "a known-answer check's name and outcome (the vectors are public)",
    "mpss_fast._selftest.SelfTestReport": "CheckResult tuples",
    "mpss_fast.benchmark.Case": BENCH,
    "mpss_fast.benchmark.Result": BENCH,
    "mpss_fast.benchmark.FloorWork": BENCH,
    "mpss_fast._floor.Store": BENCH,
    "mpss_fast._floor.Xor": BENCH,
    "mpss_fast._floor.Keystream": DEFAULT_REPR,  # also built by the floor_keystream scenario
    "mpss_fast._calibrate.Choice": PLAIN_FIELDS,
    "mpss_fast.demo.DemoResult": "the demo's output lines: SHA-256 fingerprints, never key bytes",
    "mpss_fast.engine.Engine": "the backend and kernel names",
    "mpss_fast.kmp.builtin.FibreLink": "a TypedDict of a link's rate, pool size and latency",
    "mpss_fast.kmp.paths.Path": PLAIN_FIELDS,
    "mpss_fast.kmp.policy.Plan": PLAIN_FIELDS,
    "mpss_fast.kmp.topology.Link": PLAIN_FIELDS,
    "mpss_fast.kmp.topology.Topology": PLAIN_FIELDS,
    "mpss_fast.node.config.Tls": "file paths of the TLS identity, not the key itself",
    "mpss_fast.node.config.LinkConfig": PLAIN_FIELDS,
    "mpss_fast.node.config.AppPair": PLAIN_FIELDS,
    "mpss_fast.node.config.StoreSettings": PLAIN_FIELDS,
    "mpss_fast.node.keyflow.FlowStats": "counters and reports of unit IDs and paths: no key material",
    "mpss_fast.node.keyflow.PairChannel": "a typing.Protocol: no instances",
    "mpss_fast.node.config.NodeConfig": "names, addresses, file paths and limits",
    "mpss_fast.etsi014.model.KeyLimits": PLAIN_FIELDS,
    "mpss_fast.etsi014.model.KeyStatus": PLAIN_FIELDS,
    "mpss_fast.node.store.db.StoreFile": "a base class: the link and key store scenarios build both subclasses",
    "mpss_fast.node.store.db.Schema": PLAIN_FIELDS,
    "mpss_fast.https.server.RunningServer": "the aiohttp runner, host and port",
    "mpss_fast.https.identity.DuplicateWatch": "certificate identities and client addresses, with times",
    "mpss_fast.node.logsummary.LogSummary": "a logger and per-kind counts of log lines",
    "mpss_fast.node.shares.ShareStats": "counters and key IDs of tampered paths",
    "mpss_fast.relay.session.Arrival": "an enum",
    "mpss_fast.sim.config.SimConfig": PLAIN_FIELDS,
    "mpss_fast.sim.metrics.ModeResult": PLAIN_FIELDS,
    "mpss_fast.sim.metrics.Sample": PLAIN_FIELDS,
    "mpss_fast.sim.metrics.Results": PLAIN_FIELDS,
    "mpss_fast.sim.modes.Traffic": PLAIN_FIELDS,
    "mpss_fast.sim.modes.SessionRecord": "counters and flags of one session, no bytes",
    "mpss_fast.wire.doh.Doh": PUBLIC_WIRE,
    "mpss_fast.wire.option.MpssOption": PUBLIC_WIRE,
    "mpss_fast.wire.packet.Packet": PUBLIC_WIRE,
    "mpss_fast.wire.srh.Srh": PUBLIC_WIRE,
    "mpss_fast.wire.tlv.Tlv": PUBLIC_WIRE,
    # Exceptions no scenario raises.
    "mpss_fast.benchmark.BenchError": MESSAGE_ONLY,
    "mpss_fast.cli.CliError": MESSAGE_ONLY,
    "mpss_fast.sim.adversary.InvariantError": MESSAGE_ONLY,
    "mpss_fast.exceptions.MpssError": "the base class",
    "mpss_fast.exceptions.BackendError": MESSAGE_ONLY,
    "mpss_fast.exceptions.WireError": PUBLIC_WIRE,
    "mpss_fast.exceptions.TruncatedError": PUBLIC_WIRE,
    "mpss_fast.exceptions.BadHeaderError": PUBLIC_WIRE,
    "mpss_fast.exceptions.NextHeaderError": PUBLIC_WIRE,
    "mpss_fast.exceptions.SegmentsLeftError": PUBLIC_WIRE,
    "mpss_fast.exceptions.HopLimitError": PUBLIC_WIRE,
    "mpss_fast.exceptions.BadPaddingError": PUBLIC_WIRE,
    "mpss_fast.exceptions.UnknownOptionError": PUBLIC_WIRE,
    "mpss_fast.exceptions.DuplicateOptionError": PUBLIC_WIRE,
    "mpss_fast.exceptions.MissingOptionError": PUBLIC_WIRE,
    "mpss_fast.exceptions.UnsupportedVersionError": PUBLIC_WIRE,
    "mpss_fast.exceptions.ChecksumError": PUBLIC_WIRE,
    "mpss_fast.exceptions.RelayError": "a base class",
    "mpss_fast.exceptions.SelfTestError": "names the failed known-answer checks",
    "mpss_fast.exceptions.TopologyError": MESSAGE_ONLY,
    "mpss_fast.exceptions.PathError": MESSAGE_ONLY,
    "mpss_fast.exceptions.PolicyError": MESSAGE_ONLY,
    "mpss_fast.exceptions.SessionError": "a base class",
    "mpss_fast.exceptions.StoreError": "a base class",
    "mpss_fast.exceptions.StoreVersionError": MESSAGE_ONLY,
    "mpss_fast.exceptions.StorePermissionError": "names a file and its mode bits",
    "mpss_fast.exceptions.HttpError": "a base class; messages never carry key bytes (the 'message' body)",
    "mpss_fast.exceptions.HttpBadRequestError": MESSAGE_ONLY,
    "mpss_fast.exceptions.HttpUnauthorizedError": MESSAGE_ONLY,
    "mpss_fast.exceptions.PeerApiError": MESSAGE_ONLY,
    "mpss_fast.exceptions.PeerUnreachableError": MESSAGE_ONLY,
    "mpss_fast.exceptions.Etsi014Error": "a base class; messages never carry key bytes (ETSI 014 'message')",
    "mpss_fast.exceptions.Etsi014BadRequestError": MESSAGE_ONLY,
    "mpss_fast.exceptions.Etsi014UnauthorizedError": MESSAGE_ONLY,
    "mpss_fast.exceptions.Etsi014UnavailableError": MESSAGE_ONLY,
    "mpss_fast.exceptions.Etsi014ConnectionError": MESSAGE_ONLY,
    "mpss_fast.exceptions.KmeFaultError": MESSAGE_ONLY,
    "mpss_fast.exceptions.NodeError": MESSAGE_ONLY,
    "mpss_fast.exceptions.NodeConfigError": MESSAGE_ONLY,
    "mpss_fast.exceptions.NetworkSetupError": MESSAGE_ONLY,
}


def _modules() -> Iterator[Any]:
    yield mpss_fast
    for info in pkgutil.walk_packages(mpss_fast.__path__, "mpss_fast."):
        if info.name.rsplit(".", 1)[-1] == "__main__":  # importing it runs the CLI
            continue
        yield importlib.import_module(info.name)


def _public_classes() -> dict[str, type]:
    found = {}
    for module in _modules():
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and not name.startswith("_") and obj.__module__ == module.__name__:
                found[f"{module.__name__}.{name}"] = obj
    return found


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def test_every_public_class_is_looked_at() -> None:
    """Each public class is built by a scenario or allowed with a reason; no allowed name is stale."""
    classes = _public_classes()
    assert len(classes) > 50  # the walk really found the package
    built = {_name(type(obj)) for build in SCENARIOS for obj in _build(build, Secret())}
    unchecked = sorted(set(classes) - built - set(ALLOWED))
    assert not unchecked, (
        f"public classes neither built by a scenario in {__name__} nor in ALLOWED: {unchecked}. "
        "If one can hold a share, number, key or link key material, add a scenario holding a secret."
    )
    stale = sorted(set(ALLOWED) - set(classes))
    assert not stale, f"ALLOWED names classes that no longer exist: {stale}"


def test_default_repr_classes_keep_the_default() -> None:
    """A class allowed for its default repr fails here once it gains a repr or str that could show a field."""
    classes = _public_classes()
    changed = []
    for name, reason in ALLOWED.items():
        cls = classes.get(name)
        if reason != DEFAULT_REPR or cls is None:
            continue
        if dataclasses.is_dataclass(cls) or cls.__repr__ is not object.__repr__ or cls.__str__ is not object.__str__:
            changed.append(name)
    assert not changed, f"these now have their own repr or str; give them a scenario: {changed}"


def test_allowed_dataclasses_hold_no_bytes() -> None:
    """Allowed classes with fields: no field is typed as bytes (else it needs a scenario)."""
    classes = _public_classes()
    suspicious = []
    for name in ALLOWED:
        cls = classes.get(name)
        if cls is None or not dataclasses.is_dataclass(cls) or ALLOWED[name] == PUBLIC_WIRE:
            continue
        suspicious += [f"{name}.{f.name}" for f in dataclasses.fields(cls) if "bytes" in str(f.type)]
    assert not suspicious, f"allowed as holding no secret, yet typed bytes: {suspicious}"
