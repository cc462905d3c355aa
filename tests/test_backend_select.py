"""MPSS_FAST_BACKEND picks the backend at import; a requested native backend never falls back."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import mpss_fast
from mpss_fast import BackendError, Engine

PROBE = "import mpss_fast; print(mpss_fast.BACKEND)"
# Make the native extension unimportable, as on a build without a C compiler.
BLOCK_NATIVE = "import sys; sys.modules['mpss_fast._native'] = None; "


def _run(code: str, backend: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MPSS_FAST_BACKEND"}
    if backend is not None:
        env["MPSS_FAST_BACKEND"] = backend
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, "native"), ("", "native"), ("auto", "native"), ("native", "native"), ("pure", "pure")],
)
def test_selection(value: str | None, expected: str) -> None:
    result = _run(PROBE, value)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


@pytest.mark.parametrize("value", ["bogus", "Native", "c", "python"])
def test_unknown_value_is_an_import_error(value: str) -> None:
    result = _run(PROBE, value)
    assert result.returncode != 0
    assert "BackendError" in result.stderr and "is not one of: auto, native, pure" in result.stderr


def test_native_requested_but_missing_fails_loudly() -> None:
    result = _run(BLOCK_NATIVE + PROBE, "native")
    assert result.returncode != 0
    assert "native backend was requested" in result.stderr


def test_auto_without_native_uses_pure() -> None:
    result = _run(BLOCK_NATIVE + PROBE, "auto")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "pure"


def test_backend_error_is_an_import_error() -> None:
    assert issubclass(BackendError, ImportError)
    with pytest.raises(BackendError, match="unknown backend"):
        Engine("fast")


def test_module_functions_use_the_selected_backend() -> None:
    env_value = os.environ.get("MPSS_FAST_BACKEND", "auto") or "auto"
    if env_value in ("native", "pure"):
        assert mpss_fast.BACKEND == env_value
    engine = mpss_fast.split.__self__
    assert engine.backend == mpss_fast.BACKEND
    assert engine.kernel == mpss_fast.KERNEL
    assert repr(engine).startswith(f"Engine({mpss_fast.BACKEND!r}")


def test_public_names() -> None:
    for name in mpss_fast.__all__:
        assert hasattr(mpss_fast, name), name
    assert mpss_fast.POLY_AES == 0x11B and mpss_fast.POLY_GFSHARE == 0x11D


KERNEL_PROBE = "import mpss_fast; print(mpss_fast.BACKEND, mpss_fast.KERNEL)"


def _run_kernel(kernel: str | None, backend: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MPSS_FAST_BACKEND", "MPSS_FAST_KERNEL")}
    if kernel is not None:
        env["MPSS_FAST_KERNEL"] = kernel
    if backend is not None:
        env["MPSS_FAST_BACKEND"] = backend
    return subprocess.run(
        [sys.executable, "-c", KERNEL_PROBE], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_default_kernel_is_the_calibrated_constant_time_tier() -> None:
    from mpss_fast import _calibrate, _native

    result = _run_kernel(None)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["native", _calibrate.default_tier(_native).tier]
    assert _native.is_constant_time(result.stdout.split()[1])
    assert _native.best_tier() == next(t for t in mpss_fast.KERNELS if _native.is_constant_time(t))


@pytest.mark.parametrize("tier", mpss_fast.KERNELS)
def test_every_supported_tier_can_be_forced(tier: str) -> None:
    result = _run_kernel(tier)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["native", tier]
    assert Engine("native", kernel=tier).kernel == tier


@pytest.mark.parametrize("tier", ["avx1024", "GFNI512", "pure", "native"])
def test_unknown_tier_fails_loudly(tier: str) -> None:
    result = _run_kernel(tier)
    assert result.returncode != 0
    assert "BackendError" in result.stderr
    assert "unknown kernel tier" in result.stderr or "needs the native backend" in result.stderr


def test_tier_with_pure_backend_is_a_conflict() -> None:
    result = _run_kernel("swar", backend="pure")
    assert result.returncode != 0 and "needs the native backend" in result.stderr


def test_unsupported_tier_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tier compiled in but not runnable on this CPU (simulated: the CPU check reports only swar/table)."""
    from mpss_fast import _backend, _native

    monkeypatch.setattr(_native, "supported_tiers", lambda: ("swar", "table"))
    with pytest.raises(BackendError, match="not supported by this CPU; it supports: swar, table"):
        _backend.load("native", "avx2")


def test_kernel_names_exposed() -> None:
    from mpss_fast import _native

    assert mpss_fast.KERNELS == _native.supported_tiers()
    assert {"swar", "table"} <= set(mpss_fast.KERNELS)
    assert set(_native.TIERS) >= set(mpss_fast.KERNELS)
    assert not _native.is_constant_time("table")
    assert Engine("pure").kernel == "pure"
