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
