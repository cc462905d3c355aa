"""Side-by-side throughput of every kernel tier, the pure backend and peers (``mpss bench``).

Each case is timed on every contender in turn, round after round, so all of them see the
same machine conditions; the figure reported is the median round. A round repeats a short
call back to back for about 2 ms, so figures are for warm calls. Next to the native
tiers (:data:`mpss_fast.KERNELS`) and the pure backend, every case also times a plain
memory copy (``numpy.copyto``) of the same number of bytes, as a yardstick of what the
machine can move, and this machine's **floor** for the case's work (:class:`FloorWork`:
plain C loops in the ``mpss_fast._floor`` extension that read and write exactly the bytes
the workload must), so each engine figure is also quoted as a fraction of its floor
measured in the same rounds. Keyed splits also time the AES-256-CTR keystream their
coefficients need, alone (:class:`FloorWork`'s bound loops), which bounds how close to
the store floor a split can come on this CPU. With ``peers=True`` other Shamir implementations join the cases they
can run: ``galois`` (field arrays, vectorized over all bytes), PyPI ``tss`` and
pycryptodome's ``Shamir`` (16-byte secrets only). The machine may be shared and noisy:
compare ratios from one run, not figures from different runs. The pytest-benchmark suite
in ``bench/`` measures a larger grid in more detail and reuses the peers defined here.
"""

from __future__ import annotations

import importlib
import io
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from types import ModuleType
from typing import Any, Literal, Protocol, TextIO

import numpy as np

from ._backend import native_tiers
from ._gf256 import POLY_AES
from .engine import Engine

KIB = 1 << 10
MIB = 1 << 20
DEFAULT_SIZES: tuple[int, ...] = (MIB,)
"""Secret/buffer sizes of the split, combine, xor_into and reencrypt_into cases."""
PLOT_SIZES: tuple[int, ...] = (64, KIB, 16 * KIB, 256 * KIB, MIB, 4 * MIB)
"""The sizes swept for ``--plot`` when no ``--sizes`` are given."""
MAX_SIZE = 64 * MIB
BULK_KEYS = 100_000
KEY_BYTES = 32
PEER_KEYS = 200
"""Keys per call in the peer key cases: the per-key peers need up to 1.5 ms a key."""
PEER_KEY_BYTES = 16
"""pycryptodome's Shamir only shares 16-byte secrets."""
MIN_ROUND_S = 0.002
"""Each contender's timed round repeats its call until about this long (at most MAX_CALLS calls)."""
MAX_CALLS = 10_000
K, N = 3, 5
MIN_ROUNDS = 3
LARGE_SPLIT = 64 * MIB
"""The default run adds a split of this size into preallocated buffers (the DRAM-bound case)."""
LARGE_MAX_CALL_S = 0.1
"""In that case, a contender whose call takes longer than this is left out (pure, the scalar tiers)."""
FLOOR_ALIGN = 64
"""Alignment of the floor's buffers: the widest vector, so its streaming stores can run."""
FLOOR = "floor"
"""The contender label of a case's floor: the fastest of its floor loops (:func:`floor_variants`)."""
FLOOR_ISAS = 2
"""The floor loops run on this many of the widest instruction sets the CPU has (AVX-512 and AVX2 on x86)."""
BOUND = "bound"
"""The label prefix of a bound loop (``bound:keystream-vaes512``): timed with the floor, never part of it."""
KEYSTREAM = f"{BOUND}:keystream"
PLOT_HINT = "install mpss-fast[bench] (or pip install matplotlib)"

Call = Callable[[], object]
PeerUse = Literal["none", "bulk", "all"]


class BenchError(ValueError):
    """A bad benchmark option or a missing optional dependency (one-line message)."""


# -- peers ------------------------------------------------------------------------------


class Peer(Protocol):
    """Another Shamir implementation, timed on the same work as the engines."""

    name: str
    version: str
    per_key: bool
    """True if it shares one secret per call (only small key cases are affordable)."""

    def split_call(self, secrets: np.ndarray, k: int, n: int) -> Call | None:
        """The call that splits every row of ``secrets`` into ``n`` shares; None if unsupported."""
        ...

    def combine_call(self, secrets: np.ndarray, k: int, n: int) -> Call | None:
        """Split ``secrets`` once (untimed), check a round trip; the call that combines ``k`` shares."""
        ...


def _urandom_array(*shape: int) -> np.ndarray:
    """A fresh C-contiguous uint8 array of ``shape`` filled from ``os.urandom``."""
    count = int(np.prod(shape))
    return np.frombuffer(bytearray(os.urandom(count)), dtype=np.uint8).reshape(shape)


def lagrange_weights_at_zero(xs: Sequence[int], mul: Callable[[int, int], int], inv: Callable[[int], int]) -> list[int]:
    """Lagrange weights of distinct ``xs`` at 0 in a field of characteristic 2 (``-`` is ``^``)."""
    weights = []
    for i, xi in enumerate(xs):
        w = 1
        for j, xj in enumerate(xs):
            if i != j:
                w = mul(w, mul(xj, inv(xj ^ xi)))
        weights.append(w)
    return weights


