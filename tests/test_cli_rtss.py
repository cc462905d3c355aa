"""``mpss split/combine --format rtss``: round trips, the share files, and every user error."""

from __future__ import annotations

import itertools
import os
import stat
from pathlib import Path

import pytest

from mpss_fast.cli import main
from mpss_fast.rtss import HASH_IDS, RtssShare, rtss_split
from tests.test_cli import _assert_user_error, _write


def _split(tmp_path: Path, data: bytes, k: int, n: int, *extra: str) -> list[Path]:
    src = _write(tmp_path / "secret.bin", data)
    assert (
        main(["split", "--format", "rtss", "-k", str(k), "-n", str(n), "-o", str(tmp_path / "s"), *extra, str(src)])
        == 0
    )
    return [tmp_path / f"s.{x:03d}" for x in range(1, n + 1)]


def _combine(*args: str | Path) -> int:
    return main(["combine", "--format", "rtss", *map(str, args)])


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("hash_args", "hash_name"), [((), "sha256"), (("--hash", "sha1"), "sha1"), (("--hash", "none"), "none")]
)
def test_round_trip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], hash_args: tuple[str, ...], hash_name: str
) -> None:
    data = os.urandom(1000)
    files = _split(tmp_path, data, 3, 5, *hash_args)
    assert (
        f"wrote 5 RTSS shares {tmp_path / 's.001'} ... {tmp_path / 's.005'} (any 3 rebuild it; hash {hash_name})"
        in (capsys.readouterr().out)
    )
    shares = [RtssShare.decode(f.read_bytes()) for f in files]
    for x, (f, share) in enumerate(zip(files, shares, strict=True), 1):
        assert stat.S_IMODE(f.stat().st_mode) & 0o077 == 0
        assert (share.index, share.threshold, share.hash_id) == (x, 3, HASH_IDS[hash_name])
        assert share.identifier == shares[0].identifier
    for i, subset in enumerate(itertools.combinations(files, 3)):
        out = tmp_path / f"out{i}"
        assert _combine("-o", out, *subset) == 0
        assert out.read_bytes() == data


def test_index_comes_from_the_share_not_the_file_name(tmp_path: Path) -> None:
    data = os.urandom(50)
    files = _split(tmp_path, data, 2, 3)
    renamed = [files[0].rename(tmp_path / "first"), files[2].rename(tmp_path / "other.share")]
    out = tmp_path / "out"
    assert _combine("-o", out, *renamed) == 0
    assert out.read_bytes() == data


def test_default_output_is_the_stem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = os.urandom(64)
    src = _write(tmp_path / "key.bin", data)
    assert main(["split", "--format", "rtss", "-k", "2", "-n", "3", str(src)]) == 0
    files = [tmp_path / f"key.bin.{x:03d}" for x in (1, 3)]
    rc = _combine(*files)
    _assert_user_error(capsys, rc, "already exists", "--force")
    assert _combine("--force", *files) == 0
    assert src.read_bytes() == data


def test_names_without_suffix_need_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = _split(tmp_path, os.urandom(10), 2, 2)
    a = files[0].rename(tmp_path / "a")
    rc = _combine(a, a)
    _assert_user_error(capsys, rc, "-o OUT")
    assert a.exists()


def test_tss_library_reads_our_files(tmp_path: Path) -> None:
    try:
        import tss
    except ImportError:
        if os.environ.get("MPSS_FAST_NO_SKIPS") == "1":
            pytest.fail("MPSS_FAST_NO_SKIPS=1: the interop check needs PyPI tss (pip install tss)")
        pytest.skip("PyPI tss is not installed")
    data = os.urandom(200)
    files = _split(tmp_path, data, 3, 4)
    assert tss.reconstruct_secret([f.read_bytes() for f in files[1:]]) == data
    theirs = tss.share_secret(2, 3, data, b"id", tss.Hash.SHA1)
    paths = [_write(tmp_path / f"t.{x:03d}", share) for x, share in enumerate(theirs, 1)]
    assert _combine("-o", tmp_path / "t", *paths[1:]) == 0
    assert (tmp_path / "t").read_bytes() == data


# -- corruption ----------------------------------------------------------------------------------


