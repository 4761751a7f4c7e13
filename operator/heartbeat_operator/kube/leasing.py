"""Leadership: the ``coordination.k8s.io/v1`` Lease that picks the replica writing time.

DESIGN 9.1: Lease ``heartbeat-operator`` in the lease namespace, holder
``<hostname>_<pid>``, duration 8 s, renewed every 2 s; a leader that could not renew for
6 s stops leading (and keeps serving pings); SIGTERM releases it so a successor need not
wait out the duration.

As in client-go's leader election, a follower judges expiry by its *own* monotonic clock
from the moment it last saw the Lease change, never by comparing ``renewTime`` with its
wall clock, so clock skew between replicas cannot cause two leaders.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
import time
from collections.abc import Callable
from typing import Any

from heartbeat_operator.engine.api import ApiError, lease_path
from heartbeat_operator.kube.client import KubeClient
from heartbeat_operator.logthrottle import Throttle
from heartbeat_operator.settings import LeadershipSettings, Settings

logger = logging.getLogger(__name__)


def micro_time(now: datetime.datetime | None = None) -> str:
    """A ``MicroTime`` string, as the Lease API wants it."""
    now = now or datetime.datetime.now(datetime.UTC)
    return now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclasses.dataclass(frozen=True)
class LeaseConfig:
    """The leadership Lease (DESIGN 9.1). Each default is the setting's own
    (``settings.LeadershipSettings``; issue 14 item 5); ``from_settings`` builds it."""

    namespace: str
    name: str
    identity: str
    duration: float = LeadershipSettings.lease_duration
    renew_interval: float = LeadershipSettings.renew_interval
    renew_deadline: float = LeadershipSettings.renew_deadline

    @classmethod
    def from_settings(cls, settings: Settings) -> LeaseConfig:
        lease = settings.leadership
        return cls(
            namespace=settings.watching.lease_namespace,
            name=lease.lease_name,
            identity=lease.holder,
            duration=lease.lease_duration,
            renew_interval=lease.renew_interval,
            renew_deadline=lease.renew_deadline,
        )


def build_lease(
    config: LeaseConfig, *, transitions: int, acquire_time: str, renew_time: str
) -> dict[str, Any]:
    """The Lease body this replica writes when it holds the lease."""
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": config.name, "namespace": config.namespace},
        "spec": {
            "holderIdentity": config.identity,
            "leaseDurationSeconds": int(config.duration),
            "acquireTime": acquire_time,
            "renewTime": renew_time,
            "leaseTransitions": transitions,
        },
    }


class Leadership:
    """Acquire, renew and release the Lease; tell listeners when leadership changes."""

    def __init__(
        self,
        client: KubeClient,
        config: LeaseConfig,
        *,
        on_change: Callable[[bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.config = config
        self._on_change = on_change
        self._clock = clock
        self._log = Throttle(logger)
        self._leading = False
        self._last_renew: float | None = None
        # What we last saw of someone else's Lease, and when (our clock).
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self._wake = asyncio.Event()
        self.annotations: dict[str, str] = {}
        """The Lease's annotations: the leader's notes to its successors (e.g. which ping
        URLs the Secrets hold). Loaded on takeover, written with every renewal."""
        self.last_seen_renew_time: str | None = None
        """The Lease's ``renewTime`` as last read while not leading: when the previous
        holder last renewed (or released) it. Outages after a restart of every replica
        start there when no replica Lease is left (``kube.replicas``, DESIGN 10.8.9)."""

    def is_leader(self) -> bool:
        """Whether this replica leads now (also false once renewals failed for 6 s)."""
        if not self._leading or self._last_renew is None:
            return False
        return self._clock() - self._last_renew < self.config.renew_deadline

    def _set_leading(self, leading: bool) -> None:
        if leading != self._leading:
            self._leading = leading
            logger.info("leadership %s (%s)", "acquired" if leading else "lost", self.config.name)
            if self._on_change is not None:
                try:
                    self._on_change(leading)
                except Exception:
                    logger.exception("leadership listener failed")

    async def run(self, stop: asyncio.Event) -> None:
        """Try to acquire or renew every ``renew_interval`` until ``stop`` is set."""
        while not stop.is_set():
            try:
                async with asyncio.timeout(self._attempt_timeout()):
                    await self.try_acquire_or_renew()
            except TimeoutError:
                # A request that hangs (an API server black-holed) must not keep a leader
                # leading past the renew deadline, while a follower may take over at the
                # duration: the client's own timeout (10 s) is longer than both.
                self._log.log(
                    "lease", logging.WARNING, "lease %s: no answer in time", self.config.name
                )
            except ApiError as exc:
                # Every 2 s while the API is unreachable: one line per 10 s (issue 18 item 6).
                self._log.log("lease", logging.WARNING, "lease %s: %s", self.config.name, exc)
            except Exception:
                logger.exception("lease %s: unexpected error", self.config.name)
            if self._leading and not self.is_leader():
                self._set_leading(False)  # could not renew within the deadline (DESIGN 9.1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.renew_interval)

    def _attempt_timeout(self) -> float:
        """Seconds one acquire-or-renew may take: a leader's, until its renew deadline
        (DESIGN 9.1: it stops leading 6 s after its last renewal); a follower's, the
        Lease's duration (a slow API server must not keep every follower from taking an
        expired Lease)."""
        if self._leading and self._last_renew is not None:
            left = self.config.renew_deadline - (self._clock() - self._last_renew)
            return max(0.05, left)
        return max(0.05, self.config.duration)

    async def try_acquire_or_renew(self) -> bool:
        cfg = self.config
        path = lease_path(cfg.namespace, cfg.name)
        now = micro_time()
        try:
            lease = await self.client.get(path, kind="leases")
        except ApiError as exc:
            if not exc.not_found:
                raise
            body = build_lease(cfg, transitions=0, acquire_time=now, renew_time=now)
            try:
                await self.client.post(lease_path(cfg.namespace), body, kind="leases")
            except ApiError as create_exc:
                if create_exc.conflict:
                    return False  # someone else created it first; look again next round
                raise
            self._renewed()
            return True

        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        transitions = int(spec.get("leaseTransitions") or 0)
        meta = lease.get("metadata") or {}
        if not self._leading:
            self.annotations = dict(meta.get("annotations") or {})
            self.last_seen_renew_time = spec.get("renewTime")
        if holder == cfg.identity and self._leading:
            body = build_lease(
                cfg,
                transitions=transitions,
                acquire_time=spec.get("acquireTime") or now,
                renew_time=now,
            )
        else:
            observed = (holder, spec.get("renewTime"), meta.get("resourceVersion"))
            if observed != self._observed:
                self._observed = observed
                self._observed_at = self._clock()
            duration = float(spec.get("leaseDurationSeconds") or cfg.duration)
            expired = self._clock() - self._observed_at >= duration
            if holder and holder != cfg.identity and not expired:
                return False
            # Free, expired, or ours from a previous life of this identity: take it.
            body = build_lease(
                cfg,
                transitions=transitions + (1 if holder != cfg.identity else 0),
                acquire_time=now,
                renew_time=now,
            )
        body["metadata"]["resourceVersion"] = meta.get("resourceVersion")
        if self.annotations:
            body["metadata"]["annotations"] = dict(self.annotations)
        try:
            await self.client.put(path, body, kind="leases")
        except ApiError as exc:
            if exc.conflict:
                return False  # another replica wrote it between our read and write
            raise
        self._renewed()
        return True

    def _renewed(self) -> None:
        self._last_renew = self._clock()
        self._set_leading(True)

    async def release(self) -> None:
        """Give the Lease up (SIGTERM, DESIGN 9.1 and 9.20) so a successor takes over now."""
        was_leading = self._leading
        self._set_leading(False)
        if not was_leading:
            return
        cfg = self.config
        path = lease_path(cfg.namespace, cfg.name)
        try:
            lease = await self.client.get(path, kind="leases")
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") != cfg.identity:
                return
            spec = {k: v for k, v in spec.items() if k not in ("holderIdentity", "acquireTime")}
            spec["leaseDurationSeconds"] = 1
            spec["renewTime"] = micro_time()
            await self.client.put(path, {**lease, "spec": spec}, kind="leases")
            logger.info("lease %s released", cfg.name)
        except ApiError as exc:
            logger.warning("lease %s: release failed: %s", cfg.name, exc)
