"""The in-memory monitor table every replica keeps from its watch, and the token-hash index.

Fed by kopf's watch (``kube.watching``) and by the writer's own successful writes (so a
replica never folds a ping onto a status older than the one it just wrote). It is read by
the writer (token lookup, the current object), the leader's scheduler (what to reconcile)
and the metrics collector (Seam 3: ``snapshots()`` and nothing else).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from heartbeat_operator.engine import packing

logger = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)


@dataclasses.dataclass(frozen=True, slots=True)  # slots: ~0.3 KiB less per monitor
class MonitorEntry:
    """One HeartbeatMonitor as last seen: the snapshot Seam 3 promises, plus write context.

    The status is kept packed (``engine.packing``: the summary and the histories apart) and
    unpacked on each read of ``status``: as Python dicts a full status costs about
    12 KiB, packed a few hundred bytes, and every replica holds every monitor (issue 8's
    RSS targets, bench/README.md "scale"). The recently read ones stay unpacked in a
    small cache; the fields read on every lookup (``token_hash``,
    ``observed_generation``) are kept apart. The metrics read ``summary`` alone.
    """

    namespace: str
    name: str
    uid: str
    generation: int
    resource_version: str
    creation_timestamp: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    spec: Mapping[str, Any]
    packed_summary: bytes
    packed_histories: bytes
    token_hash: str | None
    observed_generation: int | None
    deleting: bool = False
    cronjob: tuple[str, str] | None = None
    """``(name, uid)`` of the CronJob that controls this monitor (auto-wiring), from its
    own ``ownerReferences``: ownership is read off the monitor the table holds, never
    guessed while another watch catches up (issue 12)."""

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)

    @property
    def has_status(self) -> bool:
        """Whether the API holds any status for this monitor (the leader wrote it once)."""
        return bool(self.packed_summary or self.packed_histories)

    @property
    def status(self) -> Mapping[str, Any]:
        """The status as the API returned it. Shared between readers: never mutate it."""
        return unpack_status(self.packed_summary, self.packed_histories)

    @property
    def summary(self) -> Mapping[str, Any]:
        """The status without its history lists (``packing.HISTORY_FIELDS``): what the
        metrics read. Not cached: the metrics read each monitor once per change."""
        return packing.unpack(self.packed_summary)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> MonitorEntry:
        meta = body.get("metadata") or {}
        status = body.get("status") or {}
        token_hash = status.get("tokenHash")
        observed = status.get("observedGeneration")
        return cls(
            namespace=str(meta.get("namespace") or ""),
            name=str(meta.get("name") or ""),
            uid=str(meta.get("uid") or ""),
            generation=int(meta.get("generation") or 0),
            resource_version=str(meta.get("resourceVersion") or ""),
            creation_timestamp=str(meta.get("creationTimestamp") or ""),
            labels=_plain(meta.get("labels") or {}),
            annotations=_plain(meta.get("annotations") or {}),
            spec=_plain(body.get("spec") or {}),
            packed_summary=packing.pack_summary(status),
            packed_histories=packing.pack_histories(status),
            token_hash=token_hash if isinstance(token_hash, str) and token_hash else None,
            observed_generation=observed if isinstance(observed, int) else None,
            deleting=bool(meta.get("deletionTimestamp")),
            cronjob=_controlling_cronjob(meta),
        )


def _controlling_cronjob(meta: Mapping[str, Any]) -> tuple[str, str] | None:
    for ref in meta.get("ownerReferences") or ():
        if (
            isinstance(ref, Mapping)
            and ref.get("controller") is True
            and ref.get("kind") == "CronJob"
        ):
            name, uid = ref.get("name"), ref.get("uid")
            if isinstance(name, str) and isinstance(uid, str) and name and uid:
                return name, uid
    return None


#: How many unpacked statuses stay cached: the monitors being pinged or reconciled right
#: now; a miss costs ~20 µs (a ping's write costs milliseconds).
_UNPACKED_CACHE = 1024


@functools.lru_cache(maxsize=_UNPACKED_CACHE)
def unpack_status(packed_summary: bytes, packed_histories: bytes) -> Mapping[str, Any]:
    """A whole status from its two packed parts (shared: never mutate it)."""
    return packing.unpack(packed_summary, packed_histories)


#: Strings up to this long are shared too: the spec's units and reasons repeat across
#: monitors.
_SHARED_VALUE_LENGTH = 16


def _plain(value: Any) -> Any:
    """A deep plain-dict copy (kopf hands out read-only mapping views), keys and short
    values interned: field names and common values are held once, not once per monitor."""
    if isinstance(value, Mapping):
        return {sys.intern(str(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, str) and len(value) <= _SHARED_VALUE_LENGTH:
        return sys.intern(value)
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


def age_order(entry: MonitorEntry) -> tuple[str, str, str]:
    """Oldest first: by creation, then namespace and name (a stable tie-break)."""
    return (entry.creation_timestamp, entry.namespace, entry.name)


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
        if known is None or known[0] != entry.observed_generation:
            return None
        return known[1]

    def holders(self, token_hash: str) -> list[MonitorEntry]:
        """Every monitor whose status holds ``token_hash``, oldest first (DESIGN 9.9: a
        token already used by another monitor gives the *newer* one TokenConflict)."""
        keys = self._by_hash.get(token_hash) or ()
        entries = [self._entries[k] for k in keys if k in self._entries]
        return sorted(entries, key=age_order)

    def owner_of(self, token_hash: str) -> MonitorEntry | None:
        """The monitor a token hash belongs to: the oldest holding it."""
        holders = self.holders(token_hash)
        return holders[0] if holders else None

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
        """Take a newer version of a monitor; return the entry kept (None if ignored).

        The version already held is kept as it is: the watch echoes each of our own
        writes, which the writer put in the table when the API answered it.
        """
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        if not key[0] or not key[1]:
            return None
        current = self._entries.get(key)
        if current is not None and current.uid == str(meta.get("uid") or ""):
            version = str(meta.get("resourceVersion") or "")
            if version == current.resource_version or not newer(version, current.resource_version):
                return current
        entry = MonitorEntry.from_body(body)
        if current is not None:
            self._unindex(current)
        self._entries[entry.key] = entry
        if entry.observed_generation == entry.generation:
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
