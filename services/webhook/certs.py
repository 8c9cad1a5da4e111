"""The webhook's own serving certificate: a self-signed CA and a server certificate it signs.

kube-apiserver only calls webhooks over TLS and verifies the server against the `caBundle` of the
webhook configuration. Like Kruise (``pkg/webhook/util/controller``), the webhook makes its CA and
certificate itself instead of needing cert-manager, writes the CA into its configurations, and renews
both before they expire. With cert-manager (optional) the certificate comes from a mounted Secret
(`load`), and the webhook follows its renewals the same way. The renewal publishes the new CA *together with* the old one first, then
switches the serving certificate, so an API server never sees a certificate it does not trust.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class CertBundle:
    """PEM CA certificate, PEM server certificate + key, and when the server certificate expires."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes
    not_after: dt.datetime

    def remaining(self, now: dt.datetime | None = None) -> float:
        """Seconds until the serving certificate expires."""
        return (self.not_after - (now or dt.datetime.now(dt.UTC))).total_seconds()


def load(directory: Path) -> CertBundle:
    """A bundle issued by someone else (cert-manager's Secret mounted as a directory): `tls.crt`,
    `tls.key` and `ca.crt`. Raises ValueError naming the file that is missing or unreadable."""
    pems = {}
    for name in ("ca.crt", "tls.crt", "tls.key"):
        try:
            pems[name] = (directory / name).read_bytes()
        except OSError as e:
            raise ValueError(f"--cert-source: cannot read {directory / name}: {e.strerror}") from None
    try:
        cert = x509.load_pem_x509_certificate(pems["tls.crt"])
    except ValueError as e:
        raise ValueError(f"--cert-source: {directory / 'tls.crt'} is not a PEM certificate: {e}") from None
    return CertBundle(ca_pem=pems["ca.crt"], cert_pem=pems["tls.crt"], key_pem=pems["tls.key"],
                      not_after=cert.not_valid_after_utc)


def service_dns_names(service: str, namespace: str) -> list[str]:
    """The names kube-apiserver uses for a `service:` clientConfig (`<svc>.<ns>.svc` is the one checked)."""
    return [service, f"{service}.{namespace}", f"{service}.{namespace}.svc",
            f"{service}.{namespace}.svc.cluster.local"]


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def generate(hosts: list[str], *, validity: dt.timedelta, now: dt.datetime | None = None) -> CertBundle:
    """A fresh CA and a server certificate for `hosts` (DNS names and/or IP addresses), both valid for
    `validity` (the CA a little longer, so it never expires before the certificate it signed)."""
    now = now or dt.datetime.now(dt.UTC)
    start = now - dt.timedelta(minutes=1)  # tolerate small clock differences
    ca_key = _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kruisebus-webhook-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(now + validity * 2)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, encipher_only=False,
                                     decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = _key()
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    not_after = now + validity
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0] if hosts else "webhook")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    return CertBundle(
        ca_pem=ca.public_bytes(serialization.Encoding.PEM),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()),
        not_after=not_after,
    )


def renew_due(bundle: CertBundle, validity: dt.timedelta, now: dt.datetime | None = None) -> bool:
    """Renew once less than a third of the validity is left (Kruise renews well before expiry too)."""
    return bundle.remaining(now) < validity.total_seconds() / 3
