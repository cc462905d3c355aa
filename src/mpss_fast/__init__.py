"""mpss_fast: Multi-Path Secret Sharing for QKD key relay.

A (k, n) threshold share engine over GF(2^8) with native (Cython + C) and pure-Python
backends that give byte-identical results. The backend is chosen at import from
``MPSS_FAST_BACKEND`` (``auto``, ``native`` or ``pure``) and named by :data:`BACKEND`.
"""

from ._backend import kernels as _kernels
from ._backend import native_tiers as _native_tiers
from ._gf256 import POLY_AES, POLY_GFSHARE
from ._selftest import selftest
from ._validate import MAX_SECRET_BYTES, MAX_SHARES
from .engine import Engine
from .exceptions import BackendError, InputTypeError, MpssError, ParameterError, ShareError, StreamStateError
from .streaming import CombineStream, SplitStream, combine_stream, split_stream

__version__ = "0.1.0"

BACKEND: str = _kernels.NAME
"""The backend behind the module-level functions: "native" or "pure"."""

KERNEL: str = _kernels.tier
"""The kernel tier of the module-level splits ("gfni512", ..., "table"; "pure" on the pure backend)."""

COMBINE_KERNEL: str = _kernels.combine_tier
"""The kernel tier of the module-level combines and XORs (often :data:`KERNEL`; "pure" on the pure backend)."""

KEYSTREAM: str = _kernels.keystream
"""The AES-256-CTR implementation that makes split coefficients: "vaes512" or "aesni" inside the
native kernels, "cryptography" (the library) on the pure backend or a CPU without AES instructions."""

KERNELS: tuple[str, ...] = _native_tiers()
"""The native kernel tiers this CPU can run, fastest first (empty without the extension)."""

_engine = Engine(_kernels=_kernels)
split = _engine.split
combine = _engine.combine
split_array = _engine.split_array
combine_array = _engine.combine_array
xor = _engine.xor
xor_into = _engine.xor_into
reencrypt = _engine.reencrypt
reencrypt_into = _engine.reencrypt_into

__all__ = [
    "BACKEND",
    "COMBINE_KERNEL",
    "KERNEL",
    "KERNELS",
    "KEYSTREAM",
    "MAX_SECRET_BYTES",
    "MAX_SHARES",
    "POLY_AES",
    "POLY_GFSHARE",
    "BackendError",
    "CombineStream",
    "Engine",
    "InputTypeError",
    "MpssError",
    "ParameterError",
    "ShareError",
    "SplitStream",
    "StreamStateError",
    "__version__",
    "combine",
    "combine_array",
    "combine_stream",
    "reencrypt",
    "reencrypt_into",
    "selftest",
    "split",
    "split_array",
    "split_stream",
    "xor",
    "xor_into",
]
