"""The ``mpss`` command line: round trips, every user error, the demo, and interop with libgfshare."""

from __future__ import annotations

import io
import itertools
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import mpss_fast
import mpss_fast.demo
from mpss_fast.cli import main

POLY_IDS = ["0x11b", "0x11d"]
SIZES = [1, 1000, 70000]
OK_LINE = "OK: key rebuilt from 3 of 5 shares"
HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def _secret(size: int) -> bytes:
    return os.urandom(size)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _split(tmp_path: Path, data: bytes, k: int, n: int, *extra: str) -> list[Path]:
    src = _write(tmp_path / "secret.bin", data)
    stem = tmp_path / "s"
    assert main(["split", "-k", str(k), "-n", str(n), "-o", str(stem), *extra, str(src)]) == 0
    return [tmp_path / f"s.{x:03d}" for x in range(1, n + 1)]


def _assert_user_error(capsys: pytest.CaptureFixture[str], rc: int, *needles: str) -> str:
    """Exit 1, exactly one stderr line ``mpss: error: ...``, no traceback; returns that line."""
    err = capsys.readouterr().err
    assert rc == 1, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("mpss: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# -- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("poly", POLY_IDS)
@pytest.mark.parametrize("size", SIZES)
def test_split_combine_round_trip(tmp_path: Path, poly: str, size: int) -> None:
    data = _secret(size)
    files = _split(tmp_path, data, 3, 5, "--poly", poly)
    for f in files:
        assert f.stat().st_size == size  # raw y bytes only, the gfsplit layout
        assert stat.S_IMODE(f.stat().st_mode) & 0o077 == 0  # shares are private
    assert not (tmp_path / "s.006").exists()
    for i, subset in enumerate(itertools.combinations(files, 3)):
        out = tmp_path / f"out{i}"
        assert main(["combine", "--poly", poly, "-o", str(out), *map(str, subset)]) == 0
        assert out.read_bytes() == data


def test_split_files_match_library_layout(tmp_path: Path) -> None:
    """Share file x.NNN holds y bytes that, with x prepended, combine through the library API."""
    data = _secret(64)
    files = _split(tmp_path, data, 2, 4)
    shares = [bytes([int(f.suffix[1:])]) + f.read_bytes() for f in files]
    assert mpss_fast.combine(shares[1:3]) == data
    assert mpss_fast.combine(shares) == data


def test_poly_accepts_case_and_decimal(tmp_path: Path) -> None:
    data = _secret(100)
    files = _split(tmp_path, data, 2, 3, "--poly", "0x11D")
    out = tmp_path / "out"
    assert main(["combine", "--poly", "285", "-o", str(out), *map(str, files[:2])]) == 0
    assert out.read_bytes() == data


def _xor_closed(xs: tuple[int, ...]) -> bool:
    """Whether x = {a, b, a^b}: then every Lagrange weight at 0 is 1 in any GF(2^8), whatever the polynomial."""
    a, b, c = xs
    return a ^ b == c or a ^ c == b or b ^ c == a


def _poly_sensitive(files: list[Path]) -> list[Path]:
    """The first 3 of ``files`` whose x values are not XOR-closed (such a triple always exists among 4+)."""
    for subset in itertools.combinations(files, 3):
        if not _xor_closed(tuple(int(f.suffix[1:]) for f in subset)):
            return list(subset)
    raise AssertionError("no polynomial-sensitive triple")


def test_xs_1_2_3_combine_under_either_poly(tmp_path: Path) -> None:
    """x = {1, 2, 3} sums the shares (all weights 1), so it cannot tell the polynomials apart."""
    data = _secret(1000)
    files = _split(tmp_path, data, 3, 5, "--poly", "0x11b")
    out = tmp_path / "out"
    assert main(["combine", "--poly", "0x11d", "-o", str(out), *map(str, files[:3])]) == 0
    assert out.read_bytes() == data


@pytest.mark.parametrize(("split_poly", "combine_poly"), [("0x11b", "0x11d"), ("0x11d", "0x11b")])
def test_wrong_poly_gives_wrong_secret(tmp_path: Path, split_poly: str, combine_poly: str) -> None:
    data = _secret(1000)
    files = _split(tmp_path, data, 3, 5, "--poly", split_poly)
    subset = _poly_sensitive(files)
    assert [f.name for f in subset] == ["s.001", "s.002", "s.004"]
    out = tmp_path / "out"
    assert main(["combine", "--poly", combine_poly, "-o", str(out), *map(str, subset)]) == 0
    assert out.read_bytes() != data


def test_default_stem_and_default_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _secret(300)
    src = _write(tmp_path / "key.bin", data)
    assert main(["split", "-k", "2", "-n", "3", str(src)]) == 0
    assert "key.bin.001" in capsys.readouterr().out
    files = [tmp_path / f"key.bin.{x:03d}" for x in (1, 2, 3)]
    assert all(f.exists() for f in files)
    # The default output is the stem, i.e. the original file: refused while it exists ...
    rc = main(["combine", str(files[0]), str(files[2])])
    _assert_user_error(capsys, rc, "already exists", "--force")
    # ... and rebuilt once it is gone.
    src.unlink()
    assert main(["combine", str(files[0]), str(files[2])]) == 0
    assert src.read_bytes() == data


def test_split_from_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _secret(5000)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    stem = tmp_path / "in"
    assert main(["split", "-k", "3", "-n", "4", "-o", str(stem), "-"]) == 0
    out = tmp_path / "out"
    assert main(["combine", "-o", str(out), *(f"{stem}.{x:03d}" for x in (4, 2, 1))]) == 0
    assert out.read_bytes() == data


def test_combine_to_stdout(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    data = _secret(777)
    files = _split(tmp_path, data, 3, 5)
    capsysbinary.readouterr()
    assert main(["combine", "-o", "-", *map(str, files[2:])]) == 0
    captured = capsysbinary.readouterr()
    assert captured.out == data
    assert captured.err == b""


# -- overwrite protection -----------------------------------------------------------------------


def test_split_refuses_existing_share_without_writing_any(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _write(tmp_path / "secret.bin", _secret(50))
    existing = _write(tmp_path / "s.004", b"keep me")
    rc = main(["split", "-k", "2", "-n", "5", "-o", str(tmp_path / "s"), str(src)])
    _assert_user_error(capsys, rc, "s.004", "already exists", "--force")
    assert existing.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.004", "secret.bin"]
    # --force overwrites.
    assert main(["split", "-k", "2", "-n", "5", "-o", str(tmp_path / "s"), "--force", str(src)]) == 0
    assert existing.read_bytes() != b"keep me"
    assert (tmp_path / "s.001").exists()


def test_combine_refuses_existing_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _secret(40)
    files = _split(tmp_path, data, 2, 3)
    out = _write(tmp_path / "out", b"old")
    rc = main(["combine", "-o", str(out), *map(str, files[:2])])
    _assert_user_error(capsys, rc, "out", "already exists")
    assert out.read_bytes() == b"old"
    assert main(["combine", "-o", str(out), "--force", *map(str, files[:2])]) == 0
    assert out.read_bytes() == data


# -- user errors: exit 1, one line, no traceback --------------------------------------------------


def test_split_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["split", "-k", "2", "-n", "3", str(tmp_path / "nope")])
    _assert_user_error(capsys, rc, "nope", "No such file")


def test_combine_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = _split(tmp_path, _secret(10), 2, 3)
    rc = main(["combine", "-o", "-", str(files[0]), str(tmp_path / "s.009")])
    _assert_user_error(capsys, rc, "s.009", "No such file")


def _unreadable(tmp_path: Path, name: str) -> Path:
    """A path that cannot be read: mode 000, or a directory where permissions do not bind (root)."""
    path = _write(tmp_path / name, b"data")
    path.chmod(0)
    if os.access(path, os.R_OK):
        path.chmod(0o600)
        path.unlink()
        path.mkdir()
    return path


def test_split_unreadable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _unreadable(tmp_path, "secret.bin")
    rc = main(["split", "-k", "2", "-n", "3", "-o", str(tmp_path / "s"), str(path)])
    _assert_user_error(capsys, rc, "cannot read", "secret.bin")
    assert not (tmp_path / "s.001").exists()


@pytest.mark.parametrize("directory", [False, True])
def test_combine_unreadable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], directory: bool) -> None:
    files = _split(tmp_path, _secret(10), 2, 3)
    bad = tmp_path / "s.003"
    bad.unlink()
    if directory:
        bad.mkdir()
    else:
        bad = _unreadable(tmp_path, "s.003")
    rc = main(["combine", "-o", "-", str(files[0]), str(bad)])
    _assert_user_error(capsys, rc, "cannot read", "s.003")


