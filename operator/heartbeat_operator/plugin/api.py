"""The plugin's side of the Kubernetes API: the project's own async client
(``kube.client.KubeClient``) with the kubeconfig read as kubectl reads it
(``kube.credentials``: merged ``KUBECONFIG`` lists, tokens, client certificates, exec
plugins), and each refusal turned into one sentence a person can act on.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from heartbeat_operator.engine.api import (
    GROUP,
    MERGE_PATCH,
    NOT_CONNECTED,
    PLURAL,
    VERSION,
    ApiError,
    monitor_path,
    secret_path,
)
from heartbeat_operator.kube.client import KubeClient
from heartbeat_operator.kube.credentials import Credentials, CredentialsError

JSON = dict[str, Any]


class PluginError(Exception):
    """A failure to report as one sentence (exit status 2). ``transient``: the API server
    was unreachable or busy (no answer, 429, 5xx), so asking again may succeed."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class Api:
    """Monitors and their Secrets in one namespace (or all, for ``list -A``)."""

    def __init__(self, *, namespace: str | None, context: str | None) -> None:
        try:
            info = Credentials(kubeconfig_first=True, context=context).get()
        except CredentialsError as exc:
            raise PluginError(f"cannot read the kubeconfig: {exc}") from None
        self.namespace = namespace or info.default_namespace or "default"
        self.server = info.server
        self.client = KubeClient(info, timeout=30.0)

    async def close(self) -> None:
        await self.client.close()

    async def _call(self, what: str, method: str, path: str, **kw: Any) -> JSON:
        try:
            return await self.client.request(method, path, **kw)
        except ApiError as exc:
            raise self._error(what, exc) from None

    def _error(self, what: str, exc: ApiError) -> PluginError:
        if exc.status == 0:
            why = "connection refused" if exc.reason == NOT_CONNECTED else exc.message
            return PluginError(
                f"cannot reach the API server at {self.server}: {why}", transient=True
            )
        if exc.status == 401:
            return PluginError(
                f"the API server at {self.server} refused the kubeconfig's credentials "
                "(401 Unauthorized): log in again"
            )
        if exc.status == 403:
            return PluginError(f"no permission to {what}: {exc.message}")
        return PluginError(
            f"cannot {what}: {exc.status} {exc.reason}: {exc.message}",
            transient=exc.status == 429 or exc.status >= 500,
        )

    async def get_monitor(self, name: str) -> JSON:
        try:
            return await self.client.request("GET", monitor_path(self.namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                raise PluginError(self._missing(name, exc)) from None
            raise self._error(
                f"get heartbeatmonitor {name!r} in namespace {self.namespace!r}", exc
            ) from None

    def _missing(self, name: str, exc: ApiError) -> str:
        # A 404 for the resource type itself (the CRD is not installed) reads differently.
        if "the server could not find the requested resource" in exc.message:
            return f"the HeartbeatMonitor API ({GROUP}/{VERSION}) is not installed on {self.server}"
        return f"no HeartbeatMonitor {name!r} in namespace {self.namespace!r}"

    async def list_monitors(self, *, all_namespaces: bool, selector: str | None) -> list[JSON]:
        path = (
            f"/apis/{GROUP}/{VERSION}/{PLURAL}" if all_namespaces else monitor_path(self.namespace)
        )
        params = {"labelSelector": selector} if selector else None
        where = "all namespaces" if all_namespaces else f"namespace {self.namespace!r}"
        try:
            answer = await self.client.request("GET", path, params=params)
        except ApiError as exc:
            if exc.status == 404:
                raise PluginError(self._missing("", exc)) from None
            raise self._error(f"list heartbeatmonitors in {where}", exc) from None
        items = [i for i in answer.get("items") or () if isinstance(i, dict)]
        return sorted(
            items,
            key=lambda i: (
                (i.get("metadata") or {}).get("namespace", ""),
                (i.get("metadata") or {}).get("name", ""),
            ),
        )

    async def patch_spec(self, name: str, spec: Mapping[str, Any]) -> JSON:
        await self.get_monitor(name)  # "no such monitor" before "no permission to patch"
        return await self._call(
            f"patch heartbeatmonitor {name!r} in namespace {self.namespace!r}",
            "PATCH",
            monitor_path(self.namespace, name),
            body={"spec": dict(spec)},
            content_type=MERGE_PATCH,
        )

    async def ping_url(self, name: str, *, internal: bool = False) -> str:
        """The ping URL from the monitor's Secret (``internal-url`` with ``internal``)."""
        monitor = await self.get_monitor(name)
        status = monitor.get("status") or {}
        spec = monitor.get("spec") or {}
        secret_name = (
            status.get("tokenSecretName") or spec.get("tokenSecretName") or f"{name}-heartbeat"
        )
        try:
            secret = await self.client.request("GET", secret_path(self.namespace, secret_name))
        except ApiError as exc:
            if exc.status == 404:
                raise PluginError(
                    f"no Secret {secret_name!r} in namespace {self.namespace!r}: the monitor "
                    f"has no token yet (see kubectl heartbeat describe {name})"
                ) from None
            raise self._error(
                f"get secret {secret_name!r} in namespace {self.namespace!r}", exc
            ) from None
        key = "internal-url" if internal else "url"
        data = secret.get("data") or {}
        if key not in data:
            if internal:
                raise PluginError(
                    f"Secret {secret_name!r} has no internal-url: the operator runs without "
                    "--internal-url (the chart sets it to the Service's address)"
                )
            raise PluginError(
                f"Secret {secret_name!r} has no url yet: the operator has not written it "
                f"(see kubectl heartbeat describe {name})"
            )
        return base64.b64decode(data[key]).decode("utf-8").strip()
