"""Throwaway certificate authorities for tests of the mutual-TLS interfaces (``cryptography``).

:class:`Ca` is one CA; :class:`NodePki` is the set a node trusts, one CA per role
(``docs/node.md``): nodes and operators, applications, and the link KMEs.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(*cns: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn) for cn in cns])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


class Ca:
    """A test CA writing PEM files into ``directory``; ``issue`` makes leaf certificates."""

    def __init__(self, directory: Path, name: str) -> None:
        self.dir = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.path = directory / f"{name}.pem"
        self.path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(
        self,
        cn: str,
        *,
        server: bool = False,
        client: bool = True,
        ips: tuple[str, ...] = ("127.0.0.1",),
        more_cns: tuple[str, ...] = (),
    ) -> tuple[Path, Path]:
        """A certificate with CN ``cn`` and its key; ``server``: TLS server use with ``ips`` (and localhost) as
        subject alternative names; ``client``: TLS client use; ``more_cns``: further CN attributes after
        ``cn`` in the subject (a certificate a node must refuse). Returns (cert path, key path)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn, *more_cns))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        usages = []
        if server:
            names: list[x509.GeneralName] = [x509.DNSName("localhost")]
            names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
            usages.append(x509.oid.ExtendedKeyUsageOID.SERVER_AUTH)
        if client:
            usages.append(x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH)
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        stem = self.dir / "-".join((self.path.stem, cn, *more_cns))
        cert_path, key_path = stem.with_suffix(".crt"), stem.with_suffix(".key")
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key_path, key)
        return cert_path, key_path


class NodePki:
    """One CA per role, as a node's ``tls`` section names them: ``nodes`` signs node and operator
    certificates (``tls.node_ca``), ``apps`` the applications' (``tls.app_ca``), ``kmes`` the link
    KMEs' server certificates (``tls.kme_ca``). Certificates are issued on first use and kept."""

    def __init__(self, directory: Path) -> None:
        self.nodes = Ca(directory, "node-ca")
        self.apps = Ca(directory, "app-ca")
        self.kmes = Ca(directory, "kme-ca")
        self._issued: dict[str, tuple[Path, Path]] = {}

    def node(self, name: str, ips: tuple[str, ...] = ("127.0.0.1",)) -> tuple[Path, Path]:
        """Node ``name``'s certificate (TLS server and client; CN = the node's name) and key."""
        if name not in self._issued:
            self._issued[name] = self.nodes.issue(name, server=True, ips=ips)
        return self._issued[name]

    def operator(self, name: str) -> tuple[Path, Path]:
        """An operator's client certificate (signed by the node CA; listed in ``peer.operators``)."""
        if name not in self._issued:
            self._issued[name] = self.nodes.issue(name)
        return self._issued[name]

    def app(self, sae: str) -> tuple[Path, Path]:
        """An application's client certificate (CN = its SAE ID), signed by the application CA."""
        if sae not in self._issued:
            self._issued[sae] = self.apps.issue(sae)
        return self._issued[sae]

    def kme(self, ips: tuple[str, ...] = ("127.0.0.1",)) -> tuple[Path, Path]:
        """The link KMEs' server certificate, signed by the KME CA."""
        if "kme" not in self._issued:
            self._issued["kme"] = self.kmes.issue("kme", server=True, client=False, ips=ips)
        return self._issued["kme"]

    def tls_section(self, name: str, ips: tuple[str, ...] = ("127.0.0.1",)) -> dict[str, str]:
        """Node ``name``'s ``tls`` configuration section (its certificate is issued if need be)."""
        cert, key = self.node(name, ips)
        return {
            "cert": str(cert),
            "key": str(key),
            "node_ca": str(self.nodes.path),
            "app_ca": str(self.apps.path),
            "kme_ca": str(self.kmes.path),
        }