@pytest.mark.parametrize(
    "name", ["s.1", "s.01", "s.0001", "s.000", "s.256", "s.999", "s.abc", "s", "s.00a", "s.\u0661\u0662\u0663"]
)
def test_combine_bad_suffix(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    files = _split(tmp_path, _secret(10), 2, 3)
    bad = _write(tmp_path / name, files[1].read_bytes())
    rc = main(["combine", "-o", "-", str(files[0]), str(bad)])
    _assert_user_error(capsys, rc, ".NNN", "001..255", repr(str(bad)))


def test_combine_duplicate_x(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = _write(tmp_path / "a" / "s.002", b"12345")
    b = _write(tmp_path / "b" / "s.002", b"67890")
    rc = main(["combine", "-o", "-", str(a), str(b)])
    _assert_user_error(capsys, rc, "x = 2", str(a), str(b))


def test_combine_same_file_twice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = _split(tmp_path, _secret(10), 2, 3)
    rc = main(["combine", "-o", "-", str(files[0]), str(files[0])])
    _assert_user_error(capsys, rc, "x = 1")


def test_combine_unequal_lengths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _write(tmp_path / "s.001", b"1234")
    b = _write(tmp_path / "s.002", b"12345")
    rc = main(["combine", "-o", "-", str(a), str(b)])
    _assert_user_error(capsys, rc, "differ in length", "4 bytes", "is 5")


@pytest.mark.parametrize("poly", ["0x11c", "0x11", "283x", "foo", "", "0", "-0x11b", "0x1_1b_"])
def test_unknown_poly(tmp_path: Path, capsys: pytest.CaptureFixture[str], poly: str) -> None:
    src = _write(tmp_path / "secret.bin", b"abc")
    rc = main(["split", "-k", "2", "-n", "3", f"--poly={poly}", str(src)])
    _assert_user_error(capsys, rc, "--poly", "0x11b or 0x11d")
    assert not (tmp_path / "secret.bin.001").exists()
    a = _write(tmp_path / "s.001", b"x")
    b = _write(tmp_path / "s.002", b"y")
    rc = main(["combine", f"--poly={poly}", "-o", "-", str(a), str(b)])
    _assert_user_error(capsys, rc, "--poly")


def test_split_empty_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _write(tmp_path / "empty", b"")
    rc = main(["split", "-k", "2", "-n", "3", str(src)])
    _assert_user_error(capsys, rc, "empty")
    assert not (tmp_path / "empty.001").exists()


def test_split_empty_stdin(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    rc = main(["split", "-k", "2", "-n", "3", "-o", str(tmp_path / "s"), "-"])
    _assert_user_error(capsys, rc, "empty")


def test_combine_empty_share(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _write(tmp_path / "s.001", b"")
    b = _write(tmp_path / "s.002", b"")
    rc = main(["combine", "-o", "-", str(a), str(b)])
    _assert_user_error(capsys, rc, "empty")


def test_split_stdin_needs_output(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["split", "-k", "2", "-n", "3", "-"])
    _assert_user_error(capsys, rc, "stdin", "-o")


def test_split_rejects_stdout_stem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _write(tmp_path / "secret.bin", b"abc")
    rc = main(["split", "-k", "2", "-n", "3", "-o", "-", str(src)])
    _assert_user_error(capsys, rc, "-o -")


@pytest.mark.parametrize(("k", "n"), [(4, 3), (1, 3), (2, 1), (2, 256), (0, 0), (-1, 5)])
def test_split_bad_k_n(tmp_path: Path, capsys: pytest.CaptureFixture[str], k: int, n: int) -> None:
    src = _write(tmp_path / "secret.bin", b"abc")
    rc = main(["split", "-k", str(k), "-n", str(n), str(src)])
    _assert_user_error(capsys, rc)
    assert list(tmp_path.iterdir()) == [src]


def test_combine_single_share(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = _split(tmp_path, _secret(10), 2, 3)
    rc = main(["combine", "-o", "-", str(files[0])])
    _assert_user_error(capsys, rc, "at least 2")


def test_combine_different_stems_need_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _write(tmp_path / "a.001", b"12")
    b = _write(tmp_path / "b.002", b"34")
    rc = main(["combine", str(a), str(b)])
    _assert_user_error(capsys, rc, "different stems", "-o")


def test_error_messages_hold_no_secret_bytes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = b"TOPSECRETVALUE" * 4
    files = _split(tmp_path, data, 2, 3)
    _write(tmp_path / "s.002", files[1].read_bytes() + b"!")
    capsys.readouterr()
    rc = main(["combine", "-o", str(tmp_path / "out"), str(files[0]), str(files[1])])
    line = _assert_user_error(capsys, rc, "differ in length")
    assert "TOPSECRET" not in line
    assert files[0].read_bytes().hex()[:16] not in line


@pytest.mark.parametrize(
    "argv", [[], ["split"], ["split", "-n", "3", "f"], ["combine"], ["bogus"], ["split", "-k", "x", "-n", "3", "f"]]
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "usage: mpss" in err
    assert "Traceback" not in err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("split", "combine", "info", "demo"):
        assert command in out


# -- info and demo ----------------------------------------------------------------------------------


def test_info(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert mpss_fast.__version__ in out
    assert f"backend: {mpss_fast.BACKEND}" in out
    assert "available backends: " + ", ".join(mpss_fast._backend.available()) in out
    assert f"kernel: {mpss_fast.KERNEL} " in out
    assert "kernels this CPU runs: " + ", ".join(mpss_fast.KERNELS) in out
    assert "0x11B" in out and "0x11D" in out


def test_demo(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[bytes] = []
    real_urandom = os.urandom

    def urandom(nbytes: int) -> bytes:
        drawn.append(real_urandom(nbytes))
        return drawn[-1]

    monkeypatch.setattr(os, "urandom", urandom)
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[-1] == OK_LINE
    assert len(lines) <= 20
    assert not HEX64.search(out)
    assert sum(f"path {i}: 2 relays, 208-byte packets, share x={i + 1}" in out for i in range(5)) == 5
    assert "KMP: metro topology" in out and "k=3 n=5" in out
    for check in (
        "refused as too few: yes",
        "corrected the share of path(s) 2:",
        "matches",
        "same at both ends: yes",
        "each used once: yes",
        "next hop's tag: yes",
    ):
        assert check in out
    # Neither the key nor the link key material appears (as hex or as text).
    assert any(len(d) == 32 for d in drawn)
    for value in drawn:
        assert value.hex()[:16] not in out.lower()
        assert value[:8].decode("latin-1") not in out


def test_demo_without_the_kmp_uses_fixed_paths(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A base install (no networkx) still runs the demo, and says where its paths come from."""
    monkeypatch.setitem(sys.modules, "mpss_fast.kmp", None)  # import mpss_fast.kmp -> ImportError
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "5 fixed ones (pip install 'mpss-fast[sim]'" in out
    assert out.splitlines()[-1] == OK_LINE


def test_demo_reports_failure(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A destination whose end-to-end key differs from the source's makes the demo fail with exit 1."""
    monkeypatch.setattr(mpss_fast.demo, "derive_key", lambda number, key_id: bytes(32))
    assert main(["demo"]) == 1
    captured = capsys.readouterr()
    assert OK_LINE not in captured.out
    assert captured.err.startswith("mpss: error:")


def test_no_random_module_in_cli_or_demo() -> None:
    for module in (mpss_fast.cli, mpss_fast.demo):
        source = Path(module.__file__).read_text()
        assert not re.search(r"^\s*(import random|from random )", source, re.MULTILINE)
    assert "secrets" in Path(mpss_fast.demo.__file__).read_text()


# -- as a separate process ----------------------------------------------------------------------------


def _run(
    *args: str, env: dict[str, str] | None = None, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """``python -m mpss_fast ARGS`` in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "mpss_fast", *args],
        input=stdin,
        capture_output=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


def test_subprocess_round_trip_via_pipes(tmp_path: Path) -> None:
    data = _secret(4096)
    stem = tmp_path / "p"
    proc = _run("split", "-k", "3", "-n", "5", "--poly", "0x11d", "-o", str(stem), "-", stdin=data)
    assert proc.returncode == 0, proc.stderr
    proc = _run("combine", "--poly", "0x11d", "-o", "-", f"{stem}.005", f"{stem}.001", f"{stem}.003")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == data


def test_subprocess_error_is_one_line(tmp_path: Path) -> None:
    proc = _run("combine", "-o", "-", str(tmp_path / "missing.001"), str(tmp_path / "missing.002"))
    assert proc.returncode == 1
    err = proc.stderr.decode()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1 and err.startswith("mpss: error: ")
    proc = _run("split", "-k", "2")
    assert proc.returncode == 2
    assert b"Traceback" not in proc.stderr


@pytest.mark.parametrize("backend", ["native", "pure"])
def test_subprocess_demo_and_info_per_backend(backend: str) -> None:
    if backend not in mpss_fast._backend.available():
        pytest.fail(f"backend {backend} does not load in this installation")
    proc = _run("demo", env={"MPSS_FAST_BACKEND": backend})
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    assert out.splitlines()[-1] == OK_LINE
    assert f"backend {backend}" in out
    assert not HEX64.search(out)
    proc = _run("info", env={"MPSS_FAST_BACKEND": backend})
    assert proc.returncode == 0
    assert f"backend: {backend}" in proc.stdout.decode()


# -- interop with libgfshare (gfsplit/gfcombine, field 0x11D) -------------------------------------------


@pytest.fixture(scope="module")
def gftools() -> tuple[str, str]:
    """Paths of gfsplit and gfcombine; their absence fails the run (the interop claim must be checked)."""
    gfsplit, gfcombine = shutil.which("gfsplit"), shutil.which("gfcombine")
    if gfsplit is None or gfcombine is None:
        pytest.fail("gfsplit/gfcombine not found on PATH: apt-get install libgfshare-bin to run the interop tests")
    return gfsplit, gfcombine


@pytest.mark.parametrize("size", SIZES)
def test_gfsplit_then_mpss_combine(tmp_path: Path, gftools: tuple[str, str], size: int) -> None:
    gfsplit, _ = gftools
    data = _secret(size)
    src = _write(tmp_path / "secret", data)
    subprocess.run([gfsplit, "-n", "3", "-m", "5", str(src), str(tmp_path / "gf")], check=True, timeout=60)
    files = sorted(tmp_path.glob("gf.*"))
    assert len(files) == 5
    for i, subset in enumerate(itertools.combinations(files, 3)):
        out = tmp_path / f"out{i}"
        assert main(["combine", "--poly", "0x11d", "-o", str(out), *map(str, subset)]) == 0
        assert out.read_bytes() == data
    # All 5 together work too; 0x11B does not.
    assert main(["combine", "--poly", "0x11d", "-o", str(tmp_path / "all"), *map(str, files)]) == 0
    assert (tmp_path / "all").read_bytes() == data
    if size > 1:
        assert main(["combine", "-o", str(tmp_path / "aes"), *map(str, _poly_sensitive(files))]) == 0
        assert (tmp_path / "aes").read_bytes() != data


@pytest.mark.parametrize("size", SIZES)
def test_mpss_split_then_gfcombine(tmp_path: Path, gftools: tuple[str, str], size: int) -> None:
    _, gfcombine = gftools
    data = _secret(size)
    files = _split(tmp_path, data, 3, 5, "--poly", "0x11d")
    for i, subset in enumerate(itertools.combinations(files, 3)):
        out = tmp_path / f"out{i}"
        subprocess.run([gfcombine, "-o", str(out), *map(str, subset)], check=True, timeout=60)
        assert out.read_bytes() == data


def test_default_poly_is_not_gfcombine_compatible(tmp_path: Path, gftools: tuple[str, str]) -> None:
    """With 0x11B (the default) gfcombine rebuilds garbage: the polynomial matters."""
    _, gfcombine = gftools
    data = _secret(1000)
    files = _split(tmp_path, data, 3, 5)
    out = tmp_path / "out"
    subprocess.run([gfcombine, "-o", str(out), *map(str, _poly_sensitive(files))], check=True, timeout=60)
    assert out.read_bytes() != data
    assert len(out.read_bytes()) == len(data)
