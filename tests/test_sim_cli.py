"""``mpss simulate``: the table, --json, --plot, the progress bar, and one-line errors for bad arguments."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

pytest.importorskip("simpy")
pytest.importorskip("networkx")

from mpss_fast import sim
from mpss_fast.cli import main

QUICK = ["simulate", "--sessions", "120", "--duration", "12", "--compromised-relays", "2", "--quiet"]


def test_simulate_prints_a_comparison(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(QUICK) == 0
    out, err = capsys.readouterr()
    assert "MPSS k=2 n=3" in out and "single path" in out and "keys exposed" in out
    assert "120 sessions on metro" in out
    assert err == ""


def test_simulate_json_file_and_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "sim.json"
    assert main([*QUICK, "--json", str(path)]) == 0
    document = json.loads(path.read_text())
    assert document["schema"] == sim.SCHEMA
    assert document["config"]["sessions"] == 120 and document["config"]["compromised_relays"] == 2
    assert document["modes"]["mpss"]["sessions"] == 120
    assert f"wrote {path}" in capsys.readouterr().err
    assert main([*QUICK, "--json", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["modes"]["single_path"]["sessions"] == 120


def test_simulate_fixed_k_n_verify_and_mesh(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["simulate", "--topology", "mesh:20", "--sessions", "40", "-k", "2", "-n", "2", "--verify", "--quiet"]
    assert main([*args, "--tamper", "--compromised-relays", "3", "--json", "-"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert (document["k"], document["n"]) == (2, 2)
    assert document["verified_sessions"] > 0 and document["config"]["verify_fraction"] == 1.0


def test_simulate_plot_writes_a_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "sim.png"
    assert main([*QUICK, "--plot", str(path)]) == 0
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert f"wrote {path}" in capsys.readouterr().err


def test_simulate_reads_a_topology_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mpss_fast import kmp

    path = tmp_path / "net.json"
    kmp.save(kmp.backbone(), str(path))
    assert main(["simulate", "--topology", str(path), "--sessions", "30", "--quiet"]) == 0
    assert f"30 sessions on {path} (36 nodes)" in capsys.readouterr().out


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal() -> None:
    pytest.importorskip("tqdm")
    stream = _Tty()
    with sim.progress_bar(10, stream=stream) as progress:
        for _ in range(10):
            progress(1)
    assert "10/10" in stream.getvalue()
    quiet = _Tty()
    with sim.progress_bar(10, stream=quiet, quiet=True) as progress:
        progress(10)
    plain = io.StringIO()
    with sim.progress_bar(10, stream=plain) as progress:
        progress(10)
    assert quiet.getvalue() == plain.getvalue() == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sessions", "0"], "sessions must be >= 1"),
        (["--duration", "0"], "duration_s and refresh_s must be > 0"),
        (["--duration", "inf"], "duration_s must be a finite number"),
        (["--key-bytes", "0"], "key_bytes must be in 1..4096"),
        (["-k", "2"], "give both k and n"),
        (["-k", "4", "-n", "3"], "need 2 <= k <= n <= 255"),
        (["--failures", "-1"], "failures must be a whole number >= 0"),
        (["--failures", "300"], "more than the 255 shares"),
        (["--compromised-relays", "11"], "at most 10"),
        (["--mtbf", "-5"], "mtbf_s must be a finite number >= 0"),
        (["--mttr", "0"], "mttr_s must be > 0"),
        (["--key-timeout", "nan"], "key_timeout_s must be a finite number"),
        (["--topology", "mesh:abc"], "mesh:N needs a whole number"),
        (["--topology", "mesh:3"], "4-regular graph on 3 nodes"),
        (["--topology", "no/such/net.json"], "not metro, backbone, mesh:N or an existing file"),
        (["--json", "no/such/dir/out.json"], "no such directory"),
        (["--plot", "no/such/dir/out.png"], "no such directory"),
    ],
)
def test_simulate_bad_arguments(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--sessions", "5", "--quiet", *args]) == 1
    out, err = capsys.readouterr()
    assert err.startswith("mpss: error: ") and message in err and err.count("\n") == 1
    assert out == ""


def test_simulate_bad_topology_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"nodes": [{"name": "x"}], "links": [{"a": "x", "b": "y"}]}')
    assert main(["simulate", "--topology", str(path), "--quiet"]) == 1
    assert capsys.readouterr().err.startswith(f"mpss: error: {path}: links[0]")


def test_simulate_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--sessions", "many"]) == 2
    assert "invalid int value" in capsys.readouterr().err
