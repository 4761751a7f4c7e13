"""Slots: when a run is expected (``due``) and when it counts as missed (``alert``).

Period mode: the next slot is due ``period`` after the reference time. Cron mode: at the
first cron tick, in the spec's time zone, strictly after the reference time, with the DST
rules of DESIGN section 2 and fine print 11:

- the tick sequence is the Kubernetes CronJob controller's (cronsim given the six-field
  form ``"0 " + schedule``, its day fields spelled so cronsim combines them as the
  controller's robfig/cron does: ``cronjob_day_fields``): a local time that does not exist
  that day has no tick;
- when the hour field is fixed (does not start with ``*``), a local time that occurs twice
  is one slot, due at its first occurrence, with its alert base at the second occurrence
  (``alertTime`` = second occurrence + grace); a reference time between the two
  occurrences therefore makes the next slot the next distinct local time;
- with a wildcard hour every real tick is a slot, as every runner does.

Cron math is memoised per (expression, zone) in a bounded cache of upcoming slots, so
evaluating 100,000 monitors costs a bisect each, not a cronsim walk (bench/README.md).
The cache changes no result: it holds exactly what the walk would yield.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

# CronJob's macros (robfig/cron, which the CronJob controller uses).
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# How many slots one cache fill computes, how many a schedule's cache may hold before it
# is restarted, and how many compiled schedules are kept (least recently used dropped):
# at most ~170 bytes a slot, so the cache stays under ~90 MB even with 1,024 distinct
# (expression, zone) pairs all full, and is a few KB for typical fleets.
_CHUNK = 32
_MAX_CACHED_SLOTS = 512
_MAX_SCHEDULES = 1024


#: The last instant a ``datetime`` can hold; what ``Slot.alert`` gives past it.
END_OF_TIME = datetime.max.replace(tzinfo=UTC)


class ScheduleError(ValueError):
    """An invalid cron expression or time zone. ``reason`` is a DESIGN 9.7 Ready reason."""

    def __init__(self, reason: str, field: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Slot:
    """One expected run: due at ``due``; missed after ``alert_base`` + grace (both UTC)."""

    due: datetime
    alert_base: datetime

    def alert(self, grace: timedelta) -> datetime:
        """The slot's ``alertTime`` (the last representable instant if it would fall past
        year 9999: such a slot never alerts, and no computation raises; issue 13 item 3)."""
        try:
            return self.alert_base + grace
        except OverflowError:
            return END_OF_TIME


class Schedule:
    """Where slots fall. Subclasses: ``PeriodSchedule``, ``CronSchedule``."""

    is_cron: bool = False

    def next_slot(self, after: datetime) -> Slot | None:
        """The first slot due strictly after ``after``; None if the schedule never fires."""
        raise NotImplementedError

    def slot_due_at(self, due: datetime) -> Slot | None:
        """The slot due at ``due`` (or, if none is, the first one after it): a run's
        deadline is its slot's ``alertTime`` (DESIGN 10.8.5)."""
        return self.next_slot(due - timedelta(microseconds=1))

    def upcoming(self, after: datetime, count: int) -> list[Slot]:
        """The next ``count`` slots after ``after``, in order (fewer if the schedule ends)."""
        out: list[Slot] = []
        t = after
        while len(out) < count:
            slot = self.next_slot(t)
            if slot is None:
                break
            out.append(slot)
            t = slot.due
        return out


class PeriodSchedule(Schedule):
    """A slot every ``period`` after the reference time."""

    __slots__ = ("period",)

    def __init__(self, period: timedelta) -> None:
        self.period = period

    def next_slot(self, after: datetime) -> Slot | None:
        try:
            due = after + self.period
        except OverflowError:  # past year 9999: no further slot (issue 13 item 3)
            return None
        return Slot(due, due)

    def slot_due_at(self, due: datetime) -> Slot | None:
        return Slot(due, due)  # period slots are anchored on the reference time, not a grid

    def __repr__(self) -> str:
        return f"PeriodSchedule({self.period!r})"


