"""Choose the kernels once, at import, from ``MPSS_FAST_BACKEND`` and ``MPSS_FAST_KERNEL``.

``MPSS_FAST_BACKEND``: ``auto`` (default: native if the extension imports, else pure),
``native`` (the extension or a loud :class:`BackendError`, never a silent fallback) or
``pure``. ``MPSS_FAST_KERNEL``: a native tier (``gfni512``, ``gfni256``, ``avx2``,
``ssse3``, ``swar``, ``table``) for every operation instead of the default, the fastest
constant-time tiers measured on this machine, one for the splits and one for the combines
and XORs (``_calibrate``: timed once, cached on disk); it implies the native backend. Any
unknown or unsupported value is a :class:`BackendError`. :data:`KERNEL_REASON` says why
the tiers of :data:`kernels` were chosen.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from .exceptions import BackendError

ENV_VAR = "MPSS_FAST_BACKEND"
KERNEL_ENV_VAR = "MPSS_FAST_KERNEL"
CHOICES = ("auto", "native", "pure")


def _import_native() -> Any:
    try:
        from . import _native
    except ImportError as exc:
        raise BackendError(
            f"the native backend was requested but mpss_fast._native cannot be imported ({exc}); "
            "reinstall mpss-fast with a C compiler available, or set MPSS_FAST_BACKEND=pure"
        ) from exc
    return _native


def load(name: str, kernel: str | None = None) -> Any:
    """The kernels of backend ``name`` ("native" or "pure").

    Native kernels run every operation on tier ``kernel``; without one, the calibrated
    default tiers: one for the splits, one for the combines and XORs.
    """
    if name == "pure":
        if kernel not in (None, "", "pure"):
            raise BackendError(f"kernel tier {kernel!r} needs the native backend, not pure")
        from . import _pure

        return _pure
    if name != "native":
        raise BackendError(f"unknown backend {name!r}; choose one of: native, pure")
    native = _import_native()
    tier, combine = (kernel, kernel) if kernel else default_tiers(native)
    supported = native.supported_tiers()
    for t in dict.fromkeys((tier, combine)):
        if t not in native.TIERS:
            raise BackendError(f"unknown kernel tier {t!r}; this build has: {', '.join(native.TIERS)}")
        if t not in supported:
            raise BackendError(f"kernel tier {t!r} is not supported by this CPU; it supports: {', '.join(supported)}")
    return native.Kernels(tier, combine=combine)


def default_tiers(native: Any) -> tuple[str, str]:
    """The default native tiers (splits, combines and XORs): calibrated here, or the static rule if that fails."""
    from . import _calibrate

    choice = _calibrate.default_tier(native)
    return choice.tier, choice.combine_tier


def reason(selected: Any, kernel: str | None) -> str:
    """Why ``selected`` (the kernels :func:`select` returned) runs the tiers it runs."""
    if selected.NAME == "pure":
        return "pure backend (no native kernels)"
    if kernel:
        return f"forced by {KERNEL_ENV_VAR}={kernel}"
    from . import _calibrate

    return _calibrate.default_tier(_import_native()).reason


def select(choice: str, kernel: str | None = None) -> Any:
    """The kernels for an ``MPSS_FAST_BACKEND`` value and an optional ``MPSS_FAST_KERNEL`` value."""
    choice = choice or "auto"
    if choice not in CHOICES:
        raise BackendError(f"{ENV_VAR}={choice!r} is not one of: {', '.join(CHOICES)}")
    if choice != "auto":
        return load(choice, kernel)
    if kernel:
        return load("native", kernel)
    try:
        return load("native")
    except BackendError as exc:
        warnings.warn(f"mpss_fast is using the slow pure-Python backend: {exc.__cause__}", ImportWarning, stacklevel=2)
        return load("pure")


kernels = select(os.environ.get(ENV_VAR, "auto"), os.environ.get(KERNEL_ENV_VAR) or None)
KERNEL_REASON: str = reason(kernels, os.environ.get(KERNEL_ENV_VAR) or None)
"""Why :data:`kernels` runs its tiers (printed by ``mpss info``)."""


def available() -> tuple[str, ...]:
    """The backends that load in this installation."""
    names = []
    for name in ("native", "pure"):
        try:
            load(name)
        except BackendError:
            continue
        names.append(name)
    return tuple(names)


def native_tiers() -> tuple[str, ...]:
    """The native kernel tiers this CPU runs, fastest first; empty without the extension."""
    try:
        return tuple(_import_native().supported_tiers())
    except BackendError:
        return ()
