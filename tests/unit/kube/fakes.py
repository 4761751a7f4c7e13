"""A fake of our own seam, ``KubeClient``: an in-memory object store with resourceVersions.

Only the calls the kube package makes exist; anything else fails loudly.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections.abc import Mapping
from typing import Any

from heartbeat_operator.engine.api import ApiError, ApiStats


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386, as the API server applies ``application/merge-patch+json``."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge_patch(out.get(key), value)
    return out


class FakeKube:
    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.stats = ApiStats()
        self.writes: list[tuple[str, str]] = []
        self._rv = itertools.count(100)
        self.gate: asyncio.Event | None = None  # when set up, PUTs wait for it
        self.delete_gate: asyncio.Event | None = None  # when set up, DELETEs wait for it
        self.puts_started = 0
        self.conflicts_left = 0
        self.fail_with: ApiError | None = None
        self.fail_posts: ApiError | None = None  # every POST (Events, Secrets) fails with it
        self.lose_answers = 0  # PUTs applied whose answer is lost on the wire (issue 18)
        # PUTs applied whose answer is lost, then sent again by the HTTP client on its own
        # (aiohttp, for an idempotent method on a dropped kept-alive connection): a 409.
        self.resent_answers = 0
        self.stalled: asyncio.Event | None = None  # while set up: an API server stopped
        self.stalled_writes: list[asyncio.Future[Any]] = []
        self.drop_queued = False
        self.gets_started = 0

    # helpers
    def add(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(dict(body))
        obj.setdefault("metadata", {})["resourceVersion"] = str(next(self._rv))
        self.objects[path] = obj
        return copy.deepcopy(obj)

    @staticmethod
    def _object_path(path: str) -> str:
        return path.removesuffix("/status")

    def stop(self) -> None:
        """The API server stops answering (SIGSTOP): a PUT whose caller gives up (its
        ``timeout``) raises ``Unreachable`` but stays queued, applied at ``resume``."""
        self.stalled = asyncio.Event()

    def resume(self, *, apply_queued: bool = True) -> None:
        """Answer again; writes queued meanwhile are applied first (or, ``apply_queued``
        False, were lost with their connection)."""
        assert self.stalled is not None
        self.drop_queued = not apply_queued
        self.stalled.set()
        self.stalled = None

    async def get(self, path: str, *, kind: str = "other", **kw: Any) -> dict[str, Any]:
        self.gets_started += 1
        if self.stalled is not None:
            await self.stalled.wait()
        obj = self.objects.get(self._object_path(path))
        if obj is None and path.endswith(("/leases", "/secrets")):
            return self._list(path, (kw.get("params") or {}).get("labelSelector"))
        if obj is None:
            raise ApiError(404, "NotFound", "not found")
        return copy.deepcopy(obj)

    def _list(self, path: str, selector: str | None) -> dict[str, Any]:
        """A collection GET; ``labelSelector`` as comma-separated ``key``, ``key=value``
        and ``key!=value`` requirements (what the operator sends)."""

        def matches(labels: Mapping[str, str]) -> bool:
            for requirement in filter(None, (selector or "").split(",")):
                if "!=" in requirement:
                    key, _, value = requirement.partition("!=")
                    if labels.get(key) == value:
                        return False
                elif "=" in requirement:
                    key, _, value = requirement.partition("=")
                    if labels.get(key) != value:
                        return False
                elif requirement not in labels:
                    return False
            return True

        items = [
            copy.deepcopy(obj)
            for name, obj in sorted(self.objects.items())
            if name.rpartition("/")[0] == path and matches(obj["metadata"].get("labels") or {})
        ]
        return {"items": items}

    async def delete(self, path: str, *, kind: str = "other") -> dict[str, Any]:
        self.writes.append(("DELETE", kind))
        if self.delete_gate is not None:
            await self.delete_gate.wait()
        if self.objects.pop(path, None) is None:
            raise ApiError(404, "NotFound", "not found")
        return {}

    async def post(self, path: str, body: Mapping[str, Any], *, kind: str = "other") -> Any:
        self.writes.append(("POST", kind))
        if self.fail_posts is not None:
            raise self.fail_posts
        full = f"{path}/{body['metadata']['name']}"
        if full in self.objects:
            raise ApiError(409, "AlreadyExists", "exists")
        return self.add(full, body)

    async def put(
        self, path: str, body: Mapping[str, Any], *, kind: str = "other", timeout: Any = None
    ) -> dict[str, Any]:
        self.puts_started += 1
        if self.stalled is not None:
            queued = asyncio.ensure_future(self._put_after(self.stalled, path, body, kind))
            queued.add_done_callback(lambda f: f.cancelled() or f.exception())
            self.stalled_writes.append(queued)
            try:
                return await asyncio.wait_for(asyncio.shield(queued), timeout)
            except TimeoutError:
                raise ApiError(0, "Unreachable", "TimeoutError") from None
        if self.gate is not None:
            await self.gate.wait()
        result = self._put(path, body, kind)
        if self.lose_answers > 0:
            self.lose_answers -= 1
            raise ApiError(0, "Unreachable", "ServerDisconnectedError")
        if self.resent_answers > 0:
            self.resent_answers -= 1
            raise ApiError(409, "Conflict", "the object has been modified")
        return result

    async def _put_after(
        self, resumed: asyncio.Event, path: str, body: Mapping[str, Any], kind: str
    ) -> dict[str, Any]:
        await resumed.wait()
        if self.drop_queued:
            raise ApiError(0, "Unreachable", "ConnectionResetError")
        return self._put(path, body, kind)

    def _put(self, path: str, body: Mapping[str, Any], kind: str) -> dict[str, Any]:
        self.writes.append(("PUT", kind))
        if self.fail_with is not None:
            raise self.fail_with
        target = self._object_path(path)
        current = self.objects.get(target)
        if current is None:
            raise ApiError(404, "NotFound", "not found")
        if self.conflicts_left > 0:
            self.conflicts_left -= 1
            self.bump(target)
            raise ApiError(409, "Conflict", "changed")
        if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", "changed")
        new = copy.deepcopy(current)
        if path.endswith("/status"):
            new["status"] = copy.deepcopy(body["status"])
        else:
            new = copy.deepcopy(dict(body))
        return self.add(target, new)

    async def patch(self, path: str, body: Mapping[str, Any], **_: Any) -> dict[str, Any]:
        self.writes.append(("PATCH", path))
        current = self.objects.get(path)
        if current is None:
            raise ApiError(404, "NotFound", "not found")
        return self.add(path, _merge_patch(current, body))

    def bump(self, path: str) -> None:
        """Someone else wrote the object (a 409 for whoever holds the old version)."""
        self.add(path, self.objects[path])

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"FakeKube.{name} must not be called")
