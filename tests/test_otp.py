"""XOR one-time-pad primitive: correctness, in-place use, buffer types, large buffers."""

from __future__ import annotations

import os

import numpy as np
import pytest

from mpss_fast import Engine


@pytest.mark.parametrize("length", [0, 1, 7, 31, 32, 33, 4096, 100_003])
def test_xor_matches_numpy(engine: Engine, length: int) -> None:
    a, b = os.urandom(length), os.urandom(length)
    expected = (np.frombuffer(a, np.uint8) ^ np.frombuffer(b, np.uint8)).tobytes()
    assert engine.xor(a, b) == expected
    out = bytearray(length)
    assert engine.xor_into(a, b, out) == length
    assert out == expected


def test_relay_hop_round_trip(engine: Engine) -> None:
    """Encrypt with one link key, decrypt, re-encrypt with the next: the share survives."""
    share = os.urandom(33)
    k1, k2 = os.urandom(33), os.urandom(33)
    c1 = engine.xor(share, k1)
    c2 = engine.xor(engine.xor(c1, k1), k2)
    assert engine.xor(c2, k2) == share
    assert c1 != share and c2 != c1


def test_xor_into_in_place(engine: Engine) -> None:
    data = bytearray(os.urandom(1000))
    original = bytes(data)
    pad = os.urandom(1000)
    engine.xor_into(data, pad, data)
    engine.xor_into(pad, data, data)
    assert data == original


def test_xor_into_numpy_and_memoryview(engine: Engine) -> None:
    a = np.frombuffer(os.urandom(64), np.uint8)
    b = memoryview(os.urandom(64))
    out = np.zeros(64, dtype=np.uint8)
    engine.xor_into(a, b, out)
    np.testing.assert_array_equal(out, a ^ np.frombuffer(b, np.uint8))
    view = memoryview(bytearray(80))[8:72]
    engine.xor_into(a, b, view)
    assert bytes(view) == out.tobytes()


@pytest.mark.parametrize("length", [0, 1, 31, 32, 33, 63, 64, 65, 4097, 100_003])
def test_reencrypt_is_one_relay_hop(engine: Engine, length: int) -> None:
    share, k_in, k_out = os.urandom(length), os.urandom(length), os.urandom(length)
    wire_in = engine.xor(share, k_in)
    wire_out = engine.reencrypt(wire_in, k_in, k_out)
    assert type(wire_out) is bytes
    assert wire_out == engine.xor(share, k_out)
    out = bytearray(length)
    assert engine.reencrypt_into(wire_in, k_in, k_out, out) == length
    assert out == wire_out


@pytest.mark.parametrize("alias", ["data", "key_in", "key_out"])
def test_reencrypt_into_in_place(engine: Engine, alias: str) -> None:
    data, k_in, k_out = (bytearray(os.urandom(100)) for _ in range(3))
    expected = bytes(a ^ b ^ c for a, b, c in zip(data, k_in, k_out, strict=True))
    target = {"data": data, "key_in": k_in, "key_out": k_out}[alias]
    engine.reencrypt_into(data, k_in, k_out, target)
    assert target == expected


def test_reencrypt_rejects_bad_input(engine: Engine) -> None:
    from mpss_fast import InputTypeError, ParameterError

    with pytest.raises(ParameterError, match="data and key_out must have equal lengths"):
        engine.reencrypt(b"abc", b"abc", b"ab")
    with pytest.raises(InputTypeError):
        engine.reencrypt("abc", b"abc", b"abc")
    buf = bytearray(12)
    view = memoryview(buf)
    with pytest.raises(ParameterError, match="partially overlaps"):
        engine.reencrypt_into(view[0:8], view[0:8], view[0:8], view[4:12])


def test_partial_overlap_is_found_through_read_only_views(engine: Engine) -> None:
    """A read-only view of a writable buffer still shares its memory: out may not half-overlap it."""
    from mpss_fast import ParameterError

    buf = bytearray(12)
    with pytest.raises(ParameterError, match="partially overlaps b"):
        engine.xor_into(bytes(8), memoryview(buf)[0:8].toreadonly(), memoryview(buf)[4:12])
    arr = np.zeros(12, dtype=np.uint8)
    frozen = arr[2:10]
    frozen.flags.writeable = False
    with pytest.raises(ParameterError, match="partially overlaps a"):
        engine.xor_into(frozen, bytes(8), arr[0:8])
    # the same memory exactly is in place, and a bytes input never overlaps anything
    target = bytearray(b"\x0f" * 8)
    assert engine.xor_into(memoryview(target).toreadonly(), b"\xff" * 8, target) == 8
    assert target == b"\xf0" * 8
