"""The atheris harness (tests/fuzz_wire.py) for ~20 s, and its seed corpus.

Without atheris the fuzz run is skipped, except under ``MPSS_FAST_NO_SKIPS=1``,
where it fails: CI must not pass without having fuzzed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mpss_fast.wire import parse_packet
from tests.fuzz_wire import CORPUS, check_one_input, seed_packets

from .atheris_run import run_harness

HARNESS = Path(__file__).resolve().parent / "fuzz_wire.py"
SECONDS = 20


def test_corpus_is_current_and_valid() -> None:
    on_disk = {path.name: path.read_bytes() for path in CORPUS.iterdir()}
    assert on_disk == seed_packets(), "regenerate: python tests/fuzz_wire.py --write-corpus tests/corpus/wire"
    for data in on_disk.values():
        parse_packet(data)
        check_one_input(data)


@pytest.mark.slow
def test_fuzz_the_packet_parser(tmp_path: Path) -> None:
    run_harness(HARNESS, CORPUS, tmp_path, SECONDS)
