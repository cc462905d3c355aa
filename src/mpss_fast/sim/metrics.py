"""What a run measured: per-mode metrics (:class:`ModeResult`), the whole run (:class:`Results`), a text table."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .modes import SessionRecord

SCHEMA = "mpss-sim/1"
FAILURES = ("no_plan", "link_down", "key_timeout", "tampered")


@dataclass(frozen=True)
class ModeResult:
    """The metrics of one mode over every session (definitions in docs/simulator.md)."""

    mode: str
    sessions: int
    delivered: int
    good_keys: int
    """Delivered keys equal to the source's (``delivered - corrupted``)."""
    success_ratio: float
    key_rate_bps: float
    """Good key bits delivered per simulated second (from the first arrival to the last session's end)."""
    consumed_bytes: int
    key_per_bit: float | None
    """Link key bits consumed per good key bit delivered (None when none was delivered)."""
    latency_mean_s: float | None
    latency_p50_s: float | None
    latency_p99_s: float | None
    exposed: int
    exposed_ratio: float | None
    """Delivered keys the adversary could rebuild, as a fraction of the delivered keys."""
    tamper_detected: int
    corrupted: int
    failures: dict[str, int]
    mean_paths: float
    mean_hops: float
    simulated_s: float


def _quantile(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank quantile of a sorted, non-empty sequence."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def summarise(mode: str, records: Sequence[SessionRecord], consumed: int, key_bytes: int, span: float) -> ModeResult:
    """The metrics of one mode from its session records and the key its links gave up."""
    delivered = [r for r in records if r.delivered]
    good = sum(1 for r in delivered if not r.corrupted)
    latencies = sorted(r.latency_s for r in delivered if r.latency_s is not None)
    bits = good * key_bytes * 8
    failures = Counter(r.failure for r in records if not r.delivered)
    planned = [r for r in records if r.paths]
    return ModeResult(
        mode=mode,
        sessions=len(records),
        delivered=len(delivered),
        good_keys=good,
        success_ratio=len(delivered) / len(records),
        key_rate_bps=bits / span if span > 0 else 0.0,
        consumed_bytes=consumed,
        key_per_bit=consumed * 8 / bits if bits else None,
        latency_mean_s=sum(latencies) / len(latencies) if latencies else None,
        latency_p50_s=_quantile(latencies, 0.5) if latencies else None,
        latency_p99_s=_quantile(latencies, 0.99) if latencies else None,
        exposed=sum(1 for r in delivered if r.exposed),
        exposed_ratio=sum(1 for r in delivered if r.exposed) / len(delivered) if delivered else None,
        tamper_detected=sum(1 for r in records if r.tamper_detected),
        corrupted=sum(1 for r in delivered if r.corrupted),
        failures={name: failures.get(name, 0) for name in FAILURES},
        mean_paths=sum(len(r.paths) for r in planned) / len(planned) if planned else 0.0,
        mean_hops=sum(len(p) - 1 for r in planned for p in r.paths) / max(1, sum(len(r.paths) for r in planned)),
        simulated_s=span,
    )


@dataclass(frozen=True)
class Sample:
    """One session's chosen paths in both modes (for the plot)."""

    index: int
    src: str
    dst: str
    k: int
    n: int
    mpss_paths: tuple[tuple[str, ...], ...]
    single_path: tuple[str, ...]


@dataclass(frozen=True)
class Results:
    """Everything one :func:`mpss_fast.sim.run` measured."""

    config: dict[str, Any]
    topology: dict[str, Any]
    k: int
    n: int
    compromised: tuple[str, ...]
    mpss: ModeResult
    single_path: ModeResult
    verified_sessions: int
    verified_shares: int
    verified_hops: int
    link_failures: int
    wall_s: float
    sample: Sample | None
    records: dict[str, tuple[SessionRecord, ...]] = field(default_factory=dict, compare=False)
    """Per-mode session records (``config.keep_sessions``); not part of the JSON."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (schema ``mpss-sim/1``, described in docs/simulator.md)."""
        document: dict[str, Any] = {"schema": SCHEMA}
        document.update({name: value for name, value in asdict(self).items() if name != "records"})
        document["modes"] = {"mpss": document.pop("mpss"), "single_path": document.pop("single_path")}
        return _clean(document)

    def to_json(self, indent: int | None = 1) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(), indent=indent)


def _clean(value: Any) -> Any:
    """Tuples to lists, floats to 6 significant digits."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, float):
        return float(f"{value:.6g}")
    return value


def _fmt(value: float | None, scale: float = 1.0, digits: int = 3) -> str:
    return "-" if value is None else f"{value * scale:.{digits}g}"


def format_table(results: Results) -> str:
    """A short text comparison of the two modes."""
    m, s = results.mpss, results.single_path
    rows = [
        ("sessions delivered", f"{m.delivered}/{m.sessions}", f"{s.delivered}/{s.sessions}"),
        ("success ratio", f"{m.success_ratio:.3f}", f"{s.success_ratio:.3f}"),
        ("key rate (bit/s)", _fmt(m.key_rate_bps, digits=4), _fmt(s.key_rate_bps, digits=4)),
        ("link key bits per key bit", _fmt(m.key_per_bit), _fmt(s.key_per_bit)),
        ("latency mean (ms)", _fmt(m.latency_mean_s, 1e3), _fmt(s.latency_mean_s, 1e3)),
        ("latency p50 (ms)", _fmt(m.latency_p50_s, 1e3), _fmt(s.latency_p50_s, 1e3)),
        ("latency p99 (ms)", _fmt(m.latency_p99_s, 1e3), _fmt(s.latency_p99_s, 1e3)),
        ("keys exposed", f"{m.exposed} ({_fmt(m.exposed_ratio)})", f"{s.exposed} ({_fmt(s.exposed_ratio)})"),
        ("tampering detected", str(m.tamper_detected), "-"),
        ("wrong keys accepted", str(m.corrupted), str(s.corrupted)),
        (
            "paths x hops per session",
            f"{m.mean_paths:.2g} x {m.mean_hops:.3g}",
            f"{s.mean_paths:.2g} x {s.mean_hops:.3g}",
        ),
    ]
    for name in FAILURES:
        if m.failures[name] or s.failures[name]:
            rows.append((f"failed: {name}", str(m.failures[name]), str(s.failures[name])))
    width = max(len(r[0]) for r in rows)
    head = f"{'':{width}}  {f'MPSS k={results.k} n={results.n}':>18}  {'single path':>14}"
    return "\n".join([head, *(f"{a:{width}}  {b:>18}  {c:>14}" for a, b, c in rows)])
