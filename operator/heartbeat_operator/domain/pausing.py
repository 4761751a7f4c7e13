"""What a monitor's spec says about pausing, at a given instant (issue 16 item 1).

``spec.paused: true`` pauses with no end; ``spec.pausedUntil: <RFC 3339 time>`` pauses
until that time, after which the monitor resumes by itself (the machine settles the
resume at exactly that instant, ``machine._settle``, and posts ``Resumed``). When both
are set, ``paused: true`` wins: the pause has no end. A ``pausedUntil`` at or before
``now`` asks for nothing: the pause is over (the field may stay in the spec; ``kubectl
heartbeat resume`` removes it).

Pure: ``now`` is a parameter; the spec is the raw mapping, so a spec the domain cannot
evaluate otherwise (``SpecError``) still pauses as its author asked.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from heartbeat_operator.domain.inputs import (
    PAUSE_CAUSE_SPEC,
    PAUSE_CAUSE_UNTIL,
    Input,
    Pause,
    Resume,
)
from heartbeat_operator.domain.records import Record
from heartbeat_operator.domain.timefmt import TimeFormatError, parse_time

__all__ = ["paused_until", "spec_pause", "spec_pause_inputs", "spec_pauses"]

#: The pause causes that come from the monitor's own spec (a CronJob's suspend does not).
SPEC_CAUSES = (None, PAUSE_CAUSE_SPEC, PAUSE_CAUSE_UNTIL)


def paused_until(raw_spec: Mapping[str, Any]) -> datetime | None:
    """``spec.pausedUntil`` as a time; None when absent or unreadable (the CRD's
    ``format: date-time`` refuses an unreadable one; an old object's is ignored)."""
    value = raw_spec.get("pausedUntil")
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_time(value)
    except TimeFormatError:
        return None


def spec_pause(raw_spec: Mapping[str, Any], at: datetime) -> Pause | None:
    """The pause the spec asks for at ``at`` (a ``Pause`` at ``at``), or None."""
    if raw_spec.get("paused") is True:
        return Pause(at, PAUSE_CAUSE_SPEC)
    until = paused_until(raw_spec)
    if until is not None and until > at:
        return Pause(at, PAUSE_CAUSE_UNTIL, until=until)
    return None


def spec_pauses(raw_spec: Mapping[str, Any], now: datetime) -> bool:
    """Whether the spec holds the monitor paused at ``now``."""
    return spec_pause(raw_spec, now) is not None


def spec_pause_inputs(raw_spec: Mapping[str, Any], record: Record, now: datetime) -> list[Input]:
    """What the spec's pause fields ask of ``record`` at ``now``: a ``Pause`` (paused, or
    paused differently: another end), a ``Resume`` (the spec no longer holds a pause it
    made), or nothing. A pause made by a CronJob's suspend is the CronJob's to end."""
    wanted = spec_pause(raw_spec, now)
    held_by_spec = record.paused_since is not None and record.pause_cause in SPEC_CAUSES
    if wanted is not None:
        if record.paused_since is None:
            return [wanted]
        if held_by_spec and (record.pause_cause, record.paused_until) != (
            wanted.cause,
            wanted.until,
        ):
            return [wanted]
        return []
    if held_by_spec:
        return [Resume(now, record.pause_cause or PAUSE_CAUSE_SPEC)]
    return []