def normalize_cron(expr: str) -> str:
    """Macros expanded, ``?`` read as ``*``, whitespace collapsed; five fields or an error."""
    if not isinstance(expr, str) or not expr.strip():
        raise ScheduleError("InvalidSchedule", "spec.schedule", "schedule is empty")
    text = expr.strip()
    if text.startswith("@"):
        macro = MACROS.get(text.lower())
        if macro is None and text.lower().startswith("@every"):
            # A CronJob takes it (robfig/cron), counted from the CronJob's last schedule
            # time, which a monitor does not know: no slots to expect runs at.
            raise ScheduleError(
                "InvalidSchedule",
                "spec.schedule",
                f"{text!r} has no fixed times to expect a run at: use a cron line (e.g. "
                "'*/5 * * * *' for every 5 minutes), or a monitor with a period instead of a "
                "schedule",
            )
        if macro is None:
            raise ScheduleError(
                "InvalidSchedule",
                "spec.schedule",
                f"unknown schedule macro {text!r} (use one of {', '.join(MACROS)})",
            )
        return macro
    fields = text.replace("?", "*").split()
    if len(fields) != 5:
        raise ScheduleError(
            "InvalidSchedule",
            "spec.schedule",
            f"schedule {expr!r} has {len(fields)} fields; a cron line has 5 "
            "(minute hour day-of-month month day-of-week)",
        )
    return " ".join(fields)


def cronjob_day_fields(expr: str) -> str:
    """``expr`` (five normalised fields) with its day fields spelled so that cronsim
    matches days the way the CronJob controller's robfig/cron does.

    Both match a day by day-of-month AND day-of-week when one of the two is unrestricted,
    else by OR; they differ on what unrestricted is. robfig: a term that is a bare ``*``
    (``?`` is already ``*``; ``*/1`` too); a stepped ``*/2`` is restricted. cronsim: a field
    that *starts with* ``*``. So ``0 0 */2 * 1`` runs every other day and every Monday as
    a CronJob, but only on odd-dated Mondays in cronsim: months of silence a monitor would
    not expect a run in. ``*/n`` is written as its range (``1-31/n``, ``0-6/n``) and a bare
    ``*`` term is put first, which leaves each field's days as they are.
    """
    minute, hour, day_of_month, month, day_of_week = expr.split()
    return " ".join(
        (
            minute,
            hour,
            _robfig_day_terms(day_of_month, "1-31"),
            month,
            _robfig_day_terms(day_of_week, "0-6"),
        )
    )


def _robfig_day_terms(field: str, whole_range: str) -> str:
    terms = []
    for term in field.split(","):
        base, slash, step = term.partition("/")
        if base == "*" and slash and step.isdigit() and int(step) > 1:
            term = f"{whole_range}/{step}"
        terms.append(term)
    terms.sort(key=lambda term: not term.startswith("*"))  # stable: the days stay the same
    return ",".join(terms)


#: The five fields as cronsim names them in its errors ("Bad minute"), with their values.
_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
_RANGES = {
    "minute": (0, 59),
    "hour": (0, 23),
    "day-of-month": (1, 31),
    "month": (1, 12),
    "day-of-week": (0, 7),
}
_NAMES = {
    "month": ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"),
    "day-of-week": ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"),
}


def explain_field(expr: str, error: str) -> str | None:
    """What is wrong in the field cronsim refused (its error is just "Bad minute"), in a
    sentence that names the term and the values allowed; None when no simple reason is
    found (the caller then quotes cronsim). Only explains: what is accepted is cronsim's
    call alone."""
    name = error.removeprefix("Bad ")
    if name not in _FIELDS:
        return None
    text = expr.split()[_FIELDS.index(name)]
    for term in text.split(","):
        if (problem := _term_problem(name, term)) is not None:
            return problem
    return None


def _term_problem(name: str, term: str) -> str | None:
    """The first thing wrong with one comma-separated term of a field, as a clause."""
    low, high = _RANGES[name]
    allowed = f"{low}-{high}"
    if name in _NAMES:
        first, last = _NAMES[name][0], _NAMES[name][-1]
        allowed += f" or {first}-{last}"
    if "/" in term:
        term, step = term.split("/", 1)
        if not step.isdigit() or int(step) < 1:
            return f"the {name} step '/{step}' must be a whole number of at least 1"
    if term == "*":
        return None
    ends = term.split("-", 1)
    for end in ends:
        if not end:
            return f"the {name} range {term!r} lacks a start or an end"
        if end.isdigit():
            if not low <= int(end) <= high:
                return f"{name} {end} is out of range ({allowed})"
        elif end.upper() not in _NAMES.get(name, ()):
            return f"{name} {end!r} is not a {name} ({allowed})"
    if len(ends) == 2 and _value(name, ends[1]) < _value(name, ends[0]):
        if name == "day-of-week" and _value(name, ends[1]) == 0:
            return f"the {name} range {term!r} runs backwards (SUN is 0: write 1-7 for MON-SUN)"
        return f"the {name} range {term!r} runs backwards (a range goes from low to high)"
    return None


def _value(name: str, end: str) -> int:
    return int(end) if end.isdigit() else _NAMES[name].index(end.upper()) + (name == "month")


