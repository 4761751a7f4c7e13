"""The seam between the ping receiver and the Kubernetes writer.

The receiver (``heartbeat_operator.receiver``) turns an HTTP request into a
``domain`` ping and hands it to a ``PingRecorder``; the Kubernetes side
(``heartbeat_operator.kube``) implements the recorder: token lookup, group commit, the
status write. The receiver maps each outcome below to an HTTP status, and nothing else
crosses this seam, so neither side imports the other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from heartbeat_operator.domain.inputs import Ping


class RecordingError(Exception):
    """A ping was not recorded; nothing was counted. Messages never contain the token."""


class UnknownToken(RecordingError):
    """No monitor has this token (after the index-miss wait). HTTP 404."""


class IndexLoading(RecordingError):
    """The token index does not hold the initial list of monitors yet, so an unknown token
    may still be a valid one (issue 18 item 4). HTTP 503 with ``Retry-After``, never 404."""


class Overloaded(RecordingError):
    """Too many pings are waiting for this monitor's next write. HTTP 429, Retry-After: 1."""


class WriteTimeout(RecordingError):
    """The write carrying the ping did not succeed in time. HTTP 503, Retry-After: 5."""


class JournalFull(RecordingError):
    """The replica's journal has no room for the ping (DESIGN 10.8.12): HTTP 503 with
    ``Retry-After: 1``, never a ``200`` that was not stored."""


class PingRecorder(Protocol):
    async def record(self, token: str, ping: Ping) -> None:
        """Return once ``ping`` is durably written in the API: in the monitor's status, or
        with the journal on (DESIGN 10.7) in the replica's journal.

        Raises ``UnknownToken``, ``IndexLoading``, ``Overloaded``, ``WriteTimeout`` or
        ``JournalFull``.
        """
        ...
