"""Constant time, checked with valgrind memcheck (the "ctgrind" technique).

``tests/ct/ctgrind.c`` marks the secret, coefficient, share and pad bytes undefined and
runs every kernel of a tier on them; memcheck reports any branch or address computed
from them. Every constant-time tier valgrind can run must be clean, and the ``table``
tier must be caught — which shows the check has teeth.

valgrind emulates neither AVX-512 nor GFNI (it hides them from CPUID), so the
``gfni512``/``gfni256`` tiers cannot be run here; they use no tables and no data-dependent
branches by construction (docs/security.md).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CSRC = ROOT / "csrc"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found on PATH: apt-get install valgrind gcc (needed for the constant-time check)")
    return path


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Path:
    exe = tmp_path_factory.mktemp("ct") / "ctgrind"
    sources = [str(ROOT / "tests" / "ct" / "ctgrind.c"), *map(str, sorted(CSRC.glob("*.c")))]
    # The same optimisation level as the extension, and debug info for readable reports.
    cmd = [_tool("gcc"), "-O3", "-g", "-std=c11", "-I", str(CSRC), "-o", str(exe), *sources]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=300)
    return exe


def _valgrind(driver: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [_tool("valgrind"), "--tool=memcheck", "--error-exitcode=99", "--track-origins=yes", str(driver), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def tiers_under_valgrind(driver: Path) -> dict[str, bool]:
    result = _valgrind(driver, "list")
    assert result.returncode == 0, result.stderr
    return {name: bool(int(flag)) for name, flag in (line.split() for line in result.stdout.splitlines())}


def test_valgrind_runs_the_portable_and_pshufb_tiers(tiers_under_valgrind: dict[str, bool]) -> None:
    import platform

    expected = {"swar", "table"} | ({"ssse3", "avx2"} if platform.machine() in ("x86_64", "AMD64") else set())
    assert expected <= set(tiers_under_valgrind)


def test_valgrind_runs_the_aesni_keystream(driver: Path) -> None:
    """Keyed splits (secret-marked key, AES-NI keystream) are part of every tier's run below."""
    import platform

    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.fail("the AES-NI keystream check needs an x86-64 machine")
    result = _valgrind(driver, "keystreams")
    assert result.returncode == 0, result.stderr
    assert "aesni" in result.stdout.split()


def test_constant_time_tiers_are_clean(driver: Path, tiers_under_valgrind: dict[str, bool]) -> None:
    checked = []
    for tier, constant_time in tiers_under_valgrind.items():
        if not constant_time:
            continue
        result = _valgrind(driver, tier)
        assert result.returncode == 0, f"{tier}: memcheck found secret-dependent branches or addresses\n{result.stderr}"
        checked.append(tier)
    assert "swar" in checked


def test_table_tier_is_caught(driver: Path, tiers_under_valgrind: dict[str, bool]) -> None:
    assert tiers_under_valgrind["table"] is False
    result = _valgrind(driver, "table")
    assert result.returncode == 99
    assert "Use of uninitialised value" in result.stderr
