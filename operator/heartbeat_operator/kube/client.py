"""A small async Kubernetes API client on aiohttp.

Inside the operator every API call is async (DESIGN 9.1); the sync ``kubernetes`` package
is for the CLI and tests. Credentials come from ``kube.credentials`` (``ConnectionInfo``:
the ServiceAccount in a pod, else the kubeconfig, exec plugins included), as kopf's
watches do, so both talk to the same server as the same user. They are fetched again
after a 401 and when they expire (an exec plugin's ``expirationTimestamp``).

A ``429 Too Many Requests`` (API Priority and Fairness) is retried after the server's
``Retry-After``, a bounded number of times and never past the request's own timeout:
hammering a throttling API server only deepens its queue (issue 13 item 14).

The client counts its writes and errors (``ApiStats``) for the metrics collector and
remembers when the API last answered (``/readyz`` needs an answer within 10 s). Error
messages carry the API's status and reason, never a request body (a Secret's body holds a
token).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import kopf
import orjson

from heartbeat_operator.engine.api import (
    JSON,
    MERGE_PATCH,
    NOT_CONNECTED,
    ApiError,
    ApiStats,
    dump_json,
)
from heartbeat_operator.kube.credentials import Credentials

logger = logging.getLogger(__name__)

VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}

#: Retries of one request answered 429: the API server's own flow control asks for a
#: second or so (Retry-After: 1); three retries ride out a burst without piling up.
THROTTLE_RETRIES = 3
#: Seconds at most we wait for one Retry-After; longer values are capped (a status write
#: has 5 s, DESIGN 9.13) and a request with its own timeout never waits past it.
MAX_RETRY_AFTER = 10.0
#: Seconds waited after a 429 without a usable Retry-After (seconds, not an HTTP date).
DEFAULT_RETRY_AFTER = 1.0


def connection_info() -> kopf.ConnectionInfo:
    """The credentials the operator runs with now: in a pod its ServiceAccount, else the
    kubeconfig (``kube.credentials``; read anew on every call)."""
    return Credentials().get()


def _seconds(header: str | None) -> float | None:
    """A ``Retry-After`` of delay-seconds (what the API server sends); None otherwise."""
    try:
        return max(0.0, float(header)) if header is not None else None
    except ValueError:  # an HTTP date: the default delay applies
        return None


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
        """Fresh credentials after a 401 or at expiry: in a pod the kubelet rotates the
        projected ServiceAccount token file, and the one read at start-up eventually
        expires; an exec plugin's token has an expirationTimestamp. It may block (an exec
        plugin runs), so it runs in a thread."""
        self._login_lock = asyncio.Lock()
        self._retired: set[asyncio.Task[None]] = set()

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
        for task in list(self._retired):
            task.cancel()

    def _expired(self) -> bool:
        expiration = self._info.expiration
        if expiration is None or self._relogin is None:
            return False
        if expiration.tzinfo is None:
            expiration = expiration.replace(tzinfo=datetime.UTC)
        return datetime.datetime.now(datetime.UTC) >= expiration

    async def _login_again(self, stale: kopf.ConnectionInfo) -> None:
        """New credentials and a new session for them, once for all callers that saw
        ``stale`` refused or expired. Requests still in flight finish on the old session."""
        assert self._relogin is not None
        async with self._login_lock:
            if self._info is not stale:
                return  # another request already logged in again
            try:
                self._info = await asyncio.to_thread(self._relogin)
            except Exception as exc:  # callers handle ApiError; the message holds no secret
                logger.warning("fetching our credentials again failed: %s", exc)
                raise ApiError(401, "LoginFailed", str(exc)) from None
            old, self._session = self._session, None
            if old is not None:
                task = asyncio.create_task(self._close_later(old))
                self._retired.add(task)
                task.add_done_callback(self._retired.discard)

    async def _close_later(self, session: aiohttp.ClientSession) -> None:
        try:
            await asyncio.sleep(self._timeout.total or 10.0)
        finally:
            await session.close()

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
        accept: str | None = None,
    ) -> JSON:
        """Send one request; return the decoded JSON answer or raise ``ApiError``.

        ``kind`` labels the counters: the resource's plural (``heartbeatmonitors/status``,
        ``secrets``, ``events``, ``leases``). A 401 reads the credentials again and retries
        once; a 429 waits for ``Retry-After`` and retries (``THROTTLE_RETRIES`` times, and
        only while ``timeout`` leaves room for it).
        """
        data = await self._send(
            method, path, body, params, content_type, kind, timeout, accept=accept
        )
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
        accept: str | None = None,
    ) -> Any:
        """``_request`` with the re-login after a 401 or at expiry, and the 429 retries."""
        deadline = None if timeout is None else time.monotonic() + timeout
        relogged = False
        throttled = 0
        while True:
            remaining = None if deadline is None else max(0.001, deadline - time.monotonic())
            info = self._info
            if self._expired():
                logger.info("our credentials expired: fetching them again")
                await self._login_again(info)
                info = self._info
            try:
                return await self._request(
                    method,
                    path,
                    body,
                    params,
                    content_type,
                    kind,
                    remaining,
                    raw=raw,
                    accept=accept,
                )
            except ApiError as exc:
                if exc.status == 401 and self._relogin is not None and not relogged:
                    relogged = True
                    logger.info("the API server refused our credentials (401): reading them again")
                    await self._login_again(info)
                    continue
                if exc.status != 429 or throttled >= THROTTLE_RETRIES:
                    raise
                delay = min(
                    MAX_RETRY_AFTER,
                    DEFAULT_RETRY_AFTER if exc.retry_after is None else exc.retry_after,
                )
                if deadline is not None and time.monotonic() + delay >= deadline:
                    raise
                throttled += 1
                logger.info(
                    "the API server throttles %s %s (429): retrying in %.1f s", method, kind, delay
                )
                await asyncio.sleep(delay)

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
        accept: str | None = None,
    ) -> Any:
        """One attempt: the decoded JSON answer (``raw``: the body's bytes) or ``ApiError``."""
        session = self._ensure_session()
        write = method != "GET"
        kwargs: dict[str, Any] = {}
        headers: dict[str, str] = {}
        if body is not None:
            # orjson, as the monitor table: a ping's write encodes and decodes a whole
            # monitor (~3 KB), 20 µs less than the json module (a percent of a ping's CPU).
            kwargs["data"] = dump_json(body)
            headers["Content-Type"] = content_type
        if accept is not None:
            headers["Accept"] = accept
        if headers:
            kwargs["headers"] = headers
        if timeout is not None:
            kwargs["timeout"] = aiohttp.ClientTimeout(total=timeout)
        try:
            async with session.request(
                method, self.server + path, params=params, **kwargs
            ) as response:
                self.stats.last_answer = time.monotonic()
                status = response.status
                retry_after = _seconds(response.headers.get("Retry-After"))
                payload = await response.read()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            self.stats.errors[kind] += 1
            if write:
                self._notify(
                    method, kind, "timeout" if isinstance(exc, TimeoutError) else "connection"
                )
            # A connection never made carried nothing; any other error may have lost the
            # answer of a request the API server received (ApiError.outcome_unknown).
            reason = (
                NOT_CONNECTED if isinstance(exc, aiohttp.ClientConnectorError) else "Unreachable"
            )
            raise ApiError(0, reason, type(exc).__name__) from None
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
            raise ApiError(status, reason, message, retry_after=retry_after)
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
