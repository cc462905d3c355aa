"""``mpss bench``: every tier, pure, the floor and a memory copy side by side, as a table, JSON and a plot.

Structure only: no test here asserts a speed. The floor loops are checked for the bytes
they write, so a floor can never be a no-op.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import mpss_fast
from mpss_fast import benchmark
from mpss_fast.cli import main

QUICK = ["bench", "--rounds", "3", "--sizes", "64,4K", "--keys", "1000"]
"""Small sizes and few keys: a whole run takes well under a second."""
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
FLOOR, FLOOR_STATUS = benchmark.load_floor()
NO_FLOOR_OPS = {"split_key"}
"""The only case without a floor: one short call, a per-call cost rather than a memory stream."""


@pytest.fixture(scope="module")
def floor() -> ModuleType:
    """The floor extension; a build without it skips, unless the run demands the native extensions."""
    if FLOOR is None:
        if os.environ.get("MPSS_FAST_BACKEND") == "native" or os.environ.get("MPSS_FAST_REQUIRE_NATIVE") == "1":
            pytest.fail(f"mpss_fast._floor: {FLOOR_STATUS}")
        pytest.skip(f"mpss_fast._floor: {FLOOR_STATUS}")
    return FLOOR


def test_bench_json_file_has_every_tier_pure_and_copy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bench.json"
    assert main([*QUICK, "--json", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "throughput" in out and "speed-up over pure" in out and "memory-copy" in out
    assert f"floor: {FLOOR_STATUS}" in out
    assert ("fraction of the floor" in out) == (FLOOR is not None)
    assert "[1/" in err and f"wrote {path}" in err
    report = json.loads(path.read_text())
    assert report["mpss_fast"] == mpss_fast.__version__ and report["rounds"] == 3
    assert report["kernels"] == list(mpss_fast.KERNELS)
    results = report["results"]
    by_case: dict[str, dict[str, dict[str, object]]] = {}
    for r in results:
        by_case.setdefault(r["case"], {})[r["engine"]] = r
    assert {"split", "combine", "split_keys", "combine_keys", "xor_into", "reencrypt_into", "split_key"} == {
        r["op"] for r in results
    }
    assert len(by_case) == 2 * 4 + 3  # per size: split, combine, xor_into, reencrypt_into; keys x 2; one key
    floored = {case for case, rows in by_case.items() if next(iter(rows.values()))["op"] not in NO_FLOOR_OPS}
    assert report["floor"] == {
        "available": FLOOR is not None,
        "status": FLOOR_STATUS,
        "cases": {case: report["floor"]["cases"][case] for case in floored} if FLOOR is not None else {},
    }
    for case, rows in by_case.items():
        has_floor = FLOOR is not None and case in floored
        assert set(rows) == {*mpss_fast.KERNELS, "pure", "copy", *(["floor"] if has_floor else [])}
        assert rows["pure"]["vs_pure"] == 1.0 and rows["copy"]["vs_copy"] == 1.0
        if has_floor:
            floor_row = rows["floor"]
            assert floor_row["vs_floor"] == 1.0 and isinstance(floor_row["detail"], str)
            assert report["floor"]["cases"][case]["detail"] == floor_row["detail"]
    for r in results:
        assert r["median_s"] > 0 and r["gb_per_s"] > 0 and r["vs_pure"] > 0 and r["vs_copy"] > 0
        assert (r["keys_per_s"] is None) == (r["keys"] == 1)
        assert (r["us_per_call"] is None) == (r["op"] != "split_key")
        assert (r["vs_floor"] is None) == (FLOOR is None or r["op"] in NO_FLOOR_OPS)
        assert r["vs_floor"] is None or r["vs_floor"] > 0
        assert (r["detail"] is None) == (r["engine"] != "floor")


def test_bench_json_to_stdout_is_only_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*QUICK, "--json", "-"]) == 0
    report = json.loads(capsys.readouterr().out)
    floor = ["floor"] if FLOOR is not None else []
    assert {r["engine"] for r in report["results"]} == {*mpss_fast.KERNELS, "pure", "copy", *floor}


def test_bench_plot_writes_a_png_or_says_what_to_install(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bench.png"
    status = main([*QUICK, "--plot", str(path)])
    out, err = capsys.readouterr()
    if HAS_MATPLOTLIB:
        assert status == 0, err
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert status == 1 and not path.exists() and out == ""
        assert err == "mpss: error: --plot needs matplotlib: install mpss-fast[bench] (or pip install matplotlib)\n"


@pytest.mark.parametrize("rounds", ["2", "0", "-5", "many", "3.5", ""])
def test_bench_rejects_bad_rounds(rounds: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--rounds", rounds]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("mpss: error: --rounds") and err.count("\n") == 1


@pytest.mark.parametrize(
    ("option", "value"),
    [("--sizes", "0"), ("--sizes", "65M"), ("--sizes", "1G"), ("--sizes", "4K,x"), ("--keys", "0"), ("--keys", "k")],
)
def test_bench_rejects_bad_sizes_and_keys(option: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", option, value]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"mpss: error: {option}") and err.count("\n") == 1


def test_bench_refuses_output_in_a_missing_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*QUICK, "--json", str(tmp_path / "no" / "bench.json")]) == 1
    assert "no such directory" in capsys.readouterr().err


def test_parse_sizes() -> None:
    assert benchmark.parse_sizes("1M, 64,4k,64KiB,4K") == (64, 4096, 65536, 1 << 20)
    assert benchmark.parse_sizes("64M") == (64 << 20,)


def test_format_table_relates_each_contender_to_pure_and_copy() -> None:
    cases = [benchmark.Case("xor_into", "xor 4 KiB", 4096, lambda: benchmark.XorInto(4096))]
    results = benchmark.run(cases, engines=benchmark.contenders(mpss_fast.KERNELS[:1]), rounds=3, floor=None)
    assert [r.engine for r in results] == [*mpss_fast.KERNELS[:1], "pure", "copy"]
    table = benchmark.format_table(results)
    assert "xor 4 KiB" in table and "GB/s" in table and "x" in table.split("speed-up over pure")[1]
    assert "floor: not measured" in table and "fraction of the floor" not in table


def test_format_table_relates_each_contender_to_the_floor(floor: ModuleType) -> None:
    cases = [benchmark.Case("xor_into", "xor 4 KiB", 4096, lambda: benchmark.XorInto(4096))]
    results = benchmark.run(cases, engines=benchmark.contenders(mpss_fast.KERNELS[:1]), rounds=3, floor=floor)
    assert [r.engine for r in results] == [*mpss_fast.KERNELS[:1], "pure", "floor", "copy"]
    floor_row = results[-2]
    assert floor_row.vs_floor == 1.0 and floor_row.detail is not None
    assert floor_row.detail.startswith("read 2 x 4 KiB, write their XOR (4 KiB); fastest ")
    assert all(r.vs_floor is not None and r.vs_floor > 0 for r in results)
    table = benchmark.format_table(results, "C loops")
    assert "floor: C loops" in table and f"xor 4 KiB: {floor_row.detail}" in table
    fractions = table.split("fraction of the floor")[1].split("\n\n")[0]
    assert "pure" in fractions and "floor " not in fractions and "copy" not in fractions


def test_bench_without_the_floor_module_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status = "not available (No module named 'mpss_fast._floor'): figures are printed without fractions of the floor"
    monkeypatch.setattr(benchmark, "load_floor", lambda: (None, status))
    assert main([*QUICK, "--json", "-"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["floor"] == {"available": False, "status": status, "cases": {}}
    assert all(r["vs_floor"] is None and r["engine"] != "floor" for r in report["results"])
    assert main(QUICK) == 0
    out = capsys.readouterr().out
    assert f"floor: {status}" in out and "fraction of the floor" not in out


def test_default_run_adds_a_large_split_without_pure() -> None:
    cases = benchmark.default_cases(large=benchmark.LARGE_SPLIT)
    large = [c for c in cases if c.nbytes == benchmark.LARGE_SPLIT]
    assert [(c.op, c.label, c.pure, c.max_call_s) for c in large] == [
        ("split", "split 64 MiB k=3 n=5", False, benchmark.LARGE_MAX_CALL_S)
    ]
    assert len(benchmark.default_cases(large=None)) == len(cases) - 1
    assert len(benchmark.default_cases((benchmark.LARGE_SPLIT,), large=benchmark.LARGE_SPLIT)) == len(cases) - 1


def test_a_slow_contender_is_left_out_of_a_case_with_a_time_limit() -> None:
    case = benchmark.Case("xor_into", "xor 4 KiB", 4096, lambda: benchmark.XorInto(4096), pure=False, max_call_s=1e-12)
    results = benchmark.run([case], engines=benchmark.contenders(mpss_fast.KERNELS[:1]), rounds=3, floor=None)
    assert [r.engine for r in results] == ["copy"]  # every engine call takes longer than 1e-12 s


# -- the floor loops write the right bytes ------------------------------------------------------

LENGTHS = [1, 15, 64, 255, 256 + 64 + 17, 4096 + 3]
"""Lengths that exercise the unrolled loop, the one-vector loop and the byte tail of every ISA."""


def _aligned(length: int, fill: bytes | None = None) -> np.ndarray:
    raw = np.zeros(length + 64, dtype=np.uint8)
    start = -raw.ctypes.data % 64
    buf = raw[start : start + length]
    if fill is not None:
        buf[:] = np.frombuffer(fill, dtype=np.uint8)
    return buf


def _variants(floor: ModuleType) -> list[tuple[str, bool]]:
    return [
        (isa, streaming)
        for isa in floor.ISAS
        for streaming in (False, True)
        if not streaming or floor.has_streaming(isa)
    ]


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("n", [1, 3, 5])
def test_store_floor_copies_the_input_to_every_output(floor: ModuleType, length: int, n: int) -> None:
    src = _aligned(length, os.urandom(length))
    for isa, streaming in _variants(floor):
        outs = [_aligned(length) for _ in range(n)]
        loop = floor.Store(src, outs, streaming=streaming, isa=isa)
        assert (loop.isa, loop.streaming, loop.length) == (isa, streaming, length)
        loop()
        for out in outs:
            np.testing.assert_array_equal(out, src, err_msg=f"{isa} streaming={streaming}")


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_xor_floor_equals_numpy_xor(floor: ModuleType, length: int, k: int) -> None:
    ins = [bytes(os.urandom(length)) for _ in range(k)]  # any buffer: bytes in, an aligned array out
    expected = np.bitwise_xor.reduce(np.stack([np.frombuffer(b, dtype=np.uint8) for b in ins]), axis=0)
    for isa, streaming in _variants(floor):
        out = _aligned(length)
        floor.Xor(ins, out, streaming=streaming, isa=isa)()
        np.testing.assert_array_equal(out, expected, err_msg=f"{isa} streaming={streaming}")


def test_floor_rejects_bad_buffers(floor: ModuleType) -> None:
    src, out = _aligned(128, os.urandom(128)), _aligned(128)
    with pytest.raises(ValueError, match="one length"):
        floor.Store(src, [out, _aligned(64)])
    with pytest.raises(ValueError, match="one length"):
        floor.Xor([src, _aligned(64)], out)
    with pytest.raises(ValueError, match="must not be empty"):
        floor.Xor([b"", b""], bytearray())
    with pytest.raises(ValueError, match="1 to 255"):
        floor.Store(src, [])
    with pytest.raises(ValueError, match="unknown isa"):
        floor.Store(src, [out], isa="mmx")
    with pytest.raises((ValueError, BufferError)):
        floor.Store(src, [bytes(128)])  # read-only output
    if floor.has_streaming():
        with pytest.raises(ValueError, match="aligned"):
            floor.Store(src, [_aligned(129)[1:]], streaming=True)


def test_floor_work_checks_its_loops(floor: ModuleType) -> None:
    work = benchmark.FloorWork(floor, "store", 5, 1000)
    work.check()
    variants = benchmark.floor_variants(floor)
    assert set(work.calls) == {label for label, _, _ in variants}
    assert (variants[0][1], variants[0][2]) == (floor.ISA, False) and len({isa for _, isa, _ in variants}) <= 2
    assert all(streaming == label.endswith("-nt") for label, _, streaming in variants)
    assert work.describe() == "read 1000 B once, write 5 x 1000 B"
    work.calls = {variants[0][0]: lambda: None}  # a loop that skips its work leaves the cleared outputs: caught
    with pytest.raises(RuntimeError, match="wrote wrong bytes"):
        work.check()


def test_galois_peer_round_trips_and_interoperates() -> None:
    peers, status = benchmark.load_peers(["galois"])
    assert [p.name for p in peers] == ["galois"], status
    galois_peer = peers[0]
    secrets = np.frombuffer(bytes(range(256)) * 3, dtype=np.uint8).reshape(24, 32)
    shares = galois_peer.split_call(secrets, 3, 5)()
    assert isinstance(shares, np.ndarray) and shares.shape == (5, 24, 32)
    np.testing.assert_array_equal(mpss_fast.combine_array(np.ascontiguousarray(shares[2:]), [3, 4, 5]), secrets)
    combine = galois_peer.combine_call(secrets, 3, 5)
    assert combine is not None
    np.testing.assert_array_equal(combine(), secrets)


@pytest.mark.parametrize("name", ["tss", "pycryptodome"])
def test_optional_peers_work_or_are_reported_missing(name: str) -> None:
    peers, status = benchmark.load_peers([name])
    if peers:
        assert status[name] == peers[0].version
    else:
        assert status[name].startswith("not installed") and "mpss-fast[bench]" in status[name]
