"""The catalogue of bad inputs: each raises one specific exception type, identically on every backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from mpss_fast import Engine, InputTypeError, MpssError, ParameterError, ShareError

SECRETS = np.zeros((4, 8), dtype=np.uint8)
SHARES = np.zeros((3, 4, 8), dtype=np.uint8)
GOOD = [b"\x01abc", b"\x02def"]

CASES: list[tuple[str, Callable[[Engine], Any], type[Exception]]] = [
    # k and n
    ("k too small", lambda e: e.split(b"s", 1, 3), ParameterError),
    ("k zero", lambda e: e.split(b"s", 0, 3), ParameterError),
    ("n too small", lambda e: e.split(b"s", 2, 1), ParameterError),
    ("n too large", lambda e: e.split(b"s", 2, 256), ParameterError),
    ("k too large", lambda e: e.split(b"s", 256, 256), ParameterError),
    ("k > n", lambda e: e.split(b"s", 4, 3), ParameterError),
    ("k float", lambda e: e.split(b"s", 2.0, 3), InputTypeError),
    ("n str", lambda e: e.split(b"s", 2, "3"), InputTypeError),
    ("k bool", lambda e: e.split(b"s", True, 3), InputTypeError),
    # polynomial
    ("poly unknown", lambda e: e.split(b"s", 2, 3, poly=0x11C), ParameterError),
    ("poly 8-bit", lambda e: e.combine(GOOD, poly=0x1B), ParameterError),
    ("poly str", lambda e: e.combine(GOOD, poly="0x11b"), InputTypeError),
    # x coordinates
    ("x zero", lambda e: e.split(b"s", 2, 3, xs=[0, 1, 2]), ParameterError),
    ("x too large", lambda e: e.split(b"s", 2, 3, xs=[1, 2, 256]), ParameterError),
    ("x negative", lambda e: e.split(b"s", 2, 3, xs=[1, 2, -1]), ParameterError),
    ("x duplicate", lambda e: e.split(b"s", 2, 3, xs=[1, 2, 2]), ParameterError),
    ("xs wrong count", lambda e: e.split(b"s", 2, 3, xs=[1, 2]), ParameterError),
    ("xs not ints", lambda e: e.split(b"s", 2, 2, xs=["a", "b"]), InputTypeError),
    ("xs str", lambda e: e.split(b"s", 2, 2, xs="12"), InputTypeError),
    ("xs int", lambda e: e.split(b"s", 2, 2, xs=12), InputTypeError),
    # secret
    ("empty secret", lambda e: e.split(b"", 2, 3), ParameterError),
    ("str secret", lambda e: e.split("secret", 2, 3), InputTypeError),
    ("int secret", lambda e: e.split(12345, 2, 3), InputTypeError),
    ("None secret", lambda e: e.split(None, 2, 3), InputTypeError),
    ("list secret", lambda e: e.split([1, 2, 3], 2, 3), InputTypeError),
    ("int16 secret", lambda e: e.split(np.zeros(4, dtype=np.int16), 2, 3), InputTypeError),
    ("float secret", lambda e: e.split(np.zeros(4), 2, 3), InputTypeError),
    ("non-contiguous secret", lambda e: e.split(np.zeros(8, np.uint8)[::2], 2, 3), ParameterError),
    # rng
    ("rng not callable", lambda e: e.split(b"s", 2, 3, rng=b"1234"), InputTypeError),
    ("rng short", lambda e: e.split(b"ss", 2, 3, rng=lambda n: bytes(n - 1)), ParameterError),
    ("rng long", lambda e: e.split(b"ss", 2, 3, rng=lambda n: bytes(n + 1)), ParameterError),
    ("rng returns str", lambda e: e.split(b"ss", 2, 3, rng=lambda n: "x" * n), InputTypeError),
    # shares
    ("no shares", lambda e: e.combine([]), ShareError),
    ("one share", lambda e: e.combine([b"\x01abc"]), ShareError),
    ("duplicate x", lambda e: e.combine([b"\x01abc", b"\x01def"]), ShareError),
    ("zero x", lambda e: e.combine([b"\x00abc", b"\x01def"]), ShareError),
    ("unequal lengths", lambda e: e.combine([b"\x01abc", b"\x02de"]), ShareError),
    ("share without data", lambda e: e.combine([b"\x01", b"\x02"]), ShareError),
    ("empty share", lambda e: e.combine([b"", b"\x02a"]), ShareError),
    ("shares is bytes", lambda e: e.combine(b"\x01a\x02b"), InputTypeError),
    ("shares is None", lambda e: e.combine(None), InputTypeError),
    ("share is str", lambda e: e.combine(["\x01a", "\x02b"]), InputTypeError),
    ("share is int", lambda e: e.combine([1, 2]), InputTypeError),
    ("too many shares", lambda e: e.combine([bytes([i % 256, 1]) for i in range(1, 258)]), ShareError),
    # bulk split
    ("secrets list", lambda e: e.split_array([[1, 2]], 2, 3), InputTypeError),
    ("secrets bytes", lambda e: e.split_array(b"ab", 2, 3), InputTypeError),
    ("secrets int16", lambda e: e.split_array(np.zeros((2, 2), np.int16), 2, 3), InputTypeError),
    ("secrets 1-D", lambda e: e.split_array(np.zeros(4, np.uint8), 2, 3), ParameterError),
    ("secrets 3-D", lambda e: e.split_array(np.zeros((1, 2, 2), np.uint8), 2, 3), ParameterError),
    ("secrets non-contiguous", lambda e: e.split_array(np.zeros((4, 4), np.uint8)[:, ::2], 2, 3), ParameterError),
    ("secrets Fortran", lambda e: e.split_array(np.asfortranarray(np.zeros((3, 4), np.uint8)), 2, 3), ParameterError),
    ("secrets no rows", lambda e: e.split_array(np.zeros((0, 4), np.uint8), 2, 3), ParameterError),
    ("secrets no columns", lambda e: e.split_array(np.zeros((4, 0), np.uint8), 2, 3), ParameterError),
    ("out wrong shape", lambda e: e.split_array(SECRETS, 2, 3, out=np.zeros((2, 4, 8), np.uint8)), ParameterError),
    ("out wrong dtype", lambda e: e.split_array(SECRETS, 2, 3, out=np.zeros((3, 4, 8), np.int32)), InputTypeError),
    ("out not array", lambda e: e.split_array(SECRETS, 2, 3, out=bytearray(96)), InputTypeError),
    ("out read-only", lambda e: e.split_array(SECRETS, 2, 3, out=_read_only((3, 4, 8))), ParameterError),
    (
        "out non-contiguous",
        lambda e: e.split_array(SECRETS, 2, 3, out=np.zeros((3, 4, 16), np.uint8)[:, :, ::2]),
        ParameterError,
    ),
    ("out overlaps secrets", lambda e: _overlapping_split(e), ParameterError),
    # bulk combine
    ("shares 2-D", lambda e: e.combine_array(np.zeros((3, 8), np.uint8), [1, 2, 3]), ParameterError),
    ("shares float", lambda e: e.combine_array(np.zeros((3, 4, 8)), [1, 2, 3]), InputTypeError),
    ("one share row", lambda e: e.combine_array(SHARES[:1], [1]), ShareError),
    ("xs count", lambda e: e.combine_array(SHARES, [1, 2]), ShareError),
    ("xs duplicate", lambda e: e.combine_array(SHARES, [1, 2, 2]), ShareError),
    ("xs zero", lambda e: e.combine_array(SHARES, [0, 1, 2]), ShareError),
    ("xs none", lambda e: e.combine_array(SHARES, None), InputTypeError),
    ("combine out shape", lambda e: e.combine_array(SHARES, [1, 2, 3], out=np.zeros((4, 7), np.uint8)), ParameterError),
    ("combine out read-only", lambda e: e.combine_array(SHARES, [1, 2, 3], out=_read_only((4, 8))), ParameterError),
    # xor
    ("xor unequal", lambda e: e.xor(b"ab", b"a"), ParameterError),
    ("xor str", lambda e: e.xor("ab", b"ab"), InputTypeError),
    ("xor None", lambda e: e.xor(b"ab", None), InputTypeError),
    ("xor_into read-only out", lambda e: e.xor_into(b"ab", b"cd", b"xx"), ParameterError),
    ("xor_into short out", lambda e: e.xor_into(b"ab", b"cd", bytearray(1)), ParameterError),
    ("xor_into partial overlap", lambda e: _partial_overlap_xor(e), ParameterError),
]


def _read_only(shape: tuple[int, ...]) -> np.ndarray:
    arr = np.zeros(shape, dtype=np.uint8)
    arr.flags.writeable = False
    return arr


def _overlapping_split(engine: Engine) -> Any:
    buf = np.zeros((3, 4, 8), dtype=np.uint8)
    return engine.split_array(buf[0], 2, 3, out=buf)


def _partial_overlap_xor(engine: Engine) -> Any:
    buf = bytearray(10)
    view = memoryview(buf)
    return engine.xor_into(view[0:8], view[0:8], view[2:10])


@pytest.mark.parametrize(("call", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises(engine: Engine, call, expected: type[Exception]) -> None:
    with pytest.raises(expected) as info:
        call(engine)
    assert isinstance(info.value, MpssError)
    assert str(info.value)


@pytest.mark.parametrize(("call", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_same_error_on_every_backend(both_engines: tuple[Engine, Engine], call, expected) -> None:
    messages = []
    for engine in both_engines:
        with pytest.raises(expected) as info:
            call(engine)
        messages.append((type(info.value), str(info.value)))
    assert messages[0] == messages[1]


def test_errors_are_builtin_compatible() -> None:
    assert issubclass(ParameterError, ValueError)
    assert issubclass(ShareError, ValueError)
    assert issubclass(InputTypeError, TypeError)


def test_messages_never_contain_secret_bytes(engine: Engine) -> None:
    secret = b"TOPSECRETMARKER!"
    share = engine.split(secret, 2, 2)[0]
    calls = [
        lambda: engine.combine([share, share]),
        lambda: engine.combine([share, share[:-1]]),
        lambda: engine.split(secret, 3, 2),
        lambda: engine.split(secret, 2, 2, rng=lambda n: secret[: n - 1]),
        lambda: engine.xor(secret, secret[:-1]),
    ]
    for call in calls:
        with pytest.raises(MpssError) as info:
            call()
        text = str(info.value) + repr(info.value)
        assert "TOPSECRET" not in text and secret.hex() not in text
        assert share[1:].hex()[:8] not in text


def test_overlarge_secret_rejected_before_work(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The 1 GiB limit, checked without allocating a gigabyte (the limit is lowered for the test)."""
    from mpss_fast import _validate

    monkeypatch.setattr(_validate, "MAX_SECRET_BYTES", 16)
    with pytest.raises(ParameterError, match="limit"):
        engine.split(bytes(17), 2, 3)
    assert engine.combine(engine.split(bytes(16), 2, 3)) == bytes(16)
