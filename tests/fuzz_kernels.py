"""Fuzz the native kernels against the pure backend with atheris: any difference is a bug.

Run::

    python tests/fuzz_kernels.py -atheris_runs=20000
    python tests/fuzz_kernels.py CORPUS_DIR -max_total_time=60

(libFuzzer adds the inputs it finds to the first corpus directory: pass a copy of
``tests/corpus/kernels``, not the directory itself.) ``python tests/fuzz_kernels.py
--write-corpus DIR`` writes the seed inputs.

Each input chooses a native tier (every one this CPU supports) and in-kernel keystream,
a field polynomial, an operation (``eval_shares``, ``interpolate``, ``xor``, ``xor3``,
``split_keyed`` with a fuzzed key, ``split_small``), a length of 0..4096 bytes, m, n,
the x coordinates, aliasing of ``out`` with an input, and a separate offset of 1..63
bytes into a larger buffer for every input and output, so the SIMD loads and stores
see every alignment and every tail length. The result must equal the pure backend's
byte for byte (``split_small`` draws from the OS: its shares must combine back instead);
the bytes around each buffer and the inputs the kernel may not write must be unchanged.

Coverage: atheris instruments Python bytecode only. The harness and the pure backend
are instrumented; the extension is not (it is built by setuptools without
``-fsanitize=fuzzer``), so libFuzzer gets no edge feedback from inside the C kernels.
The harness makes up for that by decoding every input into explicit choices (tier,
operation, length, offsets, m, n), so that plain mutation reaches all of them.
"""

from __future__ import annotations

import importlib
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mpss_fast._pure as _pure
from mpss_fast import _native

CORPUS = Path(__file__).resolve().parent / "corpus" / "kernels"

TIERS = _native.supported_tiers()
KEYSTREAMS = _native.supported_keystreams()
POLYS = (0x11B, 0x11D)
OPERATIONS = ("eval_shares", "interpolate", "xor", "xor3", "split_keyed", "split_small")
MAX_LENGTH = 4096
GUARD = 64  # bytes before (offset 1..63 + padding) and after each buffer, checked after each call
WORK = 1 << 20  # bound on m * n * length (count * length for interpolate): the pure side is slow

_KERNELS: dict[tuple[str, str], Any] = {}


