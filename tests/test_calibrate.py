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


def _m(split: float, combine: float, xor: float | None = None) -> dict[str, float]:
    return {"split": split, "combine": combine, "xor": combine if xor is None else xor}


def test_choose_takes_the_fastest_overall() -> None:
    measured = {"gfni512": _m(2.0, 1.5), "gfni256": _m(1.25, 1.0), "avx2": _m(1.5, 1.1)}
    split, combine, reason = _calibrate.choose(measured, ORDER)
    assert (split, combine) == ("gfni256", "gfni256")
    assert reason.startswith("split: gfni256, combine and xor: gfni256 (fastest measured here: gfni512 split ")
    assert all(t in reason for t in ORDER)


def test_choose_picks_each_family_on_its_own() -> None:
    # Zen 4 shape: gfni512 splits fastest, gfni256 combines and XORs fastest.
    measured = {
        "gfni512": _m(2e-4, 1.06e-4, 1.14e-4),
        "gfni256": _m(2.4e-4, 1e-4, 1e-4),
        "avx2": _m(4e-4, 1.3e-4, 1.01e-4),
    }
    split, combine, reason = _calibrate.choose(measured, ORDER)
    assert (split, combine) == ("gfni512", "gfni256")
    assert reason == (
        "split: gfni512, combine and xor: gfni256 (fastest measured here: "
        "gfni512 split 5.24 GB/s combine 9.89 GB/s xor 9.20 GB/s; "
        "gfni256 split 4.37 GB/s combine 10.49 GB/s xor 10.49 GB/s; "
        "avx2 split 2.62 GB/s combine 8.07 GB/s xor 10.38 GB/s)"
    )
    # And the other way round: the static first combines best, another splits best.
    measured = {"gfni512": _m(1.5, 1.0, 1.0), "gfni256": _m(1.0, 1.3, 1.2)}
    assert _calibrate.choose(measured, ORDER)[:2] == ("gfni256", "gfni512")


def test_the_split_tier_ignores_combine_and_xor_times() -> None:
    # avx2 would win on the sum of all three ratios; the split alone says gfni512.
    measured = {"gfni512": _m(1.0, 3.0, 3.0), "gfni256": _m(1.1, 3.0, 3.0), "avx2": _m(1.2, 1.0, 1.0)}
    assert _calibrate.choose(measured, ORDER)[:2] == ("gfni512", "avx2")


def test_choose_is_deterministic_and_keeps_the_static_first_within_the_margin() -> None:
    measured = {"gfni512": _m(1.0, 1.0), "gfni256": _m(0.98, 0.99)}  # 1.5 % better: not enough
    assert [_calibrate.choose(measured, ORDER)[:2] for _ in range(5)] == [("gfni512", "gfni512")] * 5
    assert _calibrate.choose(measured, ORDER, margin=0.0)[:2] == ("gfni256", "gfni256")
    tie = {"gfni256": _m(1.0, 1.0), "avx2": _m(1.0, 1.0)}
    assert _calibrate.choose(tie, ORDER, margin=0.0)[:2] == ("gfni256", "gfni256")  # ties: the earlier tier


@pytest.mark.parametrize(
    ("measured", "expected"),
    [
        # Split 10 % faster on gfni256: past the margin; combine+xor 3 % faster: within it.
        ({"gfni512": _m(1.1, 1.03, 1.03), "gfni256": _m(1.0, 1.0, 1.0)}, ("gfni256", "gfni512")),
        # Split 3 % faster: within; combine 10 % and xor 10 % faster: past it.
        ({"gfni512": _m(1.03, 1.1, 1.1), "gfni256": _m(1.0, 1.0, 1.0)}, ("gfni512", "gfni256")),
        # Combine equal, xor 14 % faster: the family score 7 % lower, past the 3 % margin.
        ({"gfni512": _m(1.0, 1.0, 1.14), "gfni256": _m(1.2, 1.0, 1.0)}, ("gfni512", "gfni256")),
        # Combine equal, xor 5 % faster: the family score 2.5 % lower, within the margin.
        ({"gfni512": _m(1.0, 1.0, 1.05), "gfni256": _m(1.2, 1.0, 1.0)}, ("gfni512", "gfni512")),
    ],
)
def test_the_margin_applies_per_family(measured: dict[str, dict[str, float]], expected: tuple[str, str]) -> None:
    assert _calibrate.choose(measured, ORDER)[:2] == expected


