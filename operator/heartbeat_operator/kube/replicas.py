"""Replica Leases and the operator's own outages (DESIGN 10.5, 10.8.9, 10.8.10).

Every replica renews a Lease ``heartbeat-replica-<identity>`` in the lease namespace every
2 s (like the leader's, ``kube.leasing``) and releases it on a clean shutdown (a last
renewal with ``holderIdentity`` emptied; the leader deletes it once stale, as it does a
crashed replica's). Its ``acquireTime`` is the replica's first renewal, ``renewTime`` its
latest, and the annotation ``heartbeat.dev/gaps`` lists the intervals of at least 10 s
between two of its successful renewals: the API server was unreachable from it (or the
process stood still).

An **outage** is an interval of at least 10 s in which no replica's Lease was renewed.
The leader finds them as the gaps between what the replicas covered (each Lease from
``acquireTime`` to ``renewTime`` less its gaps, plus the leadership Lease's last
``renewTime`` seen before taking over, which a clean shutdown leaves behind) and records
each, once ended, in the annotation ``heartbeat.dev/outages`` of the leadership Lease
(a JSON list of ``{start, end}``), written with its next renewal. So:

- every replica stopped: the outage runs from the newest ``renewTime`` left behind to the
  first renewal of the replica that starts again. Released Leases are left behind for
  this: deleted, they took with them the time their replicas served, and a crashed
  replica's older Lease then made a false outage of it;
- the API server unreachable from every replica: each replica's gap, and no other
  replica's renewal inside it.

Everything that folds a monitor (``engine.folding`` through the writer, the leader's
scheduler) judges with ``Replicas.outages()``: the recorded list, this replica's own gaps,
and — while its own renewals have failed for 10 s or more — the open interval since its
last renewal, so a write that goes through the moment the API server is back never
judges a slot missed before the leader has recorded the outage. The leader's scheduler
waits for ``prepare()`` (a renewal and a recording pass) before judging anything.
Recorded outages are kept while a window that overlaps one may still be judged
(``earliest_open``: the earliest ``nextDueTime`` or open run's start of any monitor).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections.abc import Callable
from typing import Any

from heartbeat_operator.domain.outages import (
    MIN_OUTAGE,
    Outage,
    counted,
    from_json,
    merge,
    minus,
    to_json,
    uncovered,
)
from heartbeat_operator.domain.timefmt import TimeFormatError, parse_time
from heartbeat_operator.engine.api import REPLICA_LEASE_PREFIX, ApiError, lease_path
from heartbeat_operator.kube.client import KubeClient
from heartbeat_operator.kube.leasing import Leadership, micro_time
from heartbeat_operator.logthrottle import Throttle
from heartbeat_operator.settings import LeadershipSettings

logger = logging.getLogger(__name__)

#: Label of every replica Lease: the leader lists them by it.
REPLICA_LABEL = "heartbeat.dev/replica"
#: On a replica's own Lease: its renewal gaps (JSON list of ``{start, end}``).
GAPS_ANNOTATION = "heartbeat.dev/gaps"
#: On the leadership Lease: the recorded outages (JSON list of ``{start, end}``).
OUTAGES_ANNOTATION = "heartbeat.dev/outages"
#: A replica keeps its own gaps this long: the leader (there is one within 8 s while any
#: replica runs) records them within a renewal or two.
GAP_RETENTION = datetime.timedelta(minutes=10)
#: Replica Leases not renewed for this long are deleted by the leader (a crashed replica
#: leaves its Lease behind; its renewTime matters only until the outage is recorded).
STALE_LEASE = datetime.timedelta(minutes=10)
#: Recorded outages ended this recently are kept whatever the monitors say (their status
#: may not show the slot the outage overlapped yet).
RECENT_OUTAGE = datetime.timedelta(minutes=5)
#: At most this many outages are recorded (the annotation stays small).
MAX_OUTAGES = 50
PREPARE_RETRY = 1.0  # s between attempts of ``prepare`` while the API is unreachable


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _time(value: Any) -> datetime.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_time(value)
    except TimeFormatError:
        return None


class Replicas:
    """This replica's Lease, and (when leading) the recording of outages."""

    def __init__(
        self,
        client: KubeClient,
        leadership: Leadership,
        *,
        namespace: str,
        identity: str,
        interval: float = LeadershipSettings.renew_interval,
        duration: float = LeadershipSettings.lease_duration,
        now: Callable[[], datetime.datetime] = _now,
        earliest_open: Callable[[], datetime.datetime | None] | None = None,
    ) -> None:
        self.client = client
        self.leadership = leadership
        self.namespace = namespace
        self.identity = identity
        self.name = REPLICA_LEASE_PREFIX + identity
        self.interval = interval
        self.duration = duration
        self._now = now
        self._earliest_open = earliest_open
        self._first: datetime.datetime | None = None
        self._last_ok: datetime.datetime | None = None
        self._gaps: list[Outage] = []
        self._version: str | None = None
        #: Coverage of replica Leases seen while leading: a Lease deleted by the stale
        #: sweep still says that replica renewed until then.
        self._seen: dict[str, list[tuple[datetime.datetime, datetime.datetime]]] = {}
        #: Outages this replica found at its start (every replica was stopped before):
        #: judged with at once, before the leader has recorded them.
        self._at_start: list[Outage] = []
        self._log = Throttle(logger)
        self.started = False
        """Whether the first renewal and the look for an outage before it are done:
        readiness waits for it, so no ping is written before the outage is known."""

    # --- what every fold uses --------------------------------------------------------

    def outages(self) -> list[Outage]:
        """The recorded outages, this replica's own gaps, and its current one (if its
        renewals have failed for 10 s or more): what deadlines are judged against."""
        known = self._recorded()
        mine = self._gaps + self._at_start
        now = self._now()
        if self._last_ok is not None and now - self._last_ok >= MIN_OUTAGE:
            mine.append(Outage(self._last_ok, now))
        return merge(counted(known + mine))

    def _recorded(self) -> list[Outage]:
        """The leadership Lease's annotation, parsed once per value (every write asks)."""
        text = self.leadership.annotations.get(OUTAGES_ANNOTATION)
        if text != self._parsed[0]:
            self._parsed = (text, from_json(text))
        return self._parsed[1]

    _parsed: tuple[str | None, list[Outage]] = (None, [])

    # --- this replica's Lease --------------------------------------------------------

    def _body(
        self, now: datetime.datetime, gaps: list[Outage], holder: str | None = None
    ) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "name": self.name,
            "namespace": self.namespace,
            "labels": {
                REPLICA_LABEL: "true",
                "app.kubernetes.io/managed-by": "heartbeat-operator",
            },
            "annotations": {GAPS_ANNOTATION: to_json(gaps)},
        }
        if self._version is not None:
            meta["resourceVersion"] = self._version
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": meta,
            "spec": {
                "holderIdentity": self.identity if holder is None else holder,
                "leaseDurationSeconds": int(self.duration),
                "acquireTime": micro_time(self._first or now),
                "renewTime": micro_time(now),
            },
        }

    def _kept_gaps(self, now: datetime.datetime) -> list[Outage]:
        return [g for g in self._gaps if now - g.end < GAP_RETENTION]

    async def renew(self) -> None:
        """Write this replica's Lease; a gap of 10 s or more since the last successful
        renewal goes into its annotation in the same write. Raises ``ApiError``."""
        now = self._now()
        gaps = self._kept_gaps(now)
        gap = None
        if self._last_ok is not None and now - self._last_ok >= MIN_OUTAGE:
            gap = Outage(self._last_ok, now)
            gaps.append(gap)
        body = self._body(now, gaps)
        path = lease_path(self.namespace)
        try:
            if self._version is None:
                written = await self.client.post(path, body, kind="leases")
            else:
                written = await self.client.put(
                    lease_path(self.namespace, self.name), body, kind="leases"
                )
        except ApiError as exc:
            if exc.conflict or exc.not_found:
                # Someone deleted or rewrote it (the leader's stale sweep), or a previous
                # process with the same --identity left it: read it back (keeping what it
                # covered, which this write replaces), the next round writes over it.
                self._version = await self._current_version()
            raise
        self._version = (written.get("metadata") or {}).get("resourceVersion")
        self._first = self._first or now
        self._last_ok = now
        self._gaps = gaps
        if gap is not None:  # said once, when written: not at every failed attempt
            logger.warning(
                "replica Lease %s renewed after %.0f s without a renewal: an outage of ours",
                self.name,
                gap.duration.total_seconds(),
            )

    async def _current_version(self) -> str | None:
        try:
            lease = await self.client.get(lease_path(self.namespace, self.name), kind="leases")
        except ApiError:
            return None
        if self._first is None:
            self._remember(lease, self._now())
        return (lease.get("metadata") or {}).get("resourceVersion")

    def _remember(self, lease: dict[str, Any], now: datetime.datetime) -> bool:
        """Note what a replica Lease covered; whether it was not renewed for a long time."""
        meta = lease.get("metadata") or {}
        spec = lease.get("spec") or {}
        name = str(meta.get("name") or "")
        first, last = _time(spec.get("acquireTime")), _time(spec.get("renewTime"))
        if not name or first is None or last is None:
            return False
        gaps = from_json((meta.get("annotations") or {}).get(GAPS_ANNOTATION))
        # A previous life of this identity: keyed apart, so this replica's own entry does
        # not replace it.
        key = name if self._first is not None or name != self.name else name + "/before"
        self._seen[key] = minus(first, last, gaps)
        return now - last >= STALE_LEASE

    async def release(self) -> None:
        """A clean shutdown (DESIGN 10.8.9): a last renewal with ``holderIdentity``
        emptied, as a leader election's release does. An empty holder is a replica gone
        (``engine.journal``: its journal goes to the leader at once); the Lease stays
        until the leader's stale sweep, so a restart of every replica still knows until
        when this one served."""
        if self._version is None:
            return
        now = self._now()
        try:
            await self.client.put(
                lease_path(self.namespace, self.name),
                self._body(now, self._kept_gaps(now), holder=""),
                kind="leases",
            )
        except ApiError as exc:
            if not exc.not_found:
                logger.warning("replica Lease %s: release failed: %s", self.name, exc)

    async def run(self, stop: asyncio.Event) -> None:
        """Renew every ``interval``, and record outages while leading, until ``stop``."""
        while not stop.is_set():
            try:
                await self.renew()
                if not self.started:
                    await self.start()
                if self.leadership.is_leader():
                    await self.record()
            except ApiError as exc:
                # Every 2 s while the API is unreachable: one line per 10 s (issue 18 item 6).
                self._log.log("renewal", logging.WARNING, "replica Lease %s: %s", self.name, exc)
            except Exception:
                logger.exception("replica Lease %s: unexpected error", self.name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)

    async def start(self) -> None:
        """After the first renewal: the gap since the newest renewal any Lease shows is
        an outage if it is 10 s or more (every replica was stopped). Kept locally until
        the leader (maybe this replica) has recorded it."""
        if not self.leadership.is_leader():
            try:
                lease = await self.client.get(
                    lease_path(self.namespace, self.leadership.config.name), kind="leases"
                )
                self._released = (lease.get("spec") or {}).get("renewTime")
            except ApiError as exc:
                if not exc.not_found:
                    raise
        self._at_start = await self._find(self._now())
        self.started = True

    _released: str | None = None

    async def prepare(self) -> None:
        """Before a new leader judges anything: renew (so a gap of our own is known) and
        record what the Leases say, retried until the API answers (DESIGN 10.8.9)."""
        while True:
            try:
                await self.renew()
                await self.record()
                return
            except ApiError as exc:
                logger.warning("recording outages before judging: %s; retrying", exc)
            except Exception:
                logger.exception("recording outages before judging failed; retrying")
            await asyncio.sleep(PREPARE_RETRY)

    # --- the leader's recording ------------------------------------------------------

    async def record(self) -> list[Outage]:
        """Find ended outages in the replica Leases, add them to the recorded list, prune
        it, and put it in the leadership Lease's annotations (written with its next
        renewal). Returns the recorded list."""
        now = self._now()
        stale: list[str] = []
        found = await self._find(now, stale)
        known = from_json(self.leadership.annotations.get(OUTAGES_ANNOTATION))
        # As the annotation keeps them (milliseconds): an outage found with a Lease's
        # microseconds is then the one already recorded, not a new one every round.
        recorded = from_json(
            to_json(self._prune(merge(counted(known + found + self._at_start)), now))
        )
        for outage in recorded:
            if outage not in known:
                logger.warning(
                    "recorded an outage of the operator from %s to %s (%.0f s): slots "
                    "overlapping it are judged OperatorUnavailable",
                    outage.start.isoformat(),
                    outage.end.isoformat(),
                    outage.duration.total_seconds(),
                )
        text = to_json(recorded)
        if recorded or OUTAGES_ANNOTATION in self.leadership.annotations:
            self.leadership.annotations[OUTAGES_ANNOTATION] = text
        self._at_start = []  # recorded now (or pruned): the annotation has them
        for name in stale:
            self._seen.pop(name, None)
            self._seen.pop(name + "/before", None)
            with contextlib.suppress(ApiError):
                await self.client.delete(lease_path(self.namespace, name), kind="leases")
        return recorded

    async def _find(self, now: datetime.datetime, stale: list[str] | None = None) -> list[Outage]:
        """The gaps of 10 s or more no replica Lease covered (names of Leases not renewed
        for ``STALE_LEASE`` go into ``stale``)."""
        listed = await self.client.get(
            lease_path(self.namespace),
            kind="leases",
            params={"labelSelector": f"{REPLICA_LABEL}=true"},
        )
        for lease in listed.get("items") or ():
            name = str((lease.get("metadata") or {}).get("name") or "")
            old = self._remember(lease, now)
            if old and stale is not None and name != self.name:
                stale.append(name)
        covered = [span for spans in self._seen.values() for span in spans]
        for text in (self.leadership.last_seen_renew_time, self._released):
            released = _time(text)
            if released is not None:
                covered.append((released, released))
        return uncovered(covered)

    def _prune(self, outages: list[Outage], now: datetime.datetime) -> list[Outage]:
        """Keep an outage while a window overlapping it may still be judged (DESIGN
        10.8.9): one that ended lately, or one ending after the earliest ``nextDueTime``
        or open run's start of any monitor (``earliest_open``); a later window cannot
        overlap it, a later run's deadline cannot fall in it."""
        if all(now - o.end < RECENT_OUTAGE for o in outages):
            return outages[-MAX_OUTAGES:]  # no need to look at every monitor
        earliest = self._earliest_open() if self._earliest_open is not None else None
        kept = [
            o
            for o in outages
            if now - o.end < RECENT_OUTAGE or (earliest is not None and o.end >= earliest)
        ]
        return kept[-MAX_OUTAGES:]
