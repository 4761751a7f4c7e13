"""``heartbeat-operator schedule "0 2 * * *" --tz Europe/Berlin --next 5``.

Prints the next due times of a cron schedule exactly as a HeartbeatMonitor counts its
slots (the CronJob controller's tick sequence with the DST rules of DESIGN section 2), one
per line: the UTC time, then the local time in the zone. A local time that occurs twice
(fall back) is one slot; its line says that the alert is counted from the second
occurrence. Bad input: exit status 2 and a message on stderr, nothing on stdout.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from heartbeat_operator.domain.schedules import ScheduleError, compile_cron
from heartbeat_operator.domain.timefmt import TimeFormatError, format_time, parse_time

EXIT_BAD_INPUT = 2
MAX_NEXT = 1000


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = "Print a cron schedule's next due times in UTC and local time."
    parser.add_argument("schedule", help='a 5-field cron line or macro, e.g. "0 2 * * *", @daily')
    parser.add_argument(
        "--tz", default=None, metavar="ZONE", help="IANA time zone (spec.timeZone; default UTC)"
    )
    parser.add_argument("--next", type=int, default=5, metavar="N", help="how many (default 5)")
    parser.add_argument(
        "--after", metavar="TIME", help="start after this RFC 3339 time (default: now)"
    )


def main(args: argparse.Namespace) -> int:
    try:
        lines = render(args.schedule, args.tz, args.next, args.after)
    except ValueError as exc:
        print(f"heartbeat-operator schedule: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    sys.stdout.write("".join(line + "\n" for line in lines))
    sys.stdout.flush()
    return 0


def render(schedule: str, tz: str | None, count: int, after: str | None) -> list[str]:
    """The output lines; ``ValueError`` (with a message naming the field) on bad input."""
    if not 1 <= count <= MAX_NEXT:
        raise ValueError(f"--next: must be between 1 and {MAX_NEXT}")
    if after is None:
        start = datetime.now(UTC)  # a CLI may read the clock; the domain never does
    else:
        try:
            start = parse_time(after)
        except TimeFormatError as exc:
            raise ValueError(f"--after: {exc}") from None
    try:
        compiled = compile_cron(schedule, tz)
    except ScheduleError as exc:
        field = {"spec.schedule": "schedule", "spec.timeZone": "--tz"}.get(exc.field, exc.field)
        raise ValueError(f"{field}: {exc.message}") from None
    zone = compiled.zone
    lines = []
    for slot in compiled.upcoming(start, count):
        local = slot.due.astimezone(zone) if zone is not None else slot.due
        offset = local.strftime("%z")
        offset = f"{offset[:3]}:{offset[3:]}"
        name = local.tzname() or "UTC"
        line = f"{format_time(slot.due)}  {local:%Y-%m-%d %H:%M:%S} {name} ({offset})"
        if slot.alert_base != slot.due:
            line += (
                f"  repeated local time: alert counted from its second occurrence "
                f"{format_time(slot.alert_base)}"
            )
        lines.append(line)
    if not lines:
        raise ValueError(f"schedule: {schedule!r} has no due times after {format_time(start)}")
    return lines