def test_ties_go_to_the_earlier_tier_in_each_family() -> None:
    # gfni256 and avx2 tie on both families and both beat gfni512 by far: gfni256 (earlier) wins.
    measured = {"gfni512": _m(2.0, 2.0), "gfni256": _m(1.0, 1.0, 1.0), "avx2": _m(1.0, 1.0, 1.0)}
    assert _calibrate.choose(measured, ORDER)[:2] == ("gfni256", "gfni256")
    # gfni256 splits 1 % faster, avx2 combines 1 % faster, no margin: each family its own winner.
    measured = {"gfni256": _m(0.99, 1.0, 1.0), "avx2": _m(1.0, 0.99, 1.0)}
    assert _calibrate.choose(measured, ORDER, margin=0.0)[:2] == ("gfni256", "avx2")


def test_choose_weighs_workloads_relatively() -> None:
    # Combine family: gfni512 wins combine by 10 %, gfni256 wins xor by 40 %: gfni256.
    measured = {"gfni512": _m(1.0, 0.9, 1.4), "gfni256": _m(1.0, 1.0, 1.0)}
    assert _calibrate.choose(measured, ORDER)[:2] == ("gfni512", "gfni256")


def test_choose_edge_cases() -> None:
    assert _calibrate.choose({"avx2": _m(1.0, 1.0)}, ORDER) == ("avx2", "avx2", "avx2 is the only candidate")
    with pytest.raises(ValueError, match="no measurements"):
        _calibrate.choose({}, ORDER)


def test_workloads() -> None:
    assert _calibrate.WORKLOADS == ("split", "combine", "xor")
    assert _calibrate.SPLIT_WORKLOADS == ("split",)
    assert _calibrate.COMBINE_WORKLOADS == ("combine", "xor")


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
MIXED = {"gfni512": _m(1.0, 1.06, 1.14), "gfni256": _m(1.2, 1.0, 1.0), "avx2": _m(2.0, 1.3, 1.01)}
"""gfni512 splits fastest, gfni256 combines and XORs fastest (the shape measured on a Zen 4)."""


def _default(tmp_path: Path, measure: Measure, native: Any = None) -> _calibrate.Choice:
    return _calibrate.default_tier(native or FakeNative(), version="test", measure_fn=measure, directory=tmp_path)


def _cache_files(tmp_path: Path) -> list[Path]:
    return sorted(tmp_path.glob("tier-*.json"))


def test_first_use_measures_then_the_cache_answers(tmp_path: Path) -> None:
    measure = Measure(FAST256)
    first = _default(tmp_path, measure)
    assert (first.tier, first.combine_tier) == ("gfni256", "gfni256") and "fastest measured here" in first.reason
    assert measure.calls == 1
    [path] = _cache_files(tmp_path)
    assert json.loads(path.read_text())["tier"] == "gfni256"
    again = _default(tmp_path, measure)
    assert (again.tier, again.combine_tier) == ("gfni256", "gfni256") and "cached in" in again.reason
    assert measure.calls == 1  # read from the cache, not measured again
    assert list(tmp_path.glob("*.tmp")) == []


def test_a_mixed_choice_is_cached_and_read_back(tmp_path: Path) -> None:
    measure = Measure(MIXED)
    first = _default(tmp_path, measure)
    assert (first.tier, first.combine_tier) == ("gfni512", "gfni256")
    assert first.reason.startswith("split: gfni512, combine and xor: gfni256 (fastest measured here: ")
    [path] = _cache_files(tmp_path)
    entry = json.loads(path.read_text())
    assert (entry["format"], entry["tier"], entry["combine_tier"]) == (_calibrate.FORMAT, "gfni512", "gfni256")
    assert set(entry["measurements"]["gfni256"]) == {"split", "combine", "xor"}
    again = _default(tmp_path, measure)
    assert (again.tier, again.combine_tier) == ("gfni512", "gfni256") and measure.calls == 1
    assert again.reason == f"{entry['reason']}; cached in {path}"


