from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from heartbeat_operator.domain.timefmt import (
    TimeFormatError,
    format_clock,
    format_local,
    format_time,
    parse_time,
    seconds,
)


def test_whole_seconds_have_no_fraction() -> None:
    assert format_time(datetime(2026, 3, 29, 10, 30, tzinfo=UTC)) == "2026-03-29T10:30:00Z"


def test_milliseconds_only_when_not_zero_and_truncated() -> None:
    t = datetime(2026, 3, 29, 10, 30, 0, 123999, tzinfo=UTC)
    assert format_time(t) == "2026-03-29T10:30:00.123Z"
    assert format_time(t.replace(microsecond=999)) == "2026-03-29T10:30:00Z"


def test_other_offsets_are_converted_to_utc() -> None:
    t = datetime(2026, 3, 29, 12, 30, tzinfo=timezone(timedelta(hours=2)))
    assert format_time(t) == "2026-03-29T10:30:00Z"


@pytest.mark.parametrize(
    "text",
    ["2026-03-29T10:30:00Z", "2026-03-29T12:30:00+02:00", "2026-03-29t10:30:00z"],
)
def test_parses_rfc3339(text: str) -> None:
    assert parse_time(text) == datetime(2026, 3, 29, 10, 30, tzinfo=UTC)


@pytest.mark.parametrize("text", ["2026-03-29T10:30:00", "2026-03-29", "yesterday", ""])
def test_rejects_times_without_a_zone(text: str) -> None:
    with pytest.raises(TimeFormatError):
        parse_time(text)


def test_clock_and_seconds_for_messages() -> None:
    assert format_clock(datetime(2026, 1, 1, 2, 0, 14, tzinfo=UTC)) == "02:00:14 UTC"
    assert format_clock(datetime(2026, 1, 1, 3, 0, tzinfo=UTC)) == "03:00 UTC"
    assert seconds(timedelta(seconds=412, milliseconds=500)) == 412.5
    assert seconds(timedelta(seconds=60)) == 60
    assert isinstance(seconds(timedelta(seconds=60)), int)


# --- times people read (issue 16 item 3) ---------------------------------------------------

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")


def test_local_time_has_weekday_date_zone_and_utc() -> None:
    due = datetime(2026, 12, 7, 14, 30, tzinfo=UTC)
    assert format_local(due, NEW_YORK) == "Mon 2026-12-07 09:30 EST (14:30 UTC)"


def test_without_a_zone_the_time_is_utc_with_its_date() -> None:
    at = datetime(2026, 12, 7, 2, 0, 14, 500000, tzinfo=UTC)
    assert format_local(at) == "Mon 2026-12-07 02:00:14 UTC"
    assert format_local(at, ZoneInfo("UTC")) == "Mon 2026-12-07 02:00:14 UTC"


def test_the_utc_part_names_its_day_when_it_is_another_one() -> None:
    due = datetime(2026, 12, 8, 2, 30, tzinfo=UTC)  # Monday evening in New York
    assert format_local(due, NEW_YORK) == "Mon 2026-12-07 21:30 EST (Tue 02:30 UTC)"


def test_across_the_spring_dst_change_the_zone_name_and_offset_follow() -> None:
    # New York springs forward on Sun 2026-03-08 at 02:00 EST -> 03:00 EDT.
    before = datetime(2026, 3, 8, 6, 59, tzinfo=UTC)
    after = datetime(2026, 3, 8, 7, 0, tzinfo=UTC)
    assert format_local(before, NEW_YORK) == "Sun 2026-03-08 01:59 EST (06:59 UTC)"
    assert format_local(after, NEW_YORK) == "Sun 2026-03-08 03:00 EDT (07:00 UTC)"
    # A daily 09:30 job: the same local time, an hour apart in UTC.
    friday = datetime(2026, 3, 6, 14, 30, tzinfo=UTC)
    monday = datetime(2026, 3, 9, 13, 30, tzinfo=UTC)
    assert format_local(friday, NEW_YORK) == "Fri 2026-03-06 09:30 EST (14:30 UTC)"
    assert format_local(monday, NEW_YORK) == "Mon 2026-03-09 09:30 EDT (13:30 UTC)"


def test_a_repeated_local_time_in_the_fall_is_told_apart_by_its_zone_name() -> None:
    # Berlin falls back on Sun 2026-10-25 at 03:00 CEST -> 02:00 CET: 02:30 happens twice.
    first = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    second = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    assert format_local(first, BERLIN) == "Sun 2026-10-25 02:30 CEST (00:30 UTC)"
    assert format_local(second, BERLIN) == "Sun 2026-10-25 02:30 CET (01:30 UTC)"


def test_a_zone_without_an_abbreviation_shows_its_offset() -> None:
    at = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
    assert format_local(at, ZoneInfo("Asia/Dubai")) == "Mon 2026-12-07 10:00 +04 (06:00 UTC)"


def test_local_time_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError):
        format_local(datetime(2026, 12, 7, 14, 30))
