"""``mpss_fast.selftest`` and ``mpss selftest``: passes here, names a broken tier, vectors re-derived."""

from __future__ import annotations

import importlib
import struct
import time
from typing import Any

import galois
import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

import mpss_fast
from mpss_fast import _selftest as st
from mpss_fast._backend import load
from mpss_fast.cli import main
from mpss_fast.exceptions import MpssError, SelfTestError
from tests.conftest import _native_required
from tests.test_cli import _assert_user_error
from tests.test_sharing import TSS_SECRET, TSS_SHARES


class Broken:
    """A kernels object that forwards to real kernels, except that ``method`` returns wrong bytes."""

    def __init__(self, kernels: Any, method: str, *, raises: bool = False) -> None:
        self._kernels, self._method, self._raises = kernels, method, raises

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._kernels, name)
        if name != self._method:
            return real

        def broken(*args: Any) -> None:
            if self._raises:
                raise RuntimeError("kernel fault")
            real(*args)
            out = args[-1] if name != "split_keyed" else args[-2][0]
            if isinstance(out, list):
                out = out[0]
            out[0] ^= 1

        return broken


def _targets(*extra: tuple[str, Any]) -> list[tuple[str, Any]]:
    return [("pure", lambda: load("pure")), *((name, lambda k=k: k) for name, k in extra)]


# -- passes on this machine -------------------------------------------------------------------------


def test_selftest_passes_on_every_tier() -> None:
    start = time.perf_counter()
    report = mpss_fast.selftest()
    elapsed = time.perf_counter() - start
    assert report.ok and not report.failures
    tiers = report.tiers()
    expected = ["pure", *mpss_fast.KERNELS]
    if mpss_fast.KERNELS:
        native = importlib.import_module("mpss_fast._native")
        expected += [f"keystream-{n}" for n in native.supported_keystreams() if n != native.LIBRARY_KEYSTREAM]
    assert list(tiers) == expected
    for tier in ["pure", *mpss_fast.KERNELS]:
        assert tiers[tier] == (8, 8)
    assert {r.check for r in report.results if r.tier == "pure"} == {
        "eval-0x11b",
        "combine-0x11b",
        "eval-0x11d",
        "combine-0x11d",
        "xor",
        "reencrypt",
        "keyed-split",
        "tss-vector",
    }
    assert elapsed < 1.0
    assert report.message().startswith("selftest passed: ")


def test_this_machine_has_native_tiers_and_keystreams() -> None:
    """CI runs the native build on x86 with AES-NI: the native tiers and keystreams must be checked there."""
    tiers = mpss_fast.selftest().tiers()
    if not mpss_fast.KERNELS:
        if _native_required():
            pytest.fail("native backend required but unavailable")
        pytest.skip("no native extension in this build")
    assert "swar" in tiers and "keystream-aesni" in tiers


def test_cli_selftest(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["selftest"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0] == "pure: 8/8 checks passed"
    assert len(lines) == len(mpss_fast.selftest().tiers())
    assert captured.err == ""


def test_selftest_is_exported() -> None:
    assert "selftest" in mpss_fast.__all__
    assert mpss_fast.selftest is st.selftest
    assert issubclass(SelfTestError, MpssError)


# -- a broken kernel is caught and named --------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "failing"),
    [
        ("interpolate", ["combine-0x11b", "combine-0x11d", "tss-vector"]),
        ("eval_shares", ["eval-0x11b", "eval-0x11d", "tss-vector"]),
        ("xor", ["xor"]),
        ("xor3", ["reencrypt"]),
        ("split_keyed", ["keyed-split"]),
    ],
)
@pytest.mark.parametrize("kernel_id", ["pure", *(f"native-{t}" for t in mpss_fast.KERNELS)])
def test_broken_kernel_fails_by_name(
    monkeypatch: pytest.MonkeyPatch, kernel_id: str, method: str, failing: list[str]
) -> None:
    real = load("pure") if kernel_id == "pure" else load("native", kernel_id.removeprefix("native-"))
    monkeypatch.setattr(st, "_kernel_targets", lambda: _targets(("broken-" + kernel_id, Broken(real, method))))
    with pytest.raises(SelfTestError) as info:
        mpss_fast.selftest()
    assert info.value.failures == tuple(("broken-" + kernel_id, check) for check in failing)
    assert str(info.value) == f"selftest failed: broken-{kernel_id}: {', '.join(failing)}"
    report = mpss_fast.selftest(raise_on_failure=False)
    assert not report.ok
    assert report.tiers()["pure"] == (8, 8)
    assert report.tiers()["broken-" + kernel_id] == (8 - len(failing), 8)


def test_raising_kernel_is_a_failure_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = Broken(load("pure"), "interpolate", raises=True)
    monkeypatch.setattr(st, "_kernel_targets", lambda: _targets(("avx2", broken)))
    report = mpss_fast.selftest(raise_on_failure=False)
    assert [(r.tier, r.check) for r in report.failures] == [
        ("avx2", "combine-0x11b"),
        ("avx2", "combine-0x11d"),
        ("avx2", "tss-vector"),
    ]


