"""Times as people read them: in the monitor's time zone, with the date (issue 16).

DESIGN 9.18's formats are for machines (RFC 3339 in UTC). A person planning around a
New York job due "Monday 09:30" needs that, not "14:30 UTC" without a date: these helpers
give ``Mon 2026-12-07 09:30 EST`` for a monitor's ``timeZone`` (UTC when it has none).
Used by ``kubectl heartbeat`` (``list``, ``describe``); pure, the zone is a name.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["format_local_time", "zone_of"]


def zone_of(time_zone: str | None) -> ZoneInfo | None:
    """The IANA zone named ``time_zone``; None for UTC (absent) or an unknown name."""
    if not time_zone:
        return None
    try:
        return ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def format_local_time(value: datetime, time_zone: str | None, *, utc_too: bool = False) -> str:
    """``Mon 2026-12-07 09:30 EST`` in ``time_zone`` (seconds only when not zero);
    ``utc_too`` adds ``(14:30 UTC)`` when the zone is not UTC."""
    zone = zone_of(time_zone)
    local = value.astimezone(zone or UTC)
    clock = "%H:%M" if local.second == 0 else "%H:%M:%S"
    name = local.tzname() or "UTC"
    text = f"{local.strftime('%a %Y-%m-%d ' + clock)} {name}"
    if utc_too and zone is not None and local.utcoffset():
        u = value.astimezone(UTC)
        text += f" ({u.strftime(clock)} UTC)"
    return text
