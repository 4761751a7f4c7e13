"""Liveness and readiness, shared by both ports (DESIGN 9.2 and 9.20).

``/healthz`` answers 200 while the process serves at all. ``/readyz`` answers 200 when
the caller's readiness callable says so (the kube side: token index listed, API answered
in the last 10 s) and 503 from the moment shutdown begins (SIGTERM), so load balancers
stop sending pings while the ones in flight are still written and answered.
"""

from __future__ import annotations

from collections.abc import Callable


class Health:
    """One per process; both apps hold the same instance."""

    def __init__(self, readiness: Callable[[], bool] | None = None) -> None:
        self._readiness = readiness
        self._stopping = False

    @property
    def stopping(self) -> bool:
        """Whether shutdown has begun."""
        return self._stopping

    def begin_shutdown(self) -> None:
        """From now on ``/readyz`` answers 503. Idempotent; ``serving.serve`` calls it too."""
        self._stopping = True

    def ready(self) -> bool:
        if self._stopping:
            return False
        if self._readiness is None:
            return True
        try:
            return bool(self._readiness())
        except Exception:  # a broken probe means "not ready", never a 500
            return False
