"""The file CLI streams: bounded memory at any size, atomic share files, progress on a terminal, RTSS by header."""

from __future__ import annotations

import hashlib
import os
import pty
import re
import resource
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mpss_fast.cli import main
from tests.test_cli import _assert_user_error, _write

MIB = 1 << 20
RSS_LIMIT = 64 * MIB
SHARE_NAME = re.compile(r"\.[0-9]{3}\Z")


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "mpss_fast", *args]


def _sparse(path: Path, size: int, marks: int = 8) -> Path:
    """A ``size``-byte file of zeros with random 4 KiB marks spread over it (cheap on disk and to make)."""
    with open(path, "wb") as fh:
        fh.truncate(size)
        for i in range(marks):
            fh.seek(min(size - 4096, i * (size // marks)))
            fh.write(os.urandom(4096))
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(MIB):
            digest.update(block)
    return digest.hexdigest()


_MEASURE = """
import os, sys
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as fh:
    fh.write(f"{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss}")
"""


def _run_measured(args: list[str], tmp_path: Path) -> tuple[int, int, str]:
    """(exit status, peak RSS in bytes, stderr) of one command, measured with wait4 by a small launcher.

    The launcher is needed: a child's ru_maxrss includes the memory of the image it was
    spawned from, here pytest's, which alone can exceed the limit.
    """
    result = tmp_path / "measured"
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(result), *args], capture_output=True, timeout=600, check=False
    )
    assert proc.returncode == 0, proc.stderr
    status, maxrss_kib = map(int, result.read_text().split())
    return status, maxrss_kib * 1024, proc.stderr.decode()


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# -- RTSS shares given to the gfsplit-format combine -----------------------------------------------


def _rtss_files(tmp_path: Path, data: bytes, k: int, n: int) -> list[Path]:
    src = _write(tmp_path / "secret.bin", data)
    assert main(["split", "--format", "rtss", "-k", str(k), "-n", str(n), "-o", str(tmp_path / "r"), str(src)]) == 0
    return [tmp_path / f"r.{x:03d}" for x in range(1, n + 1)]


def test_combine_recognises_rtss_shares_by_their_header(tmp_path: Path) -> None:
    """Without --format rtss the files used to be combined as raw y bytes: garbage, exit 0."""
    data = os.urandom(500)
    files = _rtss_files(tmp_path, data, 3, 5)
    out = tmp_path / "out"
    assert main(["combine", "-o", str(out), *map(str, files[1:4])]) == 0
    assert out.read_bytes() == data


def test_combine_refuses_rtss_shares_under_0x11d_with_a_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = _rtss_files(tmp_path, os.urandom(100), 2, 3)
    capsys.readouterr()
    rc = main(["combine", "--poly", "0x11d", "-o", str(tmp_path / "out"), *map(str, files[:2])])
    _assert_user_error(capsys, rc, "RTSS shares", "--format rtss")
    assert not (tmp_path / "out").exists()


def test_raw_shares_are_not_taken_for_rtss(tmp_path: Path) -> None:
    """gfsplit-format shares of an RTSS-looking secret still combine as raw shares."""
    data = _rtss_files(tmp_path, os.urandom(64), 2, 2)[0].read_bytes()  # the secret is itself an RTSS share
    src = _write(tmp_path / "raw.bin", data)
    assert main(["split", "-k", "2", "-n", "3", "-o", str(tmp_path / "g"), str(src)]) == 0
    out = tmp_path / "out"
    assert main(["combine", "-o", str(out), str(tmp_path / "g.001"), str(tmp_path / "g.003")]) == 0
    assert out.read_bytes() == data


@pytest.mark.parametrize("explicit", [True, False])
def test_rtss_combine_names_the_corrupt_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], explicit: bool
) -> None:
    data = os.urandom(300)
    files = _rtss_files(tmp_path, data, 3, 5)
    raw = bytearray(files[1].read_bytes())
    raw[-1] ^= 0x40
    files[1].write_bytes(bytes(raw))
    capsys.readouterr()
    out = tmp_path / "out"
    fmt = ["--format", "rtss"] if explicit else []
    assert main(["combine", *fmt, "-o", str(out), *map(str, files)]) == 0
    assert out.read_bytes() == data
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1, err
    assert "warning" in err[0] and repr(str(files[1])) in err[0] and "corrupt" in err[0]
    assert all(repr(str(f)) not in err[0] for f in files if f != files[1])


def test_rtss_combine_of_good_shares_is_quiet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = os.urandom(40)
    files = _rtss_files(tmp_path, data, 2, 4)
    capsys.readouterr()
    assert main(["combine", "--format", "rtss", "-o", str(tmp_path / "out"), *map(str, files)]) == 0
    assert capsys.readouterr().err == ""


