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
