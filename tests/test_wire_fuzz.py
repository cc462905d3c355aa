"""The atheris harness (tests/fuzz_wire.py) for ~20 s, and its seed corpus.

Without atheris the fuzz run is skipped, except under ``MPSS_FAST_NO_SKIPS=1``,
where it fails: CI must not pass without having fuzzed.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mpss_fast.wire import parse_packet
from tests.fuzz_wire import CORPUS, check_one_input, seed_packets

HARNESS = Path(__file__).resolve().parent / "fuzz_wire.py"
ROOT = HARNESS.parents[1]
SECONDS = 20


def test_corpus_is_current_and_valid() -> None:
    on_disk = {path.name: path.read_bytes() for path in CORPUS.iterdir()}
    assert on_disk == seed_packets(), "regenerate: python tests/fuzz_wire.py --write-corpus tests/corpus/wire"
    for data in on_disk.values():
        parse_packet(data)
        check_one_input(data)


@pytest.mark.slow
def test_fuzz_the_packet_parser(tmp_path: Path) -> None:
    if importlib.util.find_spec("atheris") is None:
        message = "atheris is not installed (pip install 'mpss-fast[test]' on x86-64 Linux, CPython 3.11-3.13)"
        if os.environ.get("MPSS_FAST_NO_SKIPS") == "1":
            pytest.fail(f"MPSS_FAST_NO_SKIPS=1: {message}")
        pytest.skip(message)
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)  # libFuzzer adds to its corpus: never the one in the repository
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run(
        [
            sys.executable,
            str(HARNESS),
            str(corpus),
            f"-max_total_time={SECONDS}",
            f"-artifact_prefix={tmp_path}/",
            "-print_final_stats=1",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=SECONDS + 120,
        check=False,
    )
    tail = result.stderr[-3000:]
    assert result.returncode == 0, tail
    assert "Done" in result.stderr, tail
    assert not list(tmp_path.glob("crash-*")), tail
