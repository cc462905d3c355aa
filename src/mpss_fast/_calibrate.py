"""The default kernel tiers: the fastest constant-time tiers as measured on this machine.

The fastest instruction set is not always the fastest tier, and one tier is not always
the fastest at everything: on one Xeon ``gfni256`` ran a 1 MiB split 1.6x faster than
``gfni512``; on one Zen 4 ``gfni512`` split fastest while ``gfni256`` combined and XORed
faster. So the default is chosen per workload family: one tier for the splits
(``eval_shares``, ``split_keyed``, ``split_small``) and one for the combines and XORs
(``interpolate``, ``xor``, ``xor3``); a ``_native.Kernels`` runs both.

The first import on a machine times a short split, combine and XOR on each candidate tier
(a few ms) and keeps the fastest of each family, and the result is cached on disk per CPU
(model and flags), package version and build, so later imports only read a small JSON file.

The cache lives in ``$MPSS_FAST_CACHE_DIR``, else ``$XDG_CACHE_HOME/mpss_fast``, else
``~/.cache/mpss_fast``. A missing, unreadable, corrupt or foreign entry (including one of
an older :data:`FORMAT`) is ignored and measured again; entries are written to a temporary
file and renamed into place, so concurrent first imports each see either nothing or a whole
entry. ``MPSS_FAST_CALIBRATE=0`` skips the measurement and takes the static rule (the
widest instruction set first); then, and on a CPU with one candidate tier, both families
get the same tier. ``MPSS_FAST_KERNEL`` (``_backend``) overrides all of this with one tier
for everything. The choice itself (:func:`choose`) is a pure function of the
measurements, so tests inject them.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CACHE_ENV = "MPSS_FAST_CACHE_DIR"
CALIBRATE_ENV = "MPSS_FAST_CALIBRATE"
FORMAT = 2
"""The cache entry layout; 2 holds a tier per family (1 held one tier for everything)."""
MARGIN = 0.03
"""Another tier replaces the static first choice of a family only when it is faster by more than this
(3 %: on Zen 4 gfni256 combines and XORs 3.5-10 % faster than gfni512, and 5 % let 2 of 30
calibrations keep gfni512 for them)."""

SPLIT_WORKLOADS = ("split",)
"""What chooses the split tier: a keyed split."""
COMBINE_WORKLOADS = ("combine", "xor")
"""What chooses the combine tier: a 3-share combine and a two-input XOR."""
WORKLOADS = SPLIT_WORKLOADS + COMBINE_WORKLOADS
SIZE = 1 << 20
"""Bytes per timed call (secret, shares, XOR inputs): past L2, where the tiers differ most (on
Zen 4 the 512-bit loads and stores of ``gfni512`` combine at 0.7x the speed of ``gfni256``'s
256-bit ones); a few ms in all."""
REPS = 5

Measurements = Mapping[str, Mapping[str, float]]
"""Tier -> workload -> seconds per call (median)."""


@dataclass(frozen=True)
class Choice:
    """The default tiers and why they were chosen (``mpss info`` prints the reason)."""

    tier: str
    """The tier of the splits."""
    combine_tier: str
    """The tier of the combines and XORs."""
    reason: str


def candidates(supported: Sequence[str], constant_time: Callable[[str], bool]) -> tuple[str, ...]:
    """The tiers worth timing: the constant-time SIMD tiers (``swar`` only when there is no other)."""
    tiers = tuple(t for t in supported if constant_time(t))
    simd = tuple(t for t in tiers if t != "swar")
    return simd[:3] if simd else tiers[:1]


def _fastest(measurements: Measurements, tiers: Sequence[str], workloads: Sequence[str], margin: float) -> str:
    """The tier of ``tiers`` (static order, best first) with the lowest score over ``workloads``."""
    best = {w: min(measurements[t][w] for t in tiers) for w in workloads}
    score = {t: sum(measurements[t][w] / best[w] for w in workloads) for t in tiers}
    winner = min(tiers, key=lambda t: (score[t], tiers.index(t)))
    first = tiers[0]
    if winner != first and score[winner] * (1 + margin) >= score[first]:
        return first
    return winner


def choose(measurements: Measurements, order: Sequence[str], margin: float = MARGIN) -> tuple[str, str, str]:
    """(split tier, combine tier, reason) from measured seconds per workload; ``order`` is the static order.

    Each family is chosen on its own: the split tier by the split time alone, the combine
    tier by its combine and XOR times. A tier scores the sum over the family's workloads
    of its time over the best time of that workload (1.0 per workload when it is the
    fastest everywhere). The lowest score wins, ties going to the earlier tier of
    ``order``; the first tier of ``order`` keeps its place unless the winner's score is
    lower by more than ``margin``.
    """
    tiers = [t for t in order if t in measurements]
    if not tiers:
        raise ValueError("no measurements")
    if len(tiers) == 1:
        return tiers[0], tiers[0], f"{tiers[0]} is the only candidate"
    split = _fastest(measurements, tiers, SPLIT_WORKLOADS, margin)
    combine = _fastest(measurements, tiers, COMBINE_WORKLOADS, margin)
    detail = "; ".join(
        f"{t} " + " ".join(f"{w} {SIZE / measurements[t][w] / 1e9:.2f} GB/s" for w in WORKLOADS) for t in tiers
    )
    return split, combine, f"split: {split}, combine and xor: {combine} (fastest measured here: {detail})"


def build_id(native: Any) -> str:
    """The package version and the identity of the extension file (a rebuild is a new build)."""
    try:
        from importlib.metadata import version

        text = version("mpss-fast")
    except Exception:  # not installed as a distribution: the file alone identifies the build
        text = "unknown"
    try:
        st = os.stat(native.__file__)
        text += f" {native.__file__} {st.st_size} {st.st_mtime_ns}"
    except (AttributeError, OSError, TypeError):
        pass
    return text


def machine_key(version: str, tiers: Sequence[str]) -> str:
    """A digest of the CPU model and flags, the package version and the tiers of this build."""
    cpu = platform.machine() + " " + platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            lines = [
                line
                for line in f.read().splitlines()
                if line.startswith(("model name", "flags", "cpu family", "model\t"))
            ]
        cpu += "\n".join(dict.fromkeys(lines))  # the first core's lines, each once
    except OSError:
        pass
    text = "\n".join([f"format {FORMAT}", version, ",".join(tiers), cpu])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def cache_dir() -> Path:
    """Where calibration results are cached."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mpss_fast"