def test_a_single_tier_entry_of_the_old_format_is_measured_again(tmp_path: Path) -> None:
    """Format 1 held one tier for everything: such an entry, even at the current path, is not trusted."""
    assert _calibrate.FORMAT >= 2
    measure = Measure(MIXED)
    _default(tmp_path, measure)
    [path] = _cache_files(tmp_path)
    entry = json.loads(path.read_text())
    old = {"format": 1, "key": entry["key"], "tier": "gfni256", "reason": "old", "measurements": {}}
    path.write_text(json.dumps(old))
    choice = _default(tmp_path, measure)
    assert (choice.tier, choice.combine_tier) == ("gfni512", "gfni256") and measure.calls == 2
    assert json.loads(path.read_text())["format"] == _calibrate.FORMAT
    # The current format without a combine tier is not whole either.
    del entry["combine_tier"]
    path.write_text(json.dumps(entry))
    assert _default(tmp_path, measure).combine_tier == "gfni256" and measure.calls == 3


def test_the_key_changes_with_the_format(monkeypatch: pytest.MonkeyPatch) -> None:
    """Old entries live under another file name as well: a format bump never reads them."""
    key = _calibrate.machine_key("v", ORDER)
    monkeypatch.setattr(_calibrate, "FORMAT", _calibrate.FORMAT - 1)
    assert _calibrate.machine_key("v", ORDER) != key


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
    assert (choice.tier, choice.combine_tier) == ("gfni256", "gfni256") and measure.calls == 2
    assert json.loads(path.read_text())["tier"] == "gfni256"


@pytest.mark.parametrize("field", ["tier", "combine_tier"])
def test_a_cached_tier_this_cpu_cannot_run_is_ignored(tmp_path: Path, field: str) -> None:
    measure = Measure(MIXED)
    _default(tmp_path, measure)
    [path] = _cache_files(tmp_path)
    entry = json.loads(path.read_text())
    entry[field] = "table"  # not a candidate: never taken from a cache
    path.write_text(json.dumps(entry))
    choice = _default(tmp_path, measure)
    assert (choice.tier, choice.combine_tier) == ("gfni512", "gfni256") and measure.calls == 2


def test_another_cpu_or_build_has_its_own_entry(tmp_path: Path) -> None:
    measure = Measure(FAST256)
    _default(tmp_path, measure)
    _calibrate.default_tier(FakeNative(), version="other", measure_fn=measure, directory=tmp_path)
    assert measure.calls == 2 and len(_cache_files(tmp_path)) == 2


def test_an_unwritable_cache_dir_still_chooses(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    choice = _default(blocker / "sub", Measure(MIXED))
    assert (choice.tier, choice.combine_tier) == ("gfni512", "gfni256") and "not cached" in choice.reason


def test_a_failing_measurement_falls_back_to_the_static_rule(tmp_path: Path) -> None:
    def broken(native: Any, tiers: Sequence[str]) -> dict[str, dict[str, float]]:
        raise RuntimeError("boom")

    choice = _calibrate.default_tier(FakeNative(), version="t", measure_fn=broken, directory=tmp_path)
    assert (choice.tier, choice.combine_tier) == ("gfni512", "gfni512") and "calibration failed: boom" in choice.reason
    assert _cache_files(tmp_path) == []


def test_one_candidate_needs_no_measurement(tmp_path: Path) -> None:
    measure = Measure(FAST256)
    choice = _default(tmp_path, measure, FakeNative(("ssse3", "swar", "table")))
    assert (choice.tier, choice.combine_tier) == ("ssse3", "ssse3") and measure.calls == 0
    choice = _default(tmp_path, measure, FakeNative(("swar", "table")))
    assert (choice.tier, choice.combine_tier) == ("swar", "swar") and measure.calls == 0


def test_calibration_can_be_switched_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_calibrate.CALIBRATE_ENV, "0")
    measure = Measure(MIXED)
    choice = _default(tmp_path, measure)
    assert (choice.tier, choice.combine_tier) == ("gfni512", "gfni512")
    assert "static rule" in choice.reason and measure.calls == 0


