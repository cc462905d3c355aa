"""The one place networkx is imported: ``mpss_fast.kmp`` needs it, ``mpss_fast`` itself does not."""

from __future__ import annotations

try:
    import networkx as nx  # type: ignore[import-untyped,unused-ignore]
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "mpss_fast.kmp (path planning) needs networkx; install it with: pip install 'mpss-fast[sim]' "
        "(or 'mpss-fast[node]' for the node daemon)"
    ) from exc

__all__ = ["nx"]