# -- atomic, private share files ------------------------------------------------------------------------


def test_split_leaves_only_complete_private_files(tmp_path: Path) -> None:
    src = _write(tmp_path / "secret.bin", os.urandom(3 * MIB + 5))
    assert main(["split", "-k", "3", "-n", "4", "-o", str(tmp_path / "s"), str(src)]) == 0
    assert _leftovers(tmp_path) == ["s.001", "s.002", "s.003", "s.004", "secret.bin"]
    for x in range(1, 5):
        assert stat.S_IMODE((tmp_path / f"s.{x:03d}").stat().st_mode) == 0o600
    out = tmp_path / "out"
    assert (
        main(["combine", "-o", str(out), str(tmp_path / "s.004"), str(tmp_path / "s.001"), str(tmp_path / "s.002")])
        == 0
    )
    assert out.read_bytes() == src.read_bytes()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def _limit_file_size() -> None:
    """In the child: files may not grow past 1 MiB, and exceeding it is an error (EFBIG), not a signal."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (MIB, MIB))


@pytest.mark.parametrize("command", ["split", "combine"])
def test_write_error_leaves_no_partial_file(tmp_path: Path, command: str) -> None:
    src = _sparse(tmp_path / "secret.bin", 5 * MIB)
    if command == "split":
        args = _cmd("split", "-k", "2", "-n", "3", "-o", str(tmp_path / "s"), str(src))
    else:
        assert main(["split", "-k", "2", "-n", "2", "-o", str(tmp_path / "s"), str(src)]) == 0
        args = _cmd("combine", "-o", str(tmp_path / "out"), str(tmp_path / "s.001"), str(tmp_path / "s.002"))
    before = _leftovers(tmp_path)
    proc = subprocess.run(args, capture_output=True, timeout=120, preexec_fn=_limit_file_size, check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert err.startswith("mpss: error: cannot write "), err
    assert _leftovers(tmp_path) == before


def _start_big_split(tmp_path: Path) -> tuple[subprocess.Popen[bytes], list[str]]:
    """A split of an 8 GiB sparse file, returned once its share files are being written."""
    src = _sparse(tmp_path / "big.bin", 8 << 30)
    proc = subprocess.Popen(
        _cmd("split", "-k", "2", "-n", "2", "-o", str(tmp_path / "s"), str(src)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        parts = [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
        if parts and all(p.stat().st_size > 4 * MIB for p in parts):
            return proc, [p.name for p in parts]
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    raise AssertionError("the split did not start writing within 60 s")


def test_sigint_mid_split_removes_the_partial_files(tmp_path: Path) -> None:
    proc, _ = _start_big_split(tmp_path)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.decode().strip() == "mpss: interrupted"
    assert _leftovers(tmp_path) == ["big.bin"]


def test_sigkill_mid_split_leaves_nothing_that_looks_like_a_share(tmp_path: Path) -> None:
    proc, parts = _start_big_split(tmp_path)
    proc.kill()
    proc.communicate(timeout=60)
    left = _leftovers(tmp_path)
    assert not [name for name in left if SHARE_NAME.search(name)], left
    assert sorted(parts) == [name for name in left if name != "big.bin"]  # the temporary names, nothing else
    assert all(name.startswith(".s.00") and name.endswith(".part") for name in parts)


# -- progress bar ----------------------------------------------------------------------------------------


def _stderr_through_pty(args: list[str]) -> tuple[int, str]:
    """Run ``args`` with stderr on a pseudo-terminal; (exit status, what the terminal got)."""
    master, slave = pty.openpty()
    got: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO once the child's side is closed
                return
            if not data:
                return
            got.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        proc = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=slave, timeout=300, check=False)
    finally:
        os.close(slave)
    reader.join(timeout=30)
    os.close(master)
    return proc.returncode, b"".join(got).decode(errors="replace")


@pytest.mark.parametrize("command", ["split", "combine"])
def test_progress_bar_on_a_terminal_from_64_mib(tmp_path: Path, command: str) -> None:
    src = _sparse(tmp_path / "secret.bin", 64 * MIB)
    split = ["split", "-k", "2", "-n", "2", "-o", str(tmp_path / "s"), str(src)]
    if command == "split":
        rc, shown = _stderr_through_pty(_cmd(*split))
    else:
        assert main(split) == 0
        rc, shown = _stderr_through_pty(
            _cmd("combine", "-o", str(tmp_path / "out"), str(tmp_path / "s.001"), str(tmp_path / "s.002"))
        )
        assert _sha256(tmp_path / "out") == _sha256(src)
    assert rc == 0, shown
    assert f"mpss {command} [" in shown and "100%" in shown and "64/64 MiB" in shown
    assert shown.rstrip("\r\n").count("\n") == 0 or shown.count("\n") == 1  # one bar line, redrawn with \r


@pytest.mark.parametrize("how", ["quiet", "small", "not a tty"])
def test_no_progress_bar(tmp_path: Path, how: str) -> None:
    size = MIB if how == "small" else 64 * MIB
    src = _sparse(tmp_path / "secret.bin", size)
    args = _cmd("split", "-k", "2", "-n", "2", "-o", str(tmp_path / "s"), *(["-q"] if how == "quiet" else []), str(src))
    if how == "not a tty":
        proc = subprocess.run(args, capture_output=True, timeout=300, check=False)
        rc, shown = proc.returncode, proc.stderr.decode()
    else:
        rc, shown = _stderr_through_pty(args)
    assert rc == 0, shown
    assert shown == ""


# -- memory and size ---------------------------------------------------------------------------------------


def test_peak_rss_stays_under_64_mib(tmp_path: Path) -> None:
    """Split and combine of a 256 MiB file in child processes, each one's peak RSS from wait4."""
    src = _sparse(tmp_path / "secret.bin", 256 * MIB)
    rc, rss, err = _run_measured(_cmd("split", "-k", "3", "-n", "3", "-o", str(tmp_path / "s"), str(src)), tmp_path)
    assert rc == 0, err
    assert rss < RSS_LIMIT, f"split peak RSS {rss / MIB:.1f} MiB"
    files = [str(tmp_path / f"s.{x:03d}") for x in (3, 1, 2)]
    rc, rss, err = _run_measured(_cmd("combine", "-o", str(tmp_path / "out"), *files), tmp_path)
    assert rc == 0, err
    assert rss < RSS_LIMIT, f"combine peak RSS {rss / MIB:.1f} MiB"
    assert _sha256(tmp_path / "out") == _sha256(src)


