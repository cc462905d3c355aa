"""Native kernels (Cython over C): the same contract as ``_pure``, once per kernel tier.

The C kernels in ``csrc/`` come in tiers, one per instruction set (``csrc/mpss_tiers.h``):
``gfni512`` (AVX-512 + GFNI), ``gfni256`` (AVX2 + GFNI), ``avx2`` and ``ssse3`` (PSHUFB
nibble tables), ``swar`` (portable shift-and-xor) and ``table`` (log/antilog product
rows; not constant time). A :class:`Kernels` object binds the contract to one tier, or
to one tier for splits and another for combines and XORs; its methods take raw pointers
from validated buffers and run the kernel with the GIL released.

Inputs have been validated by ``_validate``: 1-D ``'B'`` views of equal length >= 1
(``xor``/``xor3`` accept length 0).
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport uint8_t, uint64_t
from libc.stdlib cimport free, malloc

from . import _random

NAME = "native"


cdef extern from "mpss_gf256.h" nogil:
    ctypedef struct mpss_gf256_field:
        pass
    void mpss_gf256_init()
    const mpss_gf256_field *mpss_gf256_field_for(int poly)
    uint8_t mpss_gf256_mul(const mpss_gf256_field *f, uint8_t a, uint8_t b)
    uint8_t mpss_gf256_inv(const mpss_gf256_field *f, uint8_t a)

cdef extern from "mpss_tiers.h" nogil:
    ctypedef struct mpss_tier:
        const char *name
        int constant_time
        int (*supported)() noexcept nogil
        int (*eval)(const mpss_gf256_field *f, const uint8_t *secret, const uint8_t * const *coeffs, size_t m,
                    const uint8_t *xs, uint8_t * const *outs, size_t n, size_t length) noexcept nogil
        int (*eval_keyed)(const mpss_gf256_field *f, const mpss_ctr_impl *ctr, const mpss_aes256_schedule *key,
                          const uint8_t *secret, size_t m, const uint8_t *xs, uint8_t * const *outs, size_t n,
                          size_t length) noexcept nogil
        int (*interpolate)(const mpss_gf256_field *f, const uint8_t *xs, const uint8_t * const *ys,
                           size_t count, uint8_t *out, size_t length) noexcept nogil
        void (*xor2)(const uint8_t *a, const uint8_t *b, uint8_t *out, size_t length) noexcept nogil
        void (*xor3)(const uint8_t *a, const uint8_t *b, const uint8_t *c, uint8_t *out,
                     size_t length) noexcept nogil
    const mpss_tier *mpss_all_tiers[]
    const mpss_tier *mpss_tier_named(const char *name)
    const mpss_tier *mpss_tier_best()

cdef extern from "mpss_osrandom.h" nogil:
    int mpss_os_random(void *buf, size_t length)
    void mpss_wipe(void *buf, size_t length)

cdef extern from "mpss_aesctr.h" nogil:
    ctypedef struct mpss_aes256_schedule:
        pass
    ctypedef struct mpss_ctr_impl:
        const char *name
        int (*supported)() noexcept nogil
        void (*run)(const mpss_aes256_schedule *s, uint64_t row, uint64_t first_block, uint8_t *out,
                    size_t nblocks) noexcept nogil
    const mpss_ctr_impl *mpss_ctr_impls[]
    const mpss_ctr_impl *mpss_ctr_named(const char *name)
    const mpss_ctr_impl *mpss_ctr_best()
    void mpss_aes256_expand(const uint8_t *key, mpss_aes256_schedule *s)

mpss_gf256_init()

cdef enum:
    SMALL_MAX = 4096

SMALL_SPLIT_BYTES = SMALL_MAX
"""The most coefficient bytes ``Kernels.split_small`` draws (on the stack, in one call)."""


def _all_tiers():
    cdef Py_ssize_t i = 0
    names = []
    while mpss_all_tiers[i] != NULL:
        names.append(mpss_all_tiers[i].name.decode())
        i += 1
    return tuple(names)


TIERS = _all_tiers()
"""Every tier compiled into this build, fastest first."""


def supported_tiers():
    """The tiers this CPU and OS can run, fastest first."""
    return tuple(name for name in TIERS if mpss_tier_named(name.encode()).supported())


def _all_keystreams():
    cdef Py_ssize_t i = 0
    names = []
    while mpss_ctr_impls[i] != NULL:
        names.append(mpss_ctr_impls[i].name.decode())
        i += 1
    return tuple(names)


KEYSTREAMS = _all_keystreams()
"""Every in-kernel AES-256-CTR keystream implementation compiled into this build, fastest first."""

LIBRARY_KEYSTREAM = "cryptography"
"""The keystream used where the CPU has no AES instructions: ``cryptography``'s AES-256-CTR."""


