"""Every argument check, in one place, run before any kernel.

Both backends receive only what passes here: 1-D ``memoryview``s of format ``'B'``,
equal lengths, valid field parameters. Messages name the parameter and never echo
buffer contents.
"""

from __future__ import annotations

import ctypes
import operator
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ._gf256 import POLYS
from .exceptions import InputTypeError, ParameterError, ShareError

if TYPE_CHECKING:
    import numpy as np  # imported where arrays are checked: a CLI run that needs none starts faster

MAX_SHARES = 255
MAX_SECRET_BYTES = 1 << 30  # 1 GiB
_BYTE_FORMATS = frozenset({"B", "b", "c"})


def check_int(value: Any, name: str) -> int:
    """An integer (``bool`` excluded; numpy integers accepted)."""
    if isinstance(value, bool):
        raise InputTypeError(f"{name} must be an int, not bool")
    try:
        return operator.index(value)
    except TypeError:
        raise InputTypeError(f"{name} must be an int, not {type(value).__name__}") from None


def check_poly(poly: Any) -> int:
    if type(poly) is int and poly in POLYS:  # the common case, cheaply
        return poly
    poly = check_int(poly, "poly")
    if poly not in POLYS:
        raise ParameterError(f"poly must be 0x11B or 0x11D, not {poly:#x}")
    return poly


def check_k_n(k: Any, n: Any) -> tuple[int, int]:
    if type(k) is int and type(n) is int and 2 <= k <= n <= MAX_SHARES:  # the common case, cheaply
        return k, n
    k = check_int(k, "k")
    n = check_int(n, "n")
    if not 2 <= n <= MAX_SHARES:
        raise ParameterError(f"n must be in 2..{MAX_SHARES}, not {n}")
    if not 2 <= k <= MAX_SHARES:
        raise ParameterError(f"k must be in 2..{MAX_SHARES}, not {k}")
    if k > n:
        raise ParameterError(f"k ({k}) must not exceed n ({n})")
    return k, n


_DEFAULT_XS = [bytes(range(1, n + 1)) for n in range(MAX_SHARES + 1)]


def default_xs(n: int) -> bytes:
    """The x coordinates 1..n."""
    return _DEFAULT_XS[n]


def check_xs(
    xs: Any, count: int, name: str = "xs", error: type[ParameterError] | type[ShareError] = ParameterError
) -> bytes:
    """``count`` distinct x coordinates in 1..255, as bytes."""
    if (type(xs) is list or type(xs) is tuple) and all(type(x) is int for x in xs):
        values = list(xs)  # the common case, without a call per item
    elif isinstance(xs, str) or not isinstance(xs, Iterable):
        raise InputTypeError(f"{name} must be a sequence of ints, not {type(xs).__name__}")
    else:
        values = [check_int(x, name + " item") for x in xs]
    if len(values) != count:
        raise error(f"{name} must have {count} entries, not {len(values)}")
    for x in values:
        if not 1 <= x <= 255:
            raise error(f"{name} entries must be in 1..255, not {x}")
    if len(set(values)) != len(values):
        dup = sorted({x for x in values if values.count(x) > 1})
        raise error(f"{name} must be distinct; repeated: {dup}")
    return bytes(values)


def as_bytes_view(obj: Any, name: str) -> memoryview:
    """A read-only 1-D ``'B'`` view of a C-contiguous bytes-like object."""
    if type(obj) is bytes or type(obj) is bytearray:  # the common cases, cheaply
        return memoryview(obj)
    if type(obj) is memoryview and obj.format == "B" and obj.ndim == 1 and obj.c_contiguous:
        return obj
    if isinstance(obj, str):
        raise InputTypeError(f"{name} must be bytes-like, not str (encode it first)")
    try:
        view = memoryview(obj)
    except TypeError:
        raise InputTypeError(f"{name} must be a bytes-like object, not {type(obj).__name__}") from None
    if view.itemsize != 1 or view.format not in _BYTE_FORMATS:
        raise InputTypeError(f"{name} must hold single bytes (uint8), not items of format {view.format!r}")
    if not view.c_contiguous:
        raise ParameterError(f"{name} must be C-contiguous")
    if view.ndim != 1 or view.format != "B":
        view = view.cast("B")
    return view


