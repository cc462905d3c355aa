"""``mpss bench``: every tier, pure and a memory copy side by side, as a table, JSON and a plot."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import mpss_fast
from mpss_fast import benchmark
from mpss_fast.cli import main

QUICK = ["bench", "--rounds", "3", "--sizes", "64,4K", "--keys", "1000"]
"""Small sizes and few keys: a whole run takes well under a second."""
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def test_bench_json_file_has_every_tier_pure_and_copy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bench.json"
    assert main([*QUICK, "--json", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "throughput" in out and "speed-up over pure" in out and "memory-copy" in out
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
    for rows in by_case.values():
        assert set(rows) == {*mpss_fast.KERNELS, "pure", "copy"}
        assert rows["pure"]["vs_pure"] == 1.0 and rows["copy"]["vs_copy"] == 1.0
    for r in results:
        assert r["median_s"] > 0 and r["gb_per_s"] > 0 and r["vs_pure"] > 0 and r["vs_copy"] > 0
        assert (r["keys_per_s"] is None) == (r["keys"] == 1)
        assert (r["us_per_call"] is None) == (r["op"] != "split_key")


def test_bench_json_to_stdout_is_only_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*QUICK, "--json", "-"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {r["engine"] for r in report["results"]} == {*mpss_fast.KERNELS, "pure", "copy"}


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
    results = benchmark.run(cases, engines=benchmark.contenders(mpss_fast.KERNELS[:1]), rounds=3)
    assert [r.engine for r in results] == [*mpss_fast.KERNELS[:1], "pure", "copy"]
    table = benchmark.format_table(results)
    assert "xor 4 KiB" in table and "GB/s" in table and "x" in table.split("speed-up over pure")[1]


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