def test_tier_that_cannot_load(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail() -> Any:
        raise mpss_fast.BackendError("gone")

    monkeypatch.setattr(st, "_kernel_targets", lambda: [("pure", lambda: load("pure")), ("gfni512", fail)])
    with pytest.raises(SelfTestError, match=r"^selftest failed: gfni512: load$"):
        mpss_fast.selftest()


def test_broken_keystream(monkeypatch: pytest.MonkeyPatch) -> None:
    def wrong(key: bytes, row: int, first_block: int, nblocks: int) -> bytes:
        return bytes(16 * nblocks)

    monkeypatch.setattr(st, "_keystream_targets", lambda: [("aesni", wrong)])
    with pytest.raises(SelfTestError, match=r"^selftest failed: keystream-aesni: aes256-ctr$"):
        mpss_fast.selftest()


def test_cli_reports_the_broken_tier(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(st, "_kernel_targets", lambda: _targets(("ssse3", Broken(load("pure"), "xor3"))))
    rc = main(["selftest"])
    captured = capsys.readouterr()
    assert "ssse3: 7/8 checks passed" in captured.out.splitlines()
    assert rc == 1
    err = captured.err.splitlines()
    assert err == ["mpss: error: selftest failed: ssse3: reencrypt"]
    assert st._XOR3.hex()[:8] not in captured.err


def test_cli_failure_is_one_error_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(st, "_kernel_targets", lambda: _targets(("swar", Broken(load("pure"), "eval_shares"))))
    rc = main(["selftest"])
    line = _assert_user_error(capsys, rc)
    assert line == "mpss: error: selftest failed: swar: eval-0x11b, eval-0x11d, tss-vector"


# -- the pasted vectors, derived again independently -----------------------------------------------------


def _gf_eval(poly: int, secret: bytes, rows: list[bytes], x: int) -> bytes:
    gf = galois.GF(2**8, irreducible_poly=poly)
    value = gf(np.frombuffer(secret, np.uint8))
    for j, row in enumerate(rows):
        value = value + gf(np.frombuffer(row, np.uint8)) * gf(x) ** (j + 1)
    return np.asarray(value, np.uint8).tobytes()


def _gf_lagrange_at_zero(poly: int, xs: bytes, ys: tuple[bytes, ...]) -> bytes:
    gf = galois.GF(2**8, irreducible_poly=poly)
    acc = gf(np.zeros(len(ys[0]), np.uint8))
    for i, (xi, y) in enumerate(zip(xs, ys, strict=True)):
        weight = gf(1)
        for m, xm in enumerate(xs):
            if m != i:
                weight = weight * gf(xm) / (gf(xm) + gf(xi))
        acc = acc + weight * gf(np.frombuffer(y, np.uint8))
    return np.asarray(acc, np.uint8).tobytes()


def _aes_ctr(key: bytes, row: int, block: int, nblocks: int) -> bytes:
    encryptor = Cipher(algorithms.AES256(key), modes.CTR(struct.pack(">QQ", row, block))).encryptor()
    return encryptor.update(bytes(16 * nblocks)) + encryptor.finalize()


def test_inputs_are_as_documented() -> None:
    assert st.LENGTH == 71
    assert st._SECRET == bytes((0x25 * i) & 0xFF for i in range(71))
    assert len(st._COEFFS) == 2 * 71
    assert st._KEY == bytes(range(32))
    assert st._TSS_SECRET == TSS_SECRET and st._TSS_SHARES == TSS_SHARES


@pytest.mark.parametrize(("poly", "name"), [(0x11B, "_EVAL_11B"), (0x11D, "_EVAL_11D")])
def test_eval_vector(poly: int, name: str) -> None:
    rows = [st._COEFFS[:71], st._COEFFS[71:]]
    assert getattr(st, name) == b"".join(_gf_eval(poly, st._SECRET, rows, x) for x in st._XS)


@pytest.mark.parametrize(("poly", "name"), [(0x11B, "_COMBINE_11B"), (0x11D, "_COMBINE_11D")])
def test_combine_vector(poly: int, name: str) -> None:
    assert getattr(st, name) == _gf_lagrange_at_zero(poly, st._COMBINE_XS, st._COMBINE_YS)


def test_xor_vectors() -> None:
    a, b, c = (np.frombuffer(p, np.uint8) for p in st._PADS)
    assert st._XOR == (a ^ b).tobytes()
    assert st._XOR3 == (a ^ b ^ c).tobytes()


def test_keyed_split_vector() -> None:
    rows = [_aes_ctr(st._KEY, j, 0, 5)[:71] for j in range(2)]
    assert st._KEYED_11B == b"".join(_gf_eval(0x11B, st._SECRET, rows, x) for x in st._XS)


def test_keystream_vector() -> None:
    assert st._KEYSTREAM == _aes_ctr(st._KEY, 5, 2**32 - 3, 39)
    assert (st._KEYSTREAM_ROW, st._KEYSTREAM_FIRST_BLOCK, st._KEYSTREAM_BLOCKS) == (5, 2**32 - 3, 39)