def as_output_view(obj: Any, name: str, length: int) -> memoryview:
    """A writable 1-D ``'B'`` view of exactly ``length`` bytes."""
    view = as_bytes_view(obj, name)
    if view.readonly:
        raise ParameterError(f"{name} must be writable")
    if view.nbytes != length:
        raise ParameterError(f"{name} must be {length} bytes long, not {view.nbytes}")
    return view


def equal_length_views(names: tuple[str, ...], *objs: Any) -> list[memoryview]:
    """Byte views of the buffers ``objs`` (called ``names`` in errors), which must all have the same length."""
    views = []
    first = -1
    for i, obj in enumerate(objs):
        view = as_bytes_view(obj, names[i])
        if first < 0:
            first = view.nbytes
        elif view.nbytes != first:
            raise ParameterError(f"{names[0]} and {names[i]} must have equal lengths, not {first} and {view.nbytes}")
        views.append(view)
    return views


def _address_range(view: memoryview) -> tuple[int, int]:
    if view.readonly:
        import numpy as np

        start = np.frombuffer(view, dtype=np.uint8).__array_interface__["data"][0]
    else:  # 0.2 us against numpy's 1.5, on the path of every xor_into
        start = ctypes.addressof(ctypes.c_char.from_buffer(view))
    return start, start + view.nbytes


def check_no_partial_overlap(out: memoryview, inputs: dict[str, memoryview]) -> None:
    """``out`` may be exactly an input (in-place) but must not otherwise overlap one."""
    if out.nbytes == 0:
        return
    owner = out.obj
    if type(owner) is bytearray:
        for view in inputs.values():
            if view.obj is owner or type(view.obj) not in (bytes, bytearray):
                break
        else:
            return  # a bytearray never shares memory with another bytes/bytearray: skip the addresses
    o_start, o_end = _address_range(out)
    for name, view in inputs.items():
        if view.nbytes == 0 or type(view.obj) is bytes:
            continue  # a bytes object's memory is its own: no writable out can share it
        i_start, i_end = _address_range(view)
        if i_start < o_end and o_start < i_end and (i_start, i_end) != (o_start, o_end):
            raise ParameterError(f"out partially overlaps {name}; use the same buffer or a disjoint one")


def check_secret_length(length: int, name: str = "secret") -> None:
    if length == 0:
        raise ParameterError(f"{name} must not be empty")
    if length > MAX_SECRET_BYTES:
        raise ParameterError(f"{name} is {length} bytes; the limit is {MAX_SECRET_BYTES} (1 GiB)")


def check_rng(rng: Any) -> Callable[[int], Any] | None:
    if rng is not None and not callable(rng):
        raise InputTypeError(f"rng must be a callable rng(nbytes) -> bytes, not {type(rng).__name__}")
    return rng


def rng_output(raw: Any, nbytes: int) -> memoryview:
    """Check what an injected ``rng(nbytes)`` returned."""
    view = as_bytes_view(raw, "rng() result")
    if view.nbytes != nbytes:
        raise ParameterError(f"rng({nbytes}) returned {view.nbytes} bytes")
    return view


