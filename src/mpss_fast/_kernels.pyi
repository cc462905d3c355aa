"""The kernel contract that ``_pure`` and every ``_native.Kernels`` tier implement.

Kernels receive only validated input: 1-D ``'B'`` memoryviews of equal, non-zero
length (``xor``/``xor3`` also accept length 0), distinct non-zero x coordinates and a
supported polynomial. They draw no randomness and raise nothing for valid input.
"""

from collections.abc import Sequence

NAME: str
tier: str
"""The tier of the splits: eval_shares, split_keyed, split_small."""
combine_tier: str
"""The tier of interpolate, xor and xor3 (the same as ``tier`` unless chosen apart)."""
constant_time: bool
keystream: str

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
def split_keyed(
    poly: int,
    secret: memoryview,
    m: int,
    xs: bytes,
    outs: Sequence[memoryview],
    key: bytes | None = None,
) -> None: ...
def split_small(poly: int, secret: memoryview, m: int, xs: bytes) -> list[bytes] | None: ...
def interpolate(poly: int, xs: bytes, ys: Sequence[memoryview], out: memoryview) -> None: ...
def xor(a: memoryview, b: memoryview, out: memoryview) -> None: ...
def xor3(a: memoryview, b: memoryview, c: memoryview, out: memoryview) -> None: ...
