"""The streaming API: streamed shares equal one-shot shares under the same coefficient source, on every tier."""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mpss_fast
from mpss_fast import (
    POLY_AES,
    POLY_GFSHARE,
    CombineStream,
    Engine,
    InputTypeError,
    ParameterError,
    ShareError,
    SplitStream,
    StreamStateError,
    _random,
    combine_stream,
    split_stream,
)
from mpss_fast import engine as engine_module
from tests.rng import seeded_rng

FIXTURE_OK = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _cuts(data: st.DataObject, length: int) -> list[int]:
    """Random chunk lengths summing to ``length`` (zero-length chunks included)."""
    sizes = []
    left = length
    while left:
        if data.draw(st.booleans()):
            sizes.append(0)
        size = data.draw(st.integers(1, min(left, 300)))
        sizes.append(size)
        left -= size
    return sizes


def _stream(stream: SplitStream, secret: bytes, sizes: list[int]) -> list[bytes]:
    got = [bytearray() for _ in range(stream.n)]
    pos = 0
    for size in sizes:
        for g, v in zip(got, stream.update(secret[pos : pos + size]), strict=True):
            g += v
        pos += size
    for g, v in zip(got, stream.finish(), strict=True):
        g += v
    return [bytes(g) for g in got]


def _kn(data: st.DataObject) -> tuple[int, int]:
    n = data.draw(st.integers(2, 6))
    return data.draw(st.integers(2, n)), n


@FIXTURE_OK
@given(data=st.data())
def test_keyed_stream_equals_one_shot_keyed_split(engine: Engine, monkeypatch: pytest.MonkeyPatch, data: Any) -> None:
    """No rng: the AES-CTR rows continue across chunks, as the one-shot split under the same key makes them."""
    monkeypatch.setattr(_random, "KEYED_CHUNK_BYTES", 64)  # sub-blocks inside a chunk too
    k, n = _kn(data)
    poly = data.draw(st.sampled_from([POLY_AES, POLY_GFSHARE]))
    secret = data.draw(st.binary(min_size=1, max_size=900))
    key = data.draw(st.binary(min_size=32, max_size=32))
    xs = bytes(data.draw(st.lists(st.integers(1, 255), min_size=n, max_size=n, unique=True)))
    outs = [bytearray(len(secret)) for _ in range(n)]
    engine._kernels.split_keyed(poly, memoryview(secret), k - 1, xs, [memoryview(o) for o in outs], key)
    stream = SplitStream(k, n, poly=poly, xs=xs, engine=engine, _key=key)
    assert _stream(stream, secret, _cuts(data, len(secret))) == [bytes(o) for o in outs]
    assert stream.position == len(secret)


@FIXTURE_OK
@given(data=st.data())
def test_rng_stream_equals_split_and_split_array(engine: Engine, monkeypatch: pytest.MonkeyPatch, data: Any) -> None:
    """With an injected rng: the same rng calls, so the same bytes as split() and split_array()."""
    monkeypatch.setattr(engine_module, "COEFF_CHUNK_BYTES", data.draw(st.integers(1, 200)))
    k, n = _kn(data)
    poly = data.draw(st.sampled_from([POLY_AES, POLY_GFSHARE]))
    secret = data.draw(st.binary(min_size=1, max_size=700))
    seed = data.draw(st.binary(min_size=1, max_size=8))
    one_shot = engine.split(secret, k, n, poly=poly, rng=seeded_rng(seed))
    arr = engine.split_array(np.frombuffer(secret, np.uint8).reshape(1, -1), k, n, poly=poly, rng=seeded_rng(seed))
    stream = SplitStream(k, n, poly=poly, rng=seeded_rng(seed), engine=engine)
    streamed = _stream(stream, secret, _cuts(data, len(secret)))
    assert streamed == [s[1:] for s in one_shot]
    assert streamed == [arr[i].tobytes() for i in range(n)]


