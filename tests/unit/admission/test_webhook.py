"""The admission webhook (DESIGN 10.4): each refusal in a sentence, what it lets through,
and its HTTPS listener. The app runs for real in-process; nothing inside aiohttp is mocked."""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.support.waiting import async_wait_for

from heartbeat_operator.admission.app import PATH, make_webhook_app
from heartbeat_operator.admission.reviews import MalformedReview, review
from heartbeat_operator.admission.serving import Certificates, serve_webhook
from heartbeat_operator.devcluster import webhooks

UID = "705ab4f5-6393-11e8-b7cc-42010a800002"


def monitor(spec: dict[str, Any], name: str = "backup") -> dict[str, Any]:
    return {
        "apiVersion": "heartbeat.dev/v1alpha1",
        "kind": "HeartbeatMonitor",
        "metadata": {"name": name, "namespace": "ops"},
        "spec": spec,
    }


def admission(
    obj: dict[str, Any],
    *,
    operation: str = "CREATE",
    old: dict[str, Any] | None = None,
    field_manager: str | None = None,
    kind: tuple[str, str] = ("heartbeat.dev", "HeartbeatMonitor"),
) -> dict[str, Any]:
    request: dict[str, Any] = {
        "uid": UID,
        "kind": {"group": kind[0], "version": "v1alpha1", "kind": kind[1]},
        "resource": {"group": kind[0], "version": "v1alpha1", "resource": "heartbeatmonitors"},
        "namespace": "ops",
        "name": obj["metadata"]["name"],
        "operation": operation,
        "userInfo": {"username": "alice"},
        "object": obj,
        "oldObject": old,
        "dryRun": False,
    }
    if field_manager is not None:
        request["options"] = {"kind": "CreateOptions", "fieldManager": field_manager}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


REFUSALS = [
    pytest.param(
        {"schedule": "61 * * * *"},
        "spec.schedule: invalid schedule '61 * * * *': minute 61 is out of range (0-59)",
        id="cron-line-cronsim-rejects",
    ),
    pytest.param(
        {"schedule": "0 2 * * *", "timeZone": "Mars/Olympus"},
        "spec.timeZone: unknown time zone 'Mars/Olympus' (an IANA name)",
        id="unknown-time-zone",
    ),
    pytest.param(
        {"schedule": "0 0 31 2 *"},
        "spec.schedule '0 0 31 2 *' never fires: no month it names has that day of the month",
        id="never-fires",
    ),
    pytest.param(
        {"schedule": "CRON_TZ=Europe/Berlin 0 2 * * *"},
        "spec.schedule must not start with CRON_TZ=Europe/Berlin: put the cron line alone "
        "in spec.schedule and set spec.timeZone: Europe/Berlin",
        id="cron-tz-prefix",
    ),
    pytest.param(
        {"schedule": "TZ=UTC 0 2 * * *"},
        "spec.schedule must not start with TZ=UTC: put the cron line alone "
        "in spec.schedule and set spec.timeZone: UTC",
        id="tz-prefix",
    ),
    pytest.param(
        {"period": "1h", "minRuntime": "10m", "maxRuntime": "10m"},
        "spec.minRuntime (10m) must be shorter than spec.maxRuntime (10m): no run could pass both",
        id="min-runtime-not-below-max",
    ),
]


@pytest.mark.parametrize(("spec", "message"), REFUSALS)
def test_each_refusal_is_one_sentence(spec: dict[str, Any], message: str) -> None:
    answer = review(admission(monitor(spec)))
    assert answer["apiVersion"] == "admission.k8s.io/v1"
    assert answer["kind"] == "AdmissionReview"
    assert answer["response"] == {
        "uid": UID,
        "allowed": False,
        "status": {"code": 422, "reason": "Invalid", "message": message},
    }


@pytest.mark.parametrize(
    "spec",
    [
        {"period": "1h"},
        {"schedule": "0 2 * * *", "timeZone": "Europe/Berlin", "grace": "30m"},
        {"schedule": "@daily", "minRuntime": "1m", "maxRuntime": "2h"},
        {"schedule": "0 0 29 2 *"},
    ],
)
def test_a_good_spec_is_allowed(spec: dict[str, Any]) -> None:
    assert review(admission(monitor(spec)))["response"] == {"uid": UID, "allowed": True}


def test_an_update_that_breaks_the_spec_is_refused() -> None:
    old = monitor({"schedule": "0 2 * * *"})
    new = monitor({"schedule": "0 2 * * *", "timeZone": "Europe/Berlinn"})
    response = review(admission(new, operation="UPDATE", old=old))["response"]
    assert response["allowed"] is False
    assert "Europe/Berlinn" in response["status"]["message"]


def test_an_update_that_leaves_an_invalid_spec_alone_is_allowed() -> None:
    # An old monitor that is already invalid (made before the webhook, or while the operator
    # was down) must stay editable: labels, annotations, rotate-token, finalizers.
    old = monitor({"schedule": "0 0 31 2 *"})
    new = monitor({"schedule": "0 0 31 2 *"})
    new["metadata"]["labels"] = {"team": "ops"}
    assert review(admission(new, operation="UPDATE", old=old))["response"]["allowed"] is True


