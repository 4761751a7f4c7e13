"""The HeartbeatMonitor CRD as the API server enforces it (DESIGN 2, 9.15, 9.18).

Every rule has a case it accepts and one it rejects, checked against the real
kube-apiserver: schema types, the durations' CEL rules (grammar and 10-year bound, refused
in sentences), minimums, maxLength, the two CEL rules on the spec and the one on the name's
length, defaults, the status schema (nothing
the operator writes is pruned), printer columns and ``kubectl explain``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from tests.integration.conftest import KubectlRunner

GROUP, VERSION, PLURAL = "heartbeat.dev", "v1alpha1", "heartbeatmonitors"
EXACTLY_ONE = "exactly one of spec.period and spec.schedule must be set"
TZ_ONLY_WITH_SCHEDULE = "spec.timeZone is allowed only together with spec.schedule"


def not_a_duration(field: str) -> str:
    """DESIGN 10.4: a sentence, not the regular expression it used to be."""
    sentence = f"{field} must be a duration like 30s, 5m, 1h30m, 2d or 1w"
    return f'spec.{field}: Invalid value: "string": {sentence}'


def too_long(field: str) -> str:
    """DESIGN 10.8.16: no duration above 10 years (issue 13 item 3: overflow past 9999)."""
    return f'spec.{field}: Invalid value: "string": {field} must be at most 10 years (3650d)'


@pytest.fixture(scope="module")
def ns(api_client: k8s.ApiClient) -> Iterator[str]:
    """One namespace for this module's many small objects (deleted at the end)."""
    name = f"t-crd-admission-{uuid.uuid4().hex[:8]}"
    core = k8s.CoreV1Api(api_client)
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture(scope="module")
def custom(api_client: k8s.ApiClient) -> k8s.CustomObjectsApi:
    return k8s.CustomObjectsApi(api_client)


def create(custom: k8s.CustomObjectsApi, ns: str, spec: Any, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "HeartbeatMonitor",
        "metadata": {"name": f"m-{uuid.uuid4().hex[:10]}"},
        **extra,
    }
    if spec is not None:
        body["spec"] = spec
    created: dict[str, Any] = custom.create_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, body, field_validation="Strict"
    )
    return created


def rejection(custom: k8s.CustomObjectsApi, ns: str, spec: Any) -> str:
    """The API server's message refusing ``spec`` (fails the test if it is accepted)."""
    with pytest.raises(ApiException) as refused:
        create(custom, ns, spec)
    assert refused.value.status in (400, 422), refused.value.body
    return str(json.loads(refused.value.body)["message"])


# --- accepted ------------------------------------------------------------------------

ACCEPTED = {
    "period only": {"period": "24h"},
    "schedule only": {"schedule": "0 2 * * *"},
    "schedule with timeZone": {"schedule": "0 2 * * *", "timeZone": "Europe/Berlin"},
    "cron macro": {"schedule": "@daily"},
    "compound durations": {
        "period": "1h30m",
        "grace": "5m0s",
        "maxRuntime": "1d",
        "minRuntime": "1w",
    },
    "leading zeros before a positive part": {"period": "0h05m", "grace": "00s1m"},
    "every field": {
        "schedule": "*/5 * * * ?",
        "timeZone": "America/New_York",
        "grace": "30m",
        "maxRuntime": "2h",
        "minRuntime": "1m",
        "failureThreshold": 2,
        "successThreshold": 3,
        "paused": True,
        "tokenSecretName": "nightly-backup.token",
    },
    "thresholds at their minimum": {"period": "1h", "failureThreshold": 1, "successThreshold": 1},
    # DESIGN 10.8.16: 10 years (3650 days) is the longest duration, however written
    "ten years in days": {"period": "3650d", "grace": "3650d"},
    "ten years in weeks and days": {"period": "521w3d", "maxRuntime": "521w3d"},
    "ten years in hours": {"period": "87600h", "minRuntime": "87600h"},
    "ten years in seconds": {"period": "315360000s"},
    "many leading zeros": {"period": "000000000000000000001s"},
    # issue 16: a timed pause (kubectl heartbeat pause --for)
    "a timed pause": {"period": "1h", "pausedUntil": "2026-12-07T14:30:00Z"},
}


