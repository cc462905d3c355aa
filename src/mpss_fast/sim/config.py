"""What one simulation run is asked to do (:class:`SimConfig`) and where its topology comes from."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields
from typing import Any

from ..exceptions import ParameterError
from ..kmp import Topology, builtin, choose_k_n, load, random_mesh

MAX_SHARES = 255


@dataclass(frozen=True)
class SimConfig:
    """The parameters of a run; :meth:`checked` validates them (``ParameterError`` naming the field).

    Times are simulated seconds. ``mtbf_s = 0`` turns link failures off. ``k``/``n`` both
    set fix the threshold; both ``None`` choose it with ``kmp.choose_k_n`` from
    ``failures`` and ``tolerate``. ``verify_fraction`` is the share of MPSS sessions whose
    shares also travel as real bytes through real ``LinkKeyPool``/``seal``/``relay``.
    """

    topology: str = "metro"
    sessions: int = 1000
    seed: int = 0
    duration_s: float = 100.0
    key_bytes: int = 32
    failures: int = 1
    tolerate: int = 1
    k: int | None = None
    n: int | None = None
    compromised_relays: int = 0
    tamper: bool = False
    check_bytes: int = 16
    mtbf_s: float = 600.0
    mttr_s: float = 30.0
    detect_s: float = 5.0
    key_timeout_s: float = 1.0
    refresh_s: float = 1.0
    verify_fraction: float = 0.1
    keep_sessions: bool = True

    def checked(self) -> SimConfig:
        """Self, after checking every field; raises ``ParameterError``."""
        for name in ("sessions", "seed", "key_bytes", "failures", "tolerate", "compromised_relays", "check_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ParameterError(f"{name} must be a whole number >= 0, not {value!r}")
        if self.sessions < 1:
            raise ParameterError(f"sessions must be >= 1, not {self.sessions}")
        if not 1 <= self.key_bytes <= 4096:
            raise ParameterError(f"key_bytes must be in 1..4096, not {self.key_bytes}")
        if self.check_bytes > 32:
            raise ParameterError(f"check_bytes must be in 0..32 (a truncated SHA-256), not {self.check_bytes}")
        for name in ("duration_s", "mtbf_s", "mttr_s", "detect_s", "key_timeout_s", "refresh_s", "verify_fraction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ParameterError(f"{name} must be a finite number >= 0, not {value!r}")
        if self.duration_s <= 0 or self.refresh_s <= 0:
            raise ParameterError("duration_s and refresh_s must be > 0")
        if self.mtbf_s > 0 and self.mttr_s <= 0:
            raise ParameterError("mttr_s must be > 0 when link failures are on (mtbf_s > 0)")
        if self.verify_fraction > 1:
            raise ParameterError(f"verify_fraction must be in 0..1, not {self.verify_fraction}")
        self.threshold()
        return self

    def threshold(self) -> tuple[int, int]:
        """``(k, n)``: the fixed pair, or the policy's from ``failures`` and ``tolerate`` (``kmp.choose_k_n``)."""
        if (self.k is None) != (self.n is None):
            raise ParameterError("give both k and n, or neither (then failures and tolerate choose them)")
        if self.k is None or self.n is None:
            return choose_k_n(failures=self.failures, compromised=self.tolerate, paths_available=MAX_SHARES)
        for name, value in (("k", self.k), ("n", self.n)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ParameterError(f"{name} must be an int, not {value!r}")
        if not 2 <= self.k <= self.n <= MAX_SHARES:
            raise ParameterError(f"need 2 <= k <= n <= {MAX_SHARES}, not k={self.k} n={self.n}")
        return self.k, self.n

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The names of the fields."""
        return tuple(f.name for f in fields(cls))


def load_topology(spec: str, *, seed: int = 0) -> Topology:
    """``metro``, ``backbone``, ``mesh:N`` (``kmp.random_mesh(N, seed=seed)``) or a ``.json``/``.graphml`` file."""
    if not isinstance(spec, str) or not spec:
        raise ParameterError("topology must be metro, backbone, mesh:N or a file name")
    if spec in ("metro", "backbone"):
        return builtin(spec)
    if spec.startswith("mesh:"):
        count = spec[5:]
        if not count.isdigit():
            raise ParameterError(f"topology {spec!r}: mesh:N needs a whole number of nodes N")
        return random_mesh(int(count), seed=seed)
    if not os.path.exists(spec):
        raise ParameterError(f"topology {spec!r} is not metro, backbone, mesh:N or an existing file")
    return load(spec)