def read_cache(path: Path, key: str, allowed: Sequence[str]) -> dict[str, Any] | None:
    """The cached entry at ``path`` when it is whole, for ``key``, and names allowed tiers; else None."""
    try:
        with open(path, encoding="utf-8") as f:
            entry = json.load(f)
        if (
            isinstance(entry, dict)
            and entry.get("format") == FORMAT
            and entry.get("key") == key
            and entry.get("tier") in allowed
            and entry.get("combine_tier") in allowed
            and isinstance(entry.get("reason"), str)
        ):
            return entry
    except (OSError, ValueError, UnicodeDecodeError):
        pass
    return None


def write_cache(path: Path, entry: Mapping[str, Any]) -> bool:
    """Writes ``entry`` atomically (temporary file, then rename); False when the directory is not writable."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(entry, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return True
    except OSError:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        return False


def measure(native: Any, tiers: Sequence[str]) -> dict[str, dict[str, float]]:
    """Median seconds per call of each workload of SIZE bytes, per tier.

    ``split``: a k=3 n=5 keyed split; ``combine``: a 3-share combine; ``xor``: two
    buffers XORed into a third. The buffers sit as the public API hands them to the
    kernels (share payloads one byte into a new ``bytes``, XOR inputs in ``bytes``, the
    XOR output in a ``bytearray``): where a buffer starts against the cache lines changes
    how the tiers compare. The tiers take turns, rep by rep, so that a slow moment
    of a shared machine does not fall on one tier alone.
    """
    new_bytes = native.Kernels(tiers[0]).new_bytes
    secret = memoryview(bytes(range(256)) * (SIZE // 256))
    xs = bytes([1, 2, 3, 4, 5])
    shares = [new_bytes(SIZE + 1) for _ in xs]  # (obj, view): the objects keep the views' memory
    views = [view[1:] for _, view in shares]
    out = new_bytes(SIZE)
    pads = [memoryview(bytes(view)) for view in (secret[::-1], secret)]
    xor_out = memoryview(bytearray(SIZE))
    key = bytes(32)
    kernels = {t: native.Kernels(t) for t in tiers}
    times: dict[str, dict[str, list[float]]] = {t: {w: [] for w in WORKLOADS} for t in tiers}

    def run(t: str, workload: str) -> float:
        k = kernels[t]
        start = time.perf_counter()
        if workload == "split":
            k.split_keyed(0x11B, secret, 2, xs, views, key)
        elif workload == "combine":
            k.interpolate(0x11B, b"\x01\x03\x05", [views[0], views[2], views[4]], out[1])
        else:
            k.xor(pads[0], pads[1], xor_out)
        return time.perf_counter() - start

    for t in tiers:  # warm up: page faults, first calls
        for w in WORKLOADS:
            run(t, w)
    for _ in range(REPS):
        for t in tiers:
            for w in WORKLOADS:
                times[t][w].append(run(t, w))
    return {t: {w: statistics.median(v) for w, v in per.items()} for t, per in times.items()}


_choice: Choice | None = None


def default_tier(
    native: Any,
    *,
    version: str | None = None,
    measure_fn: Callable[[Any, Sequence[str]], Measurements] | None = None,
    directory: Path | None = None,
) -> Choice:
    """The calibrated default tiers of this machine (cached on disk, and per process when no argument is given)."""
    global _choice
    memoize = version is None and measure_fn is None and directory is None
    if memoize and _choice is not None:
        return _choice
    if version is None:
        version = build_id(native)
    tiers = candidates(native.supported_tiers(), native.is_constant_time)
    static = native.best_tier()
    if not tiers:
        choice = Choice(static, static, "the only constant-time tier this CPU runs")
    elif len(tiers) == 1:
        choice = Choice(tiers[0], tiers[0], f"the only constant-time SIMD tier this CPU runs ({tiers[0]})")
    elif os.environ.get(CALIBRATE_ENV) == "0":
        choice = Choice(static, static, f"static rule, widest instruction set first ({CALIBRATE_ENV}=0)")
    else:
        choice = _calibrated(native, tiers, version, measure_fn or measure, directory or cache_dir())
    if memoize:
        _choice = choice
    return choice


def _calibrated(
    native: Any,
    tiers: Sequence[str],
    version: str,
    measure_fn: Callable[[Any, Sequence[str]], Measurements],
    directory: Path,
) -> Choice:
    key = machine_key(version, native.TIERS)
    path = directory / f"tier-{key}.json"
    entry = read_cache(path, key, tiers)
    if entry is not None:
        return Choice(entry["tier"], entry["combine_tier"], f"{entry['reason']}; cached in {path}")
    try:
        measurements = measure_fn(native, tiers)
        tier, combine_tier, reason = choose(measurements, tiers)
    except Exception as exc:  # never let a calibration failure break the import
        static = native.best_tier()
        return Choice(static, static, f"static rule, widest instruction set first (calibration failed: {exc})")
    when = time.strftime("%Y-%m-%d", time.gmtime())
    reason = f"{reason}, calibrated {when}"
    entry = {
        "format": FORMAT,
        "key": key,
        "tier": tier,
        "combine_tier": combine_tier,
        "reason": reason,
        "measurements": measurements,
    }
    where = f"cached in {path}" if write_cache(path, entry) else f"not cached: {directory} is not writable"
    return Choice(tier, combine_tier, f"{reason}; {where}")
