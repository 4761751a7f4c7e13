"""How the engine reaches the Kubernetes API: a small protocol, its errors, its paths.

Issue 14 item 1: the engine imports nothing from kopf or aiohttp. It is handed an object
with these few calls (``kube.client.KubeClient`` in the operator, ``FakeKube`` in unit
tests) and speaks in ``ApiError`` and the paths below; the wire itself is in ``kube``.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Mapping
from typing import Any, Protocol

import orjson

JSON = dict[str, Any]


MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

NOT_CONNECTED = "NotConnected"
"""``ApiError.reason`` of a request that never reached the API server (connection refused)."""


class ApiError(Exception):
    """The API server answered with an error status (or could not be reached: status 0)."""

    def __init__(
        self, status: int, reason: str, message: str, *, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.retry_after = retry_after
        """Seconds from the answer's ``Retry-After`` header (429, 503), if it had one."""

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def outcome_unknown(self) -> bool:
        """Whether a write that raised this may still have been applied (issue 18 item 2).

        An answer lost on the wire (a timeout, a reset after the request left) or a 5xx
        (the API server's own timeout, an etcd error after the commit) says nothing about
        the write; a connection never made, or a 4xx, says it was not applied.
        """
        if self.status == 0:
            return self.reason != NOT_CONNECTED
        return self.status >= 500


@dataclasses.dataclass
class ApiStats:
    """Counters for the metrics collector (DESIGN 5: API write counts and errors)."""

    writes: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    """Successful writes by resource: ``heartbeatmonitors/status``, ``secrets``, ``events``..."""

    errors: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    """Failed requests by kind (any verb), including transport errors."""

    last_answer: float | None = None
    """``time.monotonic()`` of the last response of any status from the API server."""

    def answered_within(self, seconds: float, now: float | None = None) -> bool:
        if self.last_answer is None:
            return False
        return (time.monotonic() if now is None else now) - self.last_answer <= seconds


def dump_json(value: Any) -> bytes:
    """JSON as the API server takes it (orjson; kopf's read-only mapping views as dicts)."""
    return orjson.dumps(value, default=_mapping_as_dict)


def _mapping_as_dict(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


# --- paths ---------------------------------------------------------------------------

GROUP = "heartbeat.dev"
VERSION = "v1alpha1"
PLURAL = "heartbeatmonitors"

#: ``accept`` of a GET that lists the objects' metadata alone (no Secret data).
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"


def monitor_path(namespace: str, name: str = "", *, subresource: str = "") -> str:
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"
    if name:
        path += f"/{name}"
        if subresource:
            path += f"/{subresource}"
    return path


def secret_path(namespace: str, name: str = "") -> str:
    path = f"/api/v1/namespaces/{namespace}/secrets"
    return f"{path}/{name}" if name else path


def event_path(namespace: str, name: str = "") -> str:
    path = f"/api/v1/namespaces/{namespace}/events"
    return f"{path}/{name}" if name else path


def lease_path(namespace: str, name: str = "") -> str:
    path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
    return f"{path}/{name}" if name else path


#: Each replica's own Lease is ``heartbeat-replica-<identity>`` (DESIGN 10.8.9).
REPLICA_LEASE_PREFIX = "heartbeat-replica-"


def lease_released(lease: Mapping[str, Any]) -> bool:
    """Whether a replica Lease was released by a clean shutdown (``kube.replicas``: a last
    renewal with ``holderIdentity`` emptied): its replica is gone."""
    return not (lease.get("spec") or {}).get("holderIdentity")


class KubeApi(Protocol):
    """The calls the engine makes (``kube.client.KubeClient`` implements them)."""

    stats: ApiStats

    async def get(self, path: str, *, kind: str = "other", **kw: Any) -> JSON: ...

    async def post(self, path: str, body: Mapping[str, Any], *, kind: str = "other") -> JSON: ...

    async def put(
        self,
        path: str,
        body: Mapping[str, Any],
        *,
        kind: str = "other",
        timeout: float | None = None,
    ) -> JSON: ...

    async def patch(
        self,
        path: str,
        body: Mapping[str, Any],
        *,
        kind: str = "other",
        content_type: str = MERGE_PATCH,
        params: Mapping[str, str] | None = None,
    ) -> JSON: ...

    async def delete(self, path: str, *, kind: str = "other") -> JSON: ...

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        kind: str = "other",
        timeout: float | None = None,
    ) -> JSON: ...

    async def get_bytes(
        self, path: str, *, params: Mapping[str, str] | None = None, kind: str = "other"
    ) -> bytes: ...
