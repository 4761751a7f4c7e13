"""Token Secrets on the real API (DESIGN 3 and 9.9): adopting a user's Secret, weak and
conflicting tokens, rotation, and URLs rewritten when the operator's URLs change."""

from __future__ import annotations

import pytest
from kubernetes import client as k8s

from tests.integration.operator_process import Monitors, condition, http, isolated
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

USER_TOKEN = "user-chosen-token-0123456789abcdefghij"


@pytest.fixture
def monitors(api_client, namespace):
    return Monitors(api_client, namespace)


def user_secret(monitors: Monitors, name: str, token: str) -> None:
    monitors.core.create_namespaced_secret(
        monitors.namespace,
        k8s.V1Secret(metadata=k8s.V1ObjectMeta(name=name), string_data={"token": token}),
    )


def ready_reason(monitors: Monitors, name: str, status: str) -> str:
    return wait_for(
        lambda: (
            (c := condition(monitors.status(name), "Ready")).get("status") == status and c["reason"]
        ),
        timeout=10,
        what=f"{name} Ready={status}",
    )


def test_a_users_secret_is_adopted_weak_and_conflicting_tokens_are_not(operator_factory, monitors):
    op = operator_factory.start(*isolated(monitors.namespace))
    user_secret(monitors, "mine", USER_TOKEN)
    monitors.create("adopter", {"period": "1h", "tokenSecretName": "mine"})
    assert ready_reason(monitors, "adopter", "True") == "TokenReady"
    secret = monitors.core.read_namespaced_secret("mine", monitors.namespace)
    assert not secret.metadata.owner_references  # adopted: never owned
    assert monitors.secret("mine")["url"] == f"{op.url}/ping/{USER_TOKEN}"
    assert http(f"{op.url}/ping/{USER_TOKEN}").status == 200
    assert monitors.absorbed("adopter", 1)["state"] == "Healthy"

    user_secret(monitors, "weak", "short")
    monitors.create("weakling", {"period": "1h", "tokenSecretName": "weak"})
    assert ready_reason(monitors, "weakling", "False") == "WeakToken"
    assert "short" not in str(monitors.status("weakling"))

    monitors.create("copycat", {"period": "1h", "tokenSecretName": "mine"})
    assert ready_reason(monitors, "copycat", "False") == "TokenConflict"
    assert http(f"{op.url}/ping/{USER_TOKEN}").status == 200
    assert monitors.absorbed("adopter", 2)["pingCount"] == 2  # the older monitor keeps it
    assert not monitors.status("copycat").get("pingCount")


def test_a_monitor_with_a_token_failure_never_goes_down(operator_factory, monitors):
    """DESIGN 9.7: while Ready=False the state keeps its value and nothing alerts. A twin
    with a good token and the same schedule shows the deadlines did pass."""
    operator_factory.start(*isolated(monitors.namespace))
    spec = {"period": "2s", "grace": "1s"}
    user_secret(monitors, "weak", "short")
    monitors.create("weakling", {**spec, "tokenSecretName": "weak"})
    monitors.create("twin", spec)
    assert ready_reason(monitors, "weakling", "False") == "WeakToken"
    monitors.wait_state("twin", "Down", timeout=30)
    status = monitors.status("weakling")
    assert status["state"] == "New" and status["missedRuns"] == 0
    assert "nextDueTime" not in status and "alertTime" not in status
    assert condition(status, "Healthy")["reason"] == "InvalidSpec"
    assert not {"Late", "NeverPinged", "Missed"} & set(monitors.event_reasons("weakling"))
    assert "NeverPinged" in monitors.event_reasons("twin")


def test_rotation_replaces_the_token_and_the_old_one_stops_working(operator_factory, monitors):
    op = operator_factory.start(*isolated(monitors.namespace))
    monitors.create("rotating", {"period": "1h"})
    old = monitors.url("rotating")
    old_hash = monitors.status("rotating")["tokenHash"]
    assert http(old).status == 200
    monitors.custom.patch_namespaced_custom_object(
        "heartbeat.dev",
        "v1alpha1",
        monitors.namespace,
        "heartbeatmonitors",
        "rotating",
        {"metadata": {"annotations": {"heartbeat.dev/rotate-token": "1"}}},
    )
    new = wait_for(
        lambda: (u := monitors.secret("rotating-heartbeat")["url"]) != old and u,
        timeout=10,
        what="a new URL in the Secret",
    )
    assert monitors.status("rotating")["tokenHash"] != old_hash
    assert new.startswith(op.url + "/ping/")
    assert http(new).status == 200
    assert http(old).status == 404


def test_secret_urls_follow_the_operators_urls(operator_factory, monitors):
    flags = isolated(monitors.namespace)
    first = operator_factory.start(*flags, "--external-url", "https://one.example")
    monitors.create("moving", {"period": "1h"})
    token = monitors.url("moving").rsplit("/", 1)[1]
    assert monitors.secret("moving-heartbeat")["url"] == f"https://one.example/ping/{token}"
    first.stop()

    operator_factory.start(
        *flags,
        "--external-url",
        "https://two.example",
        "--internal-url",
        "http://heartbeat.ops.svc:8080",
    )
    secret = wait_for(
        lambda: (s := monitors.secret("moving-heartbeat"))["url"].startswith("https://two") and s,
        timeout=15,
        what="the Secret's url rewritten",
    )
    assert secret == {
        "token": token,
        "url": f"https://two.example/ping/{token}",
        "internal-url": f"http://heartbeat.ops.svc:8080/ping/{token}",
    }


def test_a_deleted_secret_comes_back_with_a_new_token(operator_factory, monitors):
    """DESIGN 10.8.14: the leader's slow sweep (reads by name; here a pass every second)
    finds the deleted Secret, creates it again with a new token, says so in a Warning
    Event, and the old URL stops working. It used to stay gone with Ready=True."""
    op = operator_factory.start(
        *isolated(monitors.namespace),
        "--secret-sweep-interval",
        "1",
        "--secret-sweep-reads-per-second",
        "50",
    )
    monitors.create("lost", {"period": "1h"})
    old = monitors.url("lost")
    assert http(old).status == 200

    monitors.core.delete_namespaced_secret("lost-heartbeat", monitors.namespace)
    new = wait_for(
        lambda: (u := _url_or_none(monitors, "lost-heartbeat")) != old and u,
        timeout=30,
        what="the Secret created again with a new URL",
    )
    assert new.startswith(op.url + "/ping/")
    wait_for(lambda: http(old).status == 404, timeout=10, what="the old URL refused")
    assert http(new).status == 200
    monitors.wait_ready("lost")
    status = monitors.absorbed("lost", 2)
    assert status["pingCount"] == 2  # the ping before and the one after: nothing lost
    secret = monitors.core.read_namespaced_secret("lost-heartbeat", monitors.namespace)
    assert [ref.uid for ref in secret.metadata.owner_references] == [
        monitors.get("lost")["metadata"]["uid"]
    ]
    (event,) = wait_for(
        lambda: [e for e in monitors.events("lost") if e.reason == "TokenRotated"],
        timeout=10,
        what="a TokenRotated Event",
    )
    assert event.type == "Warning"
    assert "lost-heartbeat was deleted" in event.message
    for token in (old.rsplit("/", 1)[1], new.rsplit("/", 1)[1]):
        assert token not in event.message


def _url_or_none(monitors: Monitors, name: str) -> str | None:
    try:
        return monitors.secret(name).get("url")
    except k8s.ApiException as exc:
        if exc.status == 404:
            return None
        raise
