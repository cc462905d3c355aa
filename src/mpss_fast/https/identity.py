"""Who is calling: one reading of a client certificate for every HTTP interface of a node.

Both servers of a node, the ETSI 014 server (applications) and the peer API (neighbour
nodes and operators), name their caller with :func:`request_identity`: the subject CN of
its client certificate, which the TLS handshake has already checked against the CA that
interface trusts (``docs/node.md``, "Roles"). A certificate must carry exactly one CN: one
with none, or with several (in one RDN or in several), is refused with 401, so no two
readers can take two different names from one certificate.

:class:`DuplicateWatch` notices one identity calling from two places at once
(``tls.check_separate_cas`` keeps the two interfaces' CAs apart).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from ..exceptions import HttpUnauthorizedError

log = logging.getLogger("mpss_fast.node")

DUPLICATE_WINDOW_S = 60.0
"""Two calls by one identity from two places this close together are "at once" (:class:`DuplicateWatch`)."""

MAX_PLACES = 16
"""Places remembered per identity (the most recent ones)."""


def cert_identity(cert: Mapping[str, Any]) -> str:
    """The identity in a peer certificate as ``ssl.SSLSocket.getpeercert()`` gives it: its one subject CN.

    Raises :class:`~mpss_fast.exceptions.HttpUnauthorizedError` (401) when the subject has
    no CN, more than one, or an empty one.
    """
    cns = [value for rdn in cert.get("subject", ()) for name, value in rdn if name == "commonName"]
    if len(cns) != 1:
        raise HttpUnauthorizedError(f"the client certificate must name exactly one CN; it names {len(cns)}")
    if not isinstance(cns[0], str) or not cns[0]:
        raise HttpUnauthorizedError("the client certificate has an empty CN")
    return cns[0]


def request_identity(request: web.Request, *, dev_header: str | None = None) -> str | None:
    """The caller of ``request``: its client certificate's :func:`cert_identity`. Without a certificate,
    the value of the ``dev_header`` header when one is given (plain HTTP, development only), else ``None``."""
    transport = request.transport
    cert = transport.get_extra_info("peercert") if transport is not None else None
    if cert:
        return cert_identity(cert)
    if dev_header is not None:
        return request.headers.get(dev_header) or None
    return None


class DuplicateWatch:
    """Notices one identity calling from two places (client addresses) within ``window_s``.

    A node is one process at one address toward a neighbour, so its certificate seen from two
    addresses at once means its key is in use somewhere else too (a copied key, or two nodes
    given one configuration). :meth:`seen` logs a warning the first time, and then not again
    while the episode lasts: it ends when the identity has been seen from a single place for
    ``window_s`` (logged at INFO), and a later second place warns again. Two processes behind
    one address cannot be told apart here.
    """

    def __init__(
        self, *, window_s: float = DUPLICATE_WINDOW_S, what: str = "node", clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.window_s = window_s
        self.what = what
        self._clock = clock
        self._places: dict[str, dict[str, float]] = {}  # identity -> place -> when last seen there
        self._alarmed: set[str] = set()

    def seen(self, identity: str, place: str) -> bool:
        """Record a call by ``identity`` from ``place``; ``True`` while it is seen from more than one place."""
        now = self._clock()
        places = self._places.setdefault(identity, {})
        for other, last in list(places.items()):
            if now - last > self.window_s:
                del places[other]
        places.pop(place, None)
        places[place] = now  # insertion order = most recent last
        while len(places) > MAX_PLACES:
            del places[next(iter(places))]
        if len(places) > 1:
            if identity not in self._alarmed:
                self._alarmed.add(identity)
                log.warning(
                    "%s %s: its certificate is in use from %s within %g s: is a copy of its key in use elsewhere, "
                    "or do two processes share one configuration? (said once until it is seen from one place only)",
                    self.what, identity, " and ".join(sorted(places)), self.window_s,
                )  # fmt: skip
            return True
        if identity in self._alarmed:
            self._alarmed.discard(identity)
            log.info("%s %s: seen from %s only again for %g s", self.what, identity, place, self.window_s)
        return False
