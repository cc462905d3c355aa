"""The share API (split, combine, their bulk forms, XOR) bound to one kernel backend.

The module-level functions of :mod:`mpss_fast` are the methods of an :class:`Engine`
on the backend chosen by ``MPSS_FAST_BACKEND``. Build an ``Engine("pure")`` or
``Engine("native")`` yourself to use or compare a specific backend in one process.

Everything that is not byte arithmetic happens here, identically for both backends:
argument checks (``_validate``), x coordinates, drawing the random coefficients and
slicing the work into chunks. The kernels only compute.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from . import _backend, _validate
from ._gf256 import POLY_AES

if TYPE_CHECKING:
    import numpy as np  # imported where arrays are used: a CLI run that needs none starts faster

Rng = Callable[[int], Any]
"""An injected randomness source: ``rng(nbytes)`` returns exactly ``nbytes`` bytes."""

COEFF_CHUNK_BYTES = 4 << 20
"""Coefficient bytes asked of an injected ``rng`` per call, which bounds memory for large secrets."""


def chunk_length(k: int) -> int:
    """Secret bytes per ``rng`` call for threshold ``k``.

    With an injected ``rng`` the secret is shared chunk by chunk; for each chunk of
    ``size`` bytes the engine asks for ``(k-1)*size`` bytes at once, coefficient j of
    byte t being byte ``j*size + t`` of that draw. The rng sees exactly these calls, on
    every backend, which is what makes results byte-identical across backends. Without
    an rng the coefficients are AES-256-CTR rows under a fresh key (``_random``).
    """
    return max(1, COEFF_CHUNK_BYTES // (k - 1))


def _as_bytes(obj: bytes | bytearray) -> bytes:
    return obj if type(obj) is bytes else bytes(obj)


class Engine:
    """Threshold secret sharing over GF(2^8) on one backend and its kernel tiers.

    ``Engine()`` uses what ``MPSS_FAST_BACKEND``/``MPSS_FAST_KERNEL`` chose at import;
    ``Engine("pure")``, ``Engine("native")`` (the calibrated constant-time tiers) and
    ``Engine("native", kernel="avx2")`` (that tier for every operation) pick one explicitly.
    ``kernel`` names the tier of the splits, ``combine_kernel`` that of combines and XORs.
    """

    def __init__(self, backend: str | None = None, *, kernel: str | None = None, _kernels: Any = None) -> None:
        if _kernels is not None:
            self._kernels = _kernels
        elif backend is None and kernel is None:
            self._kernels = _backend.kernels
        else:
            self._kernels = _backend.load(backend or "native", kernel)
        self.backend: str = self._kernels.NAME
        self.kernel: str = self._kernels.tier
        self.combine_kernel: str = self._kernels.combine_tier
        self.keystream: str = self._kernels.keystream
        # A short secret is split in one call with coefficients straight from the OS.
        self._split_small = self._kernels.split_small

    def __repr__(self) -> str:
        if self.backend == "pure":
            return "Engine('pure')"
        if self.combine_kernel != self.kernel:
            # the calibrated default, which no constructor argument spells: not an eval-able repr
            return f"<Engine {self.backend}: {self.kernel} splits, {self.combine_kernel} combines and XORs>"
        return f"Engine({self.backend!r}, kernel={self.kernel!r})"

    # -- single secret -------------------------------------------------------------

    def split(
        self,
        secret: Any,
        k: int,
        n: int,
        *,
        poly: int = POLY_AES,
        xs: Iterable[int] | None = None,
        rng: Rng | None = None,
    ) -> list[bytes]:
        """Split ``secret`` into ``n`` shares, any ``k`` of which rebuild it.

        Each share is ``bytes([x]) + y`` (the draft-mcgrew-tss layout) with ``x`` from
        ``xs`` (default 1..n). ``rng(nbytes) -> bytes`` replaces the CSPRNG, for tests.
        """
        k, n = _validate.check_k_n(k, n)
        poly = _validate.check_poly(poly)
        xs_b = _validate.default_xs(n) if xs is None else _validate.check_xs(xs, n)
        rng = _validate.check_rng(rng)
        view = _validate.as_bytes_view(secret, "secret")
        _validate.check_secret_length(view.nbytes)
        if rng is None:
            small = self._split_small(poly, view, k - 1, xs_b)  # None unless the secret is short
            if small is not None:
                return small  # type: ignore[no-any-return]
        shares = [self._kernels.new_bytes(view.nbytes + 1) for _ in range(n)]
        for (_, share_view), x in zip(shares, xs_b, strict=True):
            share_view[0] = x
        self._split_views(view, k, poly, xs_b, [v[1:] for _, v in shares], rng)
        return [_as_bytes(obj) for obj, _ in shares]

    def combine(self, shares: Iterable[Any], *, poly: int = POLY_AES) -> bytes:
        """Rebuild the secret from shares in the ``x || y`` layout (Lagrange at x = 0).

        All given shares are used; at least 2 are required. Shares of another
        secret, or too few of them, give a wrong result, not an error: the layout
        carries no threshold and no checksum.
        """
        poly = _validate.check_poly(poly)
        xs_b, ys = _validate.check_shares(shares)
        out, out_view = self._kernels.new_bytes(ys[0].nbytes)
        self._kernels.interpolate(poly, xs_b, ys, out_view)
        return _as_bytes(out)

    # -- many secrets in one call ----------------------------------------------------

    def split_array(
        self,
        secrets: np.ndarray,
        k: int,
        n: int,
        *,
        poly: int = POLY_AES,
        xs: Iterable[int] | None = None,
        out: np.ndarray | None = None,
        rng: Rng | None = None,
    ) -> np.ndarray:
        """Split ``m`` secrets of ``L`` bytes (a C-contiguous uint8 array ``(m, L)``) at once.

        Returns shares of shape ``(n, m, L)``: ``result[i, r]`` is row r's share at
        ``xs[i]`` (default 1..n), without the index byte. The bytes are exactly those of
        ``split(secrets.tobytes(), ...)`` given the same ``rng``.
        """
        k, n = _validate.check_k_n(k, n)
        poly = _validate.check_poly(poly)
        xs_b = _validate.default_xs(n) if xs is None else _validate.check_xs(xs, n)
        rng = _validate.check_rng(rng)
        secrets = _validate.check_array(secrets, "secrets", 2)
        _validate.check_secret_length(secrets.nbytes, "secrets")
        shape = (n, *secrets.shape)
        if out is None:
            import numpy as np

            out = np.empty(shape, dtype=np.uint8)
        else:
            out = _validate.check_out_array(out, shape, {"secrets": secrets})
        outs = [out[i].data.cast("B") for i in range(n)]
        self._split_views(secrets.data.cast("B"), k, poly, xs_b, outs, rng)
        return out

    def combine_array(
        self,
        shares: np.ndarray,
        xs: Sequence[int],
        *,
        poly: int = POLY_AES,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """Rebuild ``m`` secrets from ``j >= 2`` share rows of shape ``(j, m, L)`` taken at ``xs``."""
        poly = _validate.check_poly(poly)
        shares = _validate.check_array(shares, "shares", 3)
        j = shares.shape[0]
        if j < 2:
            raise _validate.ShareError(f"need at least 2 share rows to combine, got {j}")
        xs_b = _validate.check_xs(xs, j, error=_validate.ShareError)
        shape = shares.shape[1:]
        if out is None:
            import numpy as np

            out = np.empty(shape, dtype=np.uint8)
        else:
            out = _validate.check_out_array(out, shape, {"shares": shares})
        flat, row = shares.data.cast("B"), out.nbytes  # one view, sliced per row: cheaper than a view per row
        ys = [flat[i * row : (i + 1) * row] for i in range(j)]
        self._kernels.interpolate(poly, xs_b, ys, out.data.cast("B"))
        return out

    # -- one-time pad -----------------------------------------------------------------

    def xor(self, a: Any, b: Any) -> bytes:
        """``a XOR b`` for two bytes-like objects of equal length."""
        va, vb = self._xor_inputs(a, b)
        out, out_view = self._kernels.new_bytes(va.nbytes)
        self._kernels.xor(va, vb, out_view)
        return _as_bytes(out)

    def xor_into(self, a: Any, b: Any, out: Any) -> int:
        """Write ``a XOR b`` into the writable buffer ``out``; returns the bytes written.

        ``out`` may be ``a`` or ``b`` itself (in place) but must not partly overlap them.
        """
        va, vb = self._xor_inputs(a, b)
        vo = _validate.as_output_view(out, "out", va.nbytes)
        _validate.check_no_partial_overlap(vo, {"a": va, "b": vb})
        self._kernels.xor(va, vb, vo)
        return va.nbytes

    def reencrypt(self, data: Any, key_in: Any, key_out: Any) -> bytes:
        """A relay's one-pass re-encryption: ``data XOR key_in XOR key_out``.

        Takes a share one-time-padded with the incoming link key and returns it padded
        with the outgoing one; the plaintext share is never stored.
        """
        views = self._xor3_inputs(data, key_in, key_out)
        out, out_view = self._kernels.new_bytes(views[0].nbytes)
        self._kernels.xor3(*views, out_view)
        return _as_bytes(out)

    def reencrypt_into(self, data: Any, key_in: Any, key_out: Any, out: Any) -> int:
        """``reencrypt`` into the writable buffer ``out`` (which may be ``data`` itself); returns the length."""
        va, vb, vc = self._xor3_inputs(data, key_in, key_out)
        vo = _validate.as_output_view(out, "out", va.nbytes)
        _validate.check_no_partial_overlap(vo, {"data": va, "key_in": vb, "key_out": vc})
        self._kernels.xor3(va, vb, vc, vo)
        return va.nbytes

    # -- internals ----------------------------------------------------------------------

    @staticmethod
    def _xor_inputs(a: Any, b: Any) -> tuple[memoryview, memoryview]:
        va, vb = _validate.equal_length_views(("a", "b"), a, b)
        return va, vb

    @staticmethod
    def _xor3_inputs(data: Any, key_in: Any, key_out: Any) -> tuple[memoryview, memoryview, memoryview]:
        va, vb, vc = _validate.equal_length_views(("data", "key_in", "key_out"), data, key_in, key_out)
        return va, vb, vc

    def _split_views(
        self,
        secret: memoryview,
        k: int,
        poly: int,
        xs: bytes,
        outs: list[memoryview],
        rng: Rng | None,
    ) -> None:
        m = k - 1
        if rng is None:
            # Coefficient rows: AES-256-CTR under a fresh key (_random); made inside the kernel natively.
            self._kernels.split_keyed(poly, secret, m, xs, outs)
            return
        length = secret.nbytes
        step = chunk_length(k)
        for start in range(0, length, step):
            size = min(step, length - start)
            raw = _validate.rng_output(rng(m * size), m * size)
            coeffs = [raw[j * size : (j + 1) * size] for j in range(m)]
            chunk_outs = [o[start : start + size] for o in outs]
            self._kernels.eval_shares(poly, secret[start : start + size], coeffs, xs, chunk_outs)