@pytest.mark.slow
def test_beyond_1_gib_round_trip(tmp_path: Path) -> None:
    """A secret over the old 1 GiB limit: split k=2 n=2 and combined back identical, in bounded memory."""
    size = (1 << 30) + 3 * MIB + 7
    needed = 3 * size + 256 * MIB  # two shares and the rebuilt secret; the input is sparse
    free = shutil.disk_usage(tmp_path).free
    assert free >= needed, f"this test needs {needed / MIB:.0f} MiB free in {tmp_path}, there are {free / MIB:.0f}"
    src = _sparse(tmp_path / "secret.bin", size, marks=64)
    rc, rss, err = _run_measured(_cmd("split", "-k", "2", "-n", "2", "-o", str(tmp_path / "s"), str(src)), tmp_path)
    assert rc == 0, err
    assert rss < RSS_LIMIT
    assert (tmp_path / "s.001").stat().st_size == size
    rc, rss, err = _run_measured(
        _cmd("combine", "-o", str(tmp_path / "out"), str(tmp_path / "s.002"), str(tmp_path / "s.001")), tmp_path
    )
    assert rc == 0, err
    assert rss < RSS_LIMIT
    assert _sha256(tmp_path / "out") == _sha256(src)


def test_missing_output_directory_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _write(tmp_path / "secret.bin", os.urandom(100))
    rc = main(["split", "-k", "2", "-n", "2", "-o", str(tmp_path / "nope" / "s"), str(src)])
    _assert_user_error(capsys, rc, "cannot write", "nope", "No such file")
    assert main(["split", "-k", "2", "-n", "2", "-o", str(tmp_path / "s"), str(src)]) == 0
    capsys.readouterr()
    rc = main(["combine", "-o", str(tmp_path / "nope" / "out"), str(tmp_path / "s.001"), str(tmp_path / "s.002")])
    _assert_user_error(capsys, rc, "cannot write", "nope")
    assert _leftovers(tmp_path) == ["s.001", "s.002", "secret.bin"]


def test_share_shrinking_mid_combine_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A share file that ends before the others (here: a pipe) is refused, and no output is left behind."""
    src = _write(tmp_path / "secret.bin", os.urandom(300_000))
    assert main(["split", "-k", "2", "-n", "2", "-o", str(tmp_path / "s"), str(src)]) == 0
    short = tmp_path / "short.002"
    os.mkfifo(short)
    data = (tmp_path / "s.002").read_bytes()[:100_000]
    fed: list[int] = []

    def feed() -> None:
        with open(short, "wb") as fh:
            fed.append(fh.write(data))

    feeder = threading.Thread(target=feed)
    feeder.start()
    capsys.readouterr()
    rc = main(["combine", "-o", str(tmp_path / "out"), str(tmp_path / "s.001"), str(short)])
    feeder.join(timeout=30)
    assert fed == [100_000]  # the pipe was read to its end: the error came from streaming, not from a size
    _assert_user_error(capsys, rc, "differ in length", "short.002", "ended after 100000 bytes")
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