@FIXTURE_OK
@given(data=st.data())
def test_update_into_equals_update_and_combine_stream_rebuilds(engine: Engine, data: Any) -> None:
    k, n = _kn(data)
    secret = data.draw(st.binary(min_size=1, max_size=600))
    key = os.urandom(32)
    sizes = _cuts(data, len(secret))
    expected = _stream(SplitStream(k, n, engine=engine, _key=key), secret, sizes)
    stream = SplitStream(k, n, engine=engine, _key=key)
    outs = [bytearray(300) for _ in range(n)]
    got = [bytearray() for _ in range(n)]
    pos = 0
    for size in sizes:
        assert stream.update_into(secret[pos : pos + size], outs) == size
        for g, o in zip(got, outs, strict=True):
            g += o[:size]
        pos += size
    assert stream.finish_into(outs) == 0
    assert [bytes(g) for g in got] == expected
    # Any k of the streams, in any chunking, rebuild the secret.
    pick = sorted(data.draw(st.permutations(range(n)))[:k])
    combiner = CombineStream([i + 1 for i in pick], engine=engine)
    rebuilt = bytearray()
    pos = 0
    for size in _cuts(data, len(secret)):
        rebuilt += combiner.update([expected[i][pos : pos + size] for i in pick])
        pos += size
    assert bytes(rebuilt) == secret
    assert engine.combine([bytes([i + 1]) + expected[i] for i in pick]) == secret


def test_keyed_streams_differ_without_a_key(engine: Engine) -> None:
    secret = bytes(1000)
    a = _stream(SplitStream(2, 2, engine=engine), secret, [1000])
    b = _stream(SplitStream(2, 2, engine=engine), secret, [1000])
    assert a[0] != b[0]
    assert engine.combine([b"\x01" + a[0], b"\x02" + a[1]]) == secret


def test_update_reuses_its_buffers_and_close_wipes_them(engine: Engine) -> None:
    stream = SplitStream(3, 4, engine=engine)
    first = stream.update(b"a" * 4096)
    second = stream.update(b"b" * 4096)
    assert all(f.obj is s.obj for f, s in zip(first, second, strict=True))
    assert any(second[0])
    stream.close()
    assert not any(second[0])
    with pytest.raises(StreamStateError):
        stream.update(b"x")
    with pytest.raises(StreamStateError):
        stream.finish()


def test_rng_stream_lags_by_whole_blocks(monkeypatch: pytest.MonkeyPatch, engine: Engine) -> None:
    monkeypatch.setattr(engine_module, "COEFF_CHUNK_BYTES", 20)  # k=3: blocks of 10 bytes
    stream = SplitStream(3, 3, rng=seeded_rng(b"s"), engine=engine)
    assert [len(v) for v in stream.update(b"x" * 7)] == [0, 0, 0]
    assert stream.pending == 7 and stream.max_output(5) == 12
    assert [len(v) for v in stream.update(b"x" * 25)] == [30, 30, 30]
    assert stream.pending == 2
    assert [len(v) for v in stream.finish()] == [2, 2, 2]
    with pytest.raises(StreamStateError):
        stream.update(b"x")


def test_split_and_combine_stream_over_files(engine: Engine) -> None:
    secret = os.urandom(300_001)
    writers = [io.BytesIO() for _ in range(5)]
    assert split_stream(io.BytesIO(secret), writers, 3, chunk_size=65536, engine=engine) == len(secret)
    shares = [w.getvalue() for w in writers]
    assert all(len(s) == len(secret) for s in shares)
    out = io.BytesIO()
    readers = [io.BytesIO(shares[i]) for i in (4, 1, 2)]
    assert combine_stream(readers, out, [5, 2, 3], chunk_size=70_000, engine=engine) == len(secret)
    assert out.getvalue() == secret


def test_split_stream_with_rng_equals_split(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module, "COEFF_CHUNK_BYTES", 1000)
    secret = os.urandom(10_007)
    writers = [io.BytesIO() for _ in range(4)]
    split_stream(io.BytesIO(secret), writers, 3, rng=seeded_rng(b"r"), chunk_size=333, poly=POLY_GFSHARE)
    expected = mpss_fast.split(secret, 3, 4, rng=seeded_rng(b"r"), poly=POLY_GFSHARE)
    assert [w.getvalue() for w in writers] == [s[1:] for s in expected]


def test_combine_stream_refuses_xs_of_another_count() -> None:
    with pytest.raises(ShareError, match="xs has 3 entries for 2 readers"):
        combine_stream([io.BytesIO(b"ab"), io.BytesIO(b"cd")], io.BytesIO(), [1, 2, 3])


def test_combine_stream_refuses_unequal_readers() -> None:
    with pytest.raises(ShareError, match="differ in length"):
        combine_stream([io.BytesIO(b"abcd"), io.BytesIO(b"abc")], io.BytesIO(), [1, 2], chunk_size=2)


