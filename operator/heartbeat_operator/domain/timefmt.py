"""Time formats of DESIGN 9.18: ``YYYY-MM-DDTHH:MM:SS[.mmm]Z`` in UTC, seconds as numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


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
