"""TLS contexts for the project's mutual-TLS interfaces, and the check that two roles keep two CAs."""

from __future__ import annotations

import ssl
from os import PathLike

from ..exceptions import NodeConfigError

StrPath = str | PathLike[str]


def ssl_server_context(cert: StrPath, key: StrPath, ca: StrPath) -> ssl.SSLContext:
    """A TLS 1.2+ server context with ``cert``/``key`` that requires a client certificate signed by ``ca``."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(cafile=ca)
    return ctx


def ssl_client_context(cert: StrPath, key: StrPath, ca: StrPath) -> ssl.SSLContext:
    """A TLS 1.2+ client context presenting ``cert``/``key`` and trusting only ``ca`` (host name checked)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cafile=ca)
    ctx.load_cert_chain(cert, key)
    return ctx


def check_separate_cas(first: tuple[str, ssl.SSLContext], second: tuple[str, ssl.SSLContext]) -> None:
    """``NodeConfigError`` if the two named trust stores hold a CA certificate in common (the same
    CA under two file names still gives both roles to every certificate it signs)."""
    (name_a, ctx_a), (name_b, ctx_b) = first, second
    shared = set(ctx_a.get_ca_certs(binary_form=True)) & set(ctx_b.get_ca_certs(binary_form=True))
    if shared:
        raise NodeConfigError(
            f"{name_a} and {name_b} share a CA certificate ({len(shared)} in common): every certificate "
            "it signs would have both roles; give each role its own CA"
        )
