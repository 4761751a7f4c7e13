"""The in-memory monitor table every replica keeps from its watch, and the token-hash index.

Fed by kopf's watch (``kube.watching``) and by the writer's own successful writes (so a
replica never folds a ping onto a status older than the one it just wrote). It is read by
the writer (token lookup, the current object), the leader's scheduler (what to reconcile)
and the metrics collector (Seam 3: ``snapshots()`` and nothing else).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any

logger = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)


@dataclasses.dataclass(frozen=True)
class MonitorEntry:
    """One HeartbeatMonitor as last seen: the snapshot Seam 3 promises, plus write context."""

    namespace: str
    name: str
    uid: str
    generation: int
    resource_version: str
    creation_timestamp: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    spec: Mapping[str, Any]
    status: Mapping[str, Any]
    deleting: bool = False

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)

    @property
    def token_hash(self) -> str | None:
        value = self.status.get("tokenHash")
        return value if isinstance(value, str) and value else None

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> MonitorEntry:
        meta = body.get("metadata") or {}
        return cls(
            namespace=str(meta.get("namespace") or ""),
            name=str(meta.get("name") or ""),
            uid=str(meta.get("uid") or ""),
            generation=int(meta.get("generation") or 0),
            resource_version=str(meta.get("resourceVersion") or ""),
            creation_timestamp=str(meta.get("creationTimestamp") or ""),
            labels=dict(meta.get("labels") or {}),
            annotations=dict(meta.get("annotations") or {}),
            spec=_plain(body.get("spec") or {}),
            status=_plain(body.get("status") or {}),
            deleting=bool(meta.get("deletionTimestamp")),
        )


#: Strings up to this long are shared too: states, reasons, kinds and condition statuses
#: repeat across monitors; times (20+ characters) and messages rarely do.
_SHARED_VALUE_LENGTH = 16


def _plain(value: Any) -> Any:
    """A deep plain-dict copy (kopf hands out read-only mapping views).

    Keys and short values are interned: every status repeats the same field names
    (``time``, ``kind``, ``reason`` … in each of ``recentPings`` and ``recentTransitions``)
    and the same states and reasons, and one shared copy of each instead of one per
    monitor makes the table about a third smaller (111 -> 71 MiB for 10,000 monitors with
    full recent lists; issue 8's RSS targets, bench/README.md).
    """
    if isinstance(value, Mapping):
        return {sys.intern(str(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, str) and len(value) <= _SHARED_VALUE_LENGTH:
        return sys.intern(value)  # "success", "Healthy", "PingReceived", "True" …
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def newer(candidate: str, current: str) -> bool:
    """Whether resourceVersion ``candidate`` is not older than ``current``.

    resourceVersions are opaque by contract but are etcd revisions in practice; when both
    are numbers we compare them, so a watch event that lags behind our own write does not
    roll the table back. Otherwise the latest arrival wins.
    """
    if candidate.isdigit() and current.isdigit():
        return int(candidate) >= int(current)
    return True


Listener = Callable[[Key, MonitorEntry | None], None]


class MonitorTable:
    """Monitors by (namespace, name), and which monitor each token hash belongs to."""

    def __init__(self) -> None:
        self._entries: dict[Key, MonitorEntry] = {}
        self._by_hash: dict[str, set[Key]] = {}
        self._listeners: list[Listener] = []
        self._changed = asyncio.Event()
        self._synced = asyncio.Event()
        self._observed_specs: dict[Key, tuple[int, Mapping[str, Any]]] = {}

    @property
    def synced(self) -> bool:
        """True once the initial list of monitors is in (readiness, DESIGN 9.2)."""
        return self._synced.is_set()

    @synced.setter
    def synced(self, value: bool) -> None:
        if value:
            self._synced.set()
        else:
            self._synced.clear()

    async def wait_synced(self) -> None:
        await self._synced.wait()

    # --- reading ---------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[MonitorEntry]:
        return iter(list(self._entries.values()))

    def get(self, key: Key) -> MonitorEntry | None:
        return self._entries.get(key)

    def snapshots(self) -> list[MonitorEntry]:
        """Seam 3: every monitor's namespace, name, labels, spec and status."""
        return list(self._entries.values())

    def observed_spec(self, entry: MonitorEntry) -> Mapping[str, Any] | None:
        """The spec ``entry.status`` was computed from (its ``observedGeneration``), when
        this replica saw it; None if unknown (e.g. edited while no replica ran)."""
        known = self._observed_specs.get(entry.key)
        if known is None or known[0] != entry.status.get("observedGeneration"):
            return None
        return known[1]

    def owner_of(self, token_hash: str) -> MonitorEntry | None:
        """The monitor a token hash belongs to: the oldest claiming it (DESIGN 9.9: a token
        already used by another monitor gives the *newer* one TokenConflict)."""
        keys = self._by_hash.get(token_hash)
        if not keys:
            return None
        entries = [self._entries[k] for k in keys if k in self._entries]
        if not entries:
            return None
        return min(entries, key=lambda e: (e.creation_timestamp, e.namespace, e.name))

    async def wait_for_owner(self, token_hash: str, timeout: float) -> MonitorEntry | None:
        """The owner of ``token_hash``, waiting up to ``timeout`` s for it to appear."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            entry = self.owner_of(token_hash)
            if entry is not None:
                return entry
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                return self.owner_of(token_hash)

    # --- writing ---------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def upsert(self, body: Mapping[str, Any]) -> MonitorEntry | None:
        """Take a newer version of a monitor; return the entry kept (None if ignored)."""
        entry = MonitorEntry.from_body(body)
        if not entry.namespace or not entry.name:
            return None
        current = self._entries.get(entry.key)
        if current is not None:
            if current.uid == entry.uid and not newer(
                entry.resource_version, current.resource_version
            ):
                return current
            self._unindex(current)
        self._entries[entry.key] = entry
        if entry.status.get("observedGeneration") == entry.generation:
            self._observed_specs[entry.key] = (entry.generation, entry.spec)
        if entry.token_hash:
            self._by_hash.setdefault(entry.token_hash, set()).add(entry.key)
        self._notify(entry.key, entry)
        return entry

    def remove(self, namespace: str, name: str, uid: str | None = None) -> None:
        key = (namespace, name)
        current = self._entries.get(key)
        if current is None or (uid and current.uid != uid):
            return
        del self._entries[key]
        self._observed_specs.pop(key, None)
        self._unindex(current)
        self._notify(key, None)

    def _unindex(self, entry: MonitorEntry) -> None:
        if entry.token_hash and entry.token_hash in self._by_hash:
            self._by_hash[entry.token_hash].discard(entry.key)
            if not self._by_hash[entry.token_hash]:
                del self._by_hash[entry.token_hash]

    def _notify(self, key: Key, entry: MonitorEntry | None) -> None:
        # Wake every index-miss waiter, then hand out a fresh event for the next change.
        self._changed.set()
        self._changed = asyncio.Event()
        for listener in list(self._listeners):
            try:
                listener(key, entry)
            except Exception:
                logger.exception("monitor table listener failed")