def check_shares(shares: Any) -> tuple[bytes, list[memoryview]]:
    """Shares in the ``x || y`` layout: (xs, list of y views). At least 2, distinct non-zero x, equal length."""
    if isinstance(shares, (str, bytes, bytearray, memoryview)) or not isinstance(shares, Iterable):
        raise InputTypeError(f"shares must be a sequence of bytes-like shares, not {type(shares).__name__}")
    views = [as_bytes_view(s, f"shares[{i}]") for i, s in enumerate(shares)]
    if len(views) < 2:
        raise ShareError(f"need at least 2 shares to combine, got {len(views)}")
    if len(views) > MAX_SHARES:
        raise ShareError(f"at most {MAX_SHARES} shares can be combined, got {len(views)}")
    length = views[0].nbytes
    for i, v in enumerate(views):
        if v.nbytes < 2:
            raise ShareError(f"shares[{i}] is {v.nbytes} bytes; a share is 1 index byte plus at least 1 data byte")
        if v.nbytes != length:
            raise ShareError(f"shares have unequal lengths: shares[0] is {length} bytes, shares[{i}] is {v.nbytes}")
    xs = bytes(v[0] for v in views)
    if 0 in xs:
        raise ShareError(f"shares[{xs.index(0)}] has index x = 0, which would be the secret itself")
    if len(set(xs)) != len(xs):
        dup = sorted({x for x in xs if xs.count(x) > 1})
        raise ShareError(f"shares have duplicate index x: {dup}")
    return xs, [v[1:] for v in views]


def _check_uint8_array(arr: Any, name: str) -> np.ndarray:
    import numpy as np

    if not isinstance(arr, np.ndarray):
        raise InputTypeError(f"{name} must be a numpy.ndarray of uint8, not {type(arr).__name__}")
    if arr.dtype != np.uint8:
        raise InputTypeError(f"{name} must have dtype uint8, not {arr.dtype}")
    return arr


def check_array(arr: Any, name: str, ndim: int) -> np.ndarray:
    """A C-contiguous uint8 numpy array with ``ndim`` dimensions, none of them zero."""
    arr = _check_uint8_array(arr, name)
    if arr.ndim != ndim:
        raise ParameterError(f"{name} must have {ndim} dimensions, not {arr.ndim} (shape {arr.shape})")
    if not arr.flags.c_contiguous:
        raise ParameterError(f"{name} must be C-contiguous (use numpy.ascontiguousarray)")
    if 0 in arr.shape:
        raise ParameterError(f"{name} must not be empty (shape {arr.shape})")
    return arr


def check_out_array(out: Any, shape: tuple[int, ...], inputs: dict[str, np.ndarray]) -> np.ndarray:
    """A writable C-contiguous uint8 array of ``shape`` sharing no memory with ``inputs``."""
    out = _check_uint8_array(out, "out")
    if out.shape != shape:
        raise ParameterError(f"out must have shape {shape}, not {out.shape}")
    flags = out.flags
    if not flags.c_contiguous:
        raise ParameterError("out must be C-contiguous")
    if not flags.writeable:
        raise ParameterError("out must be writable")
    import numpy as np

    for name, arr in inputs.items():
        if np.may_share_memory(out, arr):
            raise ParameterError(f"out must not share memory with {name}")
    return out


# -- streaming (streaming.py) -------------------------------------------------------------

MAX_CHUNK_BYTES = 1 << 30


def check_engine(engine: Any, engine_type: type) -> Any:
    if not isinstance(engine, engine_type):
        raise InputTypeError(f"engine must be an mpss_fast.Engine, not {type(engine).__name__}")
    return engine


def check_key(key: Any) -> bytes:
    """A 32-byte AES-256 coefficient key."""
    view = as_bytes_view(key, "key")
    if view.nbytes != 32:
        raise ParameterError(f"key must be 32 bytes, not {view.nbytes}")
    return bytes(view)


def check_chunk_size(chunk_size: Any) -> int:
    chunk_size = check_int(chunk_size, "chunk_size")
    if not 1 <= chunk_size <= MAX_CHUNK_BYTES:
        raise ParameterError(f"chunk_size must be in 1..{MAX_CHUNK_BYTES}, not {chunk_size}")
    return chunk_size


def check_stream_xs(xs: Any) -> bytes:
    """The x coordinates of the shares a stream combines: 2..255 distinct values in 1..255."""
    if isinstance(xs, str) or not isinstance(xs, Iterable):
        raise InputTypeError(f"xs must be a sequence of ints, not {type(xs).__name__}")
    values = list(xs)
    if not 2 <= len(values) <= MAX_SHARES:
        raise ShareError(f"need 2..{MAX_SHARES} shares to combine, got {len(values)}")
    return check_xs(values, len(values), error=ShareError)