def supported_keystreams():
    """The in-kernel keystreams this CPU runs, fastest first, then ``"cryptography"``."""
    return tuple(name for name in KEYSTREAMS if mpss_ctr_named(name.encode()).supported()) + (LIBRARY_KEYSTREAM,)


def keystream(str name, const uint8_t[::1] key, uint64_t row, uint64_t first_block, Py_ssize_t nblocks):
    """Blocks ``first_block ..`` of coefficient row ``row`` from the in-kernel keystream ``name``.

    Exposed so that tests can check every implementation against ``cryptography``'s
    AES-256-CTR with the counter block ``BE64(row) || BE64(first_block)``.
    """
    cdef const mpss_ctr_impl *c = mpss_ctr_named(name.encode())
    cdef mpss_aes256_schedule sched
    if c == NULL or not c.supported():
        raise ValueError(f"keystream {name!r} is not available on this CPU")
    if key.shape[0] != 32 or nblocks < 0:
        raise ValueError("need a 32-byte key and nblocks >= 0")
    out = PyBytes_FromStringAndSize(NULL, 16 * nblocks)
    mpss_aes256_expand(&key[0], &sched)
    c.run(&sched, row, first_block, <uint8_t *>PyBytes_AS_STRING(out), <size_t>nblocks)
    mpss_wipe(&sched, sizeof(sched))
    return out


def best_tier():
    """The fastest constant-time tier this CPU supports."""
    return mpss_tier_best().name.decode()


def is_constant_time(str tier):
    """Whether ``tier`` is constant time with respect to secret data."""
    return bool(_tier(tier).constant_time)


cdef const mpss_tier *_tier(str name) except NULL:
    cdef const mpss_tier *t = mpss_tier_named(name.encode())
    if t == NULL:
        raise ValueError(f"unknown kernel tier {name!r}; this build has: {', '.join(TIERS)}")
    return t


cdef const mpss_tier *_supported_tier(str name) except NULL:
    cdef const mpss_tier *t = _tier(name)
    if not t.supported():
        raise ValueError(f"kernel tier {name!r} is not supported by this CPU; it supports: "
                         f"{', '.join(supported_tiers())}")
    return t


cdef const mpss_gf256_field *_field(int poly) except NULL:
    cdef const mpss_gf256_field *f = mpss_gf256_field_for(poly)
    if f == NULL:
        # Unreachable through the public API (poly is validated first).
        raise ValueError(f"unsupported polynomial {poly:#x}")
    return f


@cython.auto_pickle(False)  # holds raw pointers: never pickled
cdef class _FreshBytes:
    """A writable buffer over a bytes object that nobody else has seen yet."""
    cdef bytes target
    cdef Py_ssize_t shape[1]

    def __getbuffer__(self, Py_buffer *view, int flags):
        self.shape[0] = len(self.target)
        view.buf = PyBytes_AS_STRING(self.target)
        view.obj = self
        view.len = self.shape[0]
        view.readonly = 0
        view.itemsize = 1
        view.format = "B"
        view.ndim = 1
        view.shape = self.shape
        view.strides = NULL
        view.suboffsets = NULL
        view.internal = NULL

    def __releasebuffer__(self, Py_buffer *view):
        pass


@cython.auto_pickle(False)  # holds raw pointers: never pickled
cdef class _Pointers:
    """Raw pointers into a list of buffers, holding a buffer export on each so none can move."""
    cdef uint8_t **ptrs
    cdef Py_ssize_t count
    cdef list views

    def __cinit__(self, buffers, bint writable):
        cdef Py_ssize_t i
        cdef const uint8_t[::1] ro
        cdef uint8_t[::1] rw
        self.count = len(buffers)
        self.views = []
        self.ptrs = <uint8_t **>malloc(max(self.count, 1) * sizeof(uint8_t *))
        if self.ptrs == NULL:
            raise MemoryError()
        for i in range(self.count):
            view = memoryview(buffers[i])
            self.views.append(view)
            if writable:
                rw = view
                self.ptrs[i] = &rw[0]
            else:
                ro = view
                self.ptrs[i] = <uint8_t *>&ro[0]

    def __dealloc__(self):
        free(self.ptrs)


