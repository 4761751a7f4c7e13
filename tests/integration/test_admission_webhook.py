"""The admission webhook against the real API server (DESIGN 10.4; issue 13 item 2).

An operator process serves the webhook with a CA made for the test; a
ValidatingWebhookConfiguration limited to the test's namespace (other sessions share the
control plane) points the API server at it. Then `kubectl apply` is refused, with the
domain's sentence, for each spec the operator could not evaluate; a good monitor is
stored; and with the operator stopped an apply goes through (failurePolicy Ignore).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from heartbeat_operator.admission.app import PATH
from heartbeat_operator.devcluster import processes, webhooks
from tests.integration.conftest import KubectlRunner, OperatorFactory, OperatorProcess
from tests.integration.operator_process import isolated
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

#: Seconds the API server waits for the webhook: short, so the "operator stopped" case
#: shows that an unreachable webhook never blocks an apply.
TIMEOUT_SECONDS = 2

REFUSED = [
    pytest.param(
        {"schedule": "61 * * * *"},
        "spec.schedule: invalid schedule '61 * * * *': minute 61 is out of range (0-59)",
        id="cron-line",
    ),
    pytest.param(
        {"schedule": "0 2 * * *", "timeZone": "Europe/Berlinn"},
        "spec.timeZone: unknown time zone 'Europe/Berlinn' (an IANA name)",
        id="time-zone",
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
        {"period": "1h", "minRuntime": "2h", "maxRuntime": "1h"},
        "spec.minRuntime (2h) must be shorter than spec.maxRuntime (1h): no run could pass both",
        id="min-runtime",
    ),
]


def manifest(name: str, namespace: str, spec: dict[str, Any]) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "heartbeat.dev/v1alpha1",
            "kind": "HeartbeatMonitor",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }
    )


def apply(kubectl: KubectlRunner, text: str, *extra: str) -> Any:
    return kubectl("apply", *extra, "-f", "-", input=text, check=False)


@pytest.fixture
def webhook(
    operator_factory: OperatorFactory,
    namespace: str,
    kubectl: KubectlRunner,
    tmp_path: Path,
) -> Iterator[OperatorProcess]:
    pair = webhooks.generate(tmp_path / "webhook")
    (port,) = processes.free_ports(1)
    operator = operator_factory.start(
        *isolated(namespace),
        "--webhook-port",
        str(port),
        "--webhook-cert-file",
        str(pair.cert),
        "--webhook-key-file",
        str(pair.key),
    )
    name = f"heartbeat-test-{namespace}"
    config = webhooks.configuration(
        f"https://127.0.0.1:{port}{PATH}",
        pair.ca_cert.read_bytes(),
        name=name,
        namespace=namespace,
        timeout_seconds=TIMEOUT_SECONDS,
    )
    kubectl("apply", "-f", "-", input=json.dumps(config))
    try:
        # The API server picks a new configuration up from its watch: wait until it calls
        # the webhook (a server-side dry run of a bad monitor is refused), then test.
        probe = manifest("probe", namespace, {"schedule": "0 0 31 2 *"})
        wait_for(
            lambda: "never fires" in apply(kubectl, probe, "--dry-run=server").stderr,
            timeout=30,
            what="the API server to call the webhook",
        )
        yield operator
    finally:
        kubectl("delete", "validatingwebhookconfiguration", name, "--ignore-not-found")


@pytest.mark.parametrize(("spec", "sentence"), REFUSED)
def test_kubectl_apply_refuses_a_bad_monitor_in_a_sentence(
    webhook: OperatorProcess,
    kubectl: KubectlRunner,
    namespace: str,
    spec: dict[str, Any],
    sentence: str,
) -> None:
    result = apply(kubectl, manifest("nightly", namespace, spec))
    assert result.returncode != 0
    assert (
        'admission webhook "monitors.heartbeat.dev" denied the request: ' + sentence
    ) in result.stderr
    missing = kubectl("get", "hbm", "nightly", "-n", namespace, check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr


def test_a_good_monitor_is_stored_and_a_bad_edit_refused(
    webhook: OperatorProcess, kubectl: KubectlRunner, namespace: str
) -> None:
    good = {"schedule": "0 2 * * *", "timeZone": "Europe/Berlin"}
    created = apply(kubectl, manifest("nightly", namespace, good))
    assert created.returncode == 0, created.stderr
    assert "heartbeatmonitor.heartbeat.dev/nightly created" in created.stdout

    bad = {"schedule": "0 2 * * *", "timeZone": "Europe/Berlinn"}
    edited = apply(kubectl, manifest("nightly", namespace, bad))
    assert edited.returncode != 0
    assert "unknown time zone 'Europe/Berlinn'" in edited.stderr
    stored = json.loads(kubectl("get", "hbm", "nightly", "-n", namespace, "-o", "json").stdout)
    assert stored["spec"]["timeZone"] == "Europe/Berlin"

    # Labels on a monitor keep working whatever its spec (the spec is not re-judged).
    labelled = kubectl("label", "hbm", "nightly", "-n", namespace, "team=ops", check=False)
    assert labelled.returncode == 0, labelled.stderr


def test_with_the_operator_stopped_an_apply_goes_through(
    webhook: OperatorProcess, kubectl: KubectlRunner, namespace: str
) -> None:
    assert webhook.stop() == 0
    started = time.monotonic()
    result = apply(kubectl, manifest("nightly", namespace, {"schedule": "0 0 31 2 *"}))
    assert result.returncode == 0, result.stderr  # failurePolicy Ignore
    assert "heartbeatmonitor.heartbeat.dev/nightly created" in result.stdout
    print(f"\napply with the webhook down took {time.monotonic() - started:.2f} s")
