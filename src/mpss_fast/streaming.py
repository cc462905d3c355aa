"""Split and combine secrets that arrive in pieces: incremental objects and reader/writer loops.

:class:`SplitStream` shares a secret fed to it chunk by chunk, :class:`CombineStream`
rebuilds one from share chunks; :func:`split_stream` and :func:`combine_stream` run
them over file-like readers and writers. Memory stays bounded by the chunk size
whatever the secret's length: every buffer is allocated once and reused.

Chunk boundaries never show in the output. The coefficient source continues across
chunks exactly as a one-shot split consumes it:

- without ``rng``, coefficient row j is AES-256-CTR keystream under one key per
  stream (``_random``), each row's CTR state carried from one chunk to the next, so the
  shares are byte for byte those of the one-shot keyed split under that key;
- with an injected ``rng``, the stream calls it exactly as :meth:`Engine.split` does
  (one call per block of :func:`engine.chunk_length` secret bytes, the last block
  shorter), so the shares are those of ``split(secret, ..., rng=rng)`` without the
  index byte. The price: output lags input by up to one block, as ``zlib``'s
  ``compressobj`` does, and :meth:`SplitStream.finish` emits the rest.

Both backends stream; every argument is checked in ``_validate`` before a kernel runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from . import _random, _validate
from ._gf256 import POLY_AES
from .engine import Engine, Rng, chunk_length
from .exceptions import ShareError, StreamStateError

DEFAULT_CHUNK_BYTES = 1 << 20
"""Secret bytes per read in :func:`split_stream`/:func:`combine_stream` unless ``chunk_size`` is given."""

_DEFAULT_ENGINE: Engine | None = None


def _engine(engine: Any) -> Engine:
    global _DEFAULT_ENGINE
    if engine is None:
        if _DEFAULT_ENGINE is None:
            _DEFAULT_ENGINE = Engine()
        return _DEFAULT_ENGINE
    return _validate.check_engine(engine, Engine)


def _grow(bufs: list[bytearray], count: int, nbytes: int) -> list[bytearray]:
    """``count`` reusable buffers of at least ``nbytes`` each (grown, never shrunk)."""
    if not bufs or len(bufs[0]) < nbytes:
        for buf in bufs:
            buf[:] = bytes(len(buf))
        return [bytearray(nbytes) for _ in range(count)]
    return bufs


class SplitStream:
    """Split one secret fed in chunks into ``n`` share streams, any ``k`` of which rebuild it.

    ``update(chunk)`` returns the share bytes made by that call, one view per share, in
    buffers the stream reuses (valid until its next call; copy them to keep them);
    ``update_into(chunk, outs)`` writes them into your buffers instead and returns how
    many bytes each got. ``finish()``/``finish_into(outs)`` end the stream. Shares carry
    no index byte: share i is the y stream at ``xs[i]`` (default 1..n), as in
    :meth:`Engine.split_array`.

    Without ``rng`` the output of a call is exactly as long as its input. With ``rng``
    it comes in whole blocks of ``engine.chunk_length(k)`` bytes and at ``finish``; at
    most :meth:`max_output` bytes per share.

    Use it as a context manager, or call :meth:`close`, to wipe the buffers it holds
    (coefficients and buffered secret bytes) when abandoning it.
    """

    def __init__(
        self,
        k: int,
        n: int,
        *,
        poly: int = POLY_AES,
        xs: Iterable[int] | None = None,
        rng: Rng | None = None,
        engine: Engine | None = None,
        _key: bytes | None = None,
    ) -> None:
        self.k, self.n = _validate.check_k_n(k, n)
        self.poly: int = _validate.check_poly(poly)
        self.xs: bytes = _validate.default_xs(n) if xs is None else _validate.check_xs(xs, n)
        self._rng = _validate.check_rng(rng)
        self._kernels = _engine(engine)._kernels
        self.position = 0
        """Secret bytes consumed so far."""
        m = self.k - 1
        self._m = m
        self._outs: list[bytearray] = []
        self._closed = False
        if self._rng is None:
            key = _random.new_key() if _key is None else _validate.check_key(_key)
            algorithm = algorithms.AES256(key)
            self._rows = [Cipher(algorithm, modes.CTR(_random.row_counter(j, 0))).encryptor() for j in range(m)]
            self._block = _random.keyed_chunk_length(m)
            self._coeff = bytearray(0)
            self._stride = 0
        else:
            self._block = chunk_length(self.k)
            self._pending = bytearray(0)
            self._npending = 0

    # -- public ----------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Secret bytes buffered but not yet shared (always 0 without ``rng``)."""
        return 0 if self._rng is None else self._npending

    def max_output(self, nbytes: int) -> int:
        """The most bytes per share that ``update`` of ``nbytes`` (or ``finish``, for 0) can produce."""
        nbytes = _validate.check_int(nbytes, "nbytes")
        return nbytes + self.pending

    def update(self, data: Any) -> list[memoryview]:
        """Share the next chunk; returns one view per share of the bytes made (reused buffers)."""
        view = self._input(data)
        need = self.max_output(view.nbytes)
        self._outs = _grow(self._outs, self.n, need)
        outs = [memoryview(b) for b in self._outs]
        count = self._update(view, outs)
        return [o[:count] for o in outs]

    def update_into(self, data: Any, outs: Sequence[Any]) -> int:
        """Share the next chunk into the start of each of ``outs`` (n writable buffers); returns the bytes per share."""
        view = self._input(data)
        out_views = _validate.check_stream_outs(outs, self.n, self.max_output(view.nbytes), view)
        return self._update(view, out_views)

    def finish(self) -> list[memoryview]:
        """End the stream; returns the share bytes still buffered (none without ``rng``)."""
        self._check_open()
        need = self.pending
        self._outs = _grow(self._outs, self.n, need)
        outs = [memoryview(b) for b in self._outs]
        count = self._finish(outs)
        return [o[:count] for o in outs]

    def finish_into(self, outs: Sequence[Any]) -> int:
        """End the stream, writing what is still buffered into ``outs``; returns the bytes per share."""
        self._check_open()
        out_views = _validate.check_stream_outs(outs, self.n, self.pending, None)
        return self._finish(out_views)

    def close(self) -> None:
        """Wipe every buffer (the views ``update``/``finish`` returned too) and end the stream."""
        self._wipe_state()
        for buf in self._outs:
            buf[:] = bytes(len(buf))

    def _wipe_state(self) -> None:
        if self._rng is None:
            self._coeff[:] = bytes(len(self._coeff))
            self._rows = []
        else:
            self._pending[:] = bytes(len(self._pending))
            self._npending = 0
        self._closed = True

    def __enter__(self) -> SplitStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        source = "rng" if self._rng is not None else "AES-256-CTR"
        return f"SplitStream(k={self.k}, n={self.n}, poly={self.poly:#x}, position={self.position}, {source})"

    # -- internals ---------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StreamStateError("this SplitStream is finished or closed; start a new one")

    def _input(self, data: Any) -> memoryview:
        self._check_open()
        return _validate.as_bytes_view(data, "data")

    def _finish(self, outs: list[memoryview]) -> int:
        count = 0
        if self._rng is not None and self._npending:
            count = self._npending
            self._draw_and_eval(memoryview(self._pending)[:count], outs, 0)
            self._npending = 0
        self._wipe_state()
        return count

    def _update(self, view: memoryview, outs: list[memoryview]) -> int:
        if self._rng is None:
            self._keyed(view, outs)
            self.position += view.nbytes
            return view.nbytes
        return self._with_rng(view, outs)

    def _keyed(self, data: memoryview, outs: list[memoryview]) -> None:
        """Coefficients from each row's running AES-CTR state, ``self._block`` bytes at a time."""
        length = data.nbytes
        if length == 0:
            return
        m = self._m
        stride = min(self._block, length) + _random.SLACK
        if stride > self._stride:
            self._coeff[:] = bytes(len(self._coeff))
            self._coeff = bytearray(m * stride)
            self._stride = stride
        stride = self._stride
        store = memoryview(self._coeff)
        for start in range(0, length, self._block):
            size = min(self._block, length - start)
            zeros = _random._zero_view(size)
            coeffs = []
            for j, row in enumerate(self._rows):
                dest = store[j * stride : j * stride + size + _random.SLACK]
                row.update_into(zeros, dest)
                coeffs.append(dest[:size])
            self._kernels.eval_shares(
                self.poly, data[start : start + size], coeffs, self.xs, [o[start : start + size] for o in outs]
            )

    def _with_rng(self, data: memoryview, outs: list[memoryview]) -> int:
        """Blocks of ``self._block`` bytes, one ``rng`` call each, as :meth:`Engine.split` draws them."""
        block = self._block
        made = 0
        used = 0
        length = data.nbytes
        if self._npending:
            take = min(block - self._npending, length)
            self._pending[self._npending : self._npending + take] = data[:take]
            self._npending += take
            used = take
            if self._npending == block:
                self._draw_and_eval(memoryview(self._pending)[:block], outs, 0)
                self._npending = 0
                made = block
        while length - used >= block:
            self._draw_and_eval(data[used : used + block], outs, made)
            used += block
            made += block
        rest = length - used
        if rest:
            if len(self._pending) < block:
                self._pending = bytearray(block)
            self._pending[:rest] = data[used:]
            self._npending = rest
        self.position += length
        return made

    def _draw_and_eval(self, secret: memoryview, outs: list[memoryview], offset: int) -> None:
        size = secret.nbytes
        m = self._m
        assert self._rng is not None
        raw = _validate.rng_output(self._rng(m * size), m * size)
        coeffs = [raw[j * size : (j + 1) * size] for j in range(m)]
        self._kernels.eval_shares(self.poly, secret, coeffs, self.xs, [o[offset : offset + size] for o in outs])


