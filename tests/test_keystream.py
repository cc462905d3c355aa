"""The split coefficients: AES-256-CTR rows, made inside the kernels or by ``cryptography``.

Every in-kernel keystream this CPU runs (VAES, AES-NI) must give exactly the bytes of
``cryptography``'s AES-256-CTR for the same key and counter block, and a keyed split must
give the same shares on every backend, tier and keystream for the same key.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from mpss_fast import Engine, _backend
from mpss_fast import _pure as pure
from mpss_fast._random import row_counter

from .conftest import load_kernels
from .rng import seeded_rng

native = pytest.importorskip("mpss_fast._native") if _backend.native_tiers() else None
IN_KERNEL = native.supported_keystreams()[:-1] if native else ()


def _reference(key: bytes, row: int, first_block: int, nblocks: int) -> bytes:
    encryptor = Cipher(algorithms.AES256(key), modes.CTR(row_counter(row, first_block))).encryptor()
    return encryptor.update(bytes(16 * nblocks)) + encryptor.finalize()


def test_this_cpu_has_an_in_kernel_keystream() -> None:
    """On x86 with AES-NI (every CI machine) the fast path exists; elsewhere this fails loudly."""
    assert native is not None
    assert "aesni" in IN_KERNEL


@pytest.mark.parametrize("name", IN_KERNEL)
@pytest.mark.parametrize(
    ("row", "first_block", "nblocks"),
    [
        (0, 0, 0),
        (0, 0, 1),
        (0, 0, 3),
        (0, 0, 4),
        (1, 0, 31),
        (1, 5, 32),
        (2, 7, 33),
        (253, 1, 100),
        (7, 2**40 + 3, 67),
        (2**64 - 1, 2**64 - 40, 37),
        (3, 0, 4096),
    ],
)
def test_keystream_matches_cryptography(name: str, row: int, first_block: int, nblocks: int) -> None:
    key = seeded_rng(f"key-{row}-{first_block}".encode())(32)
    assert native.keystream(name, key, row, first_block, nblocks) == _reference(key, row, first_block, nblocks)


@pytest.mark.parametrize("name", IN_KERNEL)
def test_keystream_depends_on_every_key_byte(name: str) -> None:
    key = bytearray(seeded_rng(b"key")(32))
    base = native.keystream(name, bytes(key), 0, 0, 4)
    for i in range(32):
        key[i] ^= 1
        assert native.keystream(name, bytes(key), 0, 0, 4) != base
        assert native.keystream(name, bytes(key), 0, 0, 4) == _reference(bytes(key), 0, 0, 4)
        key[i] ^= 1


def _keyed_shares(kernels, secret: bytes, m: int, xs: bytes, key: bytes) -> list[bytes]:
    outs = [bytearray(len(secret)) for _ in xs]
    kernels.split_keyed(0x11B, memoryview(secret), m, xs, [memoryview(o) for o in outs], key)
    return [bytes(o) for o in outs]


def _kernel_variants() -> list[str]:
    return [f"native-{tier}/{ks}" for tier in _backend.native_tiers() for ks in native.supported_keystreams()]


@pytest.mark.parametrize("variant", _kernel_variants())
@pytest.mark.parametrize("length", [1, 15, 16, 17, 64, 100, 1023, 16384, 16385, 32768 + 48, 70001])
@pytest.mark.parametrize(("m", "n"), [(1, 2), (2, 5), (4, 9), (9, 12)])
def test_keyed_split_same_bytes_everywhere(variant: str, length: int, m: int, n: int) -> None:
    """Native tier x keystream == pure (``cryptography`` rows + translate) for the same key."""
    tier, ks = variant.split("/")
    kern = native.Kernels(tier.removeprefix("native-"), ks)
    rng = seeded_rng(f"{length}-{m}-{n}".encode())
    secret, key = rng(length), rng(32)
    xs = bytes(range(1, n + 1))
    assert _keyed_shares(kern, secret, m, xs, key) == _keyed_shares(pure, secret, m, xs, key)


def test_keyed_split_across_chunks_matches_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pure's chunked rows continue the one keystream: share at x=1 of a zero secret, k=2, is row 0."""
    import mpss_fast._random as random_mod

    monkeypatch.setattr(random_mod, "KEYED_CHUNK_BYTES", 4096)
    key = seeded_rng(b"chunks")(32)
    length = 3 * 4096 + 5
    (share,) = _keyed_shares(pure, bytes(length), 1, b"\x01", key)
    assert share == _reference(key, 0, 0, (length + 15) // 16)[:length]


@pytest.mark.parametrize("kernel_id", ["pure", *(f"native-{t}" for t in _backend.native_tiers())])
def test_coefficients_are_the_documented_rows(kernel_id: str) -> None:
    """k=3, zero secret: the shares at x=1,2,3 determine c1 and c2; they are rows 0 and 1 of the keystream."""
    kern = load_kernels(kernel_id)
    key = seeded_rng(b"rows")(32)
    length = 5000
    y1, y2, y3 = (np.frombuffer(s, dtype=np.uint8) for s in _keyed_shares(kern, bytes(length), 2, b"\x01\x02\x03", key))
    # y(x) = c1 x + c2 x^2 over GF(2^8)/0x11B: y1 = c1 + c2, y2 = 2 c1 + 4 c2, y3 = 3 c1 + 5 c2.
    import galois

    gf = galois.GF(2**8, irreducible_poly=0x11B)
    a = gf([[1, 1], [2, 4]])
    c = np.linalg.solve(a, gf(np.vstack([y1, y2])))
    assert bytes(np.asarray(c[0], dtype=np.uint8)) == _reference(key, 0, 0, 313)[:length]
    assert bytes(np.asarray(c[1], dtype=np.uint8)) == _reference(key, 1, 0, 313)[:length]
    assert bytes(np.asarray(gf(3) * c[0] + gf(5) * c[1], dtype=np.uint8)) == bytes(y3)


def test_engine_default_path_is_keyed(engine: Engine) -> None:
    """Without an rng the engine asks the kernels for a keyed split, with a fresh key each time."""
    secret = np.zeros((1, 1 << 14), dtype=np.uint8)
    a = engine.split_array(secret, 2, 2)[0, 0]
    b = engine.split_array(secret, 2, 2)[0, 0]
    assert a.tobytes() != b.tobytes()
    assert engine.keystream in ("cryptography", *IN_KERNEL)


def _tiers_and_keystreams() -> list[str]:
    return [f"{tier}/{ks}" for tier in _backend.native_tiers() for ks in IN_KERNEL if ks != "aesni"]


def _split_into(kern: Any, secret: bytes, m: int, xs: bytes, key: bytes, offset: int) -> list[bytes]:
    """A keyed split into outputs that start ``offset`` bytes into their buffers (alignment cases)."""
    length = len(secret)
    bufs = [bytearray(length + 256) for _ in xs]
    starts = [offset + i * 16 * (offset % 2) for i in range(len(xs))]  # odd offsets: unlike alignments too
    outs = [memoryview(b)[s : s + length] for s, b in zip(starts, bufs, strict=True)]
    kern.split_keyed(0x11B, memoryview(secret), m, xs, outs, key)
    return [bytes(o) for o in outs]


@pytest.mark.parametrize("variant", _tiers_and_keystreams())
@pytest.mark.parametrize("m", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("n", [1, 3, 5, 8])
@pytest.mark.parametrize("length", [575, 576, 1151, 1152, 1153, 4096 + 17, 9 * 64 * 7 + 48])
def test_fused_keystream_split_equals_the_buffered_one(variant: str, m: int, n: int, length: int) -> None:
    """The fused split (coefficients made in registers) gives the bytes of the buffered AES-NI split."""
    tier, ks = variant.split("/")
    fused, buffered = native.Kernels(tier, ks), native.Kernels(tier, "aesni")
    rng = seeded_rng(f"fused-{m}-{n}-{length}".encode())
    secret, key = rng(length), rng(32)
    xs = bytes(rng(1)[0] % 200 + 1 + i for i in range(n))
    for offset in (0, 1, 16, 48):
        assert _split_into(fused, secret, m, xs, key, offset) == _split_into(buffered, secret, m, xs, key, 0)


@pytest.mark.parametrize("variant", _tiers_and_keystreams())
@pytest.mark.parametrize("offset", [0, 16, 5, 33])
def test_fused_split_with_streaming_stores(variant: str, offset: int) -> None:
    """Outputs large enough for non-temporal stores, aligned and not, alike or not: the same bytes."""
    tier, ks = variant.split("/")
    fused, buffered = native.Kernels(tier, ks), native.Kernels(tier, "aesni")
    rng = seeded_rng(f"stream-{offset}".encode())
    length = (2 << 20) + 123  # 5 outputs: above the 8 MiB streaming threshold
    secret, key = rng(length), rng(32)
    xs = b"\x01\x02\x03\x04\x05"
    assert _split_into(fused, secret, 2, xs, key, offset) == _split_into(buffered, secret, 2, xs, key, 0)
