"""The file CLI against libgfshare: ``mpss split/combine`` and ``gfsplit``/``gfcombine`` on one file, one run.

Run from the repository root (Linux, ``apt-get install libgfshare-bin``)::

    python -m bench.cli_vs_gfshare [--size-mib 128] [--runs 7] [--big-gib 2] [--dir DIR] [--json FILE]

Each round times, interleaved and alternating which goes first, ``mpss split -k 3 -n 5
--poly 0x11d`` against ``gfsplit -n 3 -m 5`` and ``mpss combine`` of 3 shares against
``gfcombine`` of 3 shares, on the same random file (read once beforehand, so the page
cache is warm). Every command runs under ``/usr/bin/time``, which reports the command's
own peak RSS (a child spawned straight from Python would report the launcher's memory
too); dirty pages are flushed (``sync``) before each timed command, untimed, and outputs
of the previous round are removed first, so every run writes fresh files. Medians and
the ratio gfshare time / mpss time are printed (above 1: mpss is faster), for wall time and
for CPU time (user + system, from ``/usr/bin/time``; steadier on a shared machine).

``--big-gib N`` then splits an N GiB random file (k=3, n=5) and combines it back,
checking the result is byte-identical, with both commands' time and peak RSS.
The file name does not match pytest's patterns: this is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MIB = 1 << 20
TIME = "/usr/bin/time"


def mpss_command() -> list[str]:
    """The installed ``mpss`` script next to this interpreter (no shim), else ``python -m mpss_fast``."""
    script = Path(sys.executable).with_name("mpss")
    return [str(script)] if script.exists() else [sys.executable, "-m", "mpss_fast"]


def timed(args: list[str], cwd: Path) -> tuple[float, int, float]:
    """(wall seconds, peak RSS bytes, CPU seconds user + system) of one command; fails loudly if it fails."""
    report = cwd / ".time"
    os.sync()
    start = time.perf_counter()
    proc = subprocess.run([TIME, "-f", "%M %U %S", "-o", str(report), *args], cwd=cwd, capture_output=True, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}")
    rss_kib, user, system = report.read_text().split()[-3:]
    return wall, int(rss_kib) * 1024, float(user) + float(system)


def random_file(path: Path, size: int) -> str:
    """Write ``size`` random bytes to ``path``; returns their SHA-256."""
    digest = hashlib.sha256()
    with open(path, "wb") as fh:
        left = size
        while left:
            block = os.urandom(min(left, 16 * MIB))
            digest.update(block)
            fh.write(block)
            left -= len(block)
    return digest.hexdigest()


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(16 * MIB):
            digest.update(block)
    return digest.hexdigest()


def warm(path: Path) -> None:
    with open(path, "rb") as fh:
        while fh.read(16 * MIB):
            pass


def clean(directory: Path, *patterns: str) -> None:
    for pattern in patterns:
        for p in directory.glob(pattern):
            p.unlink()


def compare(directory: Path, size: int, runs: int) -> dict[str, dict[str, float]]:
    """Median wall time and peak RSS of the four commands on one ``size``-byte file."""
    mpss = mpss_command()
    random_file(directory / "secret", size)
    warm(directory / "secret")
    samples: dict[str, list[tuple[float, int, float]]] = {
        k: [] for k in ("mpss split", "gfsplit", "mpss combine", "gfcombine")
    }
    for round_ in range(runs):
        clean(directory, "m.*", "g.*", "m.out", "g.out")
        splits = [
            ("mpss split", [*mpss, "split", "-q", "-k", "3", "-n", "5", "--poly", "0x11d", "-o", "m", "secret"]),
            ("gfsplit", ["gfsplit", "-n", "3", "-m", "5", "secret", "g"]),
        ]
        for name, args in splits if round_ % 2 == 0 else splits[::-1]:
            samples[name].append(timed(args, directory))
        gf_shares = sorted(p.name for p in directory.glob("g.*"))[:3]
        combines = [
            ("mpss combine", [*mpss, "combine", "-q", "--poly", "0x11d", "-o", "m.out", "m.001", "m.003", "m.005"]),
            ("gfcombine", ["gfcombine", "-o", "g.out", *gf_shares]),
        ]
        for name, args in combines if round_ % 2 == 0 else combines[::-1]:
            samples[name].append(timed(args, directory))
        if round_ == 0:
            expected = sha256(directory / "secret")
            for out in ("m.out", "g.out"):
                if sha256(directory / out) != expected:
                    raise SystemExit(f"{out} differs from the secret")
    clean(directory, "m.*", "g.*", "m.out", "g.out", "secret")
    return {
        name: {
            "median_s": statistics.median(w for w, _, _ in values),
            "min_s": min(w for w, _, _ in values),
            "max_s": max(w for w, _, _ in values),
            "median_cpu_s": statistics.median(c for _, _, c in values),
            "peak_rss_mib": max(r for _, r, _ in values) / MIB,
            "mib_per_s": size / MIB / statistics.median(w for w, _, _ in values),
            "samples_s": [round(w, 4) for w, _, _ in values],
        }
        for name, values in samples.items()
    }


def big_round_trip(directory: Path, size: int) -> dict[str, float | bool]:
    mpss = mpss_command()
    expected = random_file(directory / "big", size)
    split_s, split_rss, _ = timed([*mpss, "split", "-q", "-k", "3", "-n", "5", "-o", "b", "big"], directory)
    combine_s, combine_rss, _ = timed([*mpss, "combine", "-q", "-o", "b.out", "b.002", "b.004", "b.005"], directory)
    identical = sha256(directory / "b.out") == expected
    clean(directory, "b.*", "big")
    return {
        "bytes": size,
        "split_s": split_s,
        "split_peak_rss_mib": split_rss / MIB,
        "combine_s": combine_s,
        "combine_peak_rss_mib": combine_rss / MIB,
        "identical": identical,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=128, help="file size for the comparison (default 128)")
    parser.add_argument("--runs", type=int, default=7, help="rounds; medians are printed (default 7)")
    parser.add_argument("--big-gib", type=float, default=2.0, help="round trip of this many GiB; 0 skips (default 2)")
    parser.add_argument("--dir", help="working directory (default: a new one under the system temp directory)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    for tool in (TIME, "gfsplit", "gfcombine"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found (apt-get install time libgfshare-bin)")
    base = Path(tempfile.mkdtemp(prefix="mpss-cli-bench-", dir=args.dir))
    size = args.size_mib * MIB
    big = int(args.big_gib * (1 << 30))
    need = 12 * size + 7 * big
    if shutil.disk_usage(base).free < need:
        raise SystemExit(f"need {need / MIB:.0f} MiB free in {base}")
    try:
        figures = compare(base, size, args.runs)
        print(f"{args.size_mib} MiB file, k=3 n=5, --poly 0x11d, {args.runs} rounds, medians (min..max), peak RSS")
        for name, row in figures.items():
            print(
                f"  {name:13s} {row['median_s']:6.3f} s ({row['min_s']:.3f}..{row['max_s']:.3f})"
                f"  {row['mib_per_s']:7.0f} MiB/s  CPU {row['median_cpu_s']:.3f} s"
                f"  peak RSS {row['peak_rss_mib']:5.1f} MiB"
            )
        ratios = {
            f"{op}{kind}": figures[theirs][key] / figures[f"mpss {op}"][key]
            for op, theirs in (("split", "gfsplit"), ("combine", "gfcombine"))
            for kind, key in (("", "median_s"), ("_cpu", "median_cpu_s"))
        }
        print(
            f"  wall time: mpss split is {ratios['split']:.2f}x the speed of gfsplit, combine {ratios['combine']:.2f}x "
            f"gfcombine; CPU time (user + system): {ratios['split_cpu']:.2f}x and {ratios['combine_cpu']:.2f}x"
        )
        report: dict[str, object] = {"size_bytes": size, "runs": args.runs, "figures": figures, "ratios": ratios}
        if big:
            trip = big_round_trip(base, big)
            print(
                f"{args.big_gib:g} GiB round trip (k=3 n=5): split {trip['split_s']:.2f} s, "
                f"peak RSS {trip['split_peak_rss_mib']:.1f} MiB; combine {trip['combine_s']:.2f} s, "
                f"peak RSS {trip['combine_peak_rss_mib']:.1f} MiB; byte-identical: {trip['identical']}"
            )
            report["round_trip"] = trip
            if not trip["identical"]:
                return 1
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
