"""Helpers for the operator's integration tests (tests/integration/test_operator_*.py).

Each test runs its own operator process(es) with ``--namespace <test namespace>`` and
``--lease-namespace <test namespace>``, so parallel sessions on the shared control plane
never compete for one Lease or see each other's monitors.
"""

from __future__ import annotations

import base64
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from heartbeat_operator.domain.timefmt import parse_time
from tests.support.waiting import wait_for

GROUP, VERSION, PLURAL = "heartbeat.dev", "v1alpha1", "heartbeatmonitors"


def isolated(namespace: str, *extra: str) -> tuple[str, ...]:
    """Operator flags that keep a test's operator to its own namespace and Lease."""
    return ("--namespace", namespace, "--lease-namespace", namespace, *extra)


@dataclass
class Reply:
    status: int
    body: str
    headers: Mapping[str, str]


def http(url: str, *, method: str = "GET", data: bytes | None = None) -> Reply:
    request = urllib.request.Request(url, method=method, data=data)
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return Reply(response.status, response.read().decode(), dict(response.headers))
    except urllib.error.HTTPError as error:
        return Reply(error.code, error.read().decode(), dict(error.headers))


def condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for item in status.get("conditions") or ():
        if item.get("type") == kind:
            return item
    return {}


#: Seconds a test waits for a ping's 200 to show in status: about a second at rest
#: (DESIGN 10.7), with room for a busy CI machine (a timing figure is a benchmark's).
ABSORBED = 10.0


class Monitors:
    """HeartbeatMonitors, their Secrets and Events in one namespace, via the real API."""

    def __init__(self, api_client: k8s.ApiClient, namespace: str) -> None:
        self.namespace = namespace
        self.custom = k8s.CustomObjectsApi(api_client)
        self.core = k8s.CoreV1Api(api_client)

    def create(self, name: str, spec: Mapping[str, Any], **meta: Any) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "HeartbeatMonitor",
            "metadata": {"name": name, **meta},
            "spec": dict(spec),
        }
        return self.custom.create_namespaced_custom_object(  # type: ignore[no-any-return]
            GROUP, VERSION, self.namespace, PLURAL, body
        )

    def get(self, name: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(  # type: ignore[no-any-return]
            GROUP, VERSION, self.namespace, PLURAL, name
        )

    def patch_spec(self, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        return self.custom.patch_namespaced_custom_object(  # type: ignore[no-any-return]
            GROUP, VERSION, self.namespace, PLURAL, name, {"spec": dict(spec)}
        )

    def status(self, name: str) -> dict[str, Any]:
        return self.get(name).get("status") or {}

    def absorbed(self, name: str, ping_count: int, timeout: float = ABSORBED) -> dict[str, Any]:
        """The status once it counts ``ping_count`` pings. A ``200`` means the ping is
        stored in the replica's journal; the status absorbs it behind the reply, within
        about a second at rest (DESIGN 10.7), so a test waits for it there."""

        def counted() -> dict[str, Any] | None:
            status = self.status(name)
            return status if status.get("pingCount", 0) >= ping_count else None

        return wait_for(counted, timeout=timeout, interval=0.05, what=f"{name}: {ping_count} pings")

    def wait_ready(self, name: str, timeout: float = 10.0) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            status = self.status(name)
            ok = condition(status, "Ready").get("status") == "True"
            return status if ok and status.get("tokenSecretName") else None

        return wait_for(ready, timeout=timeout, what=f"{name} Ready=True")

    def wait_state(
        self, name: str, state: str, timeout: float = 30.0, reason: str | None = None
    ) -> tuple[dict[str, Any], float]:
        """Wait for ``state`` (and Healthy reason); return the status and the wall time seen."""

        def probe() -> tuple[dict[str, Any], float] | None:
            status = self.status(name)
            if status.get("state") != state:
                return None
            if reason is not None and condition(status, "Healthy").get("reason") != reason:
                return None
            return status, time.time()

        return wait_for(probe, timeout=timeout, interval=0.05, what=f"{name} {state} {reason}")

    def secret(self, name: str) -> dict[str, str]:
        secret = self.core.read_namespaced_secret(name, self.namespace)
        return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}

    def url(self, name: str) -> str:
        status = self.wait_ready(name)
        return self.secret(status["tokenSecretName"])["url"]

    def events(self, name: str) -> list[Any]:
        events = self.core.list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={name}"
        ).items
        return sorted(events, key=lambda e: (e.first_timestamp or e.event_time, e.metadata.name))

    def event_reasons(self, name: str) -> list[str]:
        return [e.reason for e in self.events(name)]

    def delete(self, name: str) -> None:
        try:
            self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name
            )
        except ApiException as exc:
            if exc.status != 404:
                raise


def at(text: str) -> datetime:
    return parse_time(text)


def transition(status: Mapping[str, Any], state: str, reason: str) -> Mapping[str, Any]:
    """The newest ``recentTransitions`` entry into ``state`` with ``reason``."""
    for item in status.get("recentTransitions") or ():
        if item.get("state") == state and item.get("reason") == reason:
            return item
    raise AssertionError(f"no transition to {state}/{reason} in {status.get('recentTransitions')}")
