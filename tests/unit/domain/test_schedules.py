"""Schedule math: period slots, cron slots in time zones, and the DST rules.

The CronJob controller's run times are written out literally per case (``CRONJOB``): the
DESIGN's fact is that cronsim given ``"0 " + schedule`` yields them, which
``test_cronjob_sequence_is_cronsim_six_field`` checks, and every slot test then checks our
slots against that sequence with the two DST rules applied (a repeated local time with a
fixed hour is one slot; a skipped local time has no slot, like the CronJob).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim

from heartbeat_operator.domain.schedules import (
    END_OF_TIME,
    CronSchedule,
    PeriodSchedule,
    ScheduleError,
    Slot,
    compile_cron,
    load_zone,
    normalize_cron,
)

from .helpers import T


def dues(expr: str, tz: str | None, after: str, n: int) -> list[str]:
    return [_z(s.due) for s in compile_cron(expr, tz).upcoming(T(after), n)]


def _z(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def cronjob_ticks(expr: str, tz: str, after: str, n: int) -> list[str]:
    it = CronSim("0 " + expr, T(after).astimezone(ZoneInfo(tz)))
    return [_z(next(it)) for _ in range(n)]


# (schedule, zone, after, what the CronJob controller runs, in UTC)
CRONJOB = {
    "berlin-daily-spring": (
        "0 2 * * *",
        "Europe/Berlin",
        "2026-03-27T12:00:00Z",
        ["2026-03-28T01:00:00Z", "2026-03-30T00:00:00Z", "2026-03-31T00:00:00Z"],
    ),
    "berlin-daily-fall": (
        "30 2 * * *",
        "Europe/Berlin",
        "2026-10-24T12:00:00Z",
        ["2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z", "2026-10-26T01:30:00Z"],
    ),
    "newyork-daily-spring": (
        "30 2 * * *",
        "America/New_York",
        "2026-03-07T12:00:00Z",
        ["2026-03-09T06:30:00Z", "2026-03-10T06:30:00Z"],
    ),
    "newyork-daily-fall": (
        "30 1 * * *",
        "America/New_York",
        "2026-10-31T12:00:00Z",
        ["2026-11-01T05:30:00Z", "2026-11-01T06:30:00Z", "2026-11-02T06:30:00Z"],
    ),
    "berlin-hourly-spring": (
        "0 * * * *",
        "Europe/Berlin",
        "2026-03-28T23:30:00Z",
        ["2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"],
    ),
    "berlin-hourly-fall": (
        "0 * * * *",
        "Europe/Berlin",
        "2026-10-24T23:30:00Z",
        ["2026-10-25T00:00:00Z", "2026-10-25T01:00:00Z", "2026-10-25T02:00:00Z"],
    ),
    "newyork-hourly-spring": (
        "15 * * * *",
        "America/New_York",
        "2026-03-08T05:30:00Z",
        ["2026-03-08T06:15:00Z", "2026-03-08T07:15:00Z", "2026-03-08T08:15:00Z"],
    ),
    "newyork-hourly-fall": (
        "15 * * * *",
        "America/New_York",
        "2026-11-01T04:00:00Z",
        ["2026-11-01T04:15:00Z", "2026-11-01T05:15:00Z", "2026-11-01T06:15:00Z"],
    ),
}


@pytest.mark.parametrize("case", sorted(CRONJOB))
def test_cronjob_sequence_is_cronsim_six_field(case: str) -> None:
    expr, tz, after, expected = CRONJOB[case]
    assert cronjob_ticks(expr, tz, after, len(expected)) == expected


# The CronJob controller's robfig/cron ORs day-of-month and day-of-week unless one of them
# is a bare `*`; a stepped `*/2` counts as restricted there, where cronsim ANDs any field
# starting with `*`. What robfig v3's ParseStandard(expr).Next gives from 2026-06-01T00:00:01Z,
# written out literally (2026-06-01 is a Monday).
ROBFIG_DAYS = {
    "0 0 */2 * 1": ["06-03", "06-05", "06-07", "06-08", "06-09", "06-11"],
    "0 9 1 * */2": ["06-01", "06-02", "06-04", "06-06", "06-07", "06-09"],
    "0 0 1,* * 1": ["06-08", "06-15", "06-22", "06-29", "07-06", "07-13"],
    "0 0 */1 * 1": ["06-08", "06-15", "06-22", "06-29", "07-06", "07-13"],
    "0 0 1-31/2 * 1": ["06-03", "06-05", "06-07", "06-08", "06-09", "06-11"],
}


@pytest.mark.parametrize("expr", sorted(ROBFIG_DAYS))
def test_day_fields_combine_as_the_cronjob_controller_combines_them(expr: str) -> None:
    # Read with cronsim's rule, "0 9 1 * */2" would expect its first run on 2026-08-01:
    # two months in which a silent CronJob (running on the 1st and every other weekday)
    # would alarm nobody.
    slots = compile_cron(expr, None).upcoming(T("2026-06-01T00:00:01Z"), 6)
    assert [s.due.strftime("%m-%d") for s in slots] == ROBFIG_DAYS[expr]


def test_daily_spring_forward_expects_no_run_on_the_missing_day() -> None:
    # Berlin 2026-03-29: 02:00 local does not exist; the CronJob skips it, so do we.
    expr, tz, after, cronjob = CRONJOB["berlin-daily-spring"]
    assert dues(expr, tz, after, 3) == cronjob
    expr, tz, after, cronjob = CRONJOB["newyork-daily-spring"]
    assert dues(expr, tz, after, 2) == cronjob


def test_daily_fall_back_is_one_slot_alerting_after_the_second_occurrence() -> None:
    expr, tz, after, cronjob = CRONJOB["berlin-daily-fall"]
    slots = compile_cron(expr, tz).upcoming(T(after), 2)
    # The CronJob runs twice (00:30Z and 01:30Z); it is one slot, due at the first.
    assert [_z(s.due) for s in slots] == [cronjob[0], cronjob[2]]
    assert slots[0].alert(timedelta(minutes=30)) == T("2026-10-25T02:00:00Z")
    assert slots[1].alert(timedelta(minutes=30)) == T("2026-10-26T02:00:00Z")

    expr, tz, after, cronjob = CRONJOB["newyork-daily-fall"]
    slots = compile_cron(expr, tz).upcoming(T(after), 2)
    assert [_z(s.due) for s in slots] == [cronjob[0], cronjob[2]]
    assert slots[0].alert_base == T(cronjob[1])


@pytest.mark.parametrize(
    "case",
    ["berlin-hourly-spring", "berlin-hourly-fall", "newyork-hourly-spring", "newyork-hourly-fall"],
)
def test_hourly_fires_every_real_hour_through_the_change(case: str) -> None:
    expr, tz, after, cronjob = CRONJOB[case]
    slots = compile_cron(expr, tz).upcoming(T(after), len(cronjob))
    assert [_z(s.due) for s in slots] == cronjob
    assert all(s.alert_base == s.due for s in slots)


def test_fixed_hour_range_merges_the_repeated_hour() -> None:
    slots = compile_cron("0 1-3 * * *", "Europe/Berlin").upcoming(T("2026-10-24T22:00:00Z"), 3)
    assert [(_z(s.due), _z(s.alert_base)) for s in slots] == [
        ("2026-10-24T23:00:00Z", "2026-10-24T23:00:00Z"),  # 01:00 CEST
        ("2026-10-25T00:00:00Z", "2026-10-25T01:00:00Z"),  # 02:00 CEST, again at 02:00 CET
        ("2026-10-25T02:00:00Z", "2026-10-25T02:00:00Z"),  # 03:00 CET
    ]


def test_reference_between_the_two_occurrences_means_that_slot_is_done() -> None:
    s = compile_cron("0 2 * * *", "Europe/Berlin")
    for after in ("2026-10-25T00:00:00Z", "2026-10-25T00:30:00Z", "2026-10-25T01:00:00Z"):
        slot = s.next_slot(T(after))
        assert slot is not None
        assert _z(slot.due) == "2026-10-26T01:00:00Z", after


def test_classic_cron_would_run_late_on_the_missing_day_but_we_follow_the_cronjob() -> None:
    five_field = CronSim(
        "0 2 * * *", T("2026-03-28T12:00:00Z").astimezone(ZoneInfo("Europe/Berlin"))
    )
    assert _z(next(five_field)) == "2026-03-29T01:00:00Z"  # 03:00 CEST: classic cron
    assert dues("0 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", 1) == ["2026-03-30T00:00:00Z"]


@pytest.mark.parametrize(
    ("tz", "expr"),
    [
        ("Europe/Berlin", "0 2 * * *"),
        ("Europe/Berlin", "30 2 * * 0"),
        ("Europe/Berlin", "*/20 2 * * *"),
        ("Europe/Berlin", "0 * * * *"),
        ("America/New_York", "30 1 * * *"),
        ("America/New_York", "0 */2 * * *"),
        ("America/New_York", "15 1,13 * * *"),
        ("Australia/Lord_Howe", "15 1 * * *"),  # a 30-minute DST shift
    ],
)
def test_slots_are_the_cronjob_ticks_with_repeated_times_merged(tz: str, expr: str) -> None:
    zone = ZoneInfo(tz)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    it = CronSim("0 " + expr, start.astimezone(zone))
    fixed_hour = not expr.split()[1].startswith("*")
    expected: list[tuple[datetime, datetime]] = []
    seen_wall: dict[datetime, int] = {}
    for _ in range(800):
        tick = next(it)
        wall = tick.replace(tzinfo=None)
        due = tick.astimezone(UTC)
        if fixed_hour and wall in seen_wall:
            i = seen_wall[wall]
            expected[i] = (expected[i][0], due)  # the second occurrence: same slot
            continue
        seen_wall[wall] = len(expected)
        expected.append((due, due))
    got = compile_cron(expr, tz).upcoming(start, len(expected))
    assert [(s.due, s.alert_base) for s in got] == expected


def test_the_cache_never_changes_an_answer() -> None:
    rng = random.Random(7)
    cached = compile_cron("*/7 1-3 * * 1-5", "Europe/Berlin")
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for _ in range(300):
        after = base + timedelta(seconds=rng.randrange(0, 400 * 86400))
        fresh = CronSchedule(cached.expr, cached.zone)
        assert cached.next_slot(after) == fresh.next_slot(after)


def test_period_slots() -> None:
    p = PeriodSchedule(timedelta(hours=24))
    slot = p.next_slot(T("2026-03-28T12:00:00Z"))
    assert slot is not None
    assert slot.due == slot.alert_base == T("2026-03-29T12:00:00Z")


@pytest.mark.parametrize(
    ("macro", "expanded"),
    [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("0 2 ? * ?", "0 2 * * *"),
        ("  0   2 * * *  ", "0 2 * * *"),
    ],
)
def test_macros_and_question_marks(macro: str, expanded: str) -> None:
    assert normalize_cron(macro) == expanded
    assert dues(macro, None, "2026-05-05T10:00:00Z", 3) == dues(
        expanded, None, "2026-05-05T10:00:00Z", 3
    )


def test_utc_zone_names_and_unknown_zones() -> None:
    assert load_zone(None) is None and load_zone("UTC") is None
    assert dues("0 2 * * *", "UTC", "2026-03-28T12:00:00Z", 1) == ["2026-03-29T02:00:00Z"]
    with pytest.raises(ScheduleError) as caught:
        compile_cron("0 2 * * *", "Nowhere/Town")
    assert caught.value.reason == "InvalidTimeZone"


def test_rare_schedules_find_their_next_slot() -> None:
    s = compile_cron("0 0 29 2 *", None)  # leap days only
    assert s.next_slot(T("2026-01-01T00:00:00Z")) == s.next_slot(T("2027-06-01T00:00:00Z"))
    slot = s.next_slot(T("2026-01-01T00:00:00Z"))
    assert slot is not None and _z(slot.due) == "2028-02-29T00:00:00Z"


def test_the_cache_stays_exact_past_its_size_limit() -> None:
    cached = compile_cron("* * * * *", "America/New_York")
    start = T("2026-11-01T04:00:00Z")  # through the fall-back hour
    previous = start
    for minute in range(1, 1500):
        slot = cached.next_slot(previous)
        assert slot is not None and slot.due == start + timedelta(minutes=minute)
        previous = slot.due
        if minute % 97 == 0:  # now and then an older reference, as other monitors ask
            older = previous - timedelta(minutes=300, seconds=30)
            assert cached.next_slot(older) == CronSchedule(cached.expr, cached.zone).next_slot(
                older
            )


# --- the end of time (issue 13 item 3) -------------------------------------------------------
# parse_spec bounds durations to 10 years, so a slot past year 9999 takes a record or clock
# near it; then there is no further slot and no alert, never an OverflowError.


def test_a_period_slot_past_year_9999_is_no_slot() -> None:
    p = PeriodSchedule(timedelta(days=3650))
    assert p.next_slot(T("9995-01-01T00:00:00Z")) is None
    assert p.upcoming(T("9985-01-01T00:00:00Z"), 3) == [
        Slot(T("9994-12-30T00:00:00Z"), T("9994-12-30T00:00:00Z"))
    ]


@pytest.mark.parametrize(
    ("expr", "zone"),
    [("0 0 29 2 *", None), ("* * * * *", "Europe/Berlin"), ("0 2 * * *", "America/New_York")],
)
def test_a_cron_slot_past_year_9999_is_no_slot(expr: str, zone: str | None) -> None:
    schedule = CronSchedule(normalize_cron(expr), load_zone(zone))
    assert schedule.next_slot(T("9999-12-31T23:00:00Z")) is None
    # and the cache, once it knows the schedule ends, keeps saying so
    assert schedule.next_slot(T("9999-12-31T23:30:00Z")) is None


def test_a_leap_day_schedule_ends_with_its_last_leap_day() -> None:
    schedule = compile_cron("0 0 29 2 *", None)
    assert [s.due for s in schedule.upcoming(T("9988-03-01T00:00:00Z"), 5)] == [
        T("9992-02-29T00:00:00Z"),
        T("9996-02-29T00:00:00Z"),
    ]


def test_an_alert_past_year_9999_is_the_end_of_time() -> None:
    slot = Slot(T("9999-06-01T00:00:00Z"), T("9999-06-01T00:00:00Z"))
    assert slot.alert(timedelta(days=3650)) == END_OF_TIME
    assert slot.alert(timedelta(days=1)) == T("9999-06-02T00:00:00Z")


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("61 * * * *", "minute 61 is out of range (0-59)"),
        ("5,61 * * * *", "minute 61 is out of range (0-59)"),
        ("0-70/5 * * * *", "minute 70 is out of range (0-59)"),
        ("*/0 * * * *", "the minute step '/0' must be a whole number of at least 1"),
        ("* 24 * * *", "hour 24 is out of range (0-23)"),
        ("0 12-8 * * *", "the hour range '12-8' runs backwards (a range goes from low to high)"),
        ("0 0 0 * *", "day-of-month 0 is out of range (1-31)"),
        ("0 0 * 13 *", "month 13 is out of range (1-12 or JAN-DEC)"),
        ("0 0 * * 8", "day-of-week 8 is out of range (0-7 or SUN-SAT)"),
        ("0 0 * * mon-fry", "day-of-week 'fry' is not a day-of-week (0-7 or SUN-SAT)"),
        ("0 0 * * mon-sun", "the day-of-week range 'mon-sun' runs backwards (SUN is 0: write 1-7"),
        ("0 0 * * 1-", "the day-of-week range '1-' lacks a start or an end"),
    ],
)
def test_a_refused_cron_line_says_which_term_is_wrong_and_what_is_allowed(
    line: str, why: str
) -> None:
    """cronsim's own word is "Bad minute"; the user is told the term and the range."""
    with pytest.raises(ScheduleError) as refused:
        compile_cron(line, None)
    assert refused.value.message.startswith(f"invalid schedule {line!r}: {why}")


def test_every_is_refused_with_the_way_to_monitor_it() -> None:
    """A CronJob accepts ``@every 5m``; a monitor has no slots for it and says what to use."""
    with pytest.raises(ScheduleError) as refused:
        compile_cron("@every 5m", None)
    assert refused.value.message.startswith("'@every 5m' has no fixed times to expect a run at")
    assert "'*/5 * * * *'" in refused.value.message and "period" in refused.value.message