class CombineStream:
    """Rebuild a secret chunk by chunk from share streams taken at ``xs`` (y bytes, no index byte).

    ``update(chunks)`` takes one chunk per share, all of the same length, and returns
    the secret bytes in a buffer the stream reuses (valid until its next call);
    ``update_into(chunks, out)`` writes them into ``out`` and returns the length.
    Interpolation is byte-wise, so any chunking gives the same secret.
    """

    def __init__(self, xs: Iterable[int], *, poly: int = POLY_AES, engine: Engine | None = None) -> None:
        self.poly: int = _validate.check_poly(poly)
        self.xs: bytes = _validate.check_stream_xs(xs)
        self._kernels = _engine(engine)._kernels
        self._out = bytearray(0)
        self.position = 0
        """Secret bytes produced so far."""

    def update(self, chunks: Sequence[Any]) -> memoryview:
        """The secret bytes of the next chunk of every share (a view of a reused buffer)."""
        views = _validate.check_share_chunks(chunks, len(self.xs))
        length = views[0].nbytes
        if len(self._out) < length:
            self._out[:] = bytes(len(self._out))
            self._out = bytearray(length)
        out = memoryview(self._out)[:length]
        self._combine(views, out)
        return out

    def update_into(self, chunks: Sequence[Any], out: Any) -> int:
        """Write the secret bytes of the next chunk of every share into the start of ``out``; returns the length."""
        views = _validate.check_share_chunks(chunks, len(self.xs))
        length = views[0].nbytes
        out_view = _validate.check_stream_outs([out], 1, length, *views)[0]
        self._combine(views, out_view)
        return length

    def close(self) -> None:
        """Wipe the output buffer."""
        self._out[:] = bytes(len(self._out))

    def __enter__(self) -> CombineStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CombineStream(xs={list(self.xs)}, poly={self.poly:#x}, position={self.position})"

    def _combine(self, views: list[memoryview], out: memoryview) -> None:
        length = views[0].nbytes
        if length:
            self._kernels.interpolate(self.poly, self.xs, views, out[:length])
        self.position += length


# -- over readers and writers --------------------------------------------------------------


def _write_all(writer: Any, data: memoryview) -> None:
    """Write all of ``data`` (raw files may write less than asked)."""
    while data.nbytes:
        written = writer.write(data)
        if written is None or written <= 0:
            raise OSError(f"write() wrote nothing ({written!r}); a blocking writer is required")
        data = data[written:]


def _read_full(reader: Any, buf: memoryview) -> int:
    """Fill ``buf`` from ``reader`` as far as it goes; fewer bytes only at end of input."""
    got = 0
    while got < buf.nbytes:
        count = reader.readinto(buf[got:])
        if not count:
            break
        got += count
    return got


def split_stream(
    reader: Any,
    writers: Sequence[Any],
    k: int,
    *,
    poly: int = POLY_AES,
    xs: Iterable[int] | None = None,
    rng: Rng | None = None,
    chunk_size: int = DEFAULT_CHUNK_BYTES,
    engine: Engine | None = None,
) -> int:
    """Split everything ``reader`` yields into ``len(writers)`` share streams; returns the secret's length.

    ``reader`` has ``readinto`` (a file opened ``"rb"``, ``io.BytesIO``, a socket file);
    each writer has ``write`` and receives the y bytes of one share (no index byte).
    Memory: about ``(2 + n + k) * chunk_size`` bytes, whatever the length.
    """
    chunk_size = _validate.check_chunk_size(chunk_size)
    _validate.check_reader(reader, "reader")
    writers = _validate.check_writers(writers)
    stream = SplitStream(k, len(writers), poly=poly, xs=xs, rng=rng, engine=engine)
    buf = bytearray(chunk_size)
    view = memoryview(buf)
    outs = [bytearray(chunk_size + (stream._block if rng is not None else 0)) for _ in writers]
    out_views = [memoryview(o) for o in outs]
    try:
        with stream:
            while True:
                got = _read_full(reader, view)
                count = stream.update_into(view[:got], out_views) if got else stream.finish_into(out_views)
                for writer, out in zip(writers, out_views, strict=True):
                    _write_all(writer, out[:count])
                if not got:
                    return stream.position
    finally:
        buf[:] = bytes(chunk_size)
        for o in outs:
            o[:] = bytes(len(o))


def combine_stream(
    readers: Sequence[Any],
    writer: Any,
    xs: Iterable[int],
    *,
    poly: int = POLY_AES,
    chunk_size: int = DEFAULT_CHUNK_BYTES,
    engine: Engine | None = None,
) -> int:
    """Rebuild the secret from share readers taken at ``xs`` into ``writer``; returns its length.

    Every reader must yield the same number of bytes; one that ends early raises
    :class:`ShareError` (what was written so far is not the secret).
    """
    chunk_size = _validate.check_chunk_size(chunk_size)
    readers = _validate.check_readers(readers)
    stream = CombineStream(xs, poly=poly, engine=engine)
    _validate.check_share_count(len(stream.xs), len(readers), "readers")
    bufs = [bytearray(chunk_size) for _ in readers]
    views = [memoryview(b) for b in bufs]
    out = bytearray(chunk_size)
    out_view = memoryview(out)
    try:
        while True:
            counts = [_read_full(r, v) for r, v in zip(readers, views, strict=True)]
            if min(counts) != max(counts):
                raise ShareError(
                    f"share streams differ in length: after {stream.position} bytes, one has {min(counts)} more "
                    f"bytes and another {max(counts)}"
                )
            got = counts[0]
            if not got:
                return stream.position
            stream.update_into([v[:got] for v in views], out_view)
            _write_all(writer, out_view[:got])
    finally:
        for b in bufs:
            b[:] = bytes(chunk_size)
        out[:] = bytes(chunk_size)


__all__ = ["DEFAULT_CHUNK_BYTES", "CombineStream", "SplitStream", "combine_stream", "split_stream"]
