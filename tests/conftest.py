"""Shared fixtures: tests that take ``kernels`` or ``engine`` run once per backend and tier.

The parameters are the pure backend plus every native kernel tier this CPU supports.
A backend that cannot load is skipped, unless the run demands it: under
``MPSS_FAST_BACKEND=native`` or ``MPSS_FAST_REQUIRE_NATIVE=1`` a missing native
extension is a failure. ``MPSS_FAST_NO_SKIPS=1`` (set by CI) turns any skipped test
into a failed run.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from mpss_fast import BackendError, Engine, _backend

NATIVE_TIERS = _backend.native_tiers() or ("best",)  # "best": a placeholder that fails or skips below
KERNEL_IDS = ["pure", *(f"native-{tier}" for tier in NATIVE_TIERS)]


def _native_required() -> bool:
    return os.environ.get("MPSS_FAST_BACKEND") == "native" or os.environ.get("MPSS_FAST_REQUIRE_NATIVE") == "1"


def load_kernels(kernel_id: str) -> Any:
    """The kernels for an id of KERNEL_IDS ("pure" or "native-<tier>")."""
    if kernel_id == "pure":
        return _backend.load("pure")
    tier = kernel_id.removeprefix("native-")
    try:
        return _backend.load("native", None if tier == "best" else tier)
    except BackendError as exc:
        if _native_required():
            pytest.fail(f"native backend required but unavailable: {exc}")
        pytest.skip(f"native backend unavailable: {exc}")


@pytest.fixture(params=KERNEL_IDS)
def kernels(request: pytest.FixtureRequest) -> Any:
    """The kernels of the pure backend and of each native tier."""
    return load_kernels(request.param)


@pytest.fixture(params=KERNEL_IDS)
def engine(request: pytest.FixtureRequest) -> Engine:
    """The public API bound to the pure backend and to each native tier."""
    return Engine(_kernels=load_kernels(request.param))


@pytest.fixture(scope="session", params=KERNEL_IDS[1:])
def both_engines(request: pytest.FixtureRequest) -> tuple[Engine, Engine]:
    """(a native tier, pure), for byte-for-byte comparisons; one pair per native tier."""
    return Engine(_kernels=load_kernels(request.param)), Engine("pure")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("MPSS_FAST_NO_SKIPS") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter is not None else 0
    if skipped and exitstatus == 0:
        if reporter is not None:
            reporter.write_line(f"MPSS_FAST_NO_SKIPS=1: {skipped} test(s) skipped; a skipped test is not a pass")
        session.exitstatus = 1
