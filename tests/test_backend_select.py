"""MPSS_FAST_BACKEND picks the backend at import; a requested native backend never falls back."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import mpss_fast
from mpss_fast import BackendError, Engine, _backend, _pure

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
    engine = mpss_fast.split.__self__
    assert engine.backend == mpss_fast.BACKEND
    assert engine.kernel == mpss_fast.KERNEL
    assert engine.combine_kernel == mpss_fast.COMBINE_KERNEL
    if engine.combine_kernel == engine.kernel:
        assert repr(engine).startswith(f"Engine({mpss_fast.BACKEND!r}")
    else:  # the calibrated mix, which no constructor argument spells
        expected = f"<Engine {mpss_fast.BACKEND}: {engine.kernel} splits, {engine.combine_kernel} combines and XORs>"
        assert repr(engine) == expected


def test_public_names() -> None:
    for name in mpss_fast.__all__:
        assert hasattr(mpss_fast, name), name
    assert mpss_fast.POLY_AES == 0x11B and mpss_fast.POLY_GFSHARE == 0x11D


KERNEL_PROBE = "import mpss_fast; print(mpss_fast.BACKEND, mpss_fast.KERNEL, mpss_fast.COMBINE_KERNEL)"


def _run_kernel(kernel: str | None, backend: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MPSS_FAST_BACKEND", "MPSS_FAST_KERNEL")}
    if kernel is not None:
        env["MPSS_FAST_KERNEL"] = kernel
    if backend is not None:
        env["MPSS_FAST_BACKEND"] = backend
    return subprocess.run(
        [sys.executable, "-c", KERNEL_PROBE], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_default_kernel_is_the_calibrated_constant_time_tier() -> None:
    from mpss_fast import _calibrate, _native

    result = _run_kernel(None)
    assert result.returncode == 0, result.stderr
    choice = _calibrate.default_tier(_native)
    assert result.stdout.split() == ["native", choice.tier, choice.combine_tier]
    assert all(_native.is_constant_time(t) for t in result.stdout.split()[1:])
    assert _native.best_tier() == next(t for t in mpss_fast.KERNELS if _native.is_constant_time(t))


@pytest.mark.parametrize("tier", mpss_fast.KERNELS)
def test_every_supported_tier_can_be_forced(tier: str) -> None:
    result = _run_kernel(tier)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["native", tier, tier]  # one tier for splits, combines and XORs
    engine = Engine("native", kernel=tier)
    assert (engine.kernel, engine.combine_kernel) == (tier, tier)
    kernels = _backend.load("native", tier)
    assert (kernels.tier, kernels.combine_tier) == (tier, tier)


@pytest.mark.parametrize("tier", ["avx1024", "GFNI512", "pure", "native"])
def test_unknown_tier_fails_loudly(tier: str) -> None:
    result = _run_kernel(tier)
    assert result.returncode != 0
    assert "BackendError" in result.stderr
    assert "unknown kernel tier" in result.stderr or "needs the native backend" in result.stderr


def test_tier_with_pure_backend_is_a_conflict() -> None:
    result = _run_kernel("swar", backend="pure")
    assert result.returncode != 0 and "needs the native backend" in result.stderr


def test_unsupported_tier_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tier compiled in but not runnable on this CPU (simulated: the CPU check reports only swar/table)."""
    from mpss_fast import _native

    monkeypatch.setattr(_native, "supported_tiers", lambda: ("swar", "table"))
    with pytest.raises(BackendError, match="not supported by this CPU; it supports: swar, table"):
        _backend.load("native", "avx2")


def test_kernel_names_exposed() -> None:
    from mpss_fast import _native

    assert mpss_fast.KERNELS == _native.supported_tiers()
    assert {"swar", "table"} <= set(mpss_fast.KERNELS)
    assert set(_native.TIERS) >= set(mpss_fast.KERNELS)
    assert not _native.is_constant_time("table")
    assert Engine("pure").kernel == "pure"
    assert Engine("pure").combine_kernel == "pure"
    assert (_pure.tier, _pure.combine_tier) == ("pure", "pure")


def test_the_default_engine_runs_both_calibrated_tiers() -> None:
    """The import-time kernels, the module functions and Engine("native") carry the calibrated pair."""
    from mpss_fast import _calibrate, _native

    choice = _calibrate.default_tier(_native)
    engine = Engine("native")
    assert (engine.kernel, engine.combine_kernel) == (choice.tier, choice.combine_tier)
    if mpss_fast.BACKEND == "pure":
        assert (mpss_fast.KERNEL, mpss_fast.COMBINE_KERNEL) == ("pure", "pure")
    elif os.environ.get("MPSS_FAST_KERNEL"):
        forced = os.environ["MPSS_FAST_KERNEL"]
        assert (mpss_fast.KERNEL, mpss_fast.COMBINE_KERNEL) == (forced, forced)
    else:
        assert (mpss_fast.KERNEL, mpss_fast.COMBINE_KERNEL) == (choice.tier, choice.combine_tier)
        assert (_backend.kernels.tier, _backend.kernels.combine_tier) == (choice.tier, choice.combine_tier)
        assert _backend.kernels.constant_time


