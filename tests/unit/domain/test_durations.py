from datetime import timedelta

import pytest

from heartbeat_operator.domain.durations import (
    MAX_DURATION,
    DurationError,
    format_duration,
    parse_duration,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2d", timedelta(days=2)),
        ("1w", timedelta(weeks=1)),
        ("5m0s", timedelta(minutes=5)),
        ("1w2d3h4m5s", timedelta(weeks=1, days=2, hours=3, minutes=4, seconds=5)),
        ("90m", timedelta(minutes=90)),
    ],
)
def test_parses_the_design_grammar(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["0s", "-5m", "", "5", "m", "1.5h", "5 m", "1y", "0m0s", "5M"])
def test_rejects_what_the_crd_pattern_rejects(text: str) -> None:
    with pytest.raises(DurationError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(minutes=30), "30m"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(days=7), "7d"),
        (timedelta(seconds=61), "1m1s"),
    ],
)
def test_formats_round_trip(value: timedelta, text: str) -> None:
    assert format_duration(value) == text
    assert parse_duration(text) == value


@pytest.mark.parametrize("text", ["3650d", "521w3d", "87600h", "315360000s"])
def test_ten_years_is_the_longest_duration(text: str) -> None:
    assert parse_duration(text) == MAX_DURATION == timedelta(days=3650)


@pytest.mark.parametrize(
    "text", ["3650d1s", "500000w", "99999999h", "9" * 30 + "w", "1w" * 600, "315360001s"]
)
def test_longer_than_ten_years_is_a_duration_error_never_an_overflow(text: str) -> None:
    """Issue 13 item 3: ``500000w`` passed the CRD pattern and overflowed past year 9999;
    thirty digits overflowed timedelta itself."""
    with pytest.raises(DurationError, match=r"longer than 10 years \(3650d\)") as caught:
        parse_duration(text)
    assert len(str(caught.value)) < 120  # a long text is cut in the message
