"""This machine's floor for each share-engine workload, measured by ``mpss bench`` next to the engine.

Plain C loops (``csrc/mpss_floor.c``) that do only the memory work a workload cannot
avoid, so an engine figure can be quoted as a fraction of what the machine allows:

- :class:`Store`: read ``src`` once and write it to every output (the split floor: the
  secret in, ``n`` shares of the same size out);
- :class:`Xor`: read every input and write their XOR to one output (the combine floor for
  ``k`` shares; with two inputs, the ``xor_into`` floor);

and one loop that is a bound, not a floor:

- :class:`Keystream`: the AES-256-CTR coefficient rows of a keyed split (``rows`` rows of
  ``length`` bytes, the engine's counter blocks ``BE64(row) || BE64(block)``), made in
  registers; only their XOR fold in 64-byte lanes is stored, into a 64-byte ``fold``. It
  reads and writes no memory, so it bounds a keyed split by the AES work alone
  (:data:`KEYSTREAM_ISAS`, :func:`keystream_impl`: where the CPU has AES instructions).

One copy of each loop per instruction set (:data:`ISAS`, widest first; :data:`ISA` is
the widest this CPU runs), with ordinary or non-temporal (``streaming``) stores. Buffers
are 1-D, C-contiguous, itemsize 1, non-empty and of one length; streaming needs every
output aligned to :func:`alignment`. An object holds its buffers and runs with the GIL
released. Not part of the share engine: nothing else imports this module.
"""

from libc.stdint cimport uint8_t, uintptr_t
from libc.stdlib cimport free, malloc


cdef extern from "mpss_floor.h" nogil:
    enum:
        MPSS_FLOOR_ISA_COUNT
    const char *mpss_floor_isa_name(int isa)
    int mpss_floor_supported(int isa)
    int mpss_floor_has_streaming(int isa)
    size_t mpss_floor_align(int isa)
    int mpss_floor_store(int isa, int streaming, const uint8_t *src, uint8_t *const *outs, size_t n, size_t length)
    int mpss_floor_xor(int isa, int streaming, const uint8_t *const *ins, size_t k, uint8_t *out, size_t length)
    enum:
        MPSS_FLOOR_MAX_ROWS
    const char *mpss_floor_keystream_name(int isa)
    int mpss_floor_keystream(int isa, const uint8_t *key, size_t m, size_t length, uint8_t *fold)


MAX_STREAMS = 255
ISAS = tuple(mpss_floor_isa_name(i).decode() for i in range(MPSS_FLOOR_ISA_COUNT) if mpss_floor_supported(i))
"""The instruction sets this CPU runs the floor loops with, widest first."""
ISA = ISAS[0]
"""The widest of :data:`ISAS`: the one ``mpss bench`` measures with."""
MAX_ROWS = MPSS_FLOOR_MAX_ROWS
"""The most coefficient rows a keyed split makes (k - 1, k <= 255): the limit of :class:`Keystream`."""
KEY_BYTES = 32
FOLD_BYTES = 64
KEYSTREAM_ISAS = tuple(
    mpss_floor_isa_name(i).decode() for i in range(MPSS_FLOOR_ISA_COUNT) if mpss_floor_keystream_name(i) != NULL
)
"""The instruction sets of :data:`ISAS` with a :class:`Keystream` loop on this CPU, widest first (empty without AES)."""


cdef int _isa_index(isa) except -1:
    cdef int i
    for i in range(MPSS_FLOOR_ISA_COUNT):
        if mpss_floor_isa_name(i).decode() == isa:
            if not mpss_floor_supported(i):
                raise ValueError(f"isa {isa!r} is not supported by this CPU (supported: {', '.join(ISAS)})")
            return i
    raise ValueError(f"unknown isa {isa!r} (supported: {', '.join(ISAS)})")


