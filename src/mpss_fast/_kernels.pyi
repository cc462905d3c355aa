"""The kernel contract that ``_native`` and ``_pure`` both implement.

Kernels receive only validated input: 1-D ``'B'`` memoryviews of equal, non-zero
length (``xor`` also accepts length 0), distinct non-zero x coordinates and a
supported polynomial. They draw no randomness and raise nothing for valid input.
"""

from collections.abc import Sequence

NAME: str

def new_bytes(length: int) -> tuple[bytes | bytearray, memoryview]: ...
def gf_mul(poly: int, a: int, b: int) -> int: ...
def gf_inv(poly: int, a: int) -> int: ...
def eval_shares(
    poly: int,
    secret: memoryview,
    coeffs: Sequence[memoryview],
    xs: bytes,
    outs: Sequence[memoryview],
) -> None: ...
def interpolate(poly: int, xs: bytes, ys: Sequence[memoryview], out: memoryview) -> None: ...
def xor(a: memoryview, b: memoryview, out: memoryview) -> None: ...