def load_zone(name: str | None) -> ZoneInfo | None:
    """An IANA zone, or None for UTC (absent or ``UTC``). Raises ``ScheduleError``."""
    if name is None or name in ("UTC", "Etc/UTC"):
        return None
    try:
        if not isinstance(name, str) or not name or name.startswith(("/", ".")) or ".." in name:
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleError(
            "InvalidTimeZone", "spec.timeZone", f"unknown time zone {name!r} (an IANA name)"
        ) from None


class CronSchedule(Schedule):
    """Slots of a five-field cron expression in a time zone (see the module docstring)."""

    is_cron = True

    def __init__(self, expr: str, zone: ZoneInfo | None) -> None:
        self.expr = expr
        self.zone = zone
        self.fixed_hour = not expr.split()[1].startswith("*")
        self._six = "0 " + cronjob_day_fields(expr)
        try:
            CronSim(self._six, datetime(2000, 1, 1, tzinfo=UTC))
        except CronSimError as exc:
            why = explain_field(expr, str(exc)) or str(exc)
            raise ScheduleError(
                "InvalidSchedule", "spec.schedule", f"invalid schedule {expr!r}: {why}"
            ) from None
        # Cached run of consecutive slots: _dues[i] is slots[i].due; every slot due in
        # (_start, _dues[-1]] is in the list; _done means the schedule has no more slots.
        self._start: datetime | None = None
        self._dues: list[datetime] = []
        self._slots: list[Slot] = []
        self._done = False

    def __repr__(self) -> str:
        return f"CronSchedule({self.expr!r}, {self.zone.key if self.zone else 'UTC'!r})"

    def _walk(self, after: datetime, count: int) -> tuple[list[Slot], bool]:
        """Compute up to ``count`` slots strictly after ``after`` with cronsim."""
        tz = self.zone if self.zone is not None else UTC
        try:
            it = CronSim(self._six, after.astimezone(tz))
        except OverflowError:  # ``after`` in its zone is past year 9999: no more slots
            return [], True
        out: list[Slot] = []
        while len(out) < count:
            try:
                tick = next(it)
            except (StopIteration, OverflowError):
                # cronsim ends (or runs past year 9999, issue 13 item 3): no more slots
                return out, True
            slot = self._slot_of(tick)
            if slot is not None and slot.due > after:
                out.append(slot)
        return out, False

    def _slot_of(self, tick: datetime) -> Slot | None:
        """The slot a CronJob tick gives, or None for the second run of a repeated time."""
        due = tick.astimezone(UTC)
        if self.zone is None or not self.fixed_hour:
            return Slot(due, due)
        wall = tick.replace(tzinfo=None)
        first = wall.replace(tzinfo=self.zone, fold=0)
        second = wall.replace(tzinfo=self.zone, fold=1)
        if first.utcoffset() == second.utcoffset():
            return Slot(due, due)
        first_utc = first.astimezone(UTC)
        second_utc = second.astimezone(UTC)
        if first_utc > second_utc:  # not a repeated time (a skipped one): never a tick
            return Slot(due, due)
        if due == first_utc:
            return Slot(due, second_utc)
        return None  # the CronJob's second run of a repeated local time: same slot

    def next_slot(self, after: datetime) -> Slot | None:
        start = self._start
        if start is not None and after >= start:
            i = bisect.bisect_right(self._dues, after)
            if i < len(self._dues):
                return self._slots[i]
            if self._done:
                return None
            if len(self._dues) < _MAX_CACHED_SLOTS and (
                not self._dues or after < self._dues[-1] + (self._dues[-1] - start)
            ):
                extend_from = self._dues[-1] if self._dues else start
                more, done = self._walk(extend_from, _CHUNK)
                self._dues.extend(s.due for s in more)
                self._slots.extend(more)
                self._done = done
                return self.next_slot(after)
        # Restart the cache at ``after``.
        slots, done = self._walk(after, _CHUNK)
        self._start = after
        self._slots = slots
        self._dues = [s.due for s in slots]
        self._done = done
        return slots[0] if slots else None


_cache: OrderedDict[tuple[str, str | None], CronSchedule] = OrderedDict()


def compile_cron(expr: str, time_zone: str | None) -> CronSchedule:
    """A ``CronSchedule`` for a user's schedule and ``timeZone`` (None = UTC), memoised.

    Raises ``ScheduleError`` (reason ``InvalidSchedule`` or ``InvalidTimeZone``).
    """
    normalized = normalize_cron(expr)
    key = (normalized, time_zone)
    found = _cache.get(key)
    if found is not None:
        _cache.move_to_end(key)
        return found
    zone = load_zone(time_zone)
    compiled = CronSchedule(normalized, zone)
    _cache[key] = compiled
    if len(_cache) > _MAX_SCHEDULES:
        _cache.popitem(last=False)
    return compiled
