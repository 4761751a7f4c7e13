"""``heartbeat-operator simulate MONITOR.yaml --events FILE [--until TIME] [--from TIME]``.

Dry-runs a HeartbeatMonitor spec against a file of events by folding them through the
domain's ``apply`` (exactly what the operator does with real pings), and prints one JSON
object per line for each change of state or reason, in time order, the first being the
state at creation. Everything that happens at one instant is one line (DESIGN fine
print 12). Bad input: exit status 2, a message naming the line or field on stderr,
nothing on stdout.

Events file: one event per line, ``<RFC 3339 time> <event> [rid=<id>]`` with event one of
``success``, ``start``, ``fail``, ``log``, ``exit <code>``, ``pause``, ``resume``; blank
lines and lines starting with ``#`` are ignored. Events are applied in time order; events
at the same instant in a fixed order (start, finishes, log, pause, resume; then by name,
run id and exit code), so the order of lines in the file never changes the result.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import yaml

from heartbeat_operator.domain.inputs import (
    PAUSE_CAUSE_SPEC,
    PAUSE_CAUSE_UNTIL,
    Input,
    Pause,
    Ping,
    Resume,
    Tick,
    exit_code_kind,
)
from heartbeat_operator.domain.machine import apply, view
from heartbeat_operator.domain.records import Record
from heartbeat_operator.domain.specs import MonitorSpec, SpecError, parse_spec
from heartbeat_operator.domain.timefmt import TimeFormatError, format_time, parse_time

EXIT_BAD_INPUT = 2
_RUN_ID = re.compile(r"[A-Za-z0-9._~-]{1,64}")
_ORDER = {"start": 0, "success": 1, "fail": 1, "exit": 1, "log": 2, "pause": 3, "resume": 4}
_TICK = timedelta(microseconds=1)
# A guard against a schedule firing every minute over decades of --until.
_MAX_STEPS = 2_000_000


class InputError(Exception):
    """Bad input; the message names the file and line or field."""


@dataclass(frozen=True, slots=True)
class Event:
    time: datetime
    name: str
    run_id: str | None
    exit_code: int | None
    line: int

    def sort_key(self) -> tuple[datetime, int, str, str, int]:
        """Time, then a fixed order of kinds, then the rest: a total order on what counts."""
        code = -1 if self.exit_code is None else self.exit_code
        return (self.time, _ORDER[self.name], self.name, self.run_id or "", code)

    def to_input(self) -> Input:
        if self.name == "pause":
            return Pause(self.time, PAUSE_CAUSE_SPEC)
        if self.name == "resume":
            return Resume(self.time, PAUSE_CAUSE_SPEC)
        if self.name == "exit":
            assert self.exit_code is not None  # the parser requires one
            # as the receiver records /<code>
            kind = exit_code_kind(self.exit_code)
            return Ping(self.time, kind, exit_code=self.exit_code, run_id=self.run_id)
        named = {"success": "success", "start": "start", "fail": "fail", "log": "log"}[self.name]
        return Ping(self.time, named, run_id=self.run_id)  # type: ignore[arg-type]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = "Dry-run a HeartbeatMonitor spec against a file of events."
    parser.add_argument("monitor", metavar="MONITOR.yaml", help="a HeartbeatMonitor manifest")
    parser.add_argument(
        "--events",
        required=True,
        metavar="FILE",
        help="one event per line: '<RFC 3339 time> <event> [rid=<id>]'; "
        "event: success, start, fail, log, 'exit <code>', pause, resume",
    )
    parser.add_argument(
        "--until",
        metavar="TIME",
        help="simulate up to this RFC 3339 time (default: the last event)",
    )
    parser.add_argument(
        "--from",
        dest="from_",
        metavar="TIME",
        help="when the monitor became active (default: metadata.creationTimestamp)",
    )


def main(args: argparse.Namespace) -> int:
    try:
        lines = simulate_files(args.monitor, args.events, until=args.until, from_=args.from_)
    except InputError as exc:
        print(f"heartbeat-operator simulate: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    out = sys.stdout
    for line in lines:
        out.write(json.dumps(line) + "\n")
    out.flush()
    return 0


def simulate_files(
    monitor_path: str, events_path: str, *, until: str | None = None, from_: str | None = None
) -> list[dict[str, Any]]:
    """Read both files and simulate; raise ``InputError`` on bad input."""
    manifest = _read_manifest(monitor_path)
    spec, created = _spec_of(manifest, monitor_path)
    if from_ is not None:
        created = _option_time("--from", from_)
    if created is None:
        raise InputError(
            f"{monitor_path}: metadata.creationTimestamp is missing (or give --from TIME)"
        )
    events = parse_events(_read_text(events_path), events_path)
    end = _option_time("--until", until) if until is not None else None
    for ev in events:
        if ev.time < created:
            raise InputError(
                f"{events_path}:{ev.line}: {format_time(ev.time)} is before the monitor became "
                f"active ({format_time(created)})"
            )
    return simulate(spec, created, events, end)


def simulate(
    spec: MonitorSpec, created: datetime, events: Sequence[Event], until: datetime | None
) -> list[dict[str, Any]]:
    """The state-change lines for ``events`` folded from ``created`` up to ``until``."""
    ordered = sorted(events, key=Event.sort_key)
    if until is None:
        until = ordered[-1].time if ordered else created
    rec = Record.new(created)
    snapshots: list[tuple[datetime, dict[str, Any]]] = []
    if spec.paused:
        rec, _ = apply(spec, rec, Pause(created, PAUSE_CAUSE_SPEC), created)
    elif spec.paused_until is not None and spec.paused_until > created:
        # A timed pause (issue 16): the fold resumes it at its end by itself.
        pause = Pause(created, PAUSE_CAUSE_UNTIL, until=spec.paused_until)
        rec, _ = apply(spec, rec, pause, created)
    snapshots.append((created, _line(spec, rec, created)))
    steps = 0
    pending = [ev for ev in ordered if ev.time <= until]
    index = 0
    while True:
        steps += 1
        if steps > _MAX_STEPS:
            raise InputError("--until is too far ahead for this schedule (too many deadlines)")
        nxt = view(spec, rec, rec.last_transition_time).next_change_at
        event_time = pending[index].time if index < len(pending) else None
        if nxt is not None and nxt <= until and (event_time is None or nxt < event_time):
            # Settle exactly the deadline(s) at ``nxt`` (Tick settles strictly before).
            rec, changed = apply(spec, rec, Tick(nxt + _TICK), nxt)
            if changed:
                snapshots.append((nxt, _line(spec, rec, nxt)))
            else:
                # A deadline that changed nothing visible (e.g. due while already Grace):
                # step past it without a line.
                rec = _advance_past(spec, rec, nxt)
            continue
        if event_time is None:
            break
        ev = pending[index]
        index += 1
        rec, _ = apply(spec, rec, ev.to_input(), ev.time)
        snapshots.append((ev.time, _line(spec, rec, ev.time)))
    return _compress(snapshots)


def _advance_past(spec: MonitorSpec, rec: Record, at: datetime) -> Record:
    rec2, _ = apply(spec, rec, Tick(at + _TICK), at)
    if view(spec, rec2, at).next_change_at == view(spec, rec, at).next_change_at:
        raise InputError("internal error: a deadline did not advance")  # pragma: no cover
    return rec2


def _line(spec: MonitorSpec, rec: Record, at: datetime) -> dict[str, Any]:
    v = view(spec, rec, at)
    line: dict[str, Any] = {"time": format_time(at), "state": v.state, "reason": v.reason}
    if v.next_due_time is not None and v.alert_time is not None:
        line["nextDueTime"] = format_time(v.next_due_time)
        line["alertTime"] = format_time(v.alert_time)
    return line


def _compress(snapshots: list[tuple[datetime, dict[str, Any]]]) -> list[dict[str, Any]]:
    """One line per instant (its last snapshot), only when state or reason changed."""
    last_per_instant: list[dict[str, Any]] = []
    times: list[datetime] = []
    for at, line in snapshots:
        if times and times[-1] == at:
            last_per_instant[-1] = line
        else:
            times.append(at)
            last_per_instant.append(line)
    out: list[dict[str, Any]] = []
    for line in last_per_instant:
        if not out or (out[-1]["state"], out[-1]["reason"]) != (line["state"], line["reason"]):
            out.append(line)
    return out


def parse_events(text: str, source: str = "events") -> list[Event]:
    """Parse an events file; raise ``InputError`` naming ``source:line``."""
    events: list[Event] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        where = f"{source}:{number}"
        words = stripped.split()
        try:
            when = parse_time(words[0])
        except TimeFormatError:
            raise InputError(
                f"{where}: {words[0]!r} is not an RFC 3339 time (e.g. 2026-03-29T10:30:00Z)"
            ) from None
        if len(words) < 2:
            raise InputError(f"{where}: missing event after the time")
        name = words[1]
        rest = words[2:]
        if name not in _ORDER:
            raise InputError(
                f"{where}: unknown event {name!r} "
                "(use success, start, fail, log, exit <code>, pause or resume)"
            )
        exit_code: int | None = None
        if name == "exit":
            if not rest or not rest[0].isdigit() or int(rest[0]) > 255:
                got = repr(rest[0]) if rest else "nothing"
                raise InputError(f"{where}: 'exit' needs a code 0-255, got {got}")
            exit_code = int(rest[0])
            rest = rest[1:]
        run_id: str | None = None
        if rest:
            token = rest[0]
            if not token.startswith("rid="):
                raise InputError(f"{where}: unexpected {token!r} (only rid=<id> may follow)")
            run_id = token[4:]
            if not _RUN_ID.fullmatch(run_id):
                raise InputError(f"{where}: rid must be 1-64 URL-safe characters")
            if name in ("pause", "resume"):
                raise InputError(f"{where}: {name} takes no rid")
            rest = rest[1:]
        if rest:
            raise InputError(f"{where}: unexpected {rest[0]!r} at the end of the line")
        events.append(Event(when, name, run_id, exit_code, number))
    return events


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None


def _read_manifest(path: str) -> dict[str, Any]:
    text = _read_text(path)
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML: {exc}") from None
    # A multi-document file (a monitor beside the CronJob it watches, as in
    # examples/cron-monitor/) is fine as long as exactly one document is a
    # HeartbeatMonitor (issue 17 item 6).
    monitors = [d for d in docs if isinstance(d, dict) and d.get("kind") == "HeartbeatMonitor"]
    if len(monitors) == 1:
        return monitors[0]
    if len(monitors) > 1:
        raise InputError(
            f"{path}: {len(monitors)} HeartbeatMonitor documents; expected one "
            "(split the file, or pass the one to simulate)"
        )
    if len(docs) == 1 and isinstance(docs[0], dict):
        raise InputError(f"{path}: kind: expected HeartbeatMonitor, got {docs[0].get('kind')!r}")
    raise InputError(f"{path}: expected one HeartbeatMonitor manifest, found none")


def _spec_of(manifest: dict[str, Any], path: str) -> tuple[MonitorSpec, datetime | None]:
    metadata = manifest.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise InputError(f"{path}: metadata: expected a mapping")
    name = metadata.get("name")
    raw = manifest.get("spec")
    if raw is None:
        raise InputError(f"{path}: spec: missing")
    try:
        spec = parse_spec(raw, name=name if isinstance(name, str) else None)
    except SpecError as exc:
        raise InputError(f"{path}: {exc.field}: {exc.message} ({exc.reason})") from None
    created_raw = metadata.get("creationTimestamp")
    created: datetime | None = None
    if created_raw is not None:
        if isinstance(created_raw, datetime):  # YAML reads unquoted timestamps itself
            if created_raw.tzinfo is None:
                raise InputError(f"{path}: metadata.creationTimestamp: needs a zone (e.g. Z)")
            created = created_raw
        else:
            try:
                created = parse_time(str(created_raw))
            except TimeFormatError as exc:
                raise InputError(f"{path}: metadata.creationTimestamp: {exc}") from None
    return spec, created


def _option_time(option: str, value: str) -> datetime:
    try:
        return parse_time(value)
    except TimeFormatError as exc:
        raise InputError(f"{option}: {exc}") from None