class _Spy:
    """Kernels that record whether anything ran."""

    def __init__(self, kernels: Any) -> None:
        self._kernels = kernels
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._kernels, name)
        if callable(attr):

            def wrapped(*args: Any, **kwargs: Any) -> Any:
                self.calls += 1
                return attr(*args, **kwargs)

            return wrapped
        return attr


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda e: SplitStream(1, 3, engine=e), ParameterError, "k must be"),
        (lambda e: SplitStream(4, 3, engine=e), ParameterError, "must not exceed"),
        (lambda e: SplitStream(2, 3, poly=0x11C, engine=e), ParameterError, "poly"),
        (lambda e: SplitStream(2, 3, xs=[1, 1, 2], engine=e), ParameterError, "distinct"),
        (lambda e: SplitStream(2, 3, _key=b"short", engine=e), ParameterError, "32 bytes"),
        (lambda e: SplitStream(2, 3, engine=object()), InputTypeError, "engine"),
        (lambda e: SplitStream(2, 3, engine=e).update("text"), InputTypeError, "str"),
        (lambda e: SplitStream(2, 3, engine=e).update_into(b"abc", [bytearray(3)] * 2), ParameterError, "3 buffers"),
        (lambda e: SplitStream(2, 2, engine=e).update_into(b"abc", [bytearray(2)] * 2), ParameterError, "at least 3"),
        (lambda e: SplitStream(2, 2, engine=e).update_into(b"abc", [b"xyz", bytearray(3)]), ParameterError, "writ"),
        (lambda e: _same_buffer_outs(e), ParameterError, "overlaps"),
        (lambda e: _input_is_output(e), ParameterError, "overlaps"),
        (lambda e: _short_rng(e), ParameterError, "returned 1 bytes"),
        (lambda e: CombineStream([1], engine=e), ShareError, "2.."),
        (lambda e: CombineStream([1, 0], engine=e), ShareError, "1..255"),
        (lambda e: CombineStream([1, 2], engine=e).update([b"ab", b"abc"]), ShareError, "unequal"),
        (lambda e: CombineStream([1, 2], engine=e).update([b"ab"]), ShareError, "one chunk per share"),
        (lambda e: CombineStream([1, 2], engine=e).update_into([b"ab", b"cd"], bytearray(1)), ParameterError, "2"),
        (lambda e: split_stream(b"abc", [io.BytesIO()] * 2, 2, engine=e), InputTypeError, "readinto"),
        (lambda e: split_stream(io.BytesIO(b"a"), [io.BytesIO(), 3], 2, engine=e), InputTypeError, "write"),
        (
            lambda e: split_stream(io.BytesIO(b"a"), [io.BytesIO()] * 2, 2, chunk_size=0, engine=e),
            ParameterError,
            "chunk_size",
        ),
    ],
)
def test_bad_arguments_fail_before_any_kernel(call: Any, error: type[Exception], match: str) -> None:
    spy = _Spy(Engine("pure")._kernels)
    engine = Engine(_kernels=spy)
    with pytest.raises(error, match=match):
        call(engine)
    assert spy.calls == 0


def _same_buffer_outs(engine: Engine) -> None:
    out = bytearray(8)
    SplitStream(2, 2, engine=engine).update_into(b"abc", [out, memoryview(out)[2:]])


def _short_rng(engine: Engine) -> None:
    stream = SplitStream(2, 2, rng=lambda n: b"x", engine=engine)
    stream.update(b"ab")
    stream.finish()


def _input_is_output(engine: Engine) -> None:
    buf = bytearray(16)
    SplitStream(2, 2, engine=engine).update_into(memoryview(buf)[:4], [memoryview(buf)[2:8], bytearray(4)])


def test_streams_have_no_size_limit_but_one_shot_does() -> None:
    """The 1 GiB one-shot limit does not apply: the stream never holds the whole secret."""
    stream = SplitStream(2, 2, _key=bytes(32))
    stream.position = mpss_fast.MAX_SECRET_BYTES  # as if 1 GiB had gone through already
    assert [len(v) for v in stream.update(b"more")] == [4, 4]
    assert stream.position == mpss_fast.MAX_SECRET_BYTES + 4
    assert "position=" in repr(stream) and "AES-256-CTR" in repr(stream)
