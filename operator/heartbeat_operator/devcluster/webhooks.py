"""The admission webhook on the local control plane (DESIGN 10.4; docs/decisions.md).

``dev up`` writes a serving certificate for 127.0.0.1 (its own small CA, in
``<state dir>/webhook/``) and registers the ValidatingWebhookConfiguration
``heartbeat-operator-dev`` that sends HeartbeatMonitor creates and updates to
``https://127.0.0.1:9443/validate/heartbeatmonitors`` with ``failurePolicy: Ignore``.
``make run`` starts the operator with that pair (``--webhook-cert-file``,
``--webhook-key-file``); while nothing listens on 9443 the API server ignores the webhook.

``configuration()`` builds the same manifest for tests, which point it at an operator of
their own on a free port and limit it to their namespace.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from heartbeat_operator.devcluster import pki
from heartbeat_operator.devcluster.clusters import Cluster

#: The port ``make run``'s operator serves the webhook on: the operator's default
#: (``settings.WebhookSettings.port``), fixed so the registration can name it.
DEV_PORT = 9443
DEV_CONFIGURATION = "heartbeat-operator-dev"
#: The path the operator serves (``admission.app.PATH``; not imported: the dev tool
#: never imports the operator's server side).
PATH = "/validate/heartbeatmonitors"
WEBHOOK_NAME = "monitors.heartbeat.dev"
#: Seconds the API server waits for the dev webhook: a local process answers in
#: milliseconds, and with failurePolicy Ignore a hung one delays each apply this long.
DEV_TIMEOUT_SECONDS = 2


@dataclass(frozen=True)
class WebhookPki:
    """A CA and the serving pair it signed, as PEM files in ``dir``."""

    dir: Path

    @property
    def ca_cert(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def cert(self) -> Path:
        return self.dir / "tls.crt"

    @property
    def key(self) -> Path:
        return self.dir / "tls.key"

    def exists(self) -> bool:
        return all(p.is_file() for p in (self.ca_cert, self.cert, self.key))


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def generate(directory: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> WebhookPki:
    """A new CA and a serving certificate for ``hosts`` (IP addresses or DNS names).

    Both carry SubjectKeyIdentifier and AuthorityKeyIdentifier, which strict X.509
    verification (Python 3.13's default) requires.
    """
    directory.mkdir(parents=True, exist_ok=True)
    found = WebhookPki(directory)
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(minutes=1), now + pki.VALIDITY

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = pki._name("heartbeat-operator-webhook-ca")
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(pki._name("heartbeat-operator-webhook"))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pki._write_cert(found.ca_cert, ca_cert)
    pki._write_key(found.key, key)
    pki._write_cert(found.cert, cert)
    return found


def configuration(
    url: str,
    ca_bundle: bytes,
    *,
    name: str = DEV_CONFIGURATION,
    namespace: str | None = None,
    timeout_seconds: int = DEV_TIMEOUT_SECONDS,
) -> dict[str, Any]:
    """The ValidatingWebhookConfiguration for an operator at ``url`` (``https://…/path``).

    ``namespace`` limits it to one namespace (tests share a control plane).
    """
    webhook: dict[str, Any] = {
        "name": WEBHOOK_NAME,
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "failurePolicy": "Ignore",
        "timeoutSeconds": timeout_seconds,
        "clientConfig": {"url": url, "caBundle": base64.b64encode(ca_bundle).decode("ascii")},
        "rules": [
            {
                "apiGroups": ["heartbeat.dev"],
                "apiVersions": ["*"],
                "operations": ["CREATE", "UPDATE"],
                "resources": ["heartbeatmonitors"],
                "scope": "Namespaced",
            }
        ],
    }
    if namespace is not None:
        webhook["namespaceSelector"] = {
            "matchLabels": {"kubernetes.io/metadata.name": namespace},
        }
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "heartbeat-operator"}},
        "webhooks": [webhook],
    }


def register(cluster: Cluster, *, port: int = DEV_PORT) -> WebhookPki:
    """``dev up``: the serving pair in ``<state dir>/webhook/`` (kept while it exists) and
    the ``heartbeat-operator-dev`` registration pointing at 127.0.0.1:``port``."""
    found = WebhookPki(cluster.state_dir / "webhook")
    if not found.exists():
        generate(found.dir)
    manifest = configuration(
        f"https://127.0.0.1:{port}{PATH}", found.ca_cert.read_bytes(), name=DEV_CONFIGURATION
    )
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))
    print(
        f"dev: admission webhook registered at 127.0.0.1:{port} (certificate in {found.dir}; "
        "`make run` serves it)",
        file=sys.stderr,
        flush=True,
    )
    return found