class GaloisPeer:
    """Batch Shamir with ``galois`` GF(2^8) field arrays (AES polynomial), vectorized over all bytes.

    Same field and x = 1..n as mpss_fast, so its shares combine with mpss_fast and back
    (:meth:`verify` checks both directions). Split is Horner's rule per share, combine a
    weighted sum: one galois ufunc pass over all bytes per step, the fastest of the galois
    formulations tried here (``V @ coeffs`` matmul was about twice as slow).
    """

    name = "galois"
    per_key = False

    def __init__(self) -> None:
        galois = importlib.import_module("galois")
        self.version: str = galois.__version__
        self.gf: Any = galois.GF(2**8, irreducible_poly=POLY_AES)

    def split(self, secrets: np.ndarray, k: int, n: int) -> np.ndarray:
        """Shares ``(n, *secrets.shape)`` of every byte of ``secrets``, coefficients from ``os.urandom``."""
        gf = self.gf
        flat = secrets.reshape(-1).view(gf)
        coeffs = _urandom_array(k - 1, flat.size).view(gf)
        out = np.empty((n, flat.size), dtype=np.uint8)
        for i in range(n):
            x = gf(i + 1)
            acc = coeffs[k - 2]
            for j in range(k - 3, -1, -1):
                acc = acc * x + coeffs[j]
            out[i] = acc * x + flat
        return out.reshape(n, *secrets.shape)

    def combine(self, shares: np.ndarray, xs: Sequence[int]) -> np.ndarray:
        """The secrets from share rows ``(j, ...)`` taken at ``xs``."""
        gf = self.gf
        weights = lagrange_weights_at_zero(xs, lambda a, b: int(gf(a) * gf(b)), lambda a: int(gf(a) ** -1))
        rows = shares.reshape(len(xs), -1).view(gf)
        acc = rows[0] * gf(weights[0])
        for row, w in zip(rows[1:], weights[1:], strict=True):
            acc = acc + row * gf(w)
        return np.asarray(acc).view(np.uint8).reshape(shares.shape[1:])

    def verify(self) -> None:
        """Round trip, and interoperability with mpss_fast in both directions."""
        from . import combine_array, split_array

        secrets = _urandom_array(64, 32)
        xs = [2, 4, 5]
        mine = self.split(secrets, 3, 5)
        theirs = split_array(secrets, 3, 5)
        ok = (
            np.array_equal(self.combine(mine[[x - 1 for x in xs]], xs), secrets)
            and np.array_equal(combine_array(np.ascontiguousarray(mine[:3]), [1, 2, 3]), secrets)
            and np.array_equal(self.combine(theirs[:3], [1, 2, 3]), secrets)
        )
        if not ok:
            raise RuntimeError("the galois peer does not round-trip")

    def split_call(self, secrets: np.ndarray, k: int, n: int) -> Call | None:
        return lambda: self.split(secrets, k, n)

    def combine_call(self, secrets: np.ndarray, k: int, n: int) -> Call | None:
        shares = np.ascontiguousarray(self.split(secrets, k, n)[:k])
        xs = list(range(1, k + 1))
        if not np.array_equal(self.combine(shares, xs), secrets):
            raise RuntimeError("the galois peer does not round-trip")
        return lambda: self.combine(shares, xs)


class TssPeer:
    """PyPI ``tss`` (draft-mcgrew-tss, pure Python, one secret per call, no hash appended).

    Its shares are ``header || x || y`` in the AES field, so mpss_fast combines them once
    the 20-byte header is stripped (:meth:`verify`).
    """

    name = "tss"
    per_key = True
    HEADER = 20

    def __init__(self) -> None:
        self.tss: Any = importlib.import_module("tss")
        self.version: str = getattr(self.tss, "__version__", "?")

    def _split_rows(self, secrets: np.ndarray, k: int, n: int) -> list[list[bytes]]:
        tss = self.tss
        return [tss.share_secret(k, n, row.tobytes(), b"mpss-bench", tss.Hash.NONE) for row in secrets]

    def verify(self) -> None:
        """Round trip, and mpss_fast combines tss shares."""
        from . import combine

        key = os.urandom(32)
        shares = self.tss.share_secret(3, 5, key, b"mpss-bench", self.tss.Hash.NONE)
        if self.tss.reconstruct_secret(shares[1:4]) != key or combine([s[self.HEADER :] for s in shares[:3]]) != key:
            raise RuntimeError("the tss peer does not round-trip")

    def split_call(self, secrets: np.ndarray, k: int, n: int) -> Call | None:
        return lambda: self._split_rows(secrets, k, n)

    def combine_call(self, secrets: np.ndarray, k: int, n: int) -> Call | None:
        shares = [row_shares[:k] for row_shares in self._split_rows(secrets, k, n)]
        reconstruct = self.tss.reconstruct_secret
        if b"".join(reconstruct(s) for s in shares) != secrets.tobytes():
            raise RuntimeError("the tss peer does not round-trip")
        return lambda: [reconstruct(s) for s in shares]


class PycryptodomePeer:
    """pycryptodome's ``Crypto.Protocol.SecretSharing.Shamir``: 16-byte secrets, GF(2^128), one per call."""

    name = "pycryptodome"
    per_key = True

    def __init__(self) -> None:
        self.shamir: Any = importlib.import_module("Crypto.Protocol.SecretSharing").Shamir
        self.version: str = importlib.import_module("Crypto").__version__

    def verify(self) -> None:
        """Round trip of one 16-byte key from shares 2, 4 and 5."""
        key = os.urandom(16)
        shares = self.shamir.split(3, 5, key)
        if self.shamir.combine([shares[1], shares[3], shares[4]]) != key:
            raise RuntimeError("the pycryptodome peer does not round-trip")

    def split_call(self, secrets: np.ndarray, k: int, n: int) -> Call | None:
        if secrets.shape[-1] != PEER_KEY_BYTES:
            return None
        rows = [row.tobytes() for row in secrets]
        split = self.shamir.split
        return lambda: [split(k, n, row) for row in rows]

    def combine_call(self, secrets: np.ndarray, k: int, n: int) -> Call | None:
        if secrets.shape[-1] != PEER_KEY_BYTES:
            return None
        shares = [self.shamir.split(k, n, row.tobytes())[:k] for row in secrets]
        combine = self.shamir.combine
        if b"".join(combine(s) for s in shares) != secrets.tobytes():
            raise RuntimeError("the pycryptodome peer does not round-trip")
        return lambda: [combine(s) for s in shares]


PEER_TYPES: dict[str, type[GaloisPeer] | type[TssPeer] | type[PycryptodomePeer]] = {
    "galois": GaloisPeer,
    "tss": TssPeer,
    "pycryptodome": PycryptodomePeer,
}