def test_concurrent_writers_leave_a_whole_entry(tmp_path: Path) -> None:
    path = tmp_path / "tier-x.json"
    seen: list[dict[str, Any] | None] = []
    entries = [
        {"format": _calibrate.FORMAT, "key": "x", "tier": t, "combine_tier": t, "reason": "r" * 5000} for t in ORDER
    ]

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
    assert all(set(m) == {"split", "combine", "xor"} and all(v > 0 for v in m.values()) for m in measured.values())


PROBE = """
import mpss_fast, mpss_fast._backend as b
engine = mpss_fast.split.__self__
native = mpss_fast.Engine("native")
print(mpss_fast.KERNEL, mpss_fast.COMBINE_KERNEL)
print(engine.kernel, engine.combine_kernel, native.kernel, native.combine_kernel)
print(b.KERNEL_REASON)
"""


def _probe(cache: Path, *args: str, **env: str) -> list[str]:
    full = {k: v for k, v in os.environ.items() if k not in ("MPSS_FAST_BACKEND", "MPSS_FAST_KERNEL")}
    full.update(env, MPSS_FAST_CACHE_DIR=str(cache))
    result = subprocess.run(
        [sys.executable, *(args or ("-c", PROBE))], env=full, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def _plant(cache: Path, tier: str, combine_tier: str) -> None:
    """Rewrites the machine's cache entry (made by a first run) to name ``tier`` and ``combine_tier``."""
    [path] = _cache_files(cache)
    entry = json.loads(path.read_text())
    entry["tier"], entry["combine_tier"], entry["reason"] = tier, combine_tier, "planted by the test"
    path.write_text(json.dumps(entry))


def test_import_uses_the_cache_and_the_override_wins(tmp_path: Path) -> None:
    assert native is not None
    tiers = _calibrate.candidates(native.supported_tiers(), native.is_constant_time)
    first = _probe(tmp_path)
    split, combine = first[0].split()
    assert split in tiers and combine in tiers
    assert first[1].split() == [split, combine] * 2  # the default engine and Engine("native") run the choice
    if len(tiers) > 1:
        assert first[2].startswith(f"split: {split}, combine and xor: {combine} (fastest measured here: ")
        assert "cached in" in first[2]
        for planted in [(tiers[-1], tiers[0]), (tiers[0], tiers[-1]), (tiers[1], tiers[1])]:
            _plant(tmp_path, *planted)
            assert _probe(tmp_path) == [
                " ".join(planted),
                " ".join(planted * 2),
                f"planted by the test; cached in {_cache_files(tmp_path)[0]}",
            ]
        info = _probe(tmp_path, "-m", "mpss_fast", "info")
        line = f"kernel: {tiers[1]} (MPSS_FAST_KERNEL=unset)"
        assert line in info
        _plant(tmp_path, tiers[0], tiers[-1])
        info = _probe(tmp_path, "-m", "mpss_fast", "info")
        line = f"kernel: {tiers[0]} (splits), {tiers[-1]} (combines and XORs) (MPSS_FAST_KERNEL=unset)"
        assert line in info
        assert "kernel chosen because: planted by the test; cached in " in "\n".join(info)
    forced = _probe(tmp_path, MPSS_FAST_KERNEL="swar")
    assert forced[0] == "swar swar" and forced[1].startswith("swar swar ")
    assert forced[2] == "forced by MPSS_FAST_KERNEL=swar"


def test_info_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    import mpss_fast

    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"kernel chosen because: {_backend.KERNEL_REASON}" in out
    if mpss_fast.KERNEL == mpss_fast.COMBINE_KERNEL:
        assert f"kernel: {mpss_fast.KERNEL} (MPSS_FAST_KERNEL=" in out
    else:
        assert f"kernel: {mpss_fast.KERNEL} (splits), {mpss_fast.COMBINE_KERNEL} (combines and XORs) (" in out