@pytest.mark.parametrize("spec", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_valid_specs_are_accepted_unchanged(
    custom: k8s.CustomObjectsApi, ns: str, spec: dict[str, Any]
) -> None:
    created = create(custom, ns, spec)
    assert {k: created["spec"][k] for k in spec} == spec


def test_defaults_fill_grace_thresholds_and_paused_but_not_time_zone(
    custom: k8s.CustomObjectsApi, ns: str
) -> None:
    created = create(custom, ns, {"schedule": "0 * * * *"})
    assert created["spec"] == {
        "schedule": "0 * * * *",
        "grace": "5m",
        "failureThreshold": 1,
        "successThreshold": 1,
        "paused": False,
    }


# --- rejected ------------------------------------------------------------------------

REJECTED = {
    # CEL: exactly one of period and schedule
    "period and schedule": ({"period": "1h", "schedule": "0 * * * *"}, EXACTLY_ONE),
    "neither period nor schedule": ({"grace": "5m"}, EXACTLY_ONE),
    # CEL: timeZone only with schedule
    "timeZone with period": ({"period": "1h", "timeZone": "UTC"}, TZ_ONLY_WITH_SCHEDULE),
    # the duration grammar, on every duration field, in a sentence
    "zero period": ({"period": "0s"}, not_a_duration("period")),
    "zero compound period": ({"period": "0h0m"}, not_a_duration("period")),
    "negative period": ({"period": "-5m"}, not_a_duration("period")),
    "period without unit": ({"period": "60"}, not_a_duration("period")),
    "fractional period": ({"period": "1.5h"}, not_a_duration("period")),
    "unknown unit": ({"period": "1y"}, not_a_duration("period")),
    "zero grace": ({"period": "1h", "grace": "0m"}, not_a_duration("grace")),
    "negative grace": ({"period": "1h", "grace": "-30s"}, not_a_duration("grace")),
    "zero maxRuntime": ({"period": "1h", "maxRuntime": "0s"}, not_a_duration("maxRuntime")),
    "negative minRuntime": ({"period": "1h", "minRuntime": "-1m"}, not_a_duration("minRuntime")),
    # at most 10 years: each of these passed the old pattern and overflowed past year 9999
    "period 500000w": ({"period": "500000w"}, too_long("period")),
    "period 99999999h": ({"period": "99999999h"}, too_long("period")),
    "period one second over": ({"period": "3650d1s"}, too_long("period")),
    "grace 500000w": ({"period": "1h", "grace": "500000w"}, too_long("grace")),
    "maxRuntime 500000w": ({"period": "1h", "maxRuntime": "500000w"}, too_long("maxRuntime")),
    "minRuntime 11 years": ({"period": "1h", "minRuntime": "4015d"}, too_long("minRuntime")),
    # more digits than an int64 holds: refused in the sentence, not a CEL evaluation error
    "grace of 30 digits": ({"period": "1h", "grace": "9" * 30 + "w"}, too_long("grace")),
    # thresholds >= 1
    "failureThreshold 0": (
        {"period": "1h", "failureThreshold": 0},
        "spec.failureThreshold in body should be greater than or equal to 1",
    ),
    "negative successThreshold": (
        {"period": "1h", "successThreshold": -1},
        "spec.successThreshold in body should be greater than or equal to 1",
    ),
    # types
    "threshold as a string": (
        {"period": "1h", "failureThreshold": "two"},
        "spec.failureThreshold in body must be of type integer",
    ),
    "paused as a string": ({"period": "1h", "paused": "yes"}, "must be of type boolean"),
    "pausedUntil not a time": (
        {"period": "1h", "pausedUntil": "in 30 minutes"},
        "spec.pausedUntil in body must be of type date-time",
    ),
    "period as a number": ({"period": 3600}, "spec.period in body must be of type string"),
    # lengths and names
    "empty schedule": ({"schedule": ""}, "spec.schedule in body should be at least 1 chars long"),
    "overlong schedule": (
        {"schedule": "0 " * 129},
        "spec.schedule: Too long: may not be more than 256",
    ),
    "overlong time zone": (
        {"schedule": "@daily", "timeZone": "x" * 65},
        "spec.timeZone: Too long: may not be more than 64",
    ),
    "Secret name not a DNS name": (
        {"period": "1h", "tokenSecretName": "Bad_Name"},
        "tokenSecretName must be a Secret name: lower-case letters, digits",
    ),
}


@pytest.mark.parametrize(("spec", "expected"), REJECTED.values(), ids=REJECTED.keys())
def test_invalid_specs_are_rejected_with_a_clear_message(
    custom: k8s.CustomObjectsApi, ns: str, spec: dict[str, Any], expected: str
) -> None:
    assert expected in rejection(custom, ns, spec)


def test_a_malformed_duration_gets_one_sentence_and_no_regular_expression(
    custom: k8s.CustomObjectsApi, ns: str
) -> None:
    message = rejection(custom, ns, {"period": "1h", "grace": "5 minutes"})
    assert not_a_duration("grace") in message
    assert "10 years" not in message  # the bound holds for what is not a duration at all
    assert "should match" not in message and "[smhdw]" not in message


def test_time_zone_alone_breaks_both_rules(custom: k8s.CustomObjectsApi, ns: str) -> None:
    message = rejection(custom, ns, {"timeZone": "UTC"})
    assert EXACTLY_ONE in message
    assert TZ_ONLY_WITH_SCHEDULE in message


def test_a_name_too_long_for_the_default_secret_needs_a_token_secret_name(
    custom: k8s.CustomObjectsApi, ns: str
) -> None:
    """The default Secret is <name>-heartbeat, at most 253 characters: a longer monitor
    name is refused at admission (it would never get its token), unless it names its
    Secret."""

    def named(length: int, spec: dict[str, Any]) -> dict[str, Any]:
        name = (uuid.uuid4().hex * 8)[:length]
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "HeartbeatMonitor",
            "metadata": {"name": name},
            "spec": spec,
        }
        created: dict[str, Any] = custom.create_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, body
        )
        return created

    assert len(named(243, {"period": "1h"})["metadata"]["name"]) == 243
    with pytest.raises(ApiException) as refused:
        named(244, {"period": "1h"})
    message = json.loads(refused.value.body)["message"]
    assert "metadata.name longer than 243 characters needs spec.tokenSecretName" in message
    spec = {"period": "1h", "tokenSecretName": "short-token"}
    assert len(named(253, spec)["metadata"]["name"]) == 253


