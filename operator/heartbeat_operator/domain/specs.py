"""``MonitorSpec``: a HeartbeatMonitor's ``spec``, parsed once at the edge and frozen."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from heartbeat_operator.domain.durations import DurationError, format_duration, parse_duration
from heartbeat_operator.domain.schedules import (
    PeriodSchedule,
    Schedule,
    ScheduleError,
    compile_cron,
    load_zone,
    normalize_cron,
)
from heartbeat_operator.domain.timefmt import TimeFormatError, parse_time

DEFAULT_GRACE = timedelta(minutes=5)

KNOWN_FIELDS = frozenset(
    {
        "schedule",
        "timeZone",
        "period",
        "grace",
        "maxRuntime",
        "minRuntime",
        "failureThreshold",
        "successThreshold",
        "paused",
        "pausedUntil",
        "tokenSecretName",
    }
)


class SpecError(ValueError):
    """A spec the domain cannot evaluate.

    ``reason``: ``InvalidSchedule`` or ``InvalidTimeZone`` (the DESIGN 9.7 ``Ready=False``
    reasons for what the CRD schema cannot check), or ``InvalidSpec`` for what the schema
    normally rejects (``simulate`` reads files the API server never saw).
    ``field``: the offending field's path, e.g. ``spec.timeZone``.
    """

    def __init__(self, reason: str, field: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.field = field
        self.message = message

    def __repr__(self) -> str:
        return f"SpecError({self.reason!r}, {self.field!r}, {self.message!r})"


@dataclass(frozen=True, slots=True)
class MonitorSpec:
    """A valid spec. Exactly one of ``period`` and ``schedule`` is set.

    ``slots`` is the compiled schedule (period or cron in ``time_zone``); ``time_zone`` is
    None for UTC. ``token_secret_name`` is the effective name (``<name>-heartbeat`` by
    default) when ``parse_spec`` was given the monitor's name, else the spec's value.
    """

    period: timedelta | None
    schedule: str | None
    time_zone: str | None
    grace: timedelta
    max_runtime: timedelta | None
    min_runtime: timedelta | None
    failure_threshold: int
    success_threshold: int
    paused: bool
    token_secret_name: str | None
    slots: Schedule = field(compare=False, repr=False)
    paused_until: datetime | None = None
    """``spec.pausedUntil``: a timed pause's end (``domain.pausing``; issue 16 item 1)."""

    @property
    def is_cron(self) -> bool:
        return self.schedule is not None

    @property
    def zone(self) -> ZoneInfo | None:
        """The ``timeZone`` messages show times in (issue 16 item 3); None for UTC."""
        return load_zone(self.time_zone)

    def describe(self) -> str:
        """``every 1h`` or ``0 2 * * * (Europe/Berlin)``, for messages."""
        if self.period is not None:
            return f"every {format_duration(self.period)}"
        return f"{self.schedule} ({self.time_zone or 'UTC'})"


def _duration(raw: Mapping[str, Any], key: str) -> timedelta | None:
    value = raw.get(key)
    if value is None:
        return None
    try:
        return parse_duration(value)
    except DurationError as exc:
        raise SpecError("InvalidSpec", f"spec.{key}", f"spec.{key}: {exc}") from None


def _threshold(raw: Mapping[str, Any], key: str) -> int:
    value = raw.get(key, 1)
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError("InvalidSpec", f"spec.{key}", f"spec.{key}: must be an integer >= 1")
    return value


#: Prefixes robfig/cron reads as a time zone; a CronJob refuses them since Kubernetes 1.27
#: and so do we: the zone has its own field (DESIGN 10.4).
_ZONE_PREFIXES = ("CRON_TZ=", "TZ=")


def _zone_prefix_error(schedule: str) -> SpecError | None:
    """A ``CRON_TZ=``/``TZ=`` prefix, refused with a pointer to ``spec.timeZone``."""
    head = schedule.strip().split(maxsplit=1)[0] if schedule.strip() else ""
    prefix = next((p for p in _ZONE_PREFIXES if head.upper().startswith(p)), None)
    if prefix is None:
        return None
    zone = head[len(prefix) :] or "<IANA zone>"
    return SpecError(
        "InvalidSchedule",
        "spec.schedule",
        f"spec.schedule must not start with {head}: put the cron line alone in "
        f"spec.schedule and set spec.timeZone: {zone}",
    )


def _compiles(expr: str) -> bool:
    try:
        compile_cron(expr, None)
    except ScheduleError:
        return False
    return True