def load_peers(names: Iterable[str] | None = None) -> tuple[list[Peer], dict[str, str]]:
    """The peers that import and pass :meth:`verify`, and a status line for each: version or why not."""
    peers: list[Peer] = []
    status: dict[str, str] = {}
    for name in names if names is not None else PEER_TYPES:
        try:
            peer = PEER_TYPES[name]()
            peer.verify()
        except ImportError as exc:
            status[name] = f"not installed ({exc.name or exc}); pip install mpss-fast[bench]"
            continue
        except Exception as exc:  # a peer that imports but breaks is reported, not fatal
            status[name] = f"unusable: {type(exc).__name__}: {exc}"
            continue
        peers.append(peer)
        status[name] = peer.version
    return peers, status


# -- cases ------------------------------------------------------------------------------


class Workload(Protocol):
    """The data of one case, shared by all contenders, and the call each of them times."""

    def engine_call(self, engine: Engine) -> Call:
        """The call that does this case's work on ``engine``."""
        ...

    def peer_call(self, peer: Peer) -> Call | None:
        """The call that does this case's work with ``peer``; None if it cannot."""
        ...

    def floor_shape(self) -> tuple[Literal["store", "xor"], int, int] | None:
        """``("store", n, nbytes)``: read nbytes, write n copies; ``("xor", k, nbytes)``: k in, 1 out; or None."""
        ...

    def coefficient_rows(self) -> int:
        """Rows of AES-256-CTR keystream the engine makes per secret byte (k - 1 for a keyed split), else 0."""
        ...


# -- the floor --------------------------------------------------------------------------


def load_floor() -> tuple[ModuleType | None, str]:
    """The floor extension ``mpss_fast._floor`` and a status line: its instruction set, or why there is none."""
    try:
        from . import _floor
    except ImportError as exc:
        return None, (
            f"not available ({exc}; an extension-less build such as MPSS_FAST_PUREPYTHON=1): "
            "figures are printed without fractions of the floor"
        )
    isas = " and ".join(dict.fromkeys(isa for _, isa, _ in floor_variants(_floor)))
    stores = "ordinary and streaming (-nt) stores" if _floor.has_streaming() else "ordinary stores"
    impls = ", ".join(impl for _, _, impl in keystream_variants(_floor))
    bound = (
        f"keyed splits also time their AES-256-CTR keystream alone ({impls}), a bound rather than a floor"
        if impls
        else "no AES instructions here: the keystream bound of keyed splits is not measured"
    )
    return _floor, (
        f"C loops on {isas}, {stores}, in the same rounds as the engine; the fastest is each case's floor; {bound}"
    )


def floor_variants(floor: ModuleType) -> list[tuple[str, str, bool]]:
    """(label, isa, streaming) of every floor loop timed per case, e.g. ``("floor:avx2-nt", "avx2", True)``.

    The :data:`FLOOR_ISAS` widest vector instruction sets, each with ordinary stores and,
    where it has them, non-temporal ones; the fastest is the case's floor.
    """
    isas = [isa for isa in floor.ISAS if isa != "portable"][:FLOOR_ISAS] or [floor.ISA]
    variants = []
    for isa in isas:
        variants.append((f"{FLOOR}:{isa}", isa, False))
        if floor.has_streaming(isa):
            variants.append((f"{FLOOR}:{isa}-nt", isa, True))
    return variants


def keystream_variants(floor: ModuleType) -> list[tuple[str, str, str]]:
    """(label, isa, implementation) of each keystream loop timed per keyed split.

    One per AES implementation this CPU runs (VAES on zmm, AES-NI on xmm), on the widest
    instruction set that has it, e.g. ``("bound:keystream-vaes512", "avx512", "vaes512")``;
    the fastest is the case's keystream bound. Empty without AES instructions.
    """
    variants: dict[str, tuple[str, str, str]] = {}
    for isa in floor.KEYSTREAM_ISAS:
        impl = floor.keystream_impl(isa)
        variants.setdefault(impl, (f"{KEYSTREAM}-{impl}", isa, impl))
    return list(variants.values())


def keystream_fold(key: bytes, rows: int, length: int) -> bytes:
    """The XOR fold, in 64-byte lanes, of ``rows`` keyed-split coefficient rows of ``length`` bytes.

    Made with ``cryptography``'s AES-256-CTR, row j from the counter block
    ``BE64(j) || BE64(0)`` as in a keyed split; byte t of every row is XORed into byte
    ``t % 64`` of the fold. The reference for the keystream loops.
    """
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    from ._random import row_counter

    fold = np.zeros(64, dtype=np.uint8)
    chunk = 4 * MIB  # a multiple of 64: each chunk folds into the same lanes
    for row in range(rows):
        encryptor = Cipher(algorithms.AES(key), modes.CTR(row_counter(row, 0))).encryptor()
        for start in range(0, length, chunk):
            size = min(chunk, length - start)
            stream = encryptor.update(bytes(size)) + bytes(-size % 64)
            fold ^= np.bitwise_xor.reduce(np.frombuffer(stream, dtype=np.uint8).reshape(-1, 64), axis=0)
    return fold.tobytes()


def _aligned_buffer(nbytes: int, fill: np.ndarray | None = None) -> np.ndarray:
    """A touched 1-D uint8 array of ``nbytes`` at a :data:`FLOOR_ALIGN`-byte boundary, zeros or a copy of ``fill``."""
    raw = np.zeros(nbytes + FLOOR_ALIGN, dtype=np.uint8)
    start = -raw.ctypes.data % FLOOR_ALIGN
    buf = raw[start : start + nbytes]
    if fill is not None:
        np.copyto(buf, fill.reshape(-1))
    return buf