def test_the_default_load_passes_both_tiers(monkeypatch: pytest.MonkeyPatch) -> None:
    """_backend.load("native") builds Kernels(split tier, combine=combine tier); a forced tier serves both."""
    from mpss_fast import _native

    tiers = _constant_time_tiers()
    pair = (tiers[0], tiers[-1])
    monkeypatch.setattr(_backend, "default_tiers", lambda native: pair)
    kernels = _backend.load("native")
    assert (kernels.tier, kernels.combine_tier) == pair
    forced = _backend.load("native", tiers[-1])
    assert (forced.tier, forced.combine_tier) == (tiers[-1], tiers[-1])
    monkeypatch.setattr(_backend, "default_tiers", lambda native: (tiers[0], "avx1024"))
    with pytest.raises(BackendError, match="unknown kernel tier 'avx1024'"):
        _backend.load("native")
    monkeypatch.setattr(_native, "supported_tiers", lambda: (tiers[0],))
    monkeypatch.setattr(_backend, "default_tiers", lambda native: (tiers[0], "table"))
    with pytest.raises(BackendError, match="'table' is not supported by this CPU"):
        _backend.load("native")


# -- one tier for splits, another for combines and XORs ------------------------------------


def _constant_time_tiers() -> tuple[str, ...]:
    from mpss_fast import _native

    return tuple(t for t in _native.supported_tiers() if _native.is_constant_time(t))


def _mixed_pairs() -> list[tuple[str, str]]:
    if not mpss_fast.KERNELS:
        return []
    ct = _constant_time_tiers()
    pairs = [(ct[0], ct[-1]), (ct[-1], ct[0]), (ct[0], "table"), ("table", ct[0])]
    if len(ct) > 1:
        pairs.append((ct[0], ct[1]))
    return list(dict.fromkeys(pairs))


MIXED_PAIRS = _mixed_pairs()


@pytest.mark.parametrize(("tier", "combine"), MIXED_PAIRS)
def test_mixed_kernels_name_and_flag_both_tiers(tier: str, combine: str) -> None:
    from mpss_fast import _native

    kernels = _native.Kernels(tier, combine=combine)
    assert (kernels.tier, kernels.combine_tier) == (tier, combine)
    assert kernels.constant_time == (_native.is_constant_time(tier) and _native.is_constant_time(combine))
    if "table" in (tier, combine):
        assert not kernels.constant_time  # the combine tier counts as much as the split tier
    keystream = kernels.keystream
    if tier == combine:
        assert repr(kernels) == f"Kernels({tier!r}, keystream={keystream!r})"
    else:
        assert repr(kernels) == f"Kernels({tier!r}, keystream={keystream!r}, combine={combine!r})"
    same = _native.Kernels(tier)
    assert same.combine_tier == tier and "combine=" not in repr(same)
    assert "combine=" not in repr(_native.Kernels(tier, combine=tier))


def test_mixed_kernels_reject_a_bad_combine_tier_like_a_bad_tier(monkeypatch: pytest.MonkeyPatch) -> None:
    from mpss_fast import _native

    tier = _constant_time_tiers()[0]
    for bad in ("avx1024", "pure"):
        with pytest.raises(ValueError) as as_tier:
            _native.Kernels(bad)
        with pytest.raises(ValueError) as as_combine:
            _native.Kernels(tier, combine=bad)
        assert str(as_combine.value) == str(as_tier.value)
        assert str(as_combine.value).startswith(f"unknown kernel tier {bad!r}; this build has: ")
    with pytest.raises(TypeError):
        _native.Kernels(tier, combine=5)  # type: ignore[arg-type]


@pytest.mark.parametrize(("tier", "combine"), MIXED_PAIRS)
@pytest.mark.parametrize("size", [1, 63, 4097, (1 << 20) + 7])  # past the 1 MiB streaming threshold too
def test_mixed_kernels_match_pure(tier: str, combine: str, size: int) -> None:
    """Splits on one tier, combines and XORs on another: the same bytes as the pure backend."""
    from mpss_fast import _native

    mixed = Engine(_kernels=_native.Kernels(tier, combine=combine))
    pure = Engine("pure")
    assert (mixed.kernel, mixed.combine_kernel) == (tier, combine)
    secret = os.urandom(size)
    pad = os.urandom(size)
    key_out = os.urandom(size)

    def rng(nbytes: int) -> bytes:
        return bytes((i * 7 + 3) & 0xFF for i in range(nbytes))

    for poly in (mpss_fast.POLY_AES, mpss_fast.POLY_GFSHARE):
        shares = mixed.split(secret, 3, 5, poly=poly, rng=rng)
        assert shares == pure.split(secret, 3, 5, poly=poly, rng=rng)
        for subset in (shares[:3], [shares[4], shares[1], shares[2]], shares):
            assert mixed.combine(subset, poly=poly) == pure.combine(subset, poly=poly) == secret
        fresh = mixed.split(secret, 2, 4, poly=poly)  # split_small or the keyed split
        assert mixed.combine(fresh[2:], poly=poly) == pure.combine(fresh[2:], poly=poly) == secret
    assert mixed.xor(secret, pad) == pure.xor(secret, pad)
    assert mixed.reencrypt(secret, pad, key_out) == pure.reencrypt(secret, pad, key_out)
    out = bytearray(size)
    assert mixed.xor_into(secret, pad, out) == size and out == pure.xor(secret, pad)
    assert mixed.reencrypt_into(secret, pad, key_out, out) == size
    assert out == pure.reencrypt(secret, pad, key_out)


@pytest.mark.parametrize(("tier", "combine"), MIXED_PAIRS)
def test_mixed_kernels_keyed_split_matches_pure(tier: str, combine: str) -> None:
    from mpss_fast import _native

    kernels = _native.Kernels(tier, combine=combine)
    secret = memoryview(os.urandom(5000))
    xs = bytes([1, 2, 3, 4, 5])
    key = os.urandom(32)
    mine = [bytearray(len(secret)) for _ in xs]
    theirs = [bytearray(len(secret)) for _ in xs]
    kernels.split_keyed(0x11B, secret, 2, xs, [memoryview(o) for o in mine], key)
    _pure.split_keyed(0x11B, secret, 2, xs, [memoryview(o) for o in theirs], key)
    assert mine == theirs
