"""This machine's floor for each share-engine workload, measured by ``mpss bench`` next to the engine.

Plain C loops (``csrc/mpss_floor.c``) that do only the memory work a workload cannot
avoid, so an engine figure can be quoted as a fraction of what the machine allows:

- :class:`Store`: read ``src`` once and write it to every output (the split floor: the
  secret in, ``n`` shares of the same size out);
- :class:`Xor`: read every input and write their XOR to one output (the combine floor for
  ``k`` shares; with two inputs, the ``xor_into`` floor).

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


MAX_STREAMS = 255
ISAS = tuple(mpss_floor_isa_name(i).decode() for i in range(MPSS_FLOOR_ISA_COUNT) if mpss_floor_supported(i))
"""The instruction sets this CPU runs the floor loops with, widest first."""
ISA = ISAS[0]
"""The widest of :data:`ISAS`: the one ``mpss bench`` measures with."""


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