class FloorWork:
    """The floor of one case: the least memory work it must do, as a C loop on its own buffers of the same shape.

    ``store`` (split): read the ``nbytes`` of secret once and write them to ``n`` outputs
    of the same size. ``xor`` (combine, ``xor_into``, ``reencrypt_into``): read ``k``
    inputs of ``nbytes`` and write their XOR to one output. The buffers are allocated and
    touched here, once; each loop runs with ordinary stores and, where the CPU has them,
    non-temporal (streaming) ones, on the widest instruction sets (:func:`floor_variants`),
    and :meth:`check` reads the outputs back, so a loop cannot be a no-op.

    With ``rows`` (the coefficient rows of a keyed split, k - 1) it also holds the
    **bound** loops (:attr:`bounds`, :func:`keystream_variants`): the AES-256-CTR keystream
    of those rows alone, made in registers and folded into 64 bytes under a random key. Not
    part of the floor: a split cannot be faster than its keystream either, so the bound is
    ``min(1, floor time / keystream time)`` of the floor. :meth:`check` compares each fold
    with :func:`keystream_fold`.
    """

    def __init__(
        self, floor: ModuleType, kind: Literal["store", "xor"], streams: int, nbytes: int, rows: int = 0
    ) -> None:
        self.kind, self.streams, self.nbytes, self.rows = kind, streams, nbytes, rows
        if kind == "store":
            self.inputs = [_aligned_buffer(nbytes, _urandom_array(nbytes))]
            self.outputs = [_aligned_buffer(nbytes) for _ in range(streams)]
            loop = partial(floor.Store, self.inputs[0], self.outputs)
        else:
            self.inputs = [_aligned_buffer(nbytes, _urandom_array(nbytes)) for _ in range(streams)]
            self.outputs = [_aligned_buffer(nbytes)]
            loop = partial(floor.Xor, self.inputs, self.outputs[0])
        self.variants = {label: (isa, streaming) for label, isa, streaming in floor_variants(floor)}
        self.calls: dict[str, Call] = {
            label: loop(isa=isa, streaming=streaming) for label, (isa, streaming) in self.variants.items()
        }
        self.key, self.fold = bytearray(os.urandom(32)), np.zeros(64, dtype=np.uint8)
        self.impls = {label: impl for label, _, impl in keystream_variants(floor)} if rows else {}
        self.bounds: dict[str, Call] = {
            label: floor.Keystream(self.key, self.fold, rows=rows, length=nbytes, isa=isa)
            for label, isa, _ in keystream_variants(floor)
            if rows
        }
        self._expected_fold: bytes | None = None

    def describe_variant(self, label: str) -> str:
        """``avx512-nt (streaming stores)`` for the loop ``floor:avx512-nt``."""
        _, streaming = self.variants[label]
        return f"{label.removeprefix(FLOOR + ':')} ({'streaming' if streaming else 'ordinary'} stores)"

    def describe(self) -> str:
        """What the loop does, e.g. ``read 1 MiB once, write 5 x 1 MiB``."""
        size = format_size(self.nbytes)
        if self.kind == "store":
            return f"read {size} once, write {self.streams} x {size}"
        return f"read {self.streams} x {size}, write their XOR ({size})"

    def describe_bound(self, label: str) -> str:
        """The implementation of the bound loop ``label``, e.g. ``vaes512`` for ``bound:keystream-vaes512``."""
        return self.impls[label]

    def check(self) -> None:
        """Clear the outputs, run each loop once, and compare with numpy: a floor that skipped work would fail."""
        if self.kind == "store":
            expected = self.inputs[0]
        else:
            expected = np.bitwise_xor.reduce(np.stack(self.inputs), axis=0)
        for label, call in self.calls.items():
            for out in self.outputs:
                out.fill(0)
            call()
            if not all(np.array_equal(out, expected) for out in self.outputs):
                raise RuntimeError(f"the {label} loop ({self.kind}) wrote wrong bytes")
        if self.bounds and self._expected_fold is None:
            self._expected_fold = keystream_fold(bytes(self.key), self.rows, self.nbytes)
        for label, call in self.bounds.items():
            self.fold.fill(0)
            call()
            if self.fold.tobytes() != self._expected_fold:
                raise RuntimeError(f"the {label} loop (keystream) folded wrong bytes")


class SplitArray:
    """``split_array`` of ``m`` secrets of ``length`` bytes into a reused ``out=`` array, randomness included."""

    def __init__(self, m: int, length: int, k: int, n: int) -> None:
        self.secrets = _urandom_array(m, length)
        self.out = np.empty((n, m, length), dtype=np.uint8)
        self.k, self.n = k, n

    def engine_call(self, engine: Engine) -> Call:
        return lambda: engine.split_array(self.secrets, self.k, self.n, out=self.out)

    def peer_call(self, peer: Peer) -> Call | None:
        return peer.split_call(self.secrets, self.k, self.n)

    def floor_shape(self) -> tuple[Literal["store", "xor"], int, int] | None:
        return ("store", self.n, self.secrets.nbytes)

    def coefficient_rows(self) -> int:
        return self.k - 1  # a keyed split: AES-256-CTR rows over the whole (m, length) array as one stream


class CombineArray:
    """``combine_array`` of shares 1..k of ``m`` secrets of ``length`` bytes into a reused ``out=`` array."""

    def __init__(self, m: int, length: int, k: int, n: int) -> None:
        from . import split_array

        self.secrets = _urandom_array(m, length)
        self.shares = np.ascontiguousarray(split_array(self.secrets, k, n)[:k])
        self.out = np.empty_like(self.secrets)
        self.k, self.n = k, n

    def engine_call(self, engine: Engine) -> Call:
        xs = list(range(1, self.k + 1))
        return lambda: engine.combine_array(self.shares, xs, out=self.out)

    def peer_call(self, peer: Peer) -> Call | None:
        return peer.combine_call(self.secrets, self.k, self.n)

    def floor_shape(self) -> tuple[Literal["store", "xor"], int, int] | None:
        return ("xor", self.k, self.secrets.nbytes)

    def coefficient_rows(self) -> int:
        return 0