def test_a_monitor_without_spec_is_rejected(custom: k8s.CustomObjectsApi, ns: str) -> None:
    assert "spec: Required value" in rejection(custom, ns, None)


def test_unknown_spec_field_is_rejected_under_strict_validation(
    custom: k8s.CustomObjectsApi, ns: str
) -> None:
    assert 'unknown field "spec.schedul"' in rejection(custom, ns, {"period": "1h", "schedul": "x"})


def test_an_edit_is_checked_by_the_same_rules(custom: k8s.CustomObjectsApi, ns: str) -> None:
    name = create(custom, ns, {"period": "1h"})["metadata"]["name"]
    with pytest.raises(ApiException) as refused:
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, name, {"spec": {"schedule": "@hourly"}}
        )
    assert EXACTLY_ONE in json.loads(refused.value.body)["message"]
    switched = custom.patch_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, name, {"spec": {"period": None, "schedule": "@hourly"}}
    )
    assert "period" not in switched["spec"]
    assert switched["spec"]["schedule"] == "@hourly"


# --- status ----------------------------------------------------------------------------

T = "2026-11-25T02:00:14.250Z"
FULL_STATUS: dict[str, Any] = {
    "observedGeneration": 1,
    "state": "Grace",
    "conditions": [
        {"type": "Ready", "status": "True", "reason": "TokenReady", "message": "ok",
         "lastTransitionTime": "2026-11-25T01:00:00Z", "observedGeneration": 1},
        {"type": "Healthy", "status": "True", "reason": "Late", "message": "late",
         "lastTransitionTime": "2026-11-25T02:00:00Z", "observedGeneration": 1},
        {"type": "Running", "status": "False", "reason": "Idle", "message": "",
         "lastTransitionTime": "2026-11-25T01:00:00Z", "observedGeneration": 1},
    ],
    "lastPingTime": T,
    "lastSuccessTime": T,
    "lastFailureTime": T,
    "lastStartTime": T,
    "lastExitCode": 3,
    "lastDurationSeconds": 412.5,
    "nextDueTime": "2026-11-25T03:00:00Z",
    "alertTime": "2026-11-25T03:30:00Z",
    "consecutiveFailures": 1,
    "pingCount": 1412,
    "pingCounts": {"success": 1400, "start": 10, "fail": 1, "log": 1},
    "missedRuns": 3,
    "recentPings": [
        {"time": T, "kind": "exit", "exitCode": 3, "durationSeconds": 1.5, "runId": "r-1",
         "body": "x" * 256},
        {"time": T, "kind": "start", "runId": "r-1"},
    ],
    "lastOutput": {"time": T, "kind": "exit", "body": "y" * 10_000},
    "tokenSecretName": "m-heartbeat",
    "tokenHash": "sha256:" + "0123456789abcdef" * 4,
    "activeSince": "2026-11-24T00:00:00Z",
    "referenceTime": "2026-11-25T02:00:00Z",
    "pausedSince": T,
    "successStreak": 0,
    "openRuns": [{"runId": "r-2", "startTime": T, "timedOut": True}, {"startTime": T}],
    "reportedJobs": [{"uid": str(uuid.UUID(int=7)), "phase": "start"}],
    "recentTransitions": [
        {"time": T, "state": "Grace", "reason": "Failed", "message": "exit code 3 (1 of 2)",
         "eventReason": "Failed"}
    ],
    "stateReason": "Failed",
    "stateMessage": "exit code 3",
    "stateSince": T,
    "pauseCause": "spec.pausedUntil",
    "pausedUntil": T,
    "failureReason": "Failed",
    "runningChangedAt": T,
}  # fmt: skip


