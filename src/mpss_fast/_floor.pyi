"""Type stub of the floor extension of ``mpss bench`` (``csrc/mpss_floor.c``)."""

from collections.abc import Iterable

from typing_extensions import Buffer

MAX_STREAMS: int
ISAS: tuple[str, ...]
ISA: str

def has_streaming(isa: str = ...) -> bool: ...
def alignment(isa: str = ...) -> int: ...

class _Loop:
    @property
    def isa(self) -> str: ...
    @property
    def streaming(self) -> bool: ...
    @property
    def length(self) -> int: ...

class Store(_Loop):
    def __init__(
        self, src: Buffer, outs: Iterable[Buffer], *, streaming: bool = False, isa: str | None = None
    ) -> None: ...
    def __call__(self) -> None: ...

class Xor(_Loop):
    def __init__(
        self, ins: Iterable[Buffer], out: Buffer, *, streaming: bool = False, isa: str | None = None
    ) -> None: ...
    def __call__(self) -> None: ...