class Choices:
    """Reads the fuzz input as a sequence of small decisions (zeros once it runs out)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, count: int) -> bytes:
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk + bytes(count - len(chunk))

    def number(self, low: int, high: int) -> int:
        """An integer in ``low..high`` inclusive."""
        return low + int.from_bytes(self.take(2), "little") % (high - low + 1)

    def pick(self, options: Sequence[Any]) -> Any:
        return options[self.take(1)[0] % len(options)]


class Buffers:
    """Buffers at fuzzed offsets inside larger random bytearrays, checked after the native call.

    The bytes around every buffer must be unchanged afterwards, and so must an input's
    own bytes. An output starts random too, so a byte that the kernel skips shows.
    """

    def __init__(self, choices: Choices, rng: random.Random) -> None:
        self.choices = choices
        self.rng = rng
        self.made: list[tuple[bytearray, int, int, bytes]] = []
        self.outputs: set[int] = set()

    def new(self, length: int, *, output: bool = False) -> memoryview:
        offset = self.choices.number(1, 63)
        outer = bytearray(self.rng.randbytes(offset + length + GUARD))
        if output:
            self.outputs.add(len(self.made))
        self.made.append((outer, offset, length, bytes(outer)))
        return memoryview(outer)[offset : offset + length]

    def check(self, where: str) -> None:
        for index, (outer, lo, length, before) in enumerate(self.made):
            hi = lo + length
            if outer[:lo] != before[:lo] or outer[hi:] != before[hi:]:
                raise AssertionError(f"{where}: the kernel wrote outside a buffer (offset {lo}, {length} B)")
            if index not in self.outputs and outer[lo:hi] != before[lo:hi]:
                raise AssertionError(f"{where}: the kernel wrote into input buffer {index}")


def kernels(tier: str, keystream: str) -> Any:
    key = (tier, keystream)
    if key not in _KERNELS:
        _KERNELS[key] = _native.Kernels(tier, keystream)
    return _KERNELS[key]


def distinct_xs(rng: random.Random, count: int) -> bytes:
    return bytes(rng.sample(range(1, 256), count))


def m_and_n(choices: Choices, length: int) -> tuple[int, int, int]:
    """(m, n, length), m in 1..254 and n in 1..255, the length shrunk so the pure side stays quick."""
    m = choices.number(1, 254) if choices.take(1)[0] < 32 else choices.number(1, 12)
    n = choices.number(1, 255) if choices.take(1)[0] < 32 else choices.number(1, 16)
    return m, n, min(length, WORK // (m * n))


def same(operation: str, got: Sequence[memoryview], want: Sequence[Any]) -> None:
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        if bytes(g) != bytes(w):
            raise AssertionError(f"{operation}: output {i} differs from the pure backend")


def check_one_input(data: bytes) -> None:
    """The fuzz property for one input (see the module docstring)."""
    choices = Choices(data)
    tier = choices.pick(TIERS)
    keystream = choices.pick(KEYSTREAMS)
    poly = choices.pick(POLYS)
    operation = choices.pick(OPERATIONS)
    length = choices.number(0, MAX_LENGTH)
    rng = random.Random(choices.take(8))
    native = kernels(tier, keystream)
    bufs = Buffers(choices, rng)
    where = f"{operation} on {tier}/{keystream}, poly {poly:#x}"

    if operation in ("xor", "xor3"):
        count = 2 if operation == "xor" else 3
        ins = [bufs.new(length) for _ in range(count)]
        alias = choices.number(0, count)  # out is ins[alias - 1], or (0) a buffer of its own
        want = bytearray(length)
        pure_ins = [memoryview(bytes(v)) for v in ins]
        getattr(_pure, operation)(*pure_ins, memoryview(want))
        if alias:
            bufs.outputs.add(alias - 1)
        out = ins[alias - 1] if alias else bufs.new(length, output=True)
        getattr(native, operation)(*ins, out)
        same(where, [out], [want])
        bufs.check(where)
        return

    length = max(length, 1)
    if operation == "interpolate":
        count = choices.number(2, 255) if choices.take(1)[0] < 32 else choices.number(2, 16)
        length = min(length, WORK // count)
        xs = distinct_xs(rng, count)
        ys = [bufs.new(length) for _ in range(count)]
        want = bytearray(length)
        _pure.interpolate(poly, xs, [memoryview(bytes(y)) for y in ys], memoryview(want))
        out = bufs.new(length, output=True)
        native.interpolate(poly, xs, ys, out)
        same(where, [out], [want])
        bufs.check(where)
        return

    m, n, length = m_and_n(choices, length)
    xs = distinct_xs(rng, n)
    secret = bufs.new(length)
    if operation == "eval_shares":
        coeffs = [bufs.new(length) for _ in range(m)]
        wants = [bytearray(length) for _ in range(n)]
        _pure.eval_shares(poly, secret, coeffs, xs, [memoryview(w) for w in wants])
        outs = [bufs.new(length, output=True) for _ in range(n)]
        native.eval_shares(poly, secret, coeffs, xs, outs)
        same(where, outs, wants)
    elif operation == "split_keyed":
        key = choices.take(32)
        wants = [bytearray(length) for _ in range(n)]
        _pure.split_keyed(poly, secret, m, xs, [memoryview(w) for w in wants], key)
        outs = [bufs.new(length, output=True) for _ in range(n)]
        native.split_keyed(poly, secret, m, xs, outs, key)
        same(where, outs, wants)
    else:  # split_small: coefficients from the OS, so check that the shares combine back
        shares = native.split_small(poly, secret, m, xs)
        if (shares is None) != (m * length > _native.SMALL_SPLIT_BYTES):
            raise AssertionError(f"{where}: returned {shares!r:.20} for m * length = {m * length}")
        if shares is not None:
            if [(len(s), s[0]) for s in shares] != [(length + 1, x) for x in xs]:
                raise AssertionError(f"{where}: shares of the wrong length or x")
            if n > m:
                chosen = rng.sample(shares, m + 1)
                back = bytearray(length)
                _pure.interpolate(
                    poly, bytes(s[0] for s in chosen), [memoryview(s)[1:] for s in chosen], memoryview(back)
                )
                if back != bytes(secret):
                    raise AssertionError(f"{where}: m + 1 shares do not combine to the secret")
    bufs.check(where)


def seed_inputs() -> dict[str, bytes]:
    """One seed per operation (deterministic), plus a few lengths around SIMD widths."""

    def encode(tier: int, ks: int, poly: int, op: int, length: int, rest: bytes) -> bytes:
        return bytes([tier, ks, poly, op]) + length.to_bytes(2, "little") + bytes(range(8)) + rest

    offsets = bytes(range(1, 64)) * 4
    seeds = {
        "xor-97.bin": encode(0, 0, 0, 2, 97, offsets),
        "xor3-in-place.bin": encode(1, 0, 1, 3, 4095, bytes([5, 9, 13, 2, 0]) + offsets),
        "eval-k3-n5.bin": encode(0, 0, 0, 0, 65, bytes([255, 2, 0, 255, 5, 0]) + offsets),
        "eval-many-rows.bin": encode(2, 0, 1, 0, 33, bytes([0, 200, 0, 0, 3, 0]) + offsets),
        "interpolate-3.bin": encode(3, 0, 0, 1, 31, bytes([255, 1, 0]) + offsets),
        "split-keyed.bin": encode(4, 1, 1, 4, 129, bytes([255, 2, 0, 255, 5, 0]) + offsets),
        "split-small.bin": encode(5, 0, 0, 5, 64, bytes([255, 3, 0, 255, 7, 0]) + offsets),
    }
    return seeds


def write_corpus(directory: Path) -> None:
    """Write ``seed_inputs()`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in seed_inputs().items():
        (directory / name).write_bytes(data)


def main(argv: list[str]) -> None:
    """Write the corpus, or hand ``argv`` to libFuzzer with the harness and the pure backend instrumented."""
    global _pure
    if len(argv) == 3 and argv[1] == "--write-corpus":
        write_corpus(Path(argv[2]))
        return
    import atheris  # type: ignore[import-untyped]

    # The pure backend again under instrumentation (the native module stays as it is).
    for name in ("mpss_fast._pure", "mpss_fast._gf256"):
        sys.modules.pop(name, None)
    with atheris.instrument_imports(include=["mpss_fast._pure", "mpss_fast._gf256"]):
        _pure = importlib.import_module("mpss_fast._pure")
    module = sys.modules[__name__]
    for name in ("check_one_input", "m_and_n", "same", "Choices", "Buffers"):
        value = getattr(module, name)
        if isinstance(value, type):
            for attr, fn in list(vars(value).items()):
                if callable(fn):
                    setattr(value, attr, atheris.instrument_func(fn))
        else:
            setattr(module, name, atheris.instrument_func(value))
    atheris.Setup(argv, check_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
