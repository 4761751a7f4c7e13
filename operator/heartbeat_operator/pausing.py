"""The seam between the receiver's pause API and the Kubernetes side (issue 16 item 2).

``POST /api/v1/namespaces/<ns>/heartbeatmonitors/<name>/pause`` (``?for=30m``) and
``/resume`` let a deploy script in a Pod pause its monitor with the Pod's ServiceAccount
token instead of kubectl. The receiver (``heartbeat_operator.receiver.api``) parses the
request and maps each outcome below to an HTTP status; the Kubernetes side
(``heartbeat_operator.kube.pauses``) asks the API server who the token belongs to
(TokenReview) and whether that user may ``patch`` the monitor (SubjectAccessReview), then
patches ``spec.paused`` (and ``spec.pausedUntil``). Neither side imports the other.

The caller's token is a credential: no message here, no log line and no reply ever holds
it (CONTRIBUTING "Secrets stay secret").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class PauseError(Exception):
    """The monitor was not paused or resumed. ``str(exc)`` is a sentence for the caller."""


class Unauthenticated(PauseError):
    """The API server did not accept the bearer token (TokenReview). HTTP 401."""


class Forbidden(PauseError):
    """The token's user may not ``patch`` this monitor (SubjectAccessReview). HTTP 403."""


class MonitorNotFound(PauseError):
    """No such monitor (asked only after the caller was allowed to patch it). HTTP 404."""


class PauseUnavailable(PauseError):
    """The API server could not be asked or did not answer in time. HTTP 503."""


@dataclass(frozen=True)
class PauseRequest:
    """What a caller asked for; ``until`` only with ``paused`` (``?for=``)."""

    namespace: str
    name: str
    paused: bool
    until: datetime | None = None


@dataclass(frozen=True)
class PauseDone:
    """What was done, for the reply and the audit log line."""

    user: str  # the TokenReview's username, e.g. system:serviceaccount:ci:deployer


class PauseControl(Protocol):
    async def set_paused(self, token: str, request: PauseRequest) -> PauseDone:
        """Authenticate ``token``, authorize ``patch`` on the monitor, then patch it.

        Raises ``Unauthenticated``, ``Forbidden``, ``MonitorNotFound`` or
        ``PauseUnavailable``.
        """
        ...