def test_an_already_invalid_monitor_can_still_be_paused_or_fixed_elsewhere() -> None:
    # Ratcheting: the error was there before this edit, so the edit is not refused for it
    # (a user must be able to pause the monitor while the time zone is being sorted out).
    old = monitor({"schedule": "0 2 * * *", "timeZone": "Europe/Berln"})
    for change in ({"paused": True}, {"grace": "1h"}):
        new = monitor({**old["spec"], **change})
        assert review(admission(new, operation="UPDATE", old=old))["response"]["allowed"] is True
    # A different error is this edit's own: refused.
    new = monitor({"schedule": "0 2 * * *", "timeZone": "Europe/Berlinn"})
    response = review(admission(new, operation="UPDATE", old=old))["response"]
    assert response["allowed"] is False and "Europe/Berlinn" in response["status"]["message"]


def test_the_operators_own_writes_are_allowed() -> None:
    # An auto-wired monitor mirrors its CronJob; it shows Ready=False rather than vanish.
    bad = monitor({"schedule": "0 0 31 2 *"})
    answer = review(admission(bad, field_manager="heartbeat-operator"))
    assert answer["response"]["allowed"] is True
    assert (
        review(admission(bad, field_manager="kubectl-client-side-apply"))["response"]["allowed"]
        is False
    )


@pytest.mark.parametrize(
    ("operation", "kind"),
    [("DELETE", ("heartbeat.dev", "HeartbeatMonitor")), ("CREATE", ("", "ConfigMap"))],
)
def test_other_operations_and_kinds_are_allowed(operation: str, kind: tuple[str, str]) -> None:
    bad = monitor({"schedule": "0 0 31 2 *"})
    answer = review(admission(bad, operation=operation, kind=kind))
    assert answer["response"] == {"uid": UID, "allowed": True}


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {}},
        {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"},
        {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": ""}},
    ],
)
def test_a_malformed_review_raises(body: Any) -> None:
    with pytest.raises(MalformedReview):
        review(body)


# --- over HTTP ---------------------------------------------------------------------------


async def test_the_route_answers_a_review(aiohttp_client: Any) -> None:
    client = await aiohttp_client(make_webhook_app())
    reply = await client.post(PATH, json=admission(monitor({"schedule": "0 0 31 2 *"})))
    assert reply.status == 200
    body = await reply.json()
    assert body["response"]["allowed"] is False
    assert "never fires" in body["response"]["status"]["message"]

    reply = await client.post(PATH, json=admission(monitor({"period": "5m"})))
    assert (await reply.json())["response"] == {"uid": UID, "allowed": True}


@pytest.mark.parametrize(
    "data",
    [b"not json", b"[]", b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}'],
)
async def test_a_malformed_review_gets_400(aiohttp_client: Any, data: bytes) -> None:
    client = await aiohttp_client(make_webhook_app())
    reply = await client.post(PATH, data=data, headers={"Content-Type": "application/json"})
    assert reply.status == 400
    assert "not an AdmissionReview v1" in (await reply.json())["error"]


# --- HTTPS ---------------------------------------------------------------------------------


def _client_context(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


async def test_served_over_https_with_the_given_certificate(tmp_path: Path) -> None:
    pair = webhooks.generate(tmp_path / "tls")
    async with (
        serve_webhook("127.0.0.1", 0, pair.cert, pair.key) as served,
        aiohttp.ClientSession() as session,
    ):
        reply = await session.post(
            f"{served.url}{PATH}",
            json=admission(monitor({"schedule": "TZ=UTC 0 2 * * *"})),
            ssl=_client_context(pair.ca_cert),
        )
        assert reply.status == 200
        assert "spec.timeZone: UTC" in (await reply.json())["response"]["status"]["message"]


async def test_a_renewed_certificate_is_served_without_a_restart(tmp_path: Path) -> None:
    first = webhooks.generate(tmp_path / "first")
    second = webhooks.generate(tmp_path / "second")  # a new CA: only its clients trust it
    live = tmp_path / "live"
    live.mkdir()
    cert, key = live / "tls.crt", live / "tls.key"

    def install(pair: webhooks.WebhookPki, mtime: float) -> None:
        cert.write_bytes(pair.cert.read_bytes())
        key.write_bytes(pair.key.read_bytes())
        for path in (cert, key):  # distinct times even on a coarse file system clock
            os.utime(path, (mtime, mtime))

    install(first, 1_000_000)
    async with serve_webhook("127.0.0.1", 0, cert, key, reload_interval=0.05) as served:

        async def healthz(ca: Path) -> bool:
            # A fresh connection each time: the handshake shows the certificate served now.
            connector = aiohttp.TCPConnector(ssl=_client_context(ca), force_close=True)
            async with aiohttp.ClientSession(connector=connector) as fresh:
                reply = await fresh.get(f"{served.url}/healthz")
                return reply.status == 200

        assert await healthz(first.ca_cert)
        install(second, 2_000_000)
        assert await async_wait_for(
            lambda: healthz(second.ca_cert), timeout=10, what="the renewed certificate"
        )
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await healthz(first.ca_cert)


def test_a_pair_that_does_not_load_keeps_the_previous_one(tmp_path: Path) -> None:
    pair = webhooks.generate(tmp_path / "tls")
    certificates = Certificates(pair.cert, pair.key)
    assert certificates.reload_if_changed() is False  # nothing changed
    pair.key.write_text("half-written")
    os.utime(pair.key, (3_000_000, 3_000_000))
    assert certificates.reload_if_changed() is False
    with pytest.raises(ssl.SSLError):
        Certificates(pair.cert, pair.key)  # at start-up the same pair is an error