def has_streaming(isa: str = ISA) -> bool:
    """Whether ``isa`` has non-temporal stores (the x86 instruction sets)."""
    return bool(mpss_floor_has_streaming(_isa_index(isa)))


def alignment(isa: str = ISA) -> int:
    """The output alignment, in bytes, that streaming stores need with ``isa`` (its vector width)."""
    return int(mpss_floor_align(_isa_index(isa)))


def keystream_impl(isa: str = ISA):
    """The AES implementation of the :class:`Keystream` loop with ``isa``: ``"vaes512"``, ``"aesni"``, or None."""
    cdef const char *name = mpss_floor_keystream_name(_isa_index(isa))
    return None if name == NULL else name.decode()


def has_keystream(isa: str = ISA) -> bool:
    """Whether ``isa`` has a :class:`Keystream` loop on this CPU (it needs AES-NI; ``avx512`` needs VAES)."""
    return mpss_floor_keystream_name(_isa_index(isa)) != NULL


cdef const uint8_t *_readable(object buf, size_t *length) except NULL:
    cdef const uint8_t[::1] view = buf
    if view.shape[0] == 0:
        raise ValueError("floor buffers must not be empty")
    length[0] = <size_t>view.shape[0]
    return &view[0]


cdef uint8_t *_writable(object buf, size_t *length) except NULL:
    cdef uint8_t[::1] view = buf
    if view.shape[0] == 0:
        raise ValueError("floor buffers must not be empty")
    length[0] = <size_t>view.shape[0]
    return &view[0]


cdef class _Loop:
    """What both loops share: the instruction set, the store kind, the buffers kept alive."""

    cdef int isa_index
    cdef readonly str isa
    cdef readonly bint streaming
    cdef readonly size_t length
    cdef size_t count
    cdef void **ptrs
    cdef object _keep

    def __cinit__(self):
        self.ptrs = NULL

    def __dealloc__(self):
        free(self.ptrs)

    cdef _setup(self, list buffers, bint streaming, isa, str what):
        # buffers[0] is the single side (Store's input, Xor's output), the rest the streams
        if not 1 <= len(buffers) - 1 <= MAX_STREAMS:
            raise ValueError(f"{what}: 1 to {MAX_STREAMS} streams, not {len(buffers) - 1}")
        self.isa_index = _isa_index(ISA if isa is None else isa)
        self.isa = mpss_floor_isa_name(self.isa_index).decode()
        if streaming and not mpss_floor_has_streaming(self.isa_index):
            raise ValueError(f"isa {self.isa!r} has no streaming stores")
        self.streaming = streaming
        # memoryviews hold each buffer's export: a bytearray cannot be resized under the pointers
        self._keep = [memoryview(buf) for buf in buffers]
        self.count = len(buffers)
        self.ptrs = <void **>malloc(self.count * sizeof(void *))
        if self.ptrs == NULL:
            raise MemoryError()

    cdef _check(self, size_t i, size_t length, bint output):
        if i == 0:
            self.length = length
        elif length != self.length:
            raise ValueError(f"floor buffers must have one length: {length} != {self.length}")
        if output and self.streaming and <uintptr_t>self.ptrs[i] % mpss_floor_align(self.isa_index) != 0:
            raise ValueError(f"streaming stores need outputs aligned to {mpss_floor_align(self.isa_index)} bytes")


cdef class Store(_Loop):
    """``Store(src, outs)()`` writes ``src`` into every buffer of ``outs``, reading ``src`` once."""

    def __init__(self, src, outs, *, bint streaming=False, isa=None):
        cdef size_t length, i
        outs = list(outs)
        self._setup([src, *outs], streaming, isa, "Store outputs")
        self.ptrs[0] = <void *>_readable(src, &length)
        self._check(0, length, False)
        for i in range(1, self.count):
            self.ptrs[i] = <void *>_writable(outs[i - 1], &length)
            self._check(i, length, True)

    def __call__(self):
        cdef int rc
        with nogil:
            rc = mpss_floor_store(self.isa_index, self.streaming, <const uint8_t *>self.ptrs[0],
                                  <uint8_t * const *>&self.ptrs[1], self.count - 1, self.length)
        if rc != 0:
            raise RuntimeError("mpss_floor_store refused its arguments")


