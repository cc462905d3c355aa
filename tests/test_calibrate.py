"""The default kernel tier: chosen from injected measurements, cached on disk, overridden by the env.

No timing assertions: every choice here is made from measurements the test injects.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from mpss_fast import _backend, _calibrate
from mpss_fast.cli import main

native = pytest.importorskip("mpss_fast._native") if _backend.native_tiers() else None
ORDER = ("gfni512", "gfni256", "avx2")


def _m(split: float, combine: float) -> dict[str, float]:
    return {"split": split, "combine": combine}


def test_choose_takes_the_fastest_overall() -> None:
    measured = {"gfni512": _m(2.0, 1.5), "gfni256": _m(1.25, 1.0), "avx2": _m(1.5, 1.1)}
    tier, reason = _calibrate.choose(measured, ORDER)
    assert tier == "gfni256"
    assert reason.startswith("fastest measured here (gfni512 split ")
    assert all(t in reason for t in ORDER)


def test_choose_is_deterministic_and_keeps_the_static_first_within_the_margin() -> None:
    measured = {"gfni512": _m(1.0, 1.0), "gfni256": _m(0.98, 0.99)}  # 1.5 % better: not enough
    assert [_calibrate.choose(measured, ORDER)[0] for _ in range(5)] == ["gfni512"] * 5
    assert _calibrate.choose(measured, ORDER, margin=0.0)[0] == "gfni256"
    tie = {"gfni256": _m(1.0, 1.0), "avx2": _m(1.0, 1.0)}
    assert _calibrate.choose(tie, ORDER, margin=0.0)[0] == "gfni256"  # ties: the earlier tier


def test_choose_weighs_workloads_relatively() -> None:
    # gfni512 wins combine by 10 %, gfni256 wins split by 40 %: gfni256 overall.
    measured = {"gfni512": _m(1.4, 0.9), "gfni256": _m(1.0, 1.0)}
    assert _calibrate.choose(measured, ORDER)[0] == "gfni256"


def test_choose_edge_cases() -> None:
    assert _calibrate.choose({"avx2": _m(1.0, 1.0)}, ORDER)[0] == "avx2"
    with pytest.raises(ValueError, match="no measurements"):
        _calibrate.choose({}, ORDER)


def test_candidates() -> None:
    ct = lambda t: t != "table"  # noqa: E731
    assert _calibrate.candidates(("gfni512", "gfni256", "avx2", "ssse3", "swar", "table"), ct) == ORDER
    assert _calibrate.candidates(("ssse3", "swar", "table"), ct) == ("ssse3",)
    assert _calibrate.candidates(("swar", "table"), ct) == ("swar",)


class FakeNative:
    """The parts of ``_native`` that calibration uses, for a CPU with ``tiers``."""

    TIERS = ("gfni512", "gfni256", "avx2", "ssse3", "swar", "table")
    __file__ = None

    def __init__(self, tiers: Sequence[str] = (*ORDER, "swar", "table")) -> None:
        self.tiers = tuple(tiers)

    def supported_tiers(self) -> tuple[str, ...]:
        return self.tiers

    def is_constant_time(self, tier: str) -> bool:
        return tier != "table"

    def best_tier(self) -> str:
        return self.tiers[0]


class Measure:
    """An injected measurement that counts its calls."""

    def __init__(self, measured: dict[str, dict[str, float]]) -> None:
        self.measured = measured
        self.calls = 0

    def __call__(self, native: Any, tiers: Sequence[str]) -> dict[str, dict[str, float]]:
        self.calls += 1
        assert tuple(tiers) == ORDER
        return {t: self.measured[t] for t in tiers}


FAST256 = {"gfni512": _m(2.0, 1.5), "gfni256": _m(1.25, 1.0), "avx2": _m(1.5, 1.1)}


def _default(tmp_path: Path, measure: Measure, native: Any = None) -> _calibrate.Choice:
    return _calibrate.default_tier(native or FakeNative(), version="test", measure_fn=measure, directory=tmp_path)


def _cache_files(tmp_path: Path) -> list[Path]:
    return sorted(tmp_path.glob("tier-*.json"))


def test_first_use_measures_then_the_cache_answers(tmp_path: Path) -> None:
    measure = Measure(FAST256)
    first = _default(tmp_path, measure)
    assert first.tier == "gfni256" and "fastest measured here" in first.reason
    assert measure.calls == 1
    [path] = _cache_files(tmp_path)
    assert json.loads(path.read_text())["tier"] == "gfni256"
    again = _default(tmp_path, measure)
    assert again.tier == "gfni256" and "cached in" in again.reason
    assert measure.calls == 1  # read from the cache, not measured again
    assert list(tmp_path.glob("*.tmp")) == []


@pytest.mark.parametrize(
    "content",
    [b"", b"{", b"\xff\xfe garbage", b"[]", b"null", b'{"format": 1}', b'{"format": 1, "tier": 5}'],
)
def test_a_corrupt_cache_is_measured_again_and_repaired(tmp_path: Path, content: bytes) -> None:
    measure = Measure(FAST256)
    _default(tmp_path, measure)
    [path] = _cache_files(tmp_path)
    path.write_bytes(content)
    choice = _default(tmp_path, measure)
    assert choice.tier == "gfni256" and measure.calls == 2
    assert json.loads(path.read_text())["tier"] == "gfni256"


def test_a_cached_tier_this_cpu_cannot_run_is_ignored(tmp_path: Path) -> None:
    measure = Measure(FAST256)
    _default(tmp_path, measure)
    [path] = _cache_files(tmp_path)
    entry = json.loads(path.read_text())
    entry["tier"] = "table"  # not a candidate: never taken from a cache
    path.write_text(json.dumps(entry))
    assert _default(tmp_path, measure).tier == "gfni256" and measure.calls == 2


def test_another_cpu_or_build_has_its_own_entry(tmp_path: Path) -> None:
    measure = Measure(FAST256)
    _default(tmp_path, measure)
    _calibrate.default_tier(FakeNative(), version="other", measure_fn=measure, directory=tmp_path)
    assert measure.calls == 2 and len(_cache_files(tmp_path)) == 2


def test_an_unwritable_cache_dir_still_chooses(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    measure = Measure(FAST256)
    choice = _default(blocker / "sub", measure)
    assert choice.tier == "gfni256" and "not cached" in choice.reason


def test_a_failing_measurement_falls_back_to_the_static_rule(tmp_path: Path) -> None:
    def broken(native: Any, tiers: Sequence[str]) -> dict[str, dict[str, float]]:
        raise RuntimeError("boom")

    choice = _calibrate.default_tier(FakeNative(), version="t", measure_fn=broken, directory=tmp_path)
    assert choice.tier == "gfni512" and "calibration failed: boom" in choice.reason
    assert _cache_files(tmp_path) == []


def test_one_candidate_needs_no_measurement(tmp_path: Path) -> None:
    measure = Measure(FAST256)
    choice = _default(tmp_path, measure, FakeNative(("ssse3", "swar", "table")))
    assert choice.tier == "ssse3" and measure.calls == 0


def test_calibration_can_be_switched_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_calibrate.CALIBRATE_ENV, "0")
    measure = Measure(FAST256)
    choice = _default(tmp_path, measure)
    assert choice.tier == "gfni512" and "static rule" in choice.reason and measure.calls == 0


def test_concurrent_writers_leave_a_whole_entry(tmp_path: Path) -> None:
    path = tmp_path / "tier-x.json"
    seen: list[dict[str, Any] | None] = []
    entries = [{"format": 1, "key": "x", "tier": t, "reason": "r" * 5000} for t in ORDER]

    def writer(entry: dict[str, Any]) -> None:
        for _ in range(30):
            assert _calibrate.write_cache(path, entry)

    def reader() -> None:
        for _ in range(200):
            seen.append(_calibrate.read_cache(path, "x", ORDER))

    threads = [threading.Thread(target=writer, args=(e,)) for e in entries] + [threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(e is None or e["tier"] in ORDER for e in seen)  # never a torn entry
    final = _calibrate.read_cache(path, "x", ORDER)
    assert final is not None and final["tier"] in ORDER
    assert list(tmp_path.glob("*.tmp")) == []


def test_measure_times_every_candidate_on_the_real_kernels() -> None:
    """The real measurement runs (no assertion on the figures: only their shape)."""
    assert native is not None
    tiers = _calibrate.candidates(native.supported_tiers(), native.is_constant_time)
    measured = _calibrate.measure(native, tiers)
    assert set(measured) == set(tiers)
    assert all(set(m) == set(_calibrate.WORKLOADS) and all(v > 0 for v in m.values()) for m in measured.values())


PROBE = "import mpss_fast, mpss_fast._backend as b; print(mpss_fast.KERNEL); print(b.KERNEL_REASON)"


def _probe(cache: Path, **env: str) -> list[str]:
    full = {k: v for k, v in os.environ.items() if k not in ("MPSS_FAST_BACKEND", "MPSS_FAST_KERNEL")}
    full.update(env, MPSS_FAST_CACHE_DIR=str(cache))
    result = subprocess.run(
        [sys.executable, "-c", PROBE], env=full, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def _plant(cache: Path, tier: str) -> None:
    """Rewrites the machine's cache entry (made by a first run) to name ``tier``."""
    [path] = _cache_files(cache)
    entry = json.loads(path.read_text())
    entry["tier"], entry["reason"] = tier, "planted by the test"
    path.write_text(json.dumps(entry))


def test_import_uses_the_cache_and_the_override_wins(tmp_path: Path) -> None:
    assert native is not None
    tiers = _calibrate.candidates(native.supported_tiers(), native.is_constant_time)
    first = _probe(tmp_path)
    assert first[0] in tiers
    if len(tiers) > 1:
        assert "fastest measured here" in first[1] and "cached in" in first[1]
        planted = tiers[-1]
        _plant(tmp_path, planted)
        assert _probe(tmp_path) == [planted, f"planted by the test; cached in {_cache_files(tmp_path)[0]}"]
    forced = _probe(tmp_path, MPSS_FAST_KERNEL="swar")
    assert forced == ["swar", "forced by MPSS_FAST_KERNEL=swar"]


def test_info_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"kernel chosen because: {_backend.KERNEL_REASON}" in out
