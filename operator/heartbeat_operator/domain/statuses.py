"""``render_status``: the whole ``status`` dict a writer PUTs, pure.

Conditions follow DESIGN fine print 4 and 9.7 and the ``metav1.Condition`` shape; each
keeps its ``lastTransitionTime`` from the previous status while its ``status`` value is
unchanged, else takes the time the rules give.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from heartbeat_operator.domain.machine import describe
from heartbeat_operator.domain.outages import OPERATOR_UNAVAILABLE
from heartbeat_operator.domain.records import MAX_MESSAGE_BYTES, Record, cut_utf8
from heartbeat_operator.domain.specs import MonitorSpec, SpecError
from heartbeat_operator.domain.timefmt import TimeFormatError, format_time, parse_time


@dataclass(frozen=True, slots=True)
class Ready:
    """The ``Ready`` condition as the caller decided it.

    ``status`` ``"True"`` with reason ``TokenReady``, or ``"False"`` with one of
    ``InvalidSchedule | InvalidTimeZone | SecretConflict | TokenConflict | WeakToken``.
    """

    status: str
    reason: str
    message: str

    @classmethod
    def from_spec_error(cls, error: SpecError) -> Ready:
        """``Ready=False`` for a spec the domain cannot evaluate."""
        return cls("False", error.reason, error.message)


READY_TOKEN = Ready("True", "TokenReady", "the ping token is ready")


def render_status(
    *,
    spec: MonitorSpec | SpecError,
    record: Record,
    now: datetime,
    generation: int,
    ready: Ready | None,
    previous: Mapping[str, Any] | None = None,
    token_hash: str | None = None,
    token_secret_name: str | None = None,
    paused: bool = False,
) -> dict[str, Any]:
    """Build the complete ``status``.

    - ``spec``: the parsed spec, or the ``SpecError`` that made it unusable (then
      ``ready`` should be ``Ready.from_spec_error(error)``).
    - ``record``: rendered exactly as it stands (nothing is settled here, so the status
      and its record agree); settle first with ``apply(..., Tick(t), now)``.
    - ``now``: the write's time: ``Ready``'s transition time when it changes.
    - ``generation``: ``metadata.generation`` -> ``observedGeneration`` (top level and on
      each condition).
    - ``ready``: None while the token is not yet in its Secret: no ``Ready`` condition
      (``kubectl wait --for=condition=Ready`` then means the ping URL can be read).
    - ``previous``: the status being replaced (``lastTransitionTime`` kept from it).
    - ``paused``: the raw ``spec.paused`` (or CronJob suspend), needed with a SpecError.

    While ``ready.status != "True"``: ``nextDueTime``/``alertTime`` absent, ``Healthy``
    Unknown ``InvalidSpec``, the state keeps its last value (``Paused`` if paused).
    """
    status = record.to_status()
    evaluable = isinstance(spec, MonitorSpec) and (ready is None or ready.status == "True")
    next_due: datetime | None = None
    alert: datetime | None = None
    if isinstance(spec, MonitorSpec):
        v = describe(spec, record)
        state, reason, message, running = v.state, v.reason, v.message, v.running
        next_due, alert = v.next_due_time, v.alert_time
    else:
        state, reason, message = record.state, record.state_reason, record.state_message
        running = record.running
    if record.paused_since is not None or (paused and not evaluable):
        state = "Paused"
    previous_conditions = _conditions_by_type(previous)

    if not evaluable:
        healthy = ("Unknown", "InvalidSpec", ready.message if ready else "")
    elif state == "Paused":
        healthy = ("Unknown", "Paused", message or "paused")
    elif state == "New":
        # A first slot judged during an outage of ours says so (DESIGN 10.8.9).
        first = reason if reason == OPERATOR_UNAVAILABLE else "AwaitingFirstPing"
        healthy = ("Unknown", first, message)
    elif state == "Down":
        healthy = ("False", reason, message)
    else:
        healthy = ("True", reason, message)
    healthy_since = record.state_since if evaluable and record.state_since else now
    prior = previous_conditions.get("Healthy")
    if prior is not None and prior.get("reason") == "InvalidSpec":
        healthy_since = now  # the spec became valid again now

    if running:
        starts = [r.start_time for r in record.open_runs if not r.timed_out]
        run_cond = ("True", "Started", f"a run started at {format_time(max(starts))} is open")
    else:
        run_cond = ("False", "Idle", "no run is open")
    running_since = record.running_changed_at or record.active_since

    conditions = [
        _condition("Healthy", healthy, healthy_since, generation, previous_conditions),
        _condition("Running", run_cond, running_since, generation, previous_conditions),
    ]
    if ready is not None:
        readiness = (ready.status, ready.reason, ready.message)
        conditions.insert(0, _condition("Ready", readiness, now, generation, previous_conditions))
    out: dict[str, Any] = {"observedGeneration": generation}
    out.update(status)
    out["state"] = state
    out["conditions"] = conditions
    if evaluable and next_due is not None and alert is not None:
        out["nextDueTime"] = format_time(next_due)
        out["alertTime"] = format_time(alert)
    if token_hash:
        out["tokenHash"] = token_hash
    if token_secret_name is None and isinstance(spec, MonitorSpec):
        token_secret_name = spec.token_secret_name
    if token_secret_name:
        out["tokenSecretName"] = token_secret_name
    return out


def _conditions_by_type(previous: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    if not previous:
        return {}
    conditions = previous.get("conditions")
    if not isinstance(conditions, list):
        return {}
    return {
        c["type"]: c
        for c in conditions
        if isinstance(c, Mapping) and isinstance(c.get("type"), str)
    }


def _condition(
    kind: str,
    value: tuple[str, str, str],
    since: datetime,
    generation: int,
    previous: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """A metav1.Condition; ``lastTransitionTime`` kept while ``status`` is unchanged."""
    status, reason, message = value
    transition = format_time(since)
    prior = previous.get(kind)
    if prior is not None:
        kept = prior.get("lastTransitionTime")
        if isinstance(kept, str) and kept:
            if prior.get("status") == status:
                transition = kept
            else:
                # never earlier than the transition it replaces
                with contextlib.suppress(TimeFormatError):
                    transition = format_time(max(since, parse_time(kept)))
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": cut_utf8(message, MAX_MESSAGE_BYTES) if message else reason,
        "lastTransitionTime": transition,
        "observedGeneration": generation,
    }
