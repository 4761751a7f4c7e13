"""The closed vocabularies, each defined once (issue 14 item 4).

States (DESIGN 2), ping kinds (seam 1, ``status.pingCounts`` keys), the transition Events'
reasons and types (DESIGN 9.7, 10.5) and the receiver's route classes (DESIGN 9.14). They
are ``StrEnum``: each member *is* its string, so statuses, metric labels and Event bodies
carry the same text as before, and the tuples the metrics iterate come from here. The CRD
(deploy/crds) lists the same states and ping kinds; tests/unit/test_vocabulary.py checks it.
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    """``status.state`` (DESIGN section 2); ``heartbeat_monitor_state`` is one-hot over it."""

    NEW = "New"
    HEALTHY = "Healthy"
    GRACE = "Grace"
    DOWN = "Down"
    PAUSED = "Paused"


class PingKind(StrEnum):
    """What a ping reports. ``exit`` (a finish carrying only an exit code) is still folded,
    but nothing produces it: an exit code ping is recorded as the success or failure it
    reports (``inputs.exit_code_kind``)."""

    SUCCESS = "success"
    START = "start"
    FAIL = "fail"
    LOG = "log"
    EXIT = "exit"


class EventType(StrEnum):
    """A core/v1 Event's ``type``."""

    NORMAL = "Normal"
    WARNING = "Warning"


class EventReason(StrEnum):
    """The reasons of transition Events (DESIGN 9.7, 10.5)."""

    FIRST_PING = "FirstPing"
    MISSED = "Missed"
    NEVER_PINGED = "NeverPinged"
    NOT_STARTED = "NotStarted"
    FAILED = "Failed"
    RUN_TIMEOUT = "RunTimeout"
    RAN_TOO_FAST = "RanTooFast"
    RECOVERED = "Recovered"
    PAUSED = "Paused"
    RESUMED = "Resumed"
    OPERATOR_UNAVAILABLE = "OperatorUnavailable"


#: The reasons of a slot counted as failed (DESIGN 9.7, 10.8.4), in the order an anchor
#: whose reason has scrolled out of ``recentTransitions`` is looked for: silence first.
FAILURE_REASONS: tuple[EventReason, ...] = (
    EventReason.MISSED,
    EventReason.FAILED,
    EventReason.NOT_STARTED,
    EventReason.RUN_TIMEOUT,
    EventReason.NEVER_PINGED,
    EventReason.RAN_TOO_FAST,
)

#: Event reasons posted as Warning (DESIGN 9.7): the failures; every other is Normal.
WARNING_REASONS: frozenset[EventReason] = frozenset(FAILURE_REASONS)


def event_type_for(reason: str) -> EventType:
    """The type of a transition Event with this reason."""
    return EventType.WARNING if reason in WARNING_REASONS else EventType.NORMAL


class RouteClass(StrEnum):
    """The receiver's route classes (DESIGN 9.14), the ``route`` label of its metrics;
    anything that is not a ping or probe path is ``other``."""

    PING = "ping"
    HB = "hb"
    V1 = "v1"
    API = "api"  # the pause API (issue 16 item 2)
    PROBE = "probe"
    OTHER = "other"