@cython.auto_pickle(False)  # holds raw pointers: never pickled
cdef class Kernels:
    """The kernel contract (``_kernels.pyi``) bound to kernel tiers and one split keystream.

    ``tier`` runs the splits (``eval_shares``, ``split_keyed``, ``split_small``);
    ``combine`` (default: ``tier``) runs ``interpolate``, ``xor`` and ``xor3``, since the
    fastest tier for one family is not always the fastest for the other.
    ``keystream`` names the AES-256-CTR implementation of keyed splits: the fastest
    one this CPU runs by default, ``"cryptography"`` where it has no AES instructions.
    All make the same bytes.
    """
    cdef const mpss_tier *t
    cdef const mpss_tier *c
    cdef const mpss_ctr_impl *ctr
    cdef readonly str tier
    cdef readonly str combine_tier
    cdef readonly str keystream

    NAME = NAME

    def __cinit__(self, str tier, str keystream=None, str combine=None):
        self.t = _supported_tier(tier)
        self.tier = tier
        if combine is None or combine == tier:
            self.c = self.t
            self.combine_tier = tier
        else:
            self.c = _supported_tier(combine)
            self.combine_tier = combine
        if keystream is None:
            self.ctr = mpss_ctr_best()
        elif keystream == LIBRARY_KEYSTREAM:
            self.ctr = NULL
        else:
            self.ctr = mpss_ctr_named(keystream.encode())
            if self.ctr == NULL or not self.ctr.supported():
                raise ValueError(f"keystream {keystream!r} is not available on this CPU; it has: "
                                 f"{', '.join(supported_keystreams())}")
        self.keystream = self.ctr.name.decode() if self.ctr != NULL else LIBRARY_KEYSTREAM

    def __repr__(self):
        if self.combine_tier != self.tier:
            return f"Kernels({self.tier!r}, keystream={self.keystream!r}, combine={self.combine_tier!r})"
        return f"Kernels({self.tier!r}, keystream={self.keystream!r})"

    @property
    def constant_time(self):
        """Whether both tiers are constant time with respect to secret data."""
        return bool(self.t.constant_time and self.c.constant_time)

    @staticmethod
    def gf_mul(int poly, int a, int b):
        """a * b in GF(2^8) modulo ``poly``."""
        return mpss_gf256_mul(_field(poly), <uint8_t>a, <uint8_t>b)

    @staticmethod
    def gf_inv(int poly, int a):
        """Inverse of the non-zero ``a``."""
        if a == 0:
            raise ZeroDivisionError("0 has no inverse in GF(2^8)")
        return mpss_gf256_inv(_field(poly), <uint8_t>a)

    @staticmethod
    def new_bytes(Py_ssize_t length):
        """(obj, view): a new ``bytes`` of ``length`` and a writable view to fill it before it is shared.

        Filling the result in place saves the zeroing and the copy of a bytearray round trip.
        """
        cdef bytes obj = PyBytes_FromStringAndSize(NULL, length)
        cdef _FreshBytes holder = _FreshBytes()
        holder.target = obj
        return obj, memoryview(holder)

    def eval_shares(self, int poly, const uint8_t[::1] secret, coeffs, const uint8_t[::1] xs, outs):
        """outs[i] = secret + sum_j coeffs[j] * xs[i]^(j+1), byte by byte."""
        cdef const mpss_gf256_field *f = _field(poly)
        cdef _Pointers c = _Pointers(coeffs, False)
        cdef _Pointers o = _Pointers(outs, True)
        cdef int rc
        with nogil:
            rc = self.t.eval(f, &secret[0], <const uint8_t * const *>c.ptrs, <size_t>c.count,
                             &xs[0], o.ptrs, <size_t>o.count, <size_t>secret.shape[0])
        if rc != 0:
            raise MemoryError()

    def split_keyed(self, int poly, const uint8_t[::1] secret, Py_ssize_t m, const uint8_t[::1] xs, outs,
                    key=None):
        """eval_shares with coefficient row j = AES-256-CTR keystream of row j under ``key``.

        ``key`` (32 bytes) is drawn from the OS when None; the key and its schedule live
        on the stack and are wiped before returning.
        """
        cdef const mpss_gf256_field *f = _field(poly)
        cdef uint8_t raw[32]
        cdef const uint8_t[::1] given
        cdef mpss_aes256_schedule sched
        cdef _Pointers o
        cdef int rc
        if key is not None and len(key) != _random.KEY_BYTES:
            raise ValueError(f"key must be {_random.KEY_BYTES} bytes")  # unreachable via Engine
        if self.ctr == NULL:
            _random.keyed_split(self.eval_shares, poly, secret, m, xs, outs, key)
            return
        if key is None and mpss_os_random(raw, 32) == 0:
            mpss_aes256_expand(raw, &sched)
            mpss_wipe(raw, 32)
        else:
            given = _random.new_key() if key is None else key
            mpss_aes256_expand(&given[0], &sched)
        o = _Pointers(outs, True)
        with nogil:
            rc = self.t.eval_keyed(f, self.ctr, &sched, &secret[0], <size_t>m, &xs[0], o.ptrs, <size_t>o.count,
                                   <size_t>secret.shape[0])
        mpss_wipe(&sched, sizeof(sched))
        if rc != 0:
            raise MemoryError()

    def split_small(self, int poly, const uint8_t[::1] secret, Py_ssize_t m, const uint8_t[::1] xs):
        """Split a short secret in one call: coefficients from the OS, new ``x || y`` shares.

        The coefficients live on the stack and are wiped before returning. Returns None
        when ``m * len(secret) > SMALL_SPLIT_BYTES`` or where the OS offers no direct
        source: the caller then takes the general path.
        """
        cdef const mpss_gf256_field *f = _field(poly)
        cdef Py_ssize_t length = secret.shape[0]
        cdef Py_ssize_t n = xs.shape[0]
        cdef Py_ssize_t i, j
        cdef uint8_t coeff[SMALL_MAX]
        cdef const uint8_t *cptr[255]
        cdef uint8_t *optr[255]
        cdef int rc
        if length < 1 or not 1 <= m <= 254 or not 1 <= n <= 255:
            raise ValueError("split_small: arguments out of range")  # unreachable via Engine
        if m * length > SMALL_MAX:
            return None
        shares = []
        for i in range(n):
            share = PyBytes_FromStringAndSize(NULL, length + 1)
            optr[i] = <uint8_t *>PyBytes_AS_STRING(share)
            optr[i][0] = xs[i]
            optr[i] += 1
            shares.append(share)
        for j in range(m):
            cptr[j] = coeff + j * length
        if mpss_os_random(coeff, m * length) != 0:
            return None
        rc = self.t.eval(f, &secret[0], cptr, m, &xs[0], optr, n, length)
        mpss_wipe(coeff, m * length)
        if rc != 0:
            raise MemoryError()
        return shares

    def interpolate(self, int poly, const uint8_t[::1] xs, ys, uint8_t[::1] out):
        """out = sum_i w_i * ys[i], the Lagrange interpolation of the points at x = 0."""
        cdef const mpss_gf256_field *f = _field(poly)
        cdef _Pointers y = _Pointers(ys, False)
        cdef int rc
        with nogil:
            rc = self.c.interpolate(f, &xs[0], <const uint8_t * const *>y.ptrs, <size_t>y.count,
                                    &out[0], <size_t>out.shape[0])
        if rc != 0:
            raise MemoryError()

    def xor(self, const uint8_t[::1] a, const uint8_t[::1] b, uint8_t[::1] out):
        """out = a ^ b; out may be a or b itself."""
        cdef Py_ssize_t length = out.shape[0]
        if length == 0:
            return
        with nogil:
            self.c.xor2(&a[0], &b[0], &out[0], <size_t>length)

    def xor3(self, const uint8_t[::1] a, const uint8_t[::1] b, const uint8_t[::1] c, uint8_t[::1] out):
        """out = a ^ b ^ c; out may be one of the inputs itself."""
        cdef Py_ssize_t length = out.shape[0]
        if length == 0:
            return
        with nogil:
            self.c.xor3(&a[0], &b[0], &c[0], &out[0], <size_t>length)
