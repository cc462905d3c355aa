"""Deterministic randomness for tests (never the ``random`` module)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable


def seeded_rng(seed: bytes) -> Callable[[int], bytes]:
    """A deterministic rng(nbytes) for tests: successive SHAKE-256 outputs keyed by ``seed``."""
    counter = 0

    def rng(nbytes: int) -> bytes:
        nonlocal counter
        counter += 1
        return hashlib.shake_256(seed + counter.to_bytes(8, "little")).digest(nbytes)

    return rng
