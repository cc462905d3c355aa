"""Statistical checks: k-1 shares say nothing about the secret; coefficients are uniform.

Each test uses a p-value threshold of 1e-6, so a correct implementation fails by chance
about once in a million runs. A negative control shows the same test does catch a
coefficient source that never yields 0 (the published audit finding).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from scipy.stats import chi2_contingency, chisquare

from mpss_fast import Engine

P_MIN = 1e-6
SAMPLES = 1 << 17  # 512 expected per byte value


def _share_bytes(engine: Engine, fill: int, k: int, n: int, rng=None) -> np.ndarray:
    secrets = np.full((1, SAMPLES), fill, dtype=np.uint8)
    return engine.split_array(secrets, k, n, rng=rng)[:, 0, :]


def _independence_p(a: np.ndarray, b: np.ndarray) -> float:
    table = np.vstack([np.bincount(a, minlength=256), np.bincount(b, minlength=256)])
    return float(chi2_contingency(table).pvalue)


def _statistics(shares: np.ndarray) -> dict[str, np.ndarray]:
    return {"y1": shares[0], "y2": shares[1], "y1^y2": shares[0] ^ shares[1]}


@pytest.mark.parametrize(("k", "n"), [(2, 3), (3, 5)])
def test_k_minus_1_shares_independent_of_secret(engine: Engine, k: int, n: int) -> None:
    """Share bytes (and their XOR) have the same uniform distribution for two different secrets."""
    shares_a = _share_bytes(engine, 0x00, k, n)[: k - 1]
    shares_b = _share_bytes(engine, 0xA7, k, n)[: k - 1]
    for i in range(k - 1):
        assert _independence_p(shares_a[i], shares_b[i]) > P_MIN
        assert chisquare(np.bincount(shares_a[i], minlength=256)).pvalue > P_MIN
    if k == 3:
        for name, stat_a in _statistics(shares_a).items():
            assert _independence_p(stat_a, _statistics(shares_b)[name]) > P_MIN, name


def _never_zero_rng(nbytes: int) -> bytes:
    """A broken source: uniform over 1..255 only."""
    raw = np.frombuffer(hashlib.shake_256(b"biased").digest(nbytes * 2), dtype=np.uint16)
    return (raw % 255 + 1).astype(np.uint8).tobytes()


def test_negative_control_detects_a_biased_coefficient_source(engine: Engine) -> None:
    """With coefficients never 0, one share of a 2-of-n split leaks which secret it hides."""
    shares_a = _share_bytes(engine, 0x00, 2, 2, rng=_never_zero_rng)
    shares_b = _share_bytes(engine, 0xA7, 2, 2, rng=_never_zero_rng)
    assert _independence_p(shares_a[0], shares_b[0]) < P_MIN


@pytest.mark.parametrize("nbytes", [4097, 1 << 20])
def test_default_coefficients_uniform_including_zero(engine: Engine, nbytes: int) -> None:
    """The default (keyed AES-CTR) path: a 2-of-2 share of a zero secret at x=1 is the coefficient row itself."""
    counts = np.zeros(256, dtype=np.int64)
    for _ in range(max(1, (1 << 20) // nbytes)):
        row = engine.split_array(np.zeros((1, nbytes), dtype=np.uint8), 2, 2)[0, 0]
        counts += np.bincount(row, minlength=256)
    assert counts[0] > 0
    assert chisquare(counts).pvalue > P_MIN


def test_fresh_key_per_split(engine: Engine) -> None:
    """Two splits never share a coefficient stream (a fresh key each time)."""
    secret = bytes(1 << 16)
    assert engine.split(secret, 2, 2)[0] != engine.split(secret, 2, 2)[0]


def test_fork_gives_parent_and_child_different_coefficients(engine: Engine) -> None:
    """No generator state is inherited across fork(): both sides draw fresh randomness."""
    import os

    secret = bytes(1 << 16)  # large enough for the AES-CTR path
    engine.split(secret, 2, 2)  # any per-thread state exists before the fork
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: send the first share's y bytes and exit without running pytest teardown
        try:
            os.write(write_end, engine.split(secret, 2, 2)[0][1:65])
        finally:
            os._exit(0)
    os.close(write_end)
    parent = engine.split(secret, 2, 2)[0][1:65]
    child = os.read(read_end, 64)
    os.close(read_end)
    os.waitpid(pid, 0)
    assert len(child) == 64
    assert child != parent


def test_short_secret_path_is_uniform(engine: Engine) -> None:
    """Short secrets take the one-call path (coefficients from getrandom); its shares are uniform too."""
    counts = np.zeros(256, dtype=np.int64)
    for _ in range(8000):
        share = engine.split(bytes(64), 2, 2)[0]  # y = 0 + c * 1: the coefficient bytes themselves
        counts += np.bincount(np.frombuffer(share, dtype=np.uint8)[1:], minlength=256)
    assert counts[0] > 0
    assert chisquare(counts).pvalue > P_MIN
