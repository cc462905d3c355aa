"""Leak checks of the native extension: reference counts and memory across ~100,000 calls.

Part (a) runs split (short and keyed)/combine/xor/xor_into/reencrypt/split_array/combine_array on every
native tier, and the error paths (bad k, bad lengths, wrong types, including the ones
that fail inside the extension), each a few thousand times after a warm-up, and checks
that the reference count of every argument is exactly as before; that the number of
gc-tracked objects, the memory ``tracemalloc`` traces (every Python allocation) and the
bytes in use by ``malloc`` (``mallinfo2``: the C code's allocations) have not grown;
and ``sys.gettotalrefcount`` where the interpreter is a debug build.

Part (b) runs a few hundred calls under valgrind memcheck (``PYTHONMALLOC=malloc``) on
the ``avx2`` tier (valgrind emulates neither AVX-512 nor GFNI) and fails on any definite
leak whose allocation stack passes through the extension; CPython's own are suppressed
by ``tests/valgrind-python.supp`` and ignored unless they involve ``mpss_fast``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import re
import shutil
import subprocess
import sys
import textwrap
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mpss_fast import Engine, MpssError

from .conftest import NATIVE_TIERS, load_kernels

ROOT = Path(__file__).resolve().parents[1]
SUPPRESSIONS = Path(__file__).resolve().parent / "valgrind-python.supp"
CALLS = 1_400  # per case, after WARM_UP: 48 tier cases and 21 error cases, about 100,000 calls in all
WARM_UP = 200
MALLOC_SLACK = 16 * CALLS  # bytes; one leaked malloc chunk (>= 32 B) per call is twice this
TRACED_SLACK = 8 * CALLS  # bytes; one leaked bytes object (>= 34 B) per call is four times this


def _malloc_in_use() -> Callable[[], int] | None:
    """glibc's bytes in use by malloc (mallinfo2().uordblks), or None off glibc."""
    path = ctypes.util.find_library("c")
    if path is None:
        return None
    libc = ctypes.CDLL(path)
    if not hasattr(libc, "mallinfo2"):
        return None

    class MallInfo2(ctypes.Structure):
        _fields_ = [
            (name, ctypes.c_size_t)
            for name in "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()
        ]

    libc.mallinfo2.restype = MallInfo2

    def in_use() -> int:
        info = libc.mallinfo2()
        return int(info.uordblks) + int(info.hblkhd)  # small chunks + mmap'd large ones

    return in_use


MALLOC_IN_USE = _malloc_in_use()


def _state(args: tuple[Any, ...]) -> dict[str, Any]:
    gc.collect()
    state: dict[str, Any] = {
        # Small ints are shared by the whole interpreter: their counts move with anything.
        "refcounts": [sys.getrefcount(a) for a in args if not isinstance(a, int)],
        "gc objects": len(gc.get_objects()),
        "traced": tracemalloc.get_traced_memory()[0],
    }
    if hasattr(sys, "gettotalrefcount"):
        state["total refcount"] = sys.gettotalrefcount()
    return state


Expected = type[BaseException] | tuple[type[BaseException], ...] | None


def _check_no_growth(call: Callable[..., Any], args: tuple[Any, ...], error: Expected) -> None:
    def once() -> None:
        try:
            call(*args)
        except Exception as exc:
            if error is None or not isinstance(exc, error):
                raise
        else:
            if error is not None:
                raise AssertionError(f"expected {error}")

    for _ in range(WARM_UP):
        once()
    gc.collect()
    # malloc is read outside tracemalloc, whose own tables live in malloc'd memory.
    malloc_before = MALLOC_IN_USE() if MALLOC_IN_USE is not None else 0
    tracemalloc.start()
    try:
        before = _state(args)
        for _ in range(CALLS):
            once()
        after = _state(args)
    finally:
        tracemalloc.stop()
    malloc_grown = MALLOC_IN_USE() - malloc_before if MALLOC_IN_USE is not None else 0
    assert after["refcounts"] == before["refcounts"], "an argument's reference count changed"
    assert after["gc objects"] - before["gc objects"] <= 10, "gc-tracked objects accumulate"
    assert after["traced"] - before["traced"] <= TRACED_SLACK, f"Python allocations grew by {after['traced']} B"
    assert malloc_grown <= MALLOC_SLACK, f"malloc'd bytes in use grew by {malloc_grown} over {CALLS} calls"
    if "total refcount" in before:
        assert after["total refcount"] - before["total refcount"] <= 10, "the total reference count grew"


