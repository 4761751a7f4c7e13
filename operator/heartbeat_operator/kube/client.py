"""A small async Kubernetes API client on aiohttp.

Inside the operator every API call is async (DESIGN 9.1); the sync ``kubernetes`` package
is for the CLI and tests. Credentials come from kopf's own login helpers
(``ConnectionInfo``: the ServiceAccount in a pod, else the kubeconfig), so kopf's watches
and this client talk to the same server as the same user.

The client counts its writes and errors (``ApiStats``) for the metrics collector and
remembers when the API last answered (``/readyz`` needs an answer within 10 s). Error
messages carry the API's status and reason, never a request body (a Secret's body holds a
token).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import kopf
import orjson

logger = logging.getLogger(__name__)

JSON = dict[str, Any]

VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


class ApiError(Exception):
    """The API server answered with an error status (or could not be reached: status 0)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def not_found(self) -> bool:
        return self.status == 404


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


def connection_info() -> kopf.ConnectionInfo:
    """The credentials the operator runs with: in a pod its ServiceAccount, else kubeconfig."""
    settings = kopf.OperatorSettings()
    info = kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(
        settings=settings
    )
    if info is None:
        raise kopf.LoginError("no ServiceAccount token and no kubeconfig found")
    return info


def dump_json(value: Any) -> bytes:
    """JSON as the API server takes it (orjson; kopf's read-only mapping views as dicts)."""
    return orjson.dumps(value, default=_mapping_as_dict)


def _mapping_as_dict(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


class KubeClient:
    """One aiohttp session to the API server; JSON in, JSON out, ``ApiError`` on failure."""

    def __init__(
        self,
        info: kopf.ConnectionInfo,
        *,
        timeout: float = 10.0,
        stats: ApiStats | None = None,
        on_write: Callable[[str, str, int | str], None] | None = None,
        relogin: Callable[[], kopf.ConnectionInfo] | None = None,
    ) -> None:
        self.server = info.server.rstrip("/")
        self.default_namespace = info.default_namespace
        self.stats = stats or ApiStats()
        self._info = info
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self.on_write = on_write
        """``metrics.Metrics.api_write(verb, resource, code)``: called once per write attempt."""
        self._relogin = relogin
        """Fresh credentials after a 401: in a pod the kubelet rotates the projected
        ServiceAccount token file, and the one read at start-up eventually expires."""

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._info.as_ssl_context(), limit=200),
                headers={
                    **self._info.as_http_headers(),
                    "User-Agent": "heartbeat-operator",
                    "Accept": "application/json",
                },
                timeout=self._timeout,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

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
    ) -> JSON:
        """Send one request; return the decoded JSON answer or raise ``ApiError``.

        ``kind`` labels the counters: the resource's plural (``heartbeatmonitors/status``,
        ``secrets``, ``events``, ``leases``).
        """
        data = await self._send(method, path, body, params, content_type, kind, timeout)
        return data if isinstance(data, dict) else {}

    async def get_bytes(
        self, path: str, *, params: Mapping[str, str] | None = None, kind: str = "other"
    ) -> bytes:
        """A GET whose answer is not JSON (``pods/log`` answers text): the raw body, or
        ``ApiError`` as ``request`` raises it (an error's body is still a JSON Status)."""
        data = await self._send("GET", path, None, params, "application/json", kind, None, raw=True)
        return data if isinstance(data, bytes) else b""

    async def _send(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        params: Mapping[str, str] | None,
        content_type: str,
        kind: str,
        timeout: float | None,
        *,
        raw: bool = False,
    ) -> Any:
        try:
            return await self._request(
                method, path, body, params, content_type, kind, timeout, raw=raw
            )
        except ApiError as exc:
            if exc.status != 401 or self._relogin is None:
                raise
        logger.info("the API server refused our credentials (401): reading them again")
        self._info = self._relogin()
        await self.close()
        return await self._request(method, path, body, params, content_type, kind, timeout, raw=raw)

    async def _request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        params: Mapping[str, str] | None,
        content_type: str,
        kind: str,
        timeout: float | None,
        *,
        raw: bool = False,
    ) -> Any:
        """One attempt: the decoded JSON answer (``raw``: the body's bytes) or ``ApiError``."""
        session = self._ensure_session()
        write = method != "GET"
        kwargs: dict[str, Any] = {}
        if body is not None:
            # orjson, as the monitor table: a ping's write encodes and decodes a whole
            # monitor (~3 KB), 20 µs less than the json module (a percent of a ping's CPU).
            kwargs["data"] = dump_json(body)
            kwargs["headers"] = {"Content-Type": content_type}
        if timeout is not None:
            kwargs["timeout"] = aiohttp.ClientTimeout(total=timeout)
        try:
            async with session.request(
                method, self.server + path, params=params, **kwargs
            ) as response:
                self.stats.last_answer = time.monotonic()
                status = response.status
                payload = await response.read()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            self.stats.errors[kind] += 1
            if write:
                self._notify(
                    method, kind, "timeout" if isinstance(exc, TimeoutError) else "connection"
                )
            raise ApiError(0, "Unreachable", type(exc).__name__) from None
        if write:
            self._notify(method, kind, status)
        if raw and status < 400:
            return payload
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            data = None
        if status >= 400:
            self.stats.errors[kind] += 1
            reason = "Unknown"
            message = ""
            if isinstance(data, dict):
                reason = str(data.get("reason") or reason)
                message = str(data.get("message") or "")
            raise ApiError(status, reason, message)
        if write:
            self.stats.writes[kind] += 1
        return data if isinstance(data, dict) else {}

    def _notify(self, method: str, kind: str, code: int | str) -> None:
        if self.on_write is not None:
            try:
                self.on_write(VERBS.get(method, "other"), kind, code)
            except Exception:  # a metrics hook must never break an API call
                logger.exception("API request hook failed")

    async def get(self, path: str, *, kind: str = "other", **kw: Any) -> JSON:
        return await self.request("GET", path, kind=kind, **kw)

    async def post(self, path: str, body: Mapping[str, Any], *, kind: str = "other") -> JSON:
        return await self.request("POST", path, body=body, kind=kind)

    async def put(
        self,
        path: str,
        body: Mapping[str, Any],
        *,
        kind: str = "other",
        timeout: float | None = None,
    ) -> JSON:
        return await self.request("PUT", path, body=body, kind=kind, timeout=timeout)

    async def patch(
        self,
        path: str,
        body: Mapping[str, Any],
        *,
        kind: str = "other",
        content_type: str = MERGE_PATCH,
        params: Mapping[str, str] | None = None,
    ) -> JSON:
        return await self.request(
            "PATCH", path, body=body, kind=kind, content_type=content_type, params=params
        )

    async def delete(self, path: str, *, kind: str = "other") -> JSON:
        return await self.request("DELETE", path, kind=kind)


# --- paths ---------------------------------------------------------------------------

GROUP = "heartbeat.dev"
VERSION = "v1alpha1"
PLURAL = "heartbeatmonitors"


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