def test_every_status_field_the_operator_writes_is_kept(
    custom: k8s.CustomObjectsApi, ns: str
) -> None:
    name = create(custom, ns, {"period": "1h"})["metadata"]["name"]
    written = custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, ns, PLURAL, name, {"status": FULL_STATUS}
    )
    assert written["status"] == FULL_STATUS  # nothing pruned, nothing changed


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({"state": "Broken"}, 'Unsupported value: "Broken"'),
        ({"recentPings": [{"time": T, "kind": "log"}] * 11}, "must have at most 10 items"),
        ({"recentPings": [{"time": T, "kind": "log", "body": "z" * 257}]}, "Too long"),
        ({"tokenHash": "the-token-itself"}, "tokenHash in body should match"),
        ({"lastExitCode": 256}, "should be less than or equal to 255"),
        ({"lastPingTime": "yesterday"}, "lastPingTime in body must be of type date-time"),
    ],
    ids=[
        "unknown state",
        "11 recent pings",
        "long recent body",
        "raw token",
        "exit 256",
        "bad time",
    ],
)
def test_status_schema_refuses_what_the_contract_excludes(
    custom: k8s.CustomObjectsApi, ns: str, status: dict[str, Any], expected: str
) -> None:
    name = create(custom, ns, {"period": "1h"})["metadata"]["name"]
    with pytest.raises(ApiException) as refused:
        custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, ns, PLURAL, name, {"status": status}
        )
    assert expected in json.loads(refused.value.body)["message"]


# --- what kubectl users see --------------------------------------------------------------


def columns(header: str) -> list[str]:
    return re.split(r"\s{2,}", header.strip())


def cells(table: list[str], row: int = 1) -> dict[str, str]:
    """A row of kubectl's table by column name, cut at the header's column offsets."""
    header = table[0]
    names = columns(header)
    starts = [header.index(name) for name in names] + [None]
    line = table[row]
    return {n: line[starts[i] : starts[i + 1]].strip() for i, n in enumerate(names)}


