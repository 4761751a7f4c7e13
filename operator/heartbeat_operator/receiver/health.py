"""Liveness, readiness and draining, shared by both ports (DESIGN 9.2, 9.20, 10.6).

``/healthz`` answers 200 while the process serves at all. ``/readyz`` answers 200 when
the caller's readiness callable says so (the kube side: token index listed, API answered
in the last 10 s), and 503 while the replica drains and from the moment shutdown begins
(SIGTERM), so load balancers stop sending pings while the ones in flight are still
written and answered.

Draining (DESIGN 10.6, fine print 10.8.15) is the Pod's ``preStop`` hook: ``/drain`` on
the metrics port turns ``/readyz`` to 503 at once and answers only after ``drain_delay``
seconds, while the replica keeps serving pings. The kubelet sends SIGTERM after the hook
returns, so by the time the listener closes, Service endpoints (and any load balancer
probing ``/readyz``) have moved to the other replicas: a rollout or a node drain refuses
no connection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from heartbeat_operator.settings import ServerSettings

#: Seconds after a drain's delay ended that readiness comes back if no SIGTERM followed.
#: The kubelet sends SIGTERM as soon as the ``preStop`` hook returns; a drain left without
#: one was a stray request (the metrics port is reachable by scrapers), and a replica must
#: not stay out of its Service forever because of it.
DRAIN_UNDO_AFTER = 60.0


class Health:
    """One per process; both apps hold the same instance."""

    def __init__(
        self,
        readiness: Callable[[], bool] | None = None,
        *,
        drain_delay: float = ServerSettings.drain_delay,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._readiness = readiness
        self._stopping = False
        self.drain_delay = drain_delay
        self._clock = clock
        self._drain_ends: float | None = None  # clock time the current drain's delay ends

    @property
    def stopping(self) -> bool:
        """Whether shutdown has begun."""
        return self._stopping

    @property
    def draining(self) -> bool:
        """Whether a drain holds ``/readyz`` at 503 (from ``/drain`` until shutdown, or
        until ``DRAIN_UNDO_AFTER`` seconds after its delay if no shutdown came)."""
        if self._drain_ends is None:
            return False
        return self._clock() < self._drain_ends + DRAIN_UNDO_AFTER

    def begin_shutdown(self) -> None:
        """From now on ``/readyz`` answers 503. Idempotent; ``serving.serve`` calls it too."""
        self._stopping = True

    async def drain(self) -> None:
        """Turn ``/readyz`` to 503 now; return when the drain delay has passed.

        A second call (a retried hook) joins the drain under way: it returns when the first
        one's delay ends, never later.
        """
        now = self._clock()
        if not self.draining:
            self._drain_ends = now + self.drain_delay
        remaining = (self._drain_ends or now) - now
        if remaining > 0:
            await asyncio.sleep(remaining)

    def ready(self) -> bool:
        if self._stopping or self.draining:
            return False
        if self._readiness is None:
            return True
        try:
            return bool(self._readiness())
        except Exception:  # a broken probe means "not ready", never a 500
            return False
