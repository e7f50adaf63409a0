"""TLS for OCPP security profiles 2 and 3, and a throw-away PKI to exercise them.

* Profile 2: TLS with a server certificate, charge points authenticate with basic auth.
* Profile 3: TLS with client certificates; the CSMS checks that the certificate's common name
  is the charge point identity.

:func:`make_pki` writes a self-signed CA, a server certificate for ``127.0.0.1``/``localhost``
and one client certificate per identity (for tests and local demos, never for production).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Pki", "client_ssl_context", "make_pki", "server_ssl_context"]


@dataclass(frozen=True)
class Pki:
    """Paths of a generated PKI (PEM files).

    Attributes:
        ca_cert: CA certificate.
        server_cert: Server certificate.
        server_key: Server private key.
        clients: ``{identity: (cert, key)}``.
    """

    ca_cert: Path
    server_cert: Path
    server_key: Path
    clients: dict[str, tuple[Path, Path]] = field(default_factory=dict)


def server_ssl_context(
    cert: Path | str, key: Path | str, client_ca: Path | str | None = None
) -> ssl.SSLContext:
    """Server context; with ``client_ca`` client certificates are required (profile 3)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(str(client_ca))
    return context


def client_ssl_context(
    ca: Path | str, cert: Path | str | None = None, key: Path | str | None = None
) -> ssl.SSLContext:
    """Charge point context trusting ``ca``; ``cert``/``key`` add a client certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(str(ca))
    if cert is not None:
        context.load_cert_chain(str(cert), None if key is None else str(key))
    return context


def make_pki(directory: Path | str, identities: Iterable[str] = ()) -> Pki:
    """Generate a CA, a loopback server certificate and client certificates into ``directory``.

    The validity window is taken from the wall clock because TLS libraries check it against the
    wall clock; nothing simulated depends on it.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def write(
        stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
    ) -> tuple[Path, Path]:
        cert_path, key_path = out / f"{stem}.crt", out / f"{stem}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return cert_path, key_path

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(name("qubit-sim test CA"))
        .issuer_name(name("qubit-sim test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, _ = write("ca", ca_cert, ca_key)

    def leaf(
        common: str, usage: x509.ObjectIdentifier, san: list[x509.GeneralName]
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(common))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(ca_key, hashes.SHA256()), key

    server_cert, server_key = leaf(
        "localhost",
        ExtendedKeyUsageOID.SERVER_AUTH,
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    server_cert_path, server_key_path = write("server", server_cert, server_key)
    clients = {}
    for identity in identities:
        cert, key = leaf(identity, ExtendedKeyUsageOID.CLIENT_AUTH, [])
        clients[identity] = write(f"client-{identity}", cert, key)
    return Pki(ca_path, server_cert_path, server_key_path, clients)
