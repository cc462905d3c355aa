"""Shared fixtures: every test that takes ``engine`` or ``kernels`` runs once per backend.

A backend that cannot load is skipped, unless the run demands it: under
``MPSS_FAST_BACKEND=native`` or ``MPSS_FAST_REQUIRE_NATIVE=1`` a missing native
extension is a failure. ``MPSS_FAST_NO_SKIPS=1`` (set by CI) turns any skipped test
into a failed run.
"""

from __future__ import annotations

import os
from types import ModuleType

import pytest

from mpss_fast import BackendError, Engine, _backend

BACKENDS = ("native", "pure")


def _native_required() -> bool:
    return os.environ.get("MPSS_FAST_BACKEND") == "native" or os.environ.get("MPSS_FAST_REQUIRE_NATIVE") == "1"


def _load(name: str) -> ModuleType:
    try:
        return _backend.load(name)
    except BackendError as exc:
        if name == "native" and _native_required():
            pytest.fail(f"native backend required but unavailable: {exc}")
        pytest.skip(f"{name} backend unavailable: {exc}")


@pytest.fixture(params=BACKENDS)
def kernels(request: pytest.FixtureRequest) -> ModuleType:
    """The kernel module of each backend."""
    return _load(request.param)


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest) -> Engine:
    """The public API bound to each backend."""
    return Engine(_kernels=_load(request.param))


@pytest.fixture(scope="session")
def both_engines() -> tuple[Engine, Engine]:
    """(native, pure), for byte-for-byte comparisons."""
    return Engine(_kernels=_load("native")), Engine(_kernels=_load("pure"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("MPSS_FAST_NO_SKIPS") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter is not None else 0
    if skipped and exitstatus == 0:
        if reporter is not None:
            reporter.write_line(f"MPSS_FAST_NO_SKIPS=1: {skipped} test(s) skipped; a skipped test is not a pass")
        session.exitstatus = 1