def _never_fires(schedule: str) -> bool:
    """True when day-of-month and month are each valid but name no real date (``31 2``).

    cronsim refuses such a line as a "Bad day-of-month"; a user deserves to hear that the
    schedule would never fire (DESIGN 10.4), not that 31 is a bad day.
    """
    try:
        fields = normalize_cron(schedule).split()
    except ScheduleError:
        return False
    any_month = [*fields[:3], "*", fields[4]]
    any_day = [*fields[:2], "*", *fields[3:]]
    return _compiles(" ".join(any_month)) and _compiles(" ".join(any_day))


def _schedule_error(schedule: str, error: ScheduleError) -> SpecError:
    if error.reason == "InvalidSchedule" and _never_fires(schedule):
        return SpecError(
            "InvalidSchedule",
            "spec.schedule",
            f"spec.schedule {schedule!r} never fires: no month it names has that day of the month",
        )
    return SpecError(error.reason, error.field, error.message)


def parse_spec(raw: Mapping[str, Any], *, name: str | None = None) -> MonitorSpec:
    """Parse ``spec`` (the raw dict); raise ``SpecError`` naming the field at fault.

    Schema defaults are applied here too (``grace`` 5m, thresholds 1, ``paused`` false),
    so a spec read from a file behaves as the API server would have stored it.
    """
    if not isinstance(raw, Mapping):
        raise SpecError("InvalidSpec", "spec", "spec must be a mapping")
    unknown = sorted(str(k) for k in raw if k not in KNOWN_FIELDS)
    if unknown:
        raise SpecError("InvalidSpec", f"spec.{unknown[0]}", f"unknown field spec.{unknown[0]}")
    schedule = raw.get("schedule")
    time_zone = raw.get("timeZone")
    period = _duration(raw, "period")
    if schedule is not None and period is not None:
        raise SpecError(
            "InvalidSpec", "spec.period", "set exactly one of spec.schedule and spec.period"
        )
    if schedule is None and period is None:
        raise SpecError(
            "InvalidSpec", "spec.schedule", "set exactly one of spec.schedule and spec.period"
        )
    if time_zone is not None and schedule is None:
        raise SpecError("InvalidSpec", "spec.timeZone", "spec.timeZone needs spec.schedule")
    if schedule is not None and not isinstance(schedule, str):
        raise SpecError("InvalidSchedule", "spec.schedule", "spec.schedule must be a string")
    if time_zone is not None and not isinstance(time_zone, str):
        raise SpecError("InvalidTimeZone", "spec.timeZone", "spec.timeZone must be a string")
    slots: Schedule
    if schedule is not None:
        prefixed = _zone_prefix_error(schedule)
        if prefixed is not None:
            raise prefixed
        try:
            slots = compile_cron(schedule, time_zone)
        except ScheduleError as exc:
            raise _schedule_error(schedule, exc) from None
    else:
        assert period is not None
        slots = PeriodSchedule(period)
    grace = _duration(raw, "grace")
    paused = raw.get("paused", False)
    if paused is None:
        paused = False
    if not isinstance(paused, bool):
        raise SpecError("InvalidSpec", "spec.paused", "spec.paused must be true or false")
    until_raw = raw.get("pausedUntil")
    paused_until = None
    if until_raw is not None:
        try:
            paused_until = parse_time(until_raw)
        except TimeFormatError:
            raise SpecError(
                "InvalidSpec",
                "spec.pausedUntil",
                f"spec.pausedUntil: {until_raw!r} is not an RFC 3339 time "
                "like 2026-12-07T14:30:00Z",
            ) from None
    secret = raw.get("tokenSecretName")
    if secret is not None and (not isinstance(secret, str) or not secret):
        raise SpecError(
            "InvalidSpec", "spec.tokenSecretName", "spec.tokenSecretName must be a name"
        )
    if secret is None and name:
        secret = f"{name}-heartbeat"
    max_runtime = _duration(raw, "maxRuntime")
    min_runtime = _duration(raw, "minRuntime")
    if min_runtime is not None and max_runtime is not None and min_runtime >= max_runtime:
        # Every run would end too fast or too late: a monitor that can only fail (DESIGN 10.4).
        raise SpecError(
            "InvalidSpec",
            "spec.minRuntime",
            f"spec.minRuntime ({format_duration(min_runtime)}) must be shorter than "
            f"spec.maxRuntime ({format_duration(max_runtime)}): no run could pass both",
        )
    return MonitorSpec(
        period=period,
        schedule=schedule,
        time_zone=time_zone,
        grace=DEFAULT_GRACE if grace is None else grace,
        max_runtime=max_runtime,
        min_runtime=min_runtime,
        failure_threshold=_threshold(raw, "failureThreshold"),
        success_threshold=_threshold(raw, "successThreshold"),
        paused=paused,
        token_secret_name=secret,
        slots=slots,
        paused_until=paused_until,
    )
