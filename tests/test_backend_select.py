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
    assert mpss_fast.split.__self__.backend == mpss_fast.BACKEND
    assert repr(mpss_fast.split.__self__) == f"Engine({mpss_fast.BACKEND!r})"


def test_public_names() -> None:
    for name in mpss_fast.__all__:
        assert hasattr(mpss_fast, name), name
    assert mpss_fast.POLY_AES == 0x11B and mpss_fast.POLY_GFSHARE == 0x11D