def test_corrupt_share_is_routed_around(tmp_path: Path) -> None:
    data = os.urandom(300)
    files = _split(tmp_path, data, 3, 5)
    _corrupt(files[1])
    assert _combine("-o", tmp_path / "out", *files) == 0
    assert (tmp_path / "out").read_bytes() == data


def test_corrupt_share_with_k_files_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = b"TOPSECRETVALUE" * 4
    files = _split(tmp_path, data, 3, 5)
    _corrupt(files[0])
    capsys.readouterr()
    rc = _combine("-o", tmp_path / "out", *files[:3])
    line = _assert_user_error(capsys, rc, "SHA-256 check fails for the 3 shares")
    assert "TOPSECRET" not in line and data.hex()[:16] not in line
    assert not (tmp_path / "out").exists()


# -- user errors -----------------------------------------------------------------------------------


def test_too_few_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = _split(tmp_path, os.urandom(10), 3, 5)
    rc = _combine("-o", "-", *files[:2])
    _assert_user_error(capsys, rc, "need at least 3 shares", "got 2")


def test_files_of_different_secrets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = _split(tmp_path, os.urandom(10), 2, 3)
    other = _write(tmp_path / "o.002", rtss_split(os.urandom(10), 2, 3)[1])
    rc = _combine("-o", "-", files[0], other)
    _assert_user_error(capsys, rc, repr(str(other)), "different identifier", repr(str(files[0])))


@pytest.mark.parametrize(
    ("content", "needle"),
    [(b"", "at least 22 bytes"), (b"raw gfsplit bytes" * 3, "Share Length"), (bytes(30), "says 0 bytes")],
)
def test_file_that_is_not_an_rtss_share(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, needle: str
) -> None:
    files = _split(tmp_path, os.urandom(10), 2, 3)
    bad = _write(tmp_path / "s.003", content)
    rc = _combine("-o", "-", files[0], bad)
    _assert_user_error(capsys, rc, repr(str(bad)), "is not an RTSS share", needle)


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = _split(tmp_path, os.urandom(10), 2, 3)
    rc = _combine("-o", "-", files[0], tmp_path / "s.009")
    _assert_user_error(capsys, rc, "s.009", "No such file")


def test_rtss_needs_the_aes_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _write(tmp_path / "secret.bin", b"abc")
    rc = main(["split", "--format", "rtss", "--poly", "0x11d", "-k", "2", "-n", "3", str(src)])
    _assert_user_error(capsys, rc, "--poly must be 0x11b")
    assert not (tmp_path / "secret.bin.001").exists()
    files = _split(tmp_path, b"abc", 2, 3, "--force")
    rc = _combine("--poly", "0x11d", "-o", "-", *files[:2])
    _assert_user_error(capsys, rc, "--poly must be 0x11b")


def test_hash_needs_rtss(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _write(tmp_path / "secret.bin", b"abc")
    rc = main(["split", "--hash", "sha1", "-k", "2", "-n", "3", str(src)])
    _assert_user_error(capsys, rc, "--hash applies to --format rtss only")
    assert not (tmp_path / "secret.bin.001").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["split", "--format", "pem", "-k", "2", "-n", "3", "f"],
        ["split", "--format", "rtss", "--hash", "md5", "-k", "2", "-n", "3", "f"],
        ["combine", "--format", "json", "f.001"],
    ],
)
def test_bad_choices_are_usage_errors(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert main(argv) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_secret_too_long_for_rtss(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _write(tmp_path / "secret.bin", bytes(65503))
    rc = main(["split", "--format", "rtss", "-k", "2", "-n", "2", str(src)])
    _assert_user_error(capsys, rc, "65503 bytes", "1..65502")
    assert not (tmp_path / "secret.bin.001").exists()


def test_split_refuses_existing_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = _split(tmp_path, b"first", 2, 2)
    old = files[1].read_bytes()
    src = _write(tmp_path / "secret.bin", b"second")
    rc = main(["split", "--format", "rtss", "-k", "2", "-n", "2", "-o", str(tmp_path / "s"), str(src)])
    _assert_user_error(capsys, rc, "already exists", "--force")
    assert files[1].read_bytes() == old


@pytest.mark.parametrize("command", ["split", "combine"])
def test_help_names_the_options(capsys: pytest.CaptureFixture[str], command: str) -> None:
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "--format {gfsplit,rtss}" in out
    assert ("--hash {sha256,sha1,none}" in out) == (command == "split")
