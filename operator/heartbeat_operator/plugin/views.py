"""What ``kubectl heartbeat list`` and ``describe`` print: pure, ``now`` is a parameter.

Each function takes the monitor objects as the API returned them (dicts) and returns
text; colour is asked for by the caller (only on a terminal, never with ``NO_COLOR``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from heartbeat_operator.domain.durations import format_duration
from heartbeat_operator.domain.specs import SpecError, parse_spec
from heartbeat_operator.domain.timefmt import TimeFormatError, format_local, parse_time


def zone_of(time_zone: str | None) -> ZoneInfo | None:
    """The IANA zone a spec names; None for UTC (absent) or a name this machine lacks
    (the operator reports that one as InvalidTimeZone; here times just show in UTC)."""
    if not time_zone:
        return None
    try:
        return ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def local_time(value: datetime, time_zone: str | None, *, utc_too: bool = False) -> str:
    """``Mon 2026-12-07 09:30 EST`` in the monitor's zone (``domain.timefmt.format_local``);
    ``utc_too`` adds ``(14:30 UTC)``."""
    return format_local(value, zone_of(time_zone), utc=utc_too)


#: ANSI colours per state (DESIGN section 2's states); New and Paused stay plain.
STATE_COLOURS = {"Healthy": "32", "Grace": "33", "Down": "31;1", "Paused": "36"}
#: How many next due times ``describe`` shows: enough to see a weekly pattern or a DST day.
NEXT_DUE_COUNT = 3


def ago(value: str | None, now: datetime) -> str:
    """``3m ago`` for an RFC 3339 time (``-`` when absent or unreadable)."""
    when = _time(value)
    if when is None:
        return "-"
    delta = now - when
    if delta < timedelta(0):
        return "in " + _short(-delta)
    return _short(delta) + " ago"


def _short(delta: timedelta) -> str:
    """The largest unit or two, as kubectl's AGE column: ``42s``, ``3m``, ``2h5m``, ``4d``."""
    total = int(delta.total_seconds())
    if total < 60:
        return f"{total}s"
    if total < 3600:
        return f"{total // 60}m"
    if total < 86400:
        hours, minutes = divmod(total // 60, 60)
        return f"{hours}h{minutes}m" if minutes and hours < 10 else f"{hours}h"
    days, hours = divmod(total // 3600, 24)
    return f"{days}d{hours}h" if hours and days < 10 else f"{days}d"


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_time(value)
    except TimeFormatError:
        return None


def condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for item in (obj.get("status") or {}).get("conditions") or ():
        if isinstance(item, Mapping) and item.get("type") == kind:
            return item
    return {}


def state_of(obj: Mapping[str, Any]) -> str:
    return str((obj.get("status") or {}).get("state") or "Unknown")


def reason_of(obj: Mapping[str, Any]) -> str:
    ready = condition(obj, "Ready")
    if ready.get("status") == "False":
        return str(ready.get("reason") or "-")
    return str(condition(obj, "Healthy").get("reason") or "-")


def schedule_text(spec: Mapping[str, Any]) -> str:
    """``0 2 * * * (Europe/Berlin)`` or ``every 1h``."""
    if spec.get("schedule"):
        return f"{spec['schedule']} ({spec.get('timeZone') or 'UTC'})"
    if spec.get("period"):
        return f"every {spec['period']}"
    return "-"


def next_due_text(obj: Mapping[str, Any]) -> str:
    """The next due time in the monitor's zone with the date; why there is none else."""
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    zone = spec.get("timeZone")
    if status.get("state") == "Paused" or status.get("pausedSince"):
        until = _time(status.get("pausedUntil"))
        return f"paused until {local_time(until, zone)}" if until else "paused"
    due = _time(status.get("nextDueTime"))
    return local_time(due, zone) if due else "-"


def paint(text: str, state: str, colour: bool) -> str:
    code = STATE_COLOURS.get(state)
    if not colour or code is None:
        return text
    return f"\x1b[{code}m{text}\x1b[0m"


def table(rows: Sequence[Sequence[str]], widths_of: Sequence[Sequence[str]] | None = None) -> str:
    """Columns separated by three spaces, as kubectl prints; ``widths_of`` are the rows
    without colour codes (the width of what shows)."""
    plain = widths_of or rows
    widths = [max(len(r[i]) for r in plain) for i in range(len(plain[0]))]
    lines = []
    for row, shown in zip(rows, plain, strict=True):
        cells = [
            cell + " " * (widths[i] - len(shown[i])) if i < len(row) - 1 else cell
            for i, cell in enumerate(row)
        ]
        lines.append("   ".join(cells).rstrip())
    return "\n".join(lines)


def list_table(
    monitors: Sequence[Mapping[str, Any]], now: datetime, *, all_namespaces: bool, colour: bool
) -> str:
    header = ["NAME", "STATE", "REASON", "LAST PING", "NEXT DUE", "SCHEDULE"]
    if all_namespaces:
        header.insert(0, "NAMESPACE")
    plain: list[list[str]] = [header]
    shown: list[list[str]] = [header]
    for obj in monitors:
        meta = obj.get("metadata") or {}
        state = state_of(obj)
        row = [
            str(meta.get("name")),
            state,
            reason_of(obj),
            ago((obj.get("status") or {}).get("lastPingTime"), now),
            next_due_text(obj),
            schedule_text(obj.get("spec") or {}),
        ]
        if all_namespaces:
            row.insert(0, str(meta.get("namespace")))
        plain.append(row)
        coloured = list(row)
        index = 2 if all_namespaces else 1
        coloured[index] = paint(state, state, colour)
        shown.append(coloured)
    return table(shown, plain)


def _first_line(text: Any, width: int = 60) -> str:
    if not isinstance(text, str) or not text.strip():
        return ""
    line = next(ln for ln in text.splitlines() if ln.strip()).strip()
    return line if len(line) <= width else line[: width - 1] + "…"


def _seconds(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return format_duration(timedelta(seconds=round(value))) if value >= 1 else f"{value}s"
    return ""


def describe_text(obj: Mapping[str, Any], now: datetime, *, colour: bool) -> str:
    """``kubectl heartbeat describe``: a readable history of one monitor."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    zone = spec.get("timeZone")
    state = state_of(obj)
    healthy = condition(obj, "Healthy")
    out = [
        f"Name:          {meta.get('name')}",
        f"Namespace:     {meta.get('namespace')}",
        f"State:         {paint(state, state, colour)} ({reason_of(obj)})"
        + (f" since {ago(status.get('stateSince'), now)}" if status.get("stateSince") else ""),
    ]
    message = healthy.get("message") or status.get("stateMessage")
    ready = condition(obj, "Ready")
    if ready.get("status") == "False":
        message = ready.get("message") or message
    if message:
        out.append(f"Message:       {message}")
    out.append(f"Schedule:      {schedule_text(spec)}, grace {spec.get('grace', '5m')}")
    if status.get("pausedUntil"):
        until = _time(status["pausedUntil"])
        if until is not None:
            out.append(
                f"Paused until:  {local_time(until, zone, utc_too=True)} "
                f"({ago(status['pausedUntil'], now)})"
            )
    last = status.get("lastPingTime")
    out.append(f"Last ping:     {_when(last, zone, now)}")
    for label, key in (("Last success", "lastSuccessTime"), ("Last failure", "lastFailureTime")):
        if status.get(key):
            out.append(f"{label + ':':<15}{_when(status[key], zone, now)}")
    counts = f"{status.get('pingCount', 0)} pings, {status.get('missedRuns', 0)} missed runs"
    if status.get("consecutiveFailures"):
        counts += f", {status['consecutiveFailures']} consecutive failures"
    out.append(f"Counts:        {counts}")
    out.extend(_next_due_lines(obj, now))

    pings = [p for p in status.get("recentPings") or () if isinstance(p, Mapping)]
    out.append("")
    out.append("Recent pings:")
    if pings:
        rows = [["TIME", "AGE", "KIND", "EXIT", "DURATION", "RUN ID", "BODY"]]
        for ping in pings:
            rows.append(
                [
                    _local(ping.get("time"), zone),
                    ago(ping.get("time"), now),
                    str(ping.get("kind", "")),
                    "" if ping.get("exitCode") is None else str(ping["exitCode"]),
                    _seconds(ping.get("durationSeconds")),
                    str(ping.get("runId") or ""),
                    _first_line(ping.get("body")),
                ]
            )
        out.extend("  " + line for line in table(rows).splitlines())
    else:
        out.append("  (none)")

    transitions = [t for t in status.get("recentTransitions") or () if isinstance(t, Mapping)]
    out.append("")
    out.append("Recent transitions:")
    if transitions:
        rows = [["TIME", "AGE", "STATE", "REASON", "MESSAGE"]]
        for item in transitions:
            rows.append(
                [
                    _local(item.get("time"), zone),
                    ago(item.get("time"), now),
                    str(item.get("state", "")),
                    str(item.get("reason", "")),
                    _first_line(item.get("message"), 100),
                ]
            )
        out.extend("  " + line for line in table(rows).splitlines())
    else:
        out.append("  (none)")

    output = status.get("lastOutput")
    if isinstance(output, Mapping) and output.get("body"):
        out.append("")
        out.append(
            f"Last output ({output.get('kind')}, {_local(output.get('time'), zone)}, "
            f"{ago(output.get('time'), now)}):"
        )
        out.extend("  " + line for line in str(output["body"]).rstrip("\n").splitlines())
    return "\n".join(out)


def _local(value: Any, zone: str | None) -> str:
    when = _time(value)
    return local_time(when, zone) if when else "-"


def _when(value: Any, zone: str | None, now: datetime) -> str:
    when = _time(value)
    if when is None:
        return "never"
    return f"{local_time(when, zone, utc_too=True)} ({ago(value, now)})"


def _next_due_lines(obj: Mapping[str, Any], now: datetime) -> list[str]:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    zone = spec.get("timeZone")
    due = _time(status.get("nextDueTime"))
    alert = _time(status.get("alertTime"))
    if due is None:
        return [f"Next due:      {next_due_text(obj)}"]
    shown = local_time(due, zone, utc_too=True)
    lines = [f"Next due:      {shown} ({ago(status['nextDueTime'], now)})"]
    if alert is not None:
        lines.append(f"Missed after:  {local_time(alert, zone, utc_too=True)}")
    try:
        parsed = parse_spec(spec)
    except SpecError:
        return lines
    later = [s.due for s in parsed.slots.upcoming(due, NEXT_DUE_COUNT - 1)]
    if later:
        lines.append("Then:          " + ", ".join(local_time(t, zone) for t in later))
    return lines


def utc_now() -> datetime:
    return datetime.now(UTC)