def _inputs() -> dict[str, Any]:
    rng = np.random.default_rng(7)
    secret = rng.integers(0, 256, 37, dtype=np.uint8).tobytes()
    secrets = rng.integers(0, 256, (16, 24), dtype=np.uint8)
    return {
        "secret": secret,
        "long secret": rng.integers(0, 256, 3000, dtype=np.uint8).tobytes(),
        "shares": Engine("pure").split(secret, 3, 5, rng=lambda n: bytes(n)),
        "secrets": secrets,
        "share rows": np.ascontiguousarray(Engine("pure").split_array(secrets, 2, 3)[:2]),
        "a": bytes(range(100)),
        "b": bytearray(range(100, 200)),
        "c": memoryview(bytes(100)),
        "out": bytearray(100),
        "array out": np.empty((3, 16, 24), dtype=np.uint8),
    }


INPUTS = _inputs()
GOOD = {
    "split": lambda e, i: (e.split, (i["secret"], 3, 5)),  # the short-secret path (split_small)
    "split keyed": lambda e, i: (e.split, (i["long secret"], 3, 5)),  # AES-CTR coefficients (split_keyed)
    "combine": lambda e, i: (e.combine, (i["shares"][1:4],)),
    "xor": lambda e, i: (e.xor, (i["a"], i["b"])),
    "xor_into": lambda e, i: (e.xor_into, (i["a"], i["b"], i["out"])),
    "reencrypt": lambda e, i: (e.reencrypt, (i["a"], i["b"], i["c"])),
    "split_array": lambda e, i: (lambda s: e.split_array(s, 2, 3, out=i["array out"]), (i["secrets"],)),
    "combine_array": lambda e, i: (lambda rows: e.combine_array(rows, [1, 2]), (i["share rows"],)),
}


@pytest.mark.slow
@pytest.mark.parametrize("operation", sorted(GOOD))
@pytest.mark.parametrize("tier", NATIVE_TIERS)
def test_no_growth_on_success(tier: str, operation: str) -> None:
    engine = Engine(_kernels=load_kernels(f"native-{tier}"))
    call, args = GOOD[operation](engine, INPUTS)
    _check_no_growth(call, args, None)


def _bad_eval_coeffs(kernels: Any, secret: bytes, out: bytearray) -> None:
    kernels.eval_shares(0x11B, secret, [secret, 5], b"\x01", [out])  # fails inside _Pointers, after its malloc


MakeCall = Callable[[Engine, Any, dict[str, Any]], tuple[Callable[..., Any], tuple[Any, ...]]]
ERRORS: dict[str, tuple[MakeCall, Expected]] = {
    "split k=1": (lambda e, k, i: (e.split, (i["secret"], 1, 5)), MpssError),
    "split k>n": (lambda e, k, i: (e.split, (i["secret"], 6, 5)), MpssError),
    "split k str": (lambda e, k, i: (e.split, (i["secret"], "3", 5)), MpssError),
    "split empty": (lambda e, k, i: (e.split, (b"", 2, 3)), MpssError),
    "split str": (lambda e, k, i: (e.split, ("text", 2, 3)), MpssError),
    "combine one share": (lambda e, k, i: (e.combine, (i["shares"][:1],)), MpssError),
    "combine uneven": (lambda e, k, i: (e.combine, ([i["shares"][0], i["shares"][1][:-1]],)), MpssError),
    "combine ints": (lambda e, k, i: (e.combine, ([1, 2],)), MpssError),
    "xor uneven": (lambda e, k, i: (e.xor, (i["a"], i["a"][:-1])), MpssError),
    "xor int": (lambda e, k, i: (e.xor, (i["a"], 5)), MpssError),
    "xor_into read-only": (lambda e, k, i: (e.xor_into, (i["a"], i["b"], i["a"])), MpssError),
    "reencrypt uneven": (lambda e, k, i: (e.reencrypt, (i["a"], i["b"], i["a"][:5])), MpssError),
    "split_array list": (lambda e, k, i: (e.split_array, ([[1, 2]], 2, 3)), MpssError),
    "split_array float": (lambda e, k, i: (e.split_array, (np.zeros((2, 2)), 2, 3)), MpssError),
    "combine_array one row": (lambda e, k, i: (e.combine_array, (i["share rows"][:1], [1])), MpssError),
    "combine_array bad xs": (lambda e, k, i: (e.combine_array, (i["share rows"], [1, 1])), MpssError),
    # Failures inside the extension itself, past the validation the Engine does.
    "kernels eval bad coeff": (lambda e, k, i: (_bad_eval_coeffs, (k, i["a"], i["out"])), TypeError),
    "kernels xor str": (lambda e, k, i: (k.xor, (i["a"], "x" * 100, i["out"])), TypeError),
    "kernels interpolate read-only": (
        lambda e, k, i: (k.interpolate, (0x11B, b"\x01\x02", [i["a"], i["a"]], i["a"])),
        (TypeError, ValueError, BufferError),
    ),
    "kernels split_keyed short key": (
        lambda e, k, i: (k.split_keyed, (0x11B, i["a"], 2, b"\x01\x02", [i["out"]] * 2, b"short")),
        ValueError,
    ),
    "kernels unknown tier": (lambda e, k, i: (type(k), ("no-such-tier",)), ValueError),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(ERRORS))