class XorInto:
    """``xor_into(a, b, out)`` of two buffers (a one-time-pad step)."""

    def __init__(self, nbytes: int) -> None:
        self.a, self.b, self.out = os.urandom(nbytes), os.urandom(nbytes), bytearray(nbytes)

    def engine_call(self, engine: Engine) -> Call:
        return lambda: engine.xor_into(self.a, self.b, self.out)

    def peer_call(self, peer: Peer) -> Call | None:
        return None

    def floor_shape(self) -> tuple[Literal["store", "xor"], int, int] | None:
        return ("xor", 2, len(self.out))

    def coefficient_rows(self) -> int:
        return 0


class ReencryptInto:
    """``reencrypt_into(data, key_in, key_out, out)``: a relay's one-pass re-encryption."""

    def __init__(self, nbytes: int) -> None:
        self.data, self.key_in, self.key_out = (os.urandom(nbytes) for _ in range(3))
        self.out = bytearray(nbytes)

    def engine_call(self, engine: Engine) -> Call:
        return lambda: engine.reencrypt_into(self.data, self.key_in, self.key_out, self.out)

    def peer_call(self, peer: Peer) -> Call | None:
        return None

    def floor_shape(self) -> tuple[Literal["store", "xor"], int, int] | None:
        return ("xor", 3, len(self.out))

    def coefficient_rows(self) -> int:
        return 0


class SplitOne:
    """One ``split()`` of a short key: the per-call cost (validation, randomness, result bytes)."""

    def __init__(self, nbytes: int, k: int, n: int) -> None:
        self.key, self.k, self.n = os.urandom(nbytes), k, n

    def engine_call(self, engine: Engine) -> Call:
        return lambda: engine.split(self.key, self.k, self.n)

    def peer_call(self, peer: Peer) -> Call | None:
        return None

    def floor_shape(self) -> tuple[Literal["store", "xor"], int, int] | None:
        return None  # a per-call cost, not a memory stream

    def coefficient_rows(self) -> int:
        return 0  # short secrets take their coefficients straight from the OS (no keystream)


@dataclass(frozen=True)
class Case:
    """One operation to time. ``make()`` builds its data (when the case runs, then dropped)."""

    op: str
    label: str
    nbytes: int
    """Bytes of secret (or buffer) per call."""
    make: Callable[[], Workload]
    keys: int = 1
    """Secrets per call."""
    per_call: bool = False
    """Quote µs per call rather than GB/s (for short single calls)."""
    peers: PeerUse = "none"
    """Which peers join: none, the vectorized ones (bulk) or all."""
    pure: bool = True
    """Whether the pure backend joins."""
    max_call_s: float | None = None
    """Leave out an engine or peer whose (warm) call takes longer than this."""

    @property
    def unit(self) -> str:
        """How the case's figure is quoted: GB/s, keys/s or µs per call."""
        if self.per_call:
            return "us/call"
        return "keys/s" if self.keys > 1 else "GB/s"

    def admits(self, peer: Peer) -> bool:
        """Whether ``peer`` takes part in this case."""
        return self.peers == "all" or (self.peers == "bulk" and not peer.per_key)


def format_size(nbytes: int) -> str:
    """``1048576`` -> ``1 MiB``, ``65536`` -> ``64 KiB``, ``100`` -> ``100 B``."""
    for unit, scale in (("MiB", MIB), ("KiB", KIB)):
        if nbytes >= scale and nbytes % scale == 0:
            return f"{nbytes // scale} {unit}"
    return f"{nbytes} B"


def default_cases(
    sizes: Sequence[int] = DEFAULT_SIZES,
    *,
    keys: int = BULK_KEYS,
    peers: bool = False,
    k: int = K,
    n: int = N,
    large: int | None = None,
) -> list[Case]:
    """Split/combine/xor_into/reencrypt_into per size, bulk 32-byte keys, one ``split()`` of a key.

    With ``peers``, two cases of ``PEER_KEYS`` 16-byte keys that every peer can run. With
    ``large`` (``mpss bench`` without ``--sizes``: :data:`LARGE_SPLIT`), a split of that
    size into preallocated buffers, without pure and without any contender slower than
    :data:`LARGE_MAX_CALL_S` a call.
    """
    kn = f"k={k} n={n}"
    cases = []
    for size in sizes:
        name = format_size(size)
        cases.append(Case("split", f"split {name} {kn}", size, partial(SplitArray, 1, size, k, n), peers="bulk"))
        cases.append(Case("combine", f"combine {name} k={k}", size, partial(CombineArray, 1, size, k, n), peers="bulk"))
    if large is not None and large not in sizes:
        big = partial(SplitArray, 1, large, k, n)
        label = f"split {format_size(large)} {kn}"
        cases.append(Case("split", label, large, big, pure=False, max_call_s=LARGE_MAX_CALL_S))
    batches: list[tuple[int, int, PeerUse]] = [(keys, KEY_BYTES, "bulk")]
    if peers:
        batches.append((PEER_KEYS, PEER_KEY_BYTES, "all"))
    for m, length, use in batches:
        what, total = f"{m:,} x {length} B keys", m * length
        split, combine = partial(SplitArray, m, length, k, n), partial(CombineArray, m, length, k, n)
        cases.append(Case("split_keys", f"split {what} {kn}", total, split, keys=m, peers=use))
        cases.append(Case("combine_keys", f"combine {what} k={k}", total, combine, keys=m, peers=use))
    for size in sizes:
        name = format_size(size)
        cases.append(Case("xor_into", f"xor_into {name}", size, partial(XorInto, size)))
        cases.append(Case("reencrypt_into", f"reencrypt_into {name}", size, partial(ReencryptInto, size)))
    single = partial(SplitOne, KEY_BYTES, k, n)
    cases.append(Case("split_key", f"split() one {KEY_BYTES} B key {kn}", KEY_BYTES, single, per_call=True))
    return cases


# -- options ----------------------------------------------------------------------------


def parse_rounds(text: str | int) -> int:
    """A ``--rounds`` value: an integer, at least :data:`MIN_ROUNDS`."""
    try:
        rounds = int(text)
    except ValueError:
        raise BenchError(f"--rounds must be an integer >= {MIN_ROUNDS}, not {text!r}") from None
    if rounds < MIN_ROUNDS:
        raise BenchError(f"--rounds must be at least {MIN_ROUNDS}, not {rounds}")
    return rounds


