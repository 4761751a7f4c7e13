from datetime import UTC, datetime, timedelta, timezone

import pytest

from heartbeat_operator.domain.timefmt import (
    TimeFormatError,
    format_clock,
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
