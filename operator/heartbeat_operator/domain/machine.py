"""The heartbeat state machine: a fold over a ``Record`` (DESIGN section 2, 9.4).

``apply(spec, record, input, now)`` folds one input and returns the new record with the
transitions it made (one per Event to post); ``view(spec, record, now)`` says what the
monitor looks like at ``now`` and when that can next change without new input.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from heartbeat_operator.domain.inputs import Input
from heartbeat_operator.domain.records import Record
from heartbeat_operator.domain.specs import MonitorSpec


@dataclass(frozen=True, slots=True)
class Transition:
    """A state or reason change (or a failed slot while already Down), at its exact time.

    ``state``/``reason``/``message`` are what the monitor shows after it (``reason`` is the
    ``Healthy`` condition's reason). ``event_reason`` (DESIGN 9.7: ``FirstPing``, ``Late``,
    ``Missed``, ``NeverPinged``, ``Failed``, ``RunTimeout``, ``RanTooFast``, ``Recovered``,
    ``Paused``, ``Resumed``) and ``event_type`` (``Normal``/``Warning``) say which Event to
    post; ``event_reason`` is None for a change that posts none (a start during the first
    slot's Late window returning the monitor to New). The same transition is already
    prepended to ``record.recent_transitions``.
    """

    time: datetime
    state: str
    reason: str
    message: str
    event_reason: str | None
    event_type: str


@dataclass(frozen=True, slots=True)
class View:
    """The monitor at one instant.

    ``next_due_time``/``alert_time`` are None while paused (or if the schedule never fires
    again); ``next_change_at`` is the next instant the view can change with no new input
    (the leader sleeps until then, then applies ``Tick``), None if never.
    ``running`` is the ``Running`` condition.
    """

    state: str
    reason: str
    message: str
    next_due_time: datetime | None
    alert_time: datetime | None
    next_change_at: datetime | None
    running: bool


def apply(
    spec: MonitorSpec, record: Record, input: Input, now: datetime
) -> tuple[Record, list[Transition]]:
    """Fold one input into a copy of ``record``; return it and the transitions made.

    Every input first settles the deadlines strictly before its time (like ``Tick``): a
    ping, pause or resume at the same instant as a deadline is applied first. An input
    time earlier than the record's latest transition is clamped to it (DESIGN 9.3).
    ``now`` is the caller's clock, used only to clamp times in the future... (unused
    otherwise; the input's time rules). ``SpecEdit`` is folded with the *new* spec; fold a
    ``Tick`` at the edit time with the old spec first.
    """
    raise NotImplementedError


def view(spec: MonitorSpec, record: Record, now: datetime) -> View:
    """The monitor at ``now``: deadlines before ``now`` that ``record`` has not settled yet
    are settled on a copy first, so the answer never depends on when the last Tick ran."""
    raise NotImplementedError