def parse_keys(text: str | int) -> int:
    """A ``--keys`` value: the number of 32-byte keys in the bulk key cases, 1 .. 10,000,000."""
    try:
        keys = int(text)
    except ValueError:
        keys = 0
    if not 1 <= keys <= 10_000_000:
        raise BenchError(f"--keys must be an integer in 1 .. 10000000, not {text!r}")
    return keys


_SUFFIXES = {"": 1, "b": 1, "k": KIB, "kb": KIB, "kib": KIB, "m": MIB, "mb": MIB, "mib": MIB}


def parse_sizes(text: str) -> tuple[int, ...]:
    """``"64,64K,1MiB"`` -> ``(64, 65536, 1048576)`` (binary units), each in 1 .. 64 MiB, duplicates dropped."""
    sizes = []
    for item in text.split(","):
        word = item.strip().lower().replace(" ", "")
        digits = word.rstrip("kmib")
        suffix = word[len(digits) :]
        if not digits.isdigit() or suffix not in _SUFFIXES:
            raise BenchError(f"--sizes takes sizes like 64,64K,1M (bytes, KiB, MiB), not {item.strip()!r}")
        size = int(digits) * _SUFFIXES[suffix]
        if not 1 <= size <= MAX_SIZE:
            raise BenchError(f"--sizes: {item.strip()!r} is outside 1 B .. {format_size(MAX_SIZE)}")
        sizes.append(size)
    return tuple(sorted(set(sizes)))


def check_matplotlib() -> None:
    """Fail early, with the install hint, if ``--plot`` cannot work."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise BenchError(f"--plot needs matplotlib: {PLOT_HINT}") from None


# -- timing -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """One case on one contender (a tier, ``pure``, a peer or ``copy``): median of the rounds."""

    op: str
    case: str
    engine: str
    nbytes: int
    keys: int
    calls: int
    """Calls per timed round (see :data:`MIN_ROUND_S`)."""
    median_s: float
    """Median over the rounds of the time of one call."""
    gb_per_s: float
    keys_per_s: float | None
    us_per_call: float | None
    vs_pure: float | None = None
    """Pure's median time / this one: the speed-up over the pure-Python fallback."""
    vs_copy: float | None = None
    """Copy's median time / this one: the fraction of memory-copy speed (1 = as fast as a copy)."""
    vs_floor: float | None = None
    """The floor's median time / this one: the fraction of this machine's floor for the case (1 = at the floor)."""
    detail: str | None = None
    """For the ``floor`` row: what its loop does, the instruction set and which stores were faster."""
    keystream: str | None = None
    """For the ``floor`` row of a keyed split: the AES implementation of its fastest keystream loop (``vaes512``)."""
    keystream_gb_per_s: float | None = None
    """For that row: GB/s of secret of the keystream alone (k - 1 rows per secret byte, in registers)."""
    bound: float | None = None
    """For that row: ``min(1, keystream_gb_per_s / gb_per_s)``, the most of the store floor a split can reach here."""


def contenders(tiers: Iterable[str] | None = None, pure: bool = True) -> list[tuple[str, Engine]]:
    """(label, engine) for each native tier (default: all this CPU runs) and the pure backend."""
    found = [(tier, Engine("native", kernel=tier)) for tier in (native_tiers() if tiers is None else tiers)]
    return [*found, ("pure", Engine("pure"))] if pure else found


def _copy_call(case: Case) -> Call:
    """``numpy.copyto`` of the case's bytes: the memory-bandwidth yardstick."""
    src = _urandom_array(case.nbytes)
    dst = np.empty_like(src)
    return lambda: np.copyto(dst, src)


def _time_round(call: Call, calls: int) -> float:
    """Seconds for ``calls`` calls of ``call``."""
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return time.perf_counter() - start


def _calls_per_round(call: Call) -> int:
    """How many calls of ``call`` make a round of about :data:`MIN_ROUND_S` (warm, one call timed)."""
    once = _time_round(call, 1)
    return max(1, min(MAX_CALLS, math.ceil(MIN_ROUND_S / max(once, 1e-9))))


def _calls(
    case: Case, engines: Sequence[tuple[str, Engine]], peers: Sequence[Peer], floor: ModuleType | None
) -> tuple[list[tuple[str, Call]], FloorWork | None]:
    """Every contender's call for ``case``: engines, the peers it admits, the floor loops and the copy."""
    work = case.make()
    calls = [(label, work.engine_call(engine)) for label, engine in engines if case.pure or label != "pure"]
    for peer in peers:
        call = work.peer_call(peer) if case.admits(peer) else None
        if call is not None:
            calls.append((peer.name, call))
    shape = work.floor_shape() if floor is not None else None
    floor_work = None
    if floor is not None and shape is not None:
        floor_work = FloorWork(floor, *shape, rows=work.coefficient_rows())
        floor_work.check()
        calls.extend(floor_work.calls.items())
        calls.extend(floor_work.bounds.items())
    calls.append(("copy", _copy_call(case)))
    return calls, floor_work


def _yardstick(label: str) -> bool:
    return label == "copy" or label.startswith((FLOOR, BOUND))