def test_kubectl_get_shows_the_printer_columns(
    custom: k8s.CustomObjectsApi, kubectl: KubectlRunner, namespace: str
) -> None:
    custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL,
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "HeartbeatMonitor",
         "metadata": {"name": "nightly"},
         "spec": {"schedule": "0 2 * * *", "timeZone": "America/New_York"}},
    )  # fmt: skip
    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "nightly",
        {"status": {"state": "Down", "lastPingTime": "2026-11-24T02:00:14Z",
                    "nextDueTime": "2026-11-26T02:00:00Z",
                    "conditions": [
                        {"type": "Ready", "status": "True", "reason": "TokenReady",
                         "lastTransitionTime": "2026-11-24T00:00:00Z"},
                        {"type": "Healthy", "status": "False", "reason": "Missed",
                         "lastTransitionTime": "2026-11-25T02:35:00Z"}]}},
    )  # fmt: skip

    plain = kubectl("get", "hbm", "-n", namespace).stdout.splitlines()
    assert columns(plain[0]) == ["NAME", "STATE", "REASON", "LAST PING", "AGE"]
    row = cells(plain)
    assert (row["NAME"], row["STATE"], row["REASON"]) == ("nightly", "Down", "Missed")
    assert re.fullmatch(r"\d+[smhd]\d*[smh]?", row["LAST PING"]), row  # a date shows an age

    wide = kubectl("get", "heartbeatmonitors", "-n", namespace, "-o", "wide").stdout.splitlines()
    assert columns(wide[0]) == [
        "NAME", "STATE", "REASON", "LAST PING", "NEXT DUE", "SCHEDULE", "TIME ZONE",
        "PERIOD", "AGE",
    ]  # fmt: skip
    row = cells(wide)
    assert row["NEXT DUE"] == "2026-11-26T02:00:00Z"
    assert row["SCHEDULE"] == "0 2 * * *"
    assert row["TIME ZONE"] == "America/New_York"  # issue 16 item 3
    assert row["PERIOD"] == ""  # cron mode: no period


def test_the_heartbeat_category_and_short_name_find_monitors(
    custom: k8s.CustomObjectsApi, kubectl: KubectlRunner, namespace: str
) -> None:
    create(custom, namespace, {"period": "1h"})
    for resource in ("hbm", "heartbeat", "heartbeatmonitor"):
        names = kubectl("get", resource, "-n", namespace, "-o", "name").stdout.split()
        assert len(names) == 1 and names[0].startswith("heartbeatmonitor.heartbeat.dev/m-"), names


def test_kubectl_explain_describes_every_level(kubectl: KubectlRunner) -> None:
    grace = kubectl("explain", "hbm.spec.grace").stdout
    assert "FIELD: grace <string>" in grace
    assert "Extra time after a slot's due time" in grace
    assert "Default 5m" in grace
    status = kubectl("explain", "hbm.status.recentPings.exitCode").stdout
    assert "exitCode <integer>" in status


def test_every_field_of_the_schema_has_a_description(kubectl: KubectlRunner) -> None:
    crd = json.loads(kubectl("get", "crd", "heartbeatmonitors.heartbeat.dev", "-o", "json").stdout)
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    missing: list[str] = []

    def walk(node: dict[str, Any], path: str) -> None:
        if path not in (".metadata",) and not node.get("description"):
            missing.append(path or "<root>")
        for key, child in node.get("properties", {}).items():
            walk(child, f"{path}.{key}")
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"] | {"description": "map value"}, f"{path}{{}}")

    walk(schema, "")
    assert missing == []


def test_every_string_of_the_schema_has_a_max_length(kubectl: KubectlRunner) -> None:
    """DESIGN 9.15: every string has a maxLength, spec and status alike."""
    crd = json.loads(kubectl("get", "crd", "heartbeatmonitors.heartbeat.dev", "-o", "json").stdout)
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    unbounded: list[str] = []

    def walk(node: dict[str, Any], path: str) -> None:
        if node.get("type") == "string" and "maxLength" not in node:
            unbounded.append(path)
        for key, child in node.get("properties", {}).items():
            walk(child, f"{path}.{key}")
        for child_key in ("items", "additionalProperties"):
            if isinstance(node.get(child_key), dict):
                walk(node[child_key], f"{path}[]")

    walk(schema, "")
    assert unbounded == []
    assert schema["properties"]["status"]["properties"]["lastPingTime"]["maxLength"] == 64
