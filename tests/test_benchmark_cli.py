"""``mpss bench``: every tier, pure, the floor and a memory copy side by side, as a table, JSON and a plot.

Structure only: no test here asserts a speed. The floor loops are checked for the bytes
they write, so a floor can never be a no-op; the keystream loop (the bound of keyed
splits) is checked for its fold against ``cryptography``'s AES-256-CTR.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

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


# -- the keystream bound of keyed splits ---------------------------------------------------------

KEYED_SPLIT_OPS = {"split", "split_keys"}
"""The cases whose engine call is a keyed split (split_array: AES-256-CTR coefficient rows)."""
KS_LENGTHS = [0, 1, 15, 16, 17, 63, 64, 65, 127, 128, 129, 511, 512, 513, 3 * 512 + 5 * 64 + 17, 4096 + 3]
"""Lengths through every path of both loops: none, a partial block, whole blocks, the 8-chain
xmm (128 B) and zmm (512 B) steps, the single-register steps and the masked tail."""
BOUND_LINE = re.compile(
    r"^  (?P<case>.+): the AES-256-CTR coefficients alone \((?P<impl>\w+), in registers, nothing stored\) "
    r"run at (?P<x>[\d.]+) GB/s of secret: a split here can reach at most "
    r"min\(1, (?P=x) / (?P<floor>[\d.]+)\) = (?P<y>[\d.]+) of the store floor$",
    re.M,
)


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            return next((set(line.split(":", 1)[1].split()) for line in fh if line.startswith("flags")), set())
    except OSError:
        return set()


@pytest.fixture(scope="module")
def keystream_isas(floor: ModuleType) -> tuple[str, ...]:
    """The floor ISAs with a keystream loop; none (no AES instructions) skips, a failure under NO_SKIPS."""
    if not floor.KEYSTREAM_ISAS:
        pytest.skip("this CPU has no AES instructions: no keystream loop")
    return tuple(floor.KEYSTREAM_ISAS)


def _fold_of(rows: list[bytes]) -> bytes:
    """Byte t of every row XORed into byte t % 64 (each row from t = 0), written out plainly."""
    fold = bytearray(64)
    for row in rows:
        for t, byte in enumerate(row):
            fold[t % 64] ^= byte
    return bytes(fold)


def _rows_by_cryptography(key: bytes, rows: int, length: int) -> list[bytes]:
    """Row j: ``length`` bytes of AES-256-CTR from the counter block BE64(j) || BE64(0)."""
    return [
        Cipher(algorithms.AES256(key), modes.CTR(j.to_bytes(8, "big") + bytes(8))).encryptor().update(bytes(length))
        for j in range(rows)
    ]


def test_keystream_isas_follow_the_cpu_flags(floor: ModuleType) -> None:
    flags = _cpu_flags()
    if not flags:
        pytest.skip("no /proc/cpuinfo flags to compare with")
    aes, vaes = "aes" in flags, {"aes", "vaes", "avx512f", "avx512bw"} <= flags
    expected = {isa: None for isa in floor.ISAS}
    expected.update({isa: "aesni" for isa in ("avx2", "sse2") if isa in floor.ISAS and aes})
    if "avx512" in floor.ISAS and vaes:
        expected["avx512"] = "vaes512"
    assert {isa: floor.keystream_impl(isa) for isa in floor.ISAS} == expected
    assert floor.KEYSTREAM_ISAS == tuple(isa for isa in floor.ISAS if expected[isa])
    assert all(floor.has_keystream(isa) == (expected[isa] is not None) for isa in floor.ISAS)


@pytest.mark.parametrize("length", KS_LENGTHS)
@pytest.mark.parametrize("rows", [1, 2, 4, 9])
def test_keystream_fold_equals_cryptography(keystream_isas: tuple[str, ...], rows: int, length: int) -> None:
    floor = FLOOR
    assert floor is not None
    key = os.urandom(32)
    expected = _fold_of(_rows_by_cryptography(key, rows, length))
    assert benchmark.keystream_fold(key, rows, length) == expected  # FloorWork.check's reference
    for isa in keystream_isas:
        fold = _aligned(64, os.urandom(64))  # stale bytes: the call must overwrite all 64
        loop = floor.Keystream(key, fold, rows=rows, length=length, isa=isa)
        assert (loop.isa, loop.rows, loop.length, loop.streaming) == (isa, rows, length, False)
        assert loop.impl == floor.keystream_impl(isa)
        loop()
        assert fold.tobytes() == expected, f"{isa} ({loop.impl}) rows={rows} length={length}"
        loop()  # again, the schedule expanded afresh: the same fold
        assert fold.tobytes() == expected


def test_keystream_fold_at_the_row_limit(keystream_isas: tuple[str, ...]) -> None:
    floor = FLOOR
    assert floor is not None
    key, length = os.urandom(32), 3 * 512 + 17
    expected = _fold_of(_rows_by_cryptography(key, floor.MAX_ROWS, length))
    for isa in keystream_isas:
        fold = bytearray(64)
        floor.Keystream(key, fold, rows=floor.MAX_ROWS, length=length, isa=isa)()
        assert bytes(fold) == expected, isa


def test_keystream_counter_blocks_are_the_engines(keystream_isas: tuple[str, ...]) -> None:
    """The rows the loop folds are the engine's coefficient rows (its in-kernel keystream), not just any AES-CTR."""
    native = pytest.importorskip("mpss_fast._native")
    floor = FLOOR
    assert floor is not None
    engine_keystream = native.supported_keystreams()[0]
    if engine_keystream == native.LIBRARY_KEYSTREAM:
        pytest.skip("the engine has no in-kernel keystream here")
    key, rows, length = os.urandom(32), 3, 1000
    blocks = -(-length // 16)
    engine_rows = [native.keystream(engine_keystream, key, j, 0, blocks)[:length] for j in range(rows)]
    for isa in keystream_isas:
        fold = bytearray(64)
        floor.Keystream(key, fold, rows=rows, length=length, isa=isa)()
        assert bytes(fold) == _fold_of(engine_rows), isa


def test_keystream_fold_depends_on_key_rows_and_length(keystream_isas: tuple[str, ...]) -> None:
    floor = FLOOR
    assert floor is not None
    key = bytearray(os.urandom(32))
    fold = bytearray(64)

    def run(rows: int, length: int) -> bytes:
        floor.Keystream(key, fold, rows=rows, length=length)()
        return bytes(fold)

    base = run(2, 1000)
    assert len({base, run(1, 1000), run(3, 1000), run(2, 999), run(2, 1001)}) == 5
    assert run(2, 0) == bytes(64)
    key[31] ^= 1  # the loop reads the caller's key buffer at each call
    assert run(2, 1000) != base


def test_keystream_rejects_bad_arguments(floor: ModuleType) -> None:
    key, fold = os.urandom(32), bytearray(64)
    assert floor.keystream_impl("portable") is None and not floor.has_keystream("portable")
    with pytest.raises(ValueError, match="isa 'portable' has no keystream loop on this CPU"):
        floor.Keystream(key, fold, rows=2, length=64, isa="portable")
    with pytest.raises(ValueError, match="unknown isa"):
        floor.Keystream(key, fold, rows=2, length=64, isa="mmx")
    with pytest.raises(ValueError, match="unknown isa"):
        floor.keystream_impl("mmx")
    if not floor.KEYSTREAM_ISAS:
        with pytest.raises(ValueError, match="no AES instructions"):
            floor.Keystream(key, fold, rows=2, length=64)
        return
    with pytest.raises(ValueError, match="rows must be 1 to 254, not 0"):
        floor.Keystream(key, fold, rows=0, length=64)
    with pytest.raises(ValueError, match="rows must be 1 to 254, not 255"):
        floor.Keystream(key, fold, rows=255, length=64)
    with pytest.raises(ValueError, match="length must be >= 0, not -1"):
        floor.Keystream(key, fold, rows=2, length=-1)
    with pytest.raises(ValueError, match="key must be 32 bytes and the fold 64, not 31 and 64"):
        floor.Keystream(key[:31], fold, rows=2, length=64)
    with pytest.raises(ValueError, match="not 32 and 63"):
        floor.Keystream(key, bytearray(63), rows=2, length=64)
    with pytest.raises((ValueError, BufferError)):
        floor.Keystream(key, bytes(64), rows=2, length=64)  # read-only fold
    with pytest.raises(TypeError):
        floor.Keystream(key, fold, 2, 64)  # rows and length are keyword-only


def test_floor_work_checks_its_keystream_loops(floor: ModuleType, keystream_isas: tuple[str, ...]) -> None:
    variants = benchmark.keystream_variants(floor)
    assert [impl for _, _, impl in variants] == list(dict.fromkeys(floor.keystream_impl(i) for i in keystream_isas))
    assert all(label == f"bound:keystream-{impl}" for label, _, impl in variants)
    assert benchmark.FloorWork(floor, "store", 5, 1000).bounds == {}  # no coefficient rows, no bound
    work = benchmark.FloorWork(floor, "store", 5, 1000 + 17, rows=2)
    assert set(work.bounds) == {label for label, _, _ in variants}
    work.check()
    label = variants[0][0]
    assert work.describe_bound(label) == variants[0][2]
    saved = work.bounds[label]
    work.bounds[label] = lambda: None  # a loop that skips its work leaves the cleared fold: caught
    with pytest.raises(RuntimeError, match="folded wrong bytes"):
        work.check()
    other = bytearray(os.urandom(32))  # the keystream of another key: caught
    work.bounds[label] = floor.Keystream(other, work.fold, rows=2, length=1000 + 17)
    with pytest.raises(RuntimeError, match="folded wrong bytes"):
        work.check()
    work.bounds[label] = floor.Keystream(work.key, work.fold, rows=1, length=1000 + 17)  # a row short: caught
    with pytest.raises(RuntimeError, match="folded wrong bytes"):
        work.check()
    work.bounds[label] = saved
    work.check()


def test_workloads_name_their_coefficient_rows() -> None:
    cases = {c.op: c for c in benchmark.default_cases((4096,), keys=10, k=4, n=6)}
    rows = {op: case.make().coefficient_rows() for op, case in cases.items()}
    assert rows == {
        "split": 3,
        "split_keys": 3,
        "combine": 0,
        "combine_keys": 0,
        "xor_into": 0,
        "reencrypt_into": 0,
        "split_key": 0,  # short secrets take their coefficients from the OS, no keystream
    }


def test_bench_prints_and_saves_the_keystream_bound(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keystream_isas: tuple[str, ...]
) -> None:
    path = tmp_path / "bench.json"
    assert main(["bench", "--sizes", "64K", "--rounds", "3", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    report = json.loads(path.read_text())
    assert "keyed splits also time their AES-256-CTR keystream alone" in report["floor"]["status"]
    cases = report["floor"]["cases"]
    ops = {r["case"]: r["op"] for r in report["results"]}
    keyed = {case for case in cases if ops[case] in KEYED_SPLIT_OPS}
    assert keyed == {"split 64 KiB k=3 n=5", "split 100,000 x 32 B keys k=3 n=5"}
    printed = {m["case"]: m for m in BOUND_LINE.finditer(out)}
    assert set(printed) == keyed
    floor_section = out.split("\nfraction of the floor")[0].split("\nfloor: ")[1]
    impls = {impl for _, _, impl in benchmark.keystream_variants(FLOOR)} if FLOOR else set()
    for case, entry in cases.items():
        fields = (entry["keystream"], entry["keystream_gb_per_s"], entry["bound"])
        if case not in keyed:
            assert fields == (None, None, None), case
            continue
        impl, x, bound = fields
        assert impl in impls and x > 0 and 0 < bound <= 1
        assert bound == pytest.approx(min(1.0, x / entry["gb_per_s"]), rel=2e-3)
        line = printed[case]
        assert line["impl"] == impl and line.group(0).strip() in floor_section
        assert float(line["x"]) == pytest.approx(x, rel=0.01) and float(line["floor"]) == pytest.approx(
            entry["gb_per_s"], rel=0.01
        )
        assert float(line["y"]) == pytest.approx(bound, abs=0.006)
        assert float(line["y"]) == pytest.approx(min(1.0, float(line["x"]) / float(line["floor"])), abs=0.01)
    for r in report["results"]:
        measured = r["engine"] == "floor" and r["case"] in keyed
        assert (r["keystream"] is not None) == measured and (r["bound"] is not None) == measured
        if measured:
            assert (r["keystream"], r["keystream_gb_per_s"], r["bound"]) == (
                cases[r["case"]]["keystream"],
                cases[r["case"]]["keystream_gb_per_s"],
                cases[r["case"]]["bound"],
            )
    # a bound, not a contender: no column of its own, and the floor column is the store loop's
    assert "bound:" not in out and {r["engine"] for r in report["results"]} == {
        *mpss_fast.KERNELS,
        "pure",
        "copy",
        "floor",
    }