cdef class Xor(_Loop):
    """``Xor(ins, out)()`` writes the XOR of every buffer of ``ins`` into ``out``."""

    def __init__(self, ins, out, *, bint streaming=False, isa=None):
        cdef size_t length, i
        ins = list(ins)
        self._setup([out, *ins], streaming, isa, "Xor inputs")
        self.ptrs[0] = <void *>_writable(out, &length)
        self._check(0, length, True)
        for i in range(1, self.count):
            self.ptrs[i] = <void *>_readable(ins[i - 1], &length)
            self._check(i, length, False)

    def __call__(self):
        cdef int rc
        with nogil:
            rc = mpss_floor_xor(self.isa_index, self.streaming, <const uint8_t * const *>&self.ptrs[1],
                                self.count - 1, <uint8_t *>self.ptrs[0], self.length)
        if rc != 0:
            raise RuntimeError("mpss_floor_xor refused its arguments")


cdef class Keystream(_Loop):
    """``Keystream(key, fold, rows=m, length=L)()`` makes the ``m`` coefficient rows of a keyed split of ``L`` bytes.

    Row j is the AES-256-CTR keystream under the 32-byte ``key`` from the counter block
    ``BE64(j) || BE64(0)``, ``L`` bytes of it (as the engine's keyed split makes it). The
    keystream stays in registers; each call writes only its XOR fold into the 64-byte
    ``fold``: ``fold[i]`` is the XOR of byte t of every row for each t < L with
    ``t % 64 == i`` (zeros for ``L == 0``). The key schedule is expanded per call and wiped.
    ``isa`` defaults to the first of :data:`KEYSTREAM_ISAS`; ``streaming`` is always False.
    """

    cdef readonly size_t rows
    cdef readonly str impl

    def __init__(self, key, fold, *, Py_ssize_t rows, Py_ssize_t length, isa=None):
        cdef size_t nbytes
        cdef const char *name
        if isa is None:
            if not KEYSTREAM_ISAS:
                raise ValueError(f"no keystream loop on this CPU: no AES instructions (isas: {', '.join(ISAS)})")
            isa = KEYSTREAM_ISAS[0]
        if not 1 <= rows <= MAX_ROWS:
            raise ValueError(f"Keystream: rows must be 1 to {MAX_ROWS}, not {rows}")
        if length < 0:
            raise ValueError(f"Keystream: length must be >= 0, not {length}")
        self._setup([fold, key], False, isa, "Keystream")
        name = mpss_floor_keystream_name(self.isa_index)
        if name == NULL:
            raise ValueError(f"isa {self.isa!r} has no keystream loop on this CPU "
                             f"(keystream isas: {', '.join(KEYSTREAM_ISAS) or 'none, no AES instructions'})")
        if self._keep[0].nbytes != FOLD_BYTES or self._keep[1].nbytes != KEY_BYTES:
            raise ValueError(f"Keystream: the key must be {KEY_BYTES} bytes and the fold {FOLD_BYTES}, "
                             f"not {self._keep[1].nbytes} and {self._keep[0].nbytes}")
        self.ptrs[0] = <void *>_writable(fold, &nbytes)
        self.ptrs[1] = <void *>_readable(key, &nbytes)
        self.impl = name.decode()
        self.rows = <size_t>rows
        self.length = <size_t>length

    def __call__(self):
        cdef int rc
        with nogil:
            rc = mpss_floor_keystream(self.isa_index, <const uint8_t *>self.ptrs[1], self.rows, self.length,
                                      <uint8_t *>self.ptrs[0])
        if rc != 0:
            raise RuntimeError("mpss_floor_keystream refused its arguments")