def test_no_growth_on_errors(case: str) -> None:
    kernels = load_kernels(f"native-{NATIVE_TIERS[0]}")
    make, error = ERRORS[case]
    call, args = make(Engine(_kernels=kernels), kernels, INPUTS)
    _check_no_growth(call, args, error)


# -- (b) valgrind memcheck --------------------------------------------------------------------

VALGRIND_TIER = "avx2"
VALGRIND_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    from mpss_fast import Engine, MpssError, _native

    engine = Engine("native", kernel="{tier}")
    kernels = _native.Kernels("{tier}", "aesni")
    secret = bytes(range(256)) * 12  # 3 KiB: split() takes the keyed path (split_keyed)
    secrets = np.arange(16 * 24, dtype=np.uint8).reshape(16, 24)
    out = bytearray(len(secret))
    for i in range(100):
        shares = engine.split(secret, 3, 5)
        assert engine.combine(shares[1:4]) == secret
        assert engine.split(secret[:8], 2, 3)  # the short-secret path (split_small)
        engine.xor_into(secret, shares[0][1:], out)
        engine.reencrypt(secret, out, shares[1][1:])
        rows = engine.split_array(secrets, 2, 3)
        assert (engine.combine_array(np.ascontiguousarray(rows[:2]), [1, 2]) == secrets).all()
        for bad in (lambda: engine.split(secret, 1, 5), lambda: engine.xor(secret, secret[:-1]),
                    lambda: engine.combine([shares[0]]), lambda: engine.split("text", 2, 3)):
            try:
                bad()
            except MpssError:
                pass
        for bad in (lambda: kernels.eval_shares(0x11B, secret, [secret, 5], b"\\x01", [out]),
                    lambda: kernels.xor(secret, "x" * len(secret), out),
                    lambda: kernels.split_keyed(0x11B, secret, 2, b"\\x01\\x02", [out, out], b"short"),
                    lambda: _native.Kernels("no-such-tier")):
            try:
                bad()
            except (TypeError, ValueError):
                pass
    {extra}
    print("ok")
    """
)


def _definite_leaks_in_our_code(log: str) -> list[str]:
    """The 'definitely lost' records of a memcheck log whose stack mentions the extension."""
    records = re.split(r"\n==\d+== \n", log)
    return [r for r in records if "definitely lost" in r and re.search(r"_native|mpss_|csrc/", r)]


def run_under_valgrind(tmp_path: Path, extra: str = "", env: dict[str, str] | None = None) -> tuple[int, str]:
    """(exit status, memcheck log) of the script above (plus ``extra`` code) under valgrind."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        pytest.fail("valgrind not found on PATH: apt-get install valgrind (needed for the leak check)")
    script = tmp_path / "calls.py"
    script.write_text(VALGRIND_SCRIPT.format(tier=VALGRIND_TIER, extra=extra))
    log = tmp_path / "memcheck.log"
    cmd = [
        valgrind,
        "--tool=memcheck",
        "--leak-check=full",
        "--show-leak-kinds=definite",
        "--errors-for-leak-kinds=definite",
        "--error-exitcode=99",
        f"--suppressions={SUPPRESSIONS}",
        "--num-callers=40",
        f"--log-file={log}",
        sys.executable,
        str(script),
    ]
    run_env = dict(os.environ, PYTHONMALLOC="malloc", MPSS_FAST_BACKEND="native", **(env or {}))
    run_env.pop("MPSS_FAST_KERNEL", None)
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=run_env, check=False)
    assert "ok" in result.stdout, result.stderr[-3000:] + log.read_text()[-3000:]
    return result.returncode, log.read_text()


@pytest.mark.slow
def test_valgrind_finds_no_definite_leak_in_the_extension(tmp_path: Path) -> None:
    if VALGRIND_TIER not in NATIVE_TIERS:
        load_kernels(f"native-{VALGRIND_TIER}")  # skips, or fails where the native backend is required
    status, log = run_under_valgrind(tmp_path)
    assert "LEAK SUMMARY" in log, log[-4000:]
    ours = _definite_leaks_in_our_code(log)
    assert not ours, "definite leaks through mpss_fast:\n\n" + "\n\n".join(ours)
    # Exit status 99 is left to reports from the interpreter and other extensions that the
    # suppressions do not know (they vary with the versions installed); ours are above.
    assert status in (0, 99), log[-4000:]
