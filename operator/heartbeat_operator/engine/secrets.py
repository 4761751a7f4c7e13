"""Token Secrets (DESIGN 3 and 9.9).

The operator reads a monitor's Secret by name only — never lists or watches Secrets — on
creation, when ``tokenSecretName`` changes, and when the annotation
``heartbeat.dev/rotate-token`` changes. A Secret it creates is Opaque, owned by the
monitor (``controller: true``), labelled, and holds ``token``, ``url`` and (when an
internal URL is configured) ``internal-url``. A Secret the user made first with a
``token`` key is adopted: it only gains the URL keys, never an owner reference.

``status.tokenHash`` is written *before* the Secret is created (the caller's job: see
``engine.tokens``), so a token that exists in a Secret is always one the index knows.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Mapping
from typing import Any

from heartbeat_operator.domain.tokens import is_valid_user_token
from heartbeat_operator.engine.api import ApiError, KubeApi, secret_path
from heartbeat_operator.engine.monitors import MonitorEntry

MANAGED_BY = {"app.kubernetes.io/managed-by": "heartbeat-operator"}
MONITOR_LABEL = "heartbeat.dev/monitor"
ROTATE_ANNOTATION = "heartbeat.dev/rotate-token"


def secret_name_for(entry: MonitorEntry) -> str:
    """``spec.tokenSecretName``, default ``<name>-heartbeat`` (DESIGN 2)."""
    name = entry.spec.get("tokenSecretName")
    return name if isinstance(name, str) and name else f"{entry.name}-heartbeat"


def monitor_label(name: str) -> str:
    """The monitor's name as a label value: at most 63 characters, ending alphanumeric
    (a longer name cut at a ``-`` or ``.`` would make the Secret invalid)."""
    return name[:63].rstrip("-.")


def ping_urls(token: str, external_url: str, internal_url: str | None) -> dict[str, str]:
    urls = {"url": f"{external_url}/ping/{token}"}
    if internal_url:
        urls["internal-url"] = f"{internal_url}/ping/{token}"
    return urls


def build_secret(
    entry: MonitorEntry, name: str, token: str, urls: Mapping[str, str]
) -> dict[str, Any]:
    """A Secret the operator creates: Opaque, owned by the monitor, labelled."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": name,
            "namespace": entry.namespace,
            "labels": {**MANAGED_BY, MONITOR_LABEL: monitor_label(entry.name)},
            "ownerReferences": [
                {
                    "apiVersion": "heartbeat.dev/v1alpha1",
                    "kind": "HeartbeatMonitor",
                    "name": entry.name,
                    "uid": entry.uid,
                    "controller": True,
                }
            ],
        },
        "stringData": {"token": token, **urls},
    }


def owned_by(secret: Mapping[str, Any], entry: MonitorEntry) -> bool:
    refs = (secret.get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("uid") == entry.uid and ref.get("controller") for ref in refs)


def secret_value(secret: Mapping[str, Any], key: str) -> str | None:
    raw = (secret.get("data") or {}).get(key)
    if not isinstance(raw, str):
        return None
    try:
        return base64.b64decode(raw, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


@dataclasses.dataclass(frozen=True)
class SecretVerdict:
    """What a Secret found under the monitor's name means for the monitor."""

    token: str | None
    """The token to use (None: the monitor cannot use this Secret)."""
    reason: str
    """``TokenReady`` or a ``Ready=False`` reason: ``WeakToken`` or ``SecretConflict``."""
    message: str
    owned: bool
    """Whether the operator created it (owner reference to this monitor)."""


def judge_secret(secret: Mapping[str, Any], entry: MonitorEntry, name: str) -> SecretVerdict:
    """Classify an existing Secret (pure). Messages never contain the token."""
    owned = owned_by(secret, entry)
    token = secret_value(secret, "token")
    if token is None:
        if owned:
            # Ours but emptied: the caller replaces the token.
            return SecretVerdict(None, "TokenReady", "", owned=True)
        return SecretVerdict(
            None,
            "SecretConflict",
            f"Secret {name} exists but has no 'token' key; add one or choose another "
            "spec.tokenSecretName",
            owned=False,
        )
    if not is_valid_user_token(token):
        return SecretVerdict(
            None,
            "WeakToken",
            f"the token in Secret {name} must be 32-128 characters of A-Z a-z 0-9 _ -",
            owned=owned,
        )
    return SecretVerdict(token, "TokenReady", f"token from Secret {name}", owned=owned)


async def read_secret(client: KubeApi, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return await client.get(secret_path(namespace, name), kind="secrets")
    except ApiError as exc:
        if exc.not_found:
            return None
        raise


async def apply_secret_create(client: KubeApi, body: Mapping[str, Any]) -> None:
    await client.post(secret_path(body["metadata"]["namespace"]), body, kind="secrets")


async def apply_secret_update(
    client: KubeApi, namespace: str, name: str, values: Mapping[str, str]
) -> None:
    """Set some keys of an existing Secret (URL keys, or a rotated token), nothing else."""
    await client.patch(secret_path(namespace, name), {"stringData": dict(values)}, kind="secrets")


async def apply_secret_urls(
    client: KubeApi, namespace: str, name: str, urls: Mapping[str, str]
) -> None:
    """Set ``url`` (and ``internal-url``, or remove it when none is configured)."""
    body: dict[str, Any] = {"stringData": dict(urls)}
    if "internal-url" not in urls:
        body["data"] = {"internal-url": None}
    await client.patch(secret_path(namespace, name), body, kind="secrets")
