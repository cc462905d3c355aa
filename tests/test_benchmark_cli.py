"""``mpss bench``: runs every backend side by side and reports sane, parseable figures."""

from __future__ import annotations

import json

import pytest

from mpss_fast import benchmark
from mpss_fast.cli import main


def test_bench_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--rounds", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    results = report["results"]
    assert {r["backend"] for r in results} == {"native", "pure"}
    assert len(results) == 2 * len(benchmark.default_cases())
    for r in results:
        assert r["median_s"] > 0 and r["gb_per_s"] > 0 and r["rounds"] == 3
        assert (r["keys_per_s"] is None) == ("keys" not in r["case"])


def test_bench_table(capsys: pytest.CaptureFixture[str]) -> None:
    small = [benchmark.Case("xor 4 KiB", 4096, 1, benchmark._xor_into(4096))]
    table = benchmark.format_table(benchmark.run(small, rounds=3))
    assert "native/pure" in table and "xor 4 KiB" in table and "GB/s" in table


def test_bench_rejects_too_few_rounds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--rounds", "2"]) == 1
    assert capsys.readouterr().err.startswith("mpss: error: --rounds")
