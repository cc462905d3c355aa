"""Running an atheris harness for a bounded time, shared by the fuzz tests of the wire parser and the kernels."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MISSING = "atheris is not installed (pip install 'mpss-fast[test]' on x86-64 Linux, CPython 3.11-3.13)"


def skip_or_fail(message: str, *, fail: bool = False) -> None:
    """Skip, or fail where a skip is not acceptable (``fail`` or ``MPSS_FAST_NO_SKIPS=1``)."""
    if fail or os.environ.get("MPSS_FAST_NO_SKIPS") == "1":
        pytest.fail(message)
    pytest.skip(message)


def run_harness(harness: Path, corpus: Path, tmp_path: Path, seconds: int) -> None:
    """Fuzz with ``harness`` for ``seconds`` from a copy of ``corpus``; fail on any crash or error exit."""
    if importlib.util.find_spec("atheris") is None:
        skip_or_fail(MISSING)
    work = tmp_path / "corpus"
    shutil.copytree(corpus, work)  # libFuzzer adds to its corpus: never the one in the repository
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run(
        [
            sys.executable,
            str(harness),
            str(work),
            f"-max_total_time={seconds}",
            f"-artifact_prefix={tmp_path}/",
            "-print_final_stats=1",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        check=False,
    )
    tail = result.stderr[-3000:]
    assert result.returncode == 0, tail
    assert "Done" in result.stderr, tail
    assert not list(tmp_path.glob("crash-*")), tail
