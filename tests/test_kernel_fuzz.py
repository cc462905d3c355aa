"""The atheris harness of the native kernels (tests/fuzz_kernels.py) for ~20 s, and its seed corpus.

Without atheris the fuzz run is skipped, except under ``MPSS_FAST_NO_SKIPS=1``,
where it fails: CI must not pass without having fuzzed. Without the native extension
there is nothing to fuzz: skipped likewise, a failure where the native backend is required.
"""

from __future__ import annotations

import random
from pathlib import Path
from types import ModuleType

import pytest

from mpss_fast import _backend

from .atheris_run import run_harness, skip_or_fail
from .conftest import _native_required

HARNESS = Path(__file__).resolve().parent / "fuzz_kernels.py"
SECONDS = 20


@pytest.fixture(scope="module")
def harness() -> ModuleType:
    if not _backend.native_tiers():
        skip_or_fail("the native extension is not available: no kernels to fuzz", fail=_native_required())
    from tests import fuzz_kernels

    return fuzz_kernels


def test_corpus_is_current_and_valid(harness: ModuleType) -> None:
    on_disk = {path.name: path.read_bytes() for path in harness.CORPUS.iterdir()}
    regenerate = "regenerate: python tests/fuzz_kernels.py --write-corpus tests/corpus/kernels"
    assert on_disk == harness.seed_inputs(), regenerate
    for data in on_disk.values():
        harness.check_one_input(data)


def test_every_tier_operation_and_alignment_without_atheris(harness: ModuleType) -> None:
    """The property on fixed pseudo-random inputs, so a run without atheris still checks it."""
    rng = random.Random(20240601)
    for _ in range(300):
        harness.check_one_input(rng.randbytes(rng.randrange(0, 400)))


@pytest.mark.slow
def test_fuzz_the_native_kernels(tmp_path: Path, harness: ModuleType) -> None:
    run_harness(HARNESS, harness.CORPUS, tmp_path, SECONDS)
