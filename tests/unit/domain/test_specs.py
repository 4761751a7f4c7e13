from datetime import timedelta

import pytest

from heartbeat_operator.domain.specs import SpecError, parse_spec


def test_defaults_match_the_crd_schema() -> None:
    s = parse_spec({"period": "1h"}, name="backup")
    assert s.grace == timedelta(minutes=5)
    assert (s.failure_threshold, s.success_threshold, s.paused) == (1, 1, False)
    assert s.max_runtime is None and s.min_runtime is None
    assert s.token_secret_name == "backup-heartbeat"
    assert not s.is_cron


def test_full_cron_spec() -> None:
    s = parse_spec(
        {
            "schedule": "0 2 * * *",
            "timeZone": "Europe/Berlin",
            "grace": "30m",
            "maxRuntime": "2h",
            "minRuntime": "1m",
            "failureThreshold": 2,
            "successThreshold": 3,
            "paused": True,
            "tokenSecretName": "mine",
        },
        name="x",
    )
    assert s.is_cron and s.time_zone == "Europe/Berlin"
    assert (s.grace, s.max_runtime, s.min_runtime) == (
        timedelta(minutes=30),
        timedelta(hours=2),
        timedelta(minutes=1),
    )
    assert (s.failure_threshold, s.success_threshold, s.paused) == (2, 3, True)
    assert s.token_secret_name == "mine"


@pytest.mark.parametrize(
    ("raw", "reason", "field"),
    [
        ({"schedule": "not cron"}, "InvalidSchedule", "spec.schedule"),
        ({"schedule": "61 * * * *"}, "InvalidSchedule", "spec.schedule"),
        ({"schedule": "0 0 31 2 *"}, "InvalidSchedule", "spec.schedule"),
        ({"schedule": "0 0 0 * * *"}, "InvalidSchedule", "spec.schedule"),
        ({"schedule": "@fortnightly"}, "InvalidSchedule", "spec.schedule"),
        ({"schedule": "0 2 * * *", "timeZone": "Mars/Olympus"}, "InvalidTimeZone", "spec.timeZone"),
        (
            {"schedule": "0 2 * * *", "timeZone": "../etc/passwd"},
            "InvalidTimeZone",
            "spec.timeZone",
        ),
        ({"schedule": "0 2 * * *", "period": "1h"}, "InvalidSpec", "spec.period"),
        ({}, "InvalidSpec", "spec.schedule"),
        ({"period": "1h", "timeZone": "UTC"}, "InvalidSpec", "spec.timeZone"),
        ({"period": "0s"}, "InvalidSpec", "spec.period"),
        ({"period": "1h", "grace": "-5m"}, "InvalidSpec", "spec.grace"),
        ({"period": "1h", "failureThreshold": 0}, "InvalidSpec", "spec.failureThreshold"),
        ({"period": "1h", "successThreshold": "2"}, "InvalidSpec", "spec.successThreshold"),
        ({"period": "1h", "paused": "yes"}, "InvalidSpec", "spec.paused"),
        ({"period": "1h", "colour": "red"}, "InvalidSpec", "spec.colour"),
        # issue 13 item 3: accepted by the old CRD pattern, then OverflowError past 9999
        ({"period": "500000w"}, "InvalidSpec", "spec.period"),
        ({"period": "99999999h"}, "InvalidSpec", "spec.period"),
        ({"period": "1h", "grace": "500000w"}, "InvalidSpec", "spec.grace"),
        ({"period": "1h", "maxRuntime": "500000w"}, "InvalidSpec", "spec.maxRuntime"),
        ({"period": "1h", "minRuntime": "3651d"}, "InvalidSpec", "spec.minRuntime"),
        ({"schedule": "0 2 * * *", "grace": "9" * 40 + "s"}, "InvalidSpec", "spec.grace"),
    ],
)
def test_errors_name_reason_and_field(raw: dict[str, object], reason: str, field: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(raw)
    assert (caught.value.reason, caught.value.field) == (reason, field)
    assert caught.value.message


# --- what the admission webhook refuses in a sentence (DESIGN 10.4) -------------------


@pytest.mark.parametrize("schedule", ["0 0 31 2 *", "0 0 30 2 *", "0 0 31 4,6 *", "0 0 30,31 2 *"])
def test_a_schedule_that_never_fires_is_named_so(schedule: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec({"schedule": schedule})
    assert (caught.value.reason, caught.value.field) == ("InvalidSchedule", "spec.schedule")
    assert caught.value.message == (
        f"spec.schedule {schedule!r} never fires: no month it names has that day of the month"
    )


@pytest.mark.parametrize("schedule", ["0 0 32 2 *", "0 0 31 13 *", "61 * * * *"])
def test_a_bad_field_is_not_called_never_firing(schedule: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec({"schedule": schedule})
    assert caught.value.reason == "InvalidSchedule"
    assert "never fires" not in caught.value.message


@pytest.mark.parametrize("schedule", ["0 0 29 2 *", "0 0 31 */2 *", "0 0 31 2 1"])
def test_rare_schedules_still_fire(schedule: str) -> None:
    assert parse_spec({"schedule": schedule}).is_cron


@pytest.mark.parametrize(
    ("schedule", "head", "zone"),
    [
        ("CRON_TZ=Europe/Berlin 0 2 * * *", "CRON_TZ=Europe/Berlin", "Europe/Berlin"),
        ("TZ=America/New_York 30 1 * * *", "TZ=America/New_York", "America/New_York"),
        ("  cron_tz=UTC @daily", "cron_tz=UTC", "UTC"),
    ],
)
def test_a_zone_prefix_points_to_spec_time_zone(schedule: str, head: str, zone: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec({"schedule": schedule})
    assert (caught.value.reason, caught.value.field) == ("InvalidSchedule", "spec.schedule")
    assert caught.value.message == (
        f"spec.schedule must not start with {head}: put the cron line alone in "
        f"spec.schedule and set spec.timeZone: {zone}"
    )


@pytest.mark.parametrize(("low", "high"), [("1h", "1h"), ("2h", "1h30m"), ("1d", "1h")])
def test_min_runtime_must_be_shorter_than_max_runtime(low: str, high: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec({"period": "1d", "minRuntime": low, "maxRuntime": high})
    assert (caught.value.reason, caught.value.field) == ("InvalidSpec", "spec.minRuntime")
    assert caught.value.message.startswith(
        f"spec.minRuntime ({low}) must be shorter than spec.maxRuntime ({high})"
    )


def test_min_runtime_just_under_max_runtime_is_fine() -> None:
    s = parse_spec({"period": "1d", "minRuntime": "59m59s", "maxRuntime": "1h"})
    assert s.min_runtime is not None and s.max_runtime is not None
    assert s.min_runtime < s.max_runtime


def test_a_timed_pause_field_is_part_of_a_valid_spec() -> None:
    # Issue 16: the pause API's ?for= writes spec.pausedUntil; it must not make the
    # monitor InvalidSpec (as an unknown field would).
    spec = parse_spec({"period": "1m", "paused": True, "pausedUntil": "2026-12-07T15:00:00Z"})
    assert spec.paused is True
