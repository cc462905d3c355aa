"""Concurrent bulk calls over shared read-only inputs and private outputs (kernels release the GIL)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from mpss_fast import Engine


def test_concurrent_split_and_combine(engine: Engine) -> None:
    secrets = np.frombuffer(os.urandom(2000 * 32), np.uint8).reshape(2000, 32)
    secrets.flags.writeable = False

    def work(index: int) -> bool:
        out = np.empty((5, 2000, 32), dtype=np.uint8)
        back = np.empty((2000, 32), dtype=np.uint8)
        for _ in range(5):
            engine.split_array(secrets, 3, 5, out=out)
            rows = [index % 5, (index + 1) % 5, (index + 3) % 5]
            engine.combine_array(np.ascontiguousarray(out[rows]), [r + 1 for r in rows], out=back)
            if not np.array_equal(back, secrets):
                return False
        single = engine.split(secrets[index].tobytes(), 2, 3)
        return engine.combine(single[1:]) == secrets[index].tobytes()

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert all(pool.map(work, range(16)))