def _overlap(a: memoryview, b: memoryview) -> bool:
    if a.nbytes == 0 or b.nbytes == 0:
        return False
    a0, a1 = _address_range(a)
    b0, b1 = _address_range(b)
    return a0 < b1 and b0 < a1


def check_stream_outs(outs: Any, count: int, length: int, *inputs: memoryview | None) -> list[memoryview]:
    """``count`` writable byte buffers of at least ``length`` bytes, disjoint from each other and ``inputs``.

    Returns views of their first ``length`` bytes.
    """
    if isinstance(outs, (str, bytes, bytearray, memoryview)) or not isinstance(outs, Iterable):
        raise InputTypeError(f"outs must be a sequence of writable buffers, not {type(outs).__name__}")
    views = []
    for i, out in enumerate(outs):
        view = as_bytes_view(out, f"outs[{i}]")
        if view.readonly:
            raise ParameterError(f"outs[{i}] must be writable")
        if view.nbytes < length:
            raise ParameterError(f"outs[{i}] must hold at least {length} bytes, not {view.nbytes}")
        views.append(view[:length])
    if len(views) != count:
        raise ParameterError(f"outs must have {count} buffers, not {len(views)}")
    others = [v for v in inputs if v is not None]
    owners = [v.obj for v in (*views, *others)]
    if all(type(o) is bytearray or type(o) is bytes for o in owners) and len({id(o) for o in owners}) == len(owners):
        return views  # distinct bytes/bytearray objects never share memory: skip the addresses
    for i, view in enumerate(views):
        for other in [*others, *views[:i]]:
            if _overlap(view, other):
                raise ParameterError(f"outs[{i}] overlaps another buffer of this call; use disjoint buffers")
    return views


def check_share_chunks(chunks: Any, count: int) -> list[memoryview]:
    """One bytes-like chunk per share, ``count`` of them, all of the same length."""
    if isinstance(chunks, (str, bytes, bytearray, memoryview)) or not isinstance(chunks, Iterable):
        raise InputTypeError(f"chunks must be a sequence of bytes-like chunks, not {type(chunks).__name__}")
    views = [as_bytes_view(c, f"chunks[{i}]") for i, c in enumerate(chunks)]
    if len(views) != count:
        raise ShareError(f"need one chunk per share ({count}), got {len(views)}")
    for i, view in enumerate(views):
        if view.nbytes != views[0].nbytes:
            raise ShareError(
                f"share chunks have unequal lengths: chunks[0] is {views[0].nbytes} bytes, chunks[{i}] is {view.nbytes}"
            )
    return views


def check_share_count(xs_count: int, count: int, name: str) -> None:
    """As many share sources (``name``) as x coordinates."""
    if xs_count != count:
        raise ShareError(f"xs has {xs_count} entries for {count} {name}")


def check_reader(reader: Any, name: str) -> Any:
    if not callable(getattr(reader, "readinto", None)):
        raise InputTypeError(f"{name} must have a readinto() method (a file opened 'rb'), not {type(reader).__name__}")
    return reader


def check_readers(readers: Any) -> list[Any]:
    if isinstance(readers, (str, bytes)) or not isinstance(readers, Iterable):
        raise InputTypeError(f"readers must be a sequence of binary readers, not {type(readers).__name__}")
    return [check_reader(r, f"readers[{i}]") for i, r in enumerate(readers)]


def check_writers(writers: Any) -> list[Any]:
    if isinstance(writers, (str, bytes)) or not isinstance(writers, Iterable):
        raise InputTypeError(f"writers must be a sequence of binary writers, not {type(writers).__name__}")
    found = list(writers)
    for i, writer in enumerate(found):
        if not callable(getattr(writer, "write", None)):
            raise InputTypeError(f"writers[{i}] must have a write() method, not {type(writer).__name__}")
    return found
