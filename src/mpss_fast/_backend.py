"""Choose the kernel backend once, at import, from ``MPSS_FAST_BACKEND``.

``auto`` (default): native if the extension imports, else pure.
``native``: the extension or a loud :class:`BackendError` — never a silent fallback.
``pure``: the pure-Python kernels.
Any other value is a :class:`BackendError`.
"""

from __future__ import annotations

import os
import warnings
from types import ModuleType

from .exceptions import BackendError

ENV_VAR = "MPSS_FAST_BACKEND"
CHOICES = ("auto", "native", "pure")


def load(name: str) -> ModuleType:
    """The kernel module of backend ``name`` ("native" or "pure")."""
    if name == "pure":
        from . import _pure

        return _pure
    if name == "native":
        try:
            from . import _native  # type: ignore[attr-defined]
        except ImportError as exc:
            raise BackendError(
                f"the native backend was requested but mpss_fast._native cannot be imported ({exc}); "
                "reinstall mpss-fast with a C compiler available, or set MPSS_FAST_BACKEND=pure"
            ) from exc
        return _native
    raise BackendError(f"unknown backend {name!r}; choose one of: native, pure")


def select(choice: str) -> ModuleType:
    """The backend for an ``MPSS_FAST_BACKEND`` value."""
    choice = choice or "auto"
    if choice not in CHOICES:
        raise BackendError(f"{ENV_VAR}={choice!r} is not one of: {', '.join(CHOICES)}")
    if choice != "auto":
        return load(choice)
    try:
        return load("native")
    except BackendError as exc:
        warnings.warn(f"mpss_fast is using the slow pure-Python backend: {exc.__cause__}", ImportWarning, stacklevel=2)
        return load("pure")


kernels = select(os.environ.get(ENV_VAR, "auto"))


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
