"""Time formats of DESIGN 9.18: ``YYYY-MM-DDTHH:MM:SS[.mmm]Z`` in UTC, seconds as numbers;
and times people read in Event and condition messages (issue 16 item 3): the monitor's
local time with weekday, date and zone, plus UTC (``format_local``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo


class TimeFormatError(ValueError):
    """The text is not an RFC 3339 time with a zone offset."""


def format_time(value: datetime) -> str:
    """An aware datetime as ``2026-03-29T10:30:00Z`` (``.123Z`` only when ms are not zero).

    Sub-millisecond parts are truncated, never rounded up (a transition is never shown
    later than it happened).
    """
    if value.tzinfo is None:
        raise ValueError("naive datetime")
    u = value.astimezone(UTC)
    ms = u.microsecond // 1000
    base = f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}"
    return f"{base}.{ms:03d}Z" if ms else f"{base}Z"


def parse_time(text: str) -> datetime:
    """RFC 3339 (``Z`` or ``±HH:MM``; fractional seconds allowed) -> aware UTC datetime.

    Naive times are rejected: a time without an offset is ambiguous.
    """
    if not isinstance(text, str):
        raise TimeFormatError(f"{text!r} is not an RFC 3339 time")
    s = text.strip()
    if s.endswith(("z", "Z")):
        s = s[:-1] + "+00:00"
    try:
        value = datetime.fromisoformat(s)
    except ValueError:
        raise TimeFormatError(f"{text!r} is not an RFC 3339 time") from None
    if "T" not in s.upper() or value.tzinfo is None:
        raise TimeFormatError(f"{text!r} is not an RFC 3339 time with a zone (e.g. ...Z)")
    return value.astimezone(UTC)


def format_clock(value: datetime) -> str:
    """A short UTC clock for Event messages: ``02:00:14 UTC`` (``03:00 UTC`` on the minute)."""
    u = value.astimezone(UTC)
    if u.second == 0 and u.microsecond == 0:
        return f"{u.hour:02d}:{u.minute:02d} UTC"
    return f"{u.hour:02d}:{u.minute:02d}:{u.second:02d} UTC"


def seconds(value: timedelta) -> float | int:
    """A duration as a number of seconds: an int when whole (``412``), else a float."""
    total = value.total_seconds()
    return int(total) if total == int(total) else round(total, 3)


def _clock(value: datetime) -> str:
    if value.second == 0 and value.microsecond == 0:
        return f"{value.hour:02d}:{value.minute:02d}"
    return f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}"


def format_local(value: datetime, zone: tzinfo | None = None, *, utc: bool = True) -> str:
    """A time as a message shows it (issue 16 item 3): what the reader's wall clock says.

    - no zone (a period monitor, or ``timeZone`` absent/UTC): ``Mon 2026-12-07 14:30 UTC``;
    - a zone: ``Mon 2026-12-07 09:30 EST (14:30 UTC)``, the zone's abbreviation as that
      instant has it (EST in winter, EDT in summer, so a DST change shows), and the UTC
      clock for whoever reads logs and alerts in UTC; when the UTC date is another day,
      the UTC part names its weekday: ``Sun 2026-12-06 21:30 EST (Mon 02:30 UTC)``.

    Seconds only when not zero, as ``format_clock``. ``zone`` is a ``ZoneInfo`` (the
    spec's ``timeZone``, loaded by ``schedules.load_zone``); pure, no clock read.
    ``utc=False`` leaves the UTC part out (a table column: ``kubectl heartbeat list``).
    """
    if value.tzinfo is None:
        raise ValueError("naive datetime")
    u = value.astimezone(UTC)
    if zone is None:
        return f"{u:%a %Y-%m-%d} {_clock(u)} UTC"
    local = u.astimezone(zone)
    name = local.tzname() or local.strftime("%z")
    if name == "UTC":
        return f"{u:%a %Y-%m-%d} {_clock(u)} UTC"
    if not utc:
        return f"{local:%a %Y-%m-%d} {_clock(local)} {name}"
    utc_day = f"{u:%a} " if u.date() != local.date() else ""
    return f"{local:%a %Y-%m-%d} {_clock(local)} {name} ({utc_day}{_clock(u)} UTC)"
