"""Kubeconfig files for the local control plane: client certificates or a bearer token.

Credentials are embedded (``*-data``) so each file stands alone and can be copied or
handed to another process. Files are written mode 0600: they hold keys and tokens.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import yaml

CLUSTER_NAME = "heartbeat-dev"


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def _write(path: Path, config: dict[str, object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    tmp.replace(path)  # atomic: a reader never sees half a kubeconfig
    return path.resolve()


def _config(
    server: str, ca_cert: Path, user: str, credentials: dict[str, str]
) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CLUSTER_NAME,
                "cluster": {"server": server, "certificate-authority-data": _b64(ca_cert)},
            }
        ],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": user, "context": {"cluster": CLUSTER_NAME, "user": user}}],
        "current-context": user,
        "preferences": {},
    }


def write_client_cert_kubeconfig(
    path: Path, *, server: str, ca_cert: Path, cert: Path, key: Path, user: str
) -> Path:
    """A kubeconfig authenticating with a client certificate signed by the cluster's CA."""
    credentials = {"client-certificate-data": _b64(cert), "client-key-data": _b64(key)}
    return _write(path, _config(server, ca_cert, user, credentials))


def write_token_kubeconfig(
    path: Path, *, server: str, ca_cert: Path, token: str, user: str, namespace: str | None = None
) -> Path:
    """A kubeconfig authenticating with a bearer token (e.g. a ServiceAccount's)."""
    config = _config(server, ca_cert, user, {"token": token})
    if namespace:
        contexts = config["contexts"]
        assert isinstance(contexts, list)
        contexts[0]["context"]["namespace"] = namespace
    return _write(path, config)