def time_case(
    case: Case,
    engines: Sequence[tuple[str, Engine]],
    peers: Sequence[Peer] = (),
    rounds: int = 15,
    floor: ModuleType | None = None,
) -> list[Result]:
    """Time ``case`` on every contender, interleaved round by round, and relate each to pure, copy and the floor.

    With ``floor`` (the ``mpss_fast._floor`` module) the case's floor loops run as
    contenders too (:func:`floor_variants`); the fastest is the floor, reported as the
    contender ``floor``. A keyed split's keystream loops (:func:`keystream_variants`) run
    with them; the fastest gives the ``floor`` row's ``keystream_gb_per_s`` and ``bound``.
    """
    calls, floor_work = _calls(case, engines, peers, floor)
    for _, call in calls:
        call()  # warm up: first-touch page faults, lazily built tables, JIT compilation
    repeats = [_calls_per_round(call) for _, call in calls]
    if case.max_call_s is not None:  # one more warm call, timed alone
        slow = {label for label, call in calls if not _yardstick(label) and _time_round(call, 1) > case.max_call_s}
        kept = [i for i, (label, _) in enumerate(calls) if label not in slow]
        calls, repeats = [calls[i] for i in kept], [repeats[i] for i in kept]
    times: list[list[float]] = [[] for _ in calls]
    for _ in range(rounds):
        for (_, call), repeat, series in zip(calls, repeats, times, strict=True):
            # One untimed call first: otherwise whoever runs first in a round pays for the
            # caches the previous contender emptied (measured: the first tier of the key
            # combine at 0.62 of the floor, the same tier second at 0.81).
            call()
            series.append(_time_round(call, repeat) / repeat)
    if floor_work is not None:
        floor_work.check()  # the outputs are read back after the timed rounds too
    medians = {label: statistics.median(series) for (label, _), series in zip(calls, times, strict=True)}
    calls_of = {label: repeat for (label, _), repeat in zip(calls, repeats, strict=True)}
    detail = None
    keystream: dict[str, Any] = {}
    if floor_work is not None:
        loops = {label: medians.pop(label) for label in floor_work.calls}
        bounds = {label: medians.pop(label) for label in floor_work.bounds}
        fastest = min(loops, key=loops.__getitem__)
        others = ", ".join(
            f"{label.removeprefix(FLOOR + ':')} {short_number(case.nbytes / median / 1e9)}"
            for label, median in loops.items()
            if label != fastest
        )
        detail = f"{floor_work.describe()}; fastest {floor_work.describe_variant(fastest)}"
        detail += f"; others, GB/s: {others}" if others else ""
        calls_of[FLOOR] = calls_of[fastest]
        if bounds:
            quickest = min(bounds, key=bounds.__getitem__)
            keystream = {
                "keystream": floor_work.describe_bound(quickest),
                "keystream_gb_per_s": case.nbytes / bounds[quickest] / 1e9,
                "bound": min(1.0, loops[fastest] / bounds[quickest]),
            }
        medians = {**{k: v for k, v in medians.items() if k != "copy"}, FLOOR: loops[fastest], "copy": medians["copy"]}
    results = []
    for label, median in medians.items():
        results.append(
            Result(
                op=case.op,
                case=case.label,
                engine=label,
                nbytes=case.nbytes,
                keys=case.keys,
                calls=calls_of[label],
                median_s=median,
                gb_per_s=case.nbytes / median / 1e9,
                keys_per_s=case.keys / median if case.keys > 1 else None,
                us_per_call=median * 1e6 if case.per_call else None,
                vs_pure=medians["pure"] / median if "pure" in medians else None,
                vs_copy=medians["copy"] / median,
                vs_floor=medians[FLOOR] / median if FLOOR in medians else None,
                detail=detail if label == FLOOR else None,
                **(keystream if label == FLOOR else {}),
            )
        )
    return results


_AUTO: Any = object()


def run(
    cases: Sequence[Case] | None = None,
    engines: Sequence[tuple[str, Engine]] | None = None,
    peers: Sequence[Peer] = (),
    rounds: int = 15,
    progress: Callable[[int, int, str], None] | None = None,
    floor: ModuleType | None = _AUTO,
) -> list[Result]:
    """Time every case (default :func:`default_cases`); ``progress(i, total, label)`` before each.

    ``floor``: the floor module (default: :func:`load_floor`'s; None: no floor, no fractions).
    """
    cases = default_cases(peers=bool(peers)) if cases is None else cases
    engines = contenders() if engines is None else engines
    if floor is _AUTO:
        floor = load_floor()[0]
    results: list[Result] = []
    for i, case in enumerate(cases, 1):
        if progress:
            progress(i, len(cases), case.label)
        results.extend(time_case(case, engines, peers, rounds, floor))
    return results


class Progress:
    """``progress(i, total, label)`` for :func:`run`, written to ``stream``: one updating line on a terminal."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()

    def __call__(self, i: int, total: int, label: str) -> None:
        line = f"[{i}/{total}] {label} ..."
        self.stream.write(f"\r\033[K{line}" if self.tty else f"{line}\n")
        self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
            self.stream.flush()


# -- reporting --------------------------------------------------------------------------


def short_number(value: float) -> str:
    """Three significant digits, with k/M/G suffixes from 1,000 up: 9.19e-05, 0.0499, 4.09, 38.1, 6.38k, 21.7M."""
    tail = ""
    for suffix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            value, tail = value / scale, suffix
            break
    if value >= 100:
        digits = 0
    elif value >= 10:
        digits = 1
    elif value >= 1 or value <= 0:
        digits = 2
    elif value < 0.001:
        return f"{value:.2e}"
    else:
        digits = 2 - math.floor(math.log10(value))
    return f"{value:.{digits}f}{tail}"


def figure(r: Result) -> float:
    """The headline figure of a result in its case's unit (GB/s, keys/s or µs per call)."""
    if r.us_per_call is not None:
        return r.us_per_call
    return r.keys_per_s if r.keys_per_s is not None else r.gb_per_s


def _unit(r: Result) -> str:
    if r.us_per_call is not None:
        return "us/call"
    return "keys/s" if r.keys_per_s is not None else "GB/s"


