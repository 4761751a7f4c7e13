"""The local control plane's keys and certificates, made fresh for every ``dev up``.

One CA signs the kube-apiserver's serving certificate and the client certificates
(admin in ``system:masters``; kube-controller-manager as ``system:kube-controller-manager``,
the identity kubeadm gives it). A separate key pair signs and verifies ServiceAccount
tokens. ECDSA P-256 everywhere: generating it takes milliseconds, which keeps start-up
short (issue 2: under 20 s), and every component accepts it (ES256 tokens included).

Every certificate carries SubjectKeyIdentifier and AuthorityKeyIdentifier: Python 3.13
verifies with ``VERIFY_X509_STRICT`` by default and refuses a chain without them, so
``dev up`` + ``run`` failed there (issue 13 item 13). ``is_current`` tells a control plane
started with certificates from before that (``dev up`` then starts a fresh one).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# A development cluster lives for hours; a year is long enough never to expire under it.
VALIDITY = datetime.timedelta(days=365)
SERVICE_IP = "10.0.0.1"  # first address of --service-cluster-ip-range=10.0.0.0/24
SERVING_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


@dataclass(frozen=True)
class Pki:
    """Paths of every PEM file ``dev up`` hands to the components."""

    dir: Path

    @property
    def ca_cert(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.dir / "ca.key"

    @property
    def serving_cert(self) -> Path:
        return self.dir / "apiserver.crt"

    @property
    def serving_key(self) -> Path:
        return self.dir / "apiserver.key"

    @property
    def admin_cert(self) -> Path:
        return self.dir / "admin.crt"

    @property
    def admin_key(self) -> Path:
        return self.dir / "admin.key"

    @property
    def controller_manager_cert(self) -> Path:
        return self.dir / "controller-manager.crt"

    @property
    def controller_manager_key(self) -> Path:
        return self.dir / "controller-manager.key"

    @property
    def sa_key(self) -> Path:
        return self.dir / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.dir / "sa.pub"


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        # A minute back: the components may check against a clock a hair behind ours.
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + VALIDITY)
    )


def _leaf(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_name: x509.Name,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    names: x509.SubjectAlternativeName | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _new_key()
    builder = (
        _builder(subject, ca_name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if names is not None:
        builder = builder.add_extension(names, critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def generate(directory: Path) -> Pki:
    """Write a new CA, serving cert, client certs and ServiceAccount key pair into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    pki = Pki(directory)

    ca_key = _new_key()
    ca_name = _name("heartbeat-operator-dev-ca")
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
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
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(pki.ca_key, ca_key)
    _write_cert(pki.ca_cert, ca_cert)

    names = x509.SubjectAlternativeName(
        [x509.DNSName(n) for n in SERVING_NAMES]
        + [
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address(SERVICE_IP)),
        ]
    )
    leaves = [
        (pki.serving_key, pki.serving_cert, _name("kube-apiserver"), "server", names),
        (pki.admin_key, pki.admin_cert, _name("heartbeat-dev-admin", "system:masters"), "", None),
        (
            pki.controller_manager_key,
            pki.controller_manager_cert,
            _name("system:kube-controller-manager"),
            "",
            None,
        ),
    ]
    for key_path, cert_path, subject, role, sans in leaves:
        usage = (
            ExtendedKeyUsageOID.SERVER_AUTH
            if role == "server"
            else (ExtendedKeyUsageOID.CLIENT_AUTH)
        )
        key, cert = _leaf(ca_key, ca_name, subject, usage, sans)
        _write_key(key_path, key)
        _write_cert(cert_path, cert)

    sa_key = _new_key()
    _write_key(pki.sa_key, sa_key)
    pki.sa_pub.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return pki


def is_current(directory: Path) -> bool:
    """Whether every certificate in ``directory`` has the key identifiers ``generate`` adds.

    False for certificates written before they were added (or missing or unreadable ones):
    a strict verifier (Python 3.13's default) would refuse them.
    """
    keys = Pki(directory)
    paths = (keys.ca_cert, keys.serving_cert, keys.admin_cert, keys.controller_manager_cert)
    try:
        certs = [x509.load_pem_x509_certificate(path.read_bytes()) for path in paths]
        for cert in certs:
            cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
            cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    return True