def _matrix(
    results: Sequence[Result], cell: Callable[[Result], str], skip: Iterable[str] = (), unit: bool = False
) -> list[str]:
    """A text matrix: a row per case, a column per contender (less ``skip``), each cell ``cell(result)``."""
    seen = [c for c in dict.fromkeys(r.engine for r in results) if c not in set(skip)]
    columns = sorted(seen, key=lambda c: {FLOOR: 1, "copy": 2}.get(c, 0))  # tiers, pure, peers, floor, copy
    by_case: dict[str, dict[str, Result]] = {}
    for r in results:
        by_case.setdefault(r.case, {})[r.engine] = r
    width = max(len(c) for c in by_case) + 1
    widths = [max(10, len(c) + 2) for c in columns]
    head = f"{'case':{width}}" + (f"{'unit':>8}" if unit else "")
    lines = [head + "".join(f"{c:>{w}}" for c, w in zip(columns, widths, strict=True))]
    for case, rows in by_case.items():
        line = f"{case:{width}}" + (f"{_unit(next(iter(rows.values()))):>8}" if unit else "")
        for c, w in zip(columns, widths, strict=True):
            line += f"{cell(rows[c]) if c in rows else '-':>{w}}"
        lines.append(line)
    return lines


def bound_line(r: Result) -> str:
    """The keystream bound of a keyed split's ``floor`` row, in words."""
    x, floor = short_number(r.keystream_gb_per_s or 0.0), short_number(r.gb_per_s)
    return (
        f"{r.case}: the AES-256-CTR coefficients alone ({r.keystream}, in registers, nothing stored) run at "
        f"{x} GB/s of secret: a split here can reach at most min(1, {x} / {floor}) = {r.bound:.2f} of the store floor"
    )


def format_table(results: Sequence[Result], floor_status: str | None = None) -> str:
    """Text matrices: throughput, fraction of the floor, speed-up over pure, fraction of memory-copy speed.

    ``floor_status`` (from :func:`load_floor`) heads the floor part; without floor
    results it says why there are no fractions.
    """
    lines = ["throughput (GB/s of secret; keys/s; us per call: lower is better)"]
    lines += _matrix(results, lambda r: short_number(figure(r)), unit=True)
    floors = [r for r in results if r.engine == FLOOR]
    lines += ["", f"floor: {floor_status}" if floor_status else "floor:"]
    if floors:
        for r in floors:
            lines += [f"  {r.case}: {r.detail}", *([f"  {bound_line(r)}"] if r.bound is not None else [])]
        lines += ["", "fraction of the floor (the floor's median time in the same rounds / this time: 1 = at it)"]
        lines += _matrix(results, lambda r: "-" if r.vs_floor is None else f"{r.vs_floor:.2f}", skip=(FLOOR, "copy"))
    elif not floor_status:
        lines[-1] = "floor: not measured (no floor loops in this run): no fractions of the floor"
    if any(r.vs_pure is not None and r.engine not in ("pure", "copy") for r in results):
        lines += ["", "speed-up over pure (pure's time / this time)"]
        lines += _matrix(
            results, lambda r: "-" if r.vs_pure is None else f"{short_number(r.vs_pure)}x", skip=("pure", FLOOR, "copy")
        )
    lines += ["", "fraction of memory-copy speed (time of numpy.copyto of the same bytes / this time)"]
    lines += _matrix(results, lambda r: "-" if r.vs_copy is None else short_number(r.vs_copy), skip=("copy", FLOOR))
    return "\n".join(lines)


def machine() -> dict[str, object]:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


def _round(value: object) -> object:
    """Floats to four significant digits (the noise is larger), anything else as is."""
    return float(f"{value:.4g}") if isinstance(value, float) else value


def report(
    results: Sequence[Result], rounds: int, peers: dict[str, str] | None = None, floor_status: str | None = None
) -> dict[str, Any]:
    """The JSON document of ``mpss bench --json`` (described in docs/benchmarks.md)."""
    from . import COMBINE_KERNEL, KERNEL, __version__

    floors = {
        r.case: {
            "detail": r.detail,
            "gb_per_s": _round(r.gb_per_s),
            "keystream": r.keystream,
            "keystream_gb_per_s": _round(r.keystream_gb_per_s),
            "bound": _round(r.bound),
        }
        for r in results
        if r.engine == FLOOR
    }
    return {
        "mpss_fast": __version__,
        "kernels": list(native_tiers()),
        "default_kernel": KERNEL,
        "default_combine_kernel": COMBINE_KERNEL,
        "rounds": rounds,
        "machine": machine(),
        "peers": peers or {},
        "floor": {"available": bool(floors), "status": floor_status, "cases": floors},
        "results": [{key: _round(value) for key, value in asdict(r).items()} for r in results],
    }


def plot(results: Sequence[Result], path: str) -> None:
    """Throughput vs size per contender for split and combine, log-log, saved as an image at ``path``."""
    try:
        figure_type = importlib.import_module("matplotlib.figure").Figure  # no pyplot: no global state
    except ImportError:
        raise BenchError(f"--plot needs matplotlib: {PLOT_HINT}") from None
    fig = figure_type(figsize=(10, 4))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, op in zip(axes, ("split", "combine"), strict=True):
        series: dict[str, list[Result]] = {}
        for r in results:
            if r.op == op:
                series.setdefault(r.engine, []).append(r)
        for engine, rows in series.items():
            rows.sort(key=lambda r: r.nbytes)
            style = {"color": "black", "linestyle": "--"} if engine == "copy" else {"marker": "o", "markersize": 3}
            ax.plot([r.nbytes for r in rows], [r.gb_per_s for r in rows], label=engine, **style)
        sizes = sorted({r.nbytes for r in results if r.op == op})
        ax.set(xscale="log", yscale="log", xlabel="secret size", title=f"{op}, k={K} n={N}")
        ax.set_xticks(sizes, [format_size(size).replace(" ", "\u00a0") for size in sizes], fontsize=7)
        ax.minorticks_off()
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("GB/s of secret")
    axes[1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    if path.lower().endswith(".png"):
        _save_small_png(fig, path)
    else:
        fig.savefig(path)  # any other format matplotlib knows from the extension (svg, pdf, ...)


def _save_small_png(fig: Any, path: str) -> None:
    """Save ``fig`` as a 64-colour palette PNG (about a quarter of the size; Pillow comes with matplotlib)."""
    pil_image = importlib.import_module("PIL.Image")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    buf.seek(0)
    with pil_image.open(buf) as image:
        image.convert("RGB").quantize(64).save(path, format="PNG", optimize=True)
