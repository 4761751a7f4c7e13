"""Alerting end to end (issue 6): the operator, a real Prometheus and a real Alertmanager.

Everything runs for real on 127.0.0.1: the local control plane, ``heartbeat-operator run``
as a separate process, Prometheus (Debian's ``prometheus``) scraping the operator's
metrics port every second with the shipped deploy/prometheus/heartbeat-rules.yaml loaded
and evaluated every second, and Alertmanager (Debian's ``prometheus-alertmanager``)
routing every alert to a webhook this test serves. What is asserted is what an on-call
engineer would receive.

The shipped rules are tested as shipped, so HeartbeatOperatorAbsent's ``for: 2m`` makes
that test take a little over two minutes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from heartbeat_operator.devcluster import processes
from tests.integration.operator_process import Monitors, condition, http, isolated
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "heartbeat-rules.yaml"


# --- the webhook Alertmanager notifies ---------------------------------------------------


@dataclass
class Notification:
    received: float  # time.time() when the webhook got it
    status: str  # firing | resolved (of this alert)
    labels: dict[str, str]
    annotations: dict[str, str]


@dataclass
class Webhook:
    """An HTTP server recording every alert of every notification Alertmanager posts."""

    server: ThreadingHTTPServer
    notifications: list[Notification] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/alerts"

    def record(self, payload: dict[str, Any]) -> None:
        now = time.time()
        with self.lock:
            for alert in payload.get("alerts", []):
                self.notifications.append(
                    Notification(now, alert["status"], alert["labels"], alert["annotations"])
                )

    def matching(
        self, alertname: str, status: str | None = None, **labels: str
    ) -> list[Notification]:
        with self.lock:
            return [
                n
                for n in self.notifications
                if n.labels.get("alertname") == alertname
                and (status is None or n.status == status)
                and all(n.labels.get(k) == v for k, v in labels.items())
            ]

    def wait(self, alertname: str, status: str, timeout: float, **labels: str) -> Notification:
        found = wait_for(
            lambda: self.matching(alertname, status, **labels),
            timeout=timeout,
            interval=0.2,
            what=f"{status} {alertname} {labels} at the webhook",
        )
        return found[0]


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook: Webhook

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            hook.record(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the notifications are the record

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hook = Webhook(server)
    thread = threading.Thread(target=server.serve_forever, name="webhook", daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()


# --- Prometheus and Alertmanager as processes --------------------------------------------


def binary(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(f"{' or '.join(names)} not found: run hack/install-test-deps.sh")


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def is_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited {self.process.returncode}:\n"
                    f"{processes.tail(self.log_path, 30)}"
                )
            return is_ready(f"{self.url}/-/ready")

        wait_for(ready, timeout=30, what=f"{self.name} /-/ready")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Stack:
    """Alertmanager -> webhook, and Prometheus scraping the targets in ``targets_file``."""

    prometheus: Server
    alertmanager: Server
    targets_file: Path
    webhook: Webhook

    def scrape(self, *metrics_ports: int) -> None:
        """Point Prometheus at these operator metrics ports (file_sd, picked up at once)."""
        targets = [{"targets": [f"127.0.0.1:{port}" for port in metrics_ports]}]
        temporary = self.targets_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(targets))
        temporary.replace(self.targets_file)  # atomic: Prometheus never reads half a file

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.prometheus.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        body = get_json(url)
        assert body["status"] == "success", body
        return body["data"]["result"]  # type: ignore[no-any-return]

    def alerts(self) -> list[dict[str, Any]]:
        """Prometheus's active (pending or firing) alerts."""
        return get_json(f"{self.prometheus.url}/api/v1/alerts")["data"]["alerts"]  # type: ignore[no-any-return]

    def wait_query(self, expr: str, timeout: float = 30) -> list[dict[str, Any]]:
        return wait_for(lambda: self.query(expr), timeout=timeout, what=f"Prometheus: {expr}")


@pytest.fixture
def stack(tmp_path: Path, webhook: Webhook, request: pytest.FixtureRequest) -> Iterator[Stack]:
    prometheus_port, alertmanager_port = processes.free_ports(2)
    servers: list[Server] = []

    am_dir = tmp_path / "alertmanager"
    am_dir.mkdir()
    (am_dir / "alertmanager.yml").write_text(
        yaml.safe_dump(
            {
                "route": {
                    "receiver": "webhook",
                    # one notification per alert, sent as soon as it arrives
                    "group_by": ["..."],
                    "group_wait": "0s",
                    "group_interval": "1s",
                    "repeat_interval": "1h",
                },
                "receivers": [
                    {
                        "name": "webhook",
                        "webhook_configs": [{"url": webhook.url, "send_resolved": True}],
                    }
                ],
            }
        )
    )
    am_log = tmp_path / "alertmanager.log"
    with open(am_log, "ab") as log:
        am_process = subprocess.Popen(
            [
                binary("prometheus-alertmanager", "alertmanager"),
                f"--config.file={am_dir / 'alertmanager.yml'}",
                f"--storage.path={am_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{alertmanager_port}",
                "--cluster.listen-address=",  # no gossip port: a single instance
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    alertmanager = Server("alertmanager", am_process, alertmanager_port, am_log)
    servers.append(alertmanager)

    prom_dir = tmp_path / "prometheus"
    prom_dir.mkdir()
    targets_file = prom_dir / "operators.json"
    targets_file.write_text("[]")
    (prom_dir / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {
                    "scrape_interval": "1s",
                    "scrape_timeout": "1s",
                    "evaluation_interval": "1s",
                },
                "rule_files": [str(RULES)],
                "alerting": {
                    "alertmanagers": [
                        {"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}
                    ]
                },
                "scrape_configs": [
                    {
                        "job_name": "heartbeat-operator",
                        # as the chart's ServiceMonitor does (DESIGN 9.14)
                        "honor_labels": True,
                        "file_sd_configs": [
                            {"files": [str(targets_file)], "refresh_interval": "1s"}
                        ],
                    }
                ],
            }
        )
    )
    prom_log = tmp_path / "prometheus.log"
    with open(prom_log, "ab") as log:
        prom_process = subprocess.Popen(
            [
                binary("prometheus"),
                f"--config.file={prom_dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={prom_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{prometheus_port}",
                # Alertmanager gets new and resolved alerts at once; this only spaces out
                # the re-sends of alerts still firing.
                "--rules.alert.resend-delay=1s",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    prometheus = Server("prometheus", prom_process, prometheus_port, prom_log)
    servers.append(prometheus)
    try:
        alertmanager.wait_ready()
        prometheus.wait_ready()
        yield Stack(prometheus, alertmanager, targets_file, webhook)
    finally:
        for server in servers:
            server.stop()
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            for server in servers:
                print(f"\n--- {server.log_path} (tail)\n{processes.tail(server.log_path, 40)}")
            print("\n--- webhook notifications")
            for notification in webhook.notifications:
                print(notification)


@pytest.fixture
def monitors(api_client: Any, namespace: str) -> Monitors:
    return Monitors(api_client, namespace)


# --- the tests ------------------------------------------------------------------------------


def test_down_notifies_with_labels_and_a_ping_resolves_it(
    stack: Stack, operator_factory: Any, monitors: Monitors, namespace: str
) -> None:
    operator = operator_factory.start(*isolated(namespace, "--metrics-label", "team"))
    stack.scrape(operator.metrics_port)
    labels = {"team": "storage", "tier": "not-allow-listed"}

    # A monitor that is never pinged goes Down by itself (the leader's deadline: NeverPinged).
    monitors.create("nightly", {"period": "3s", "grace": "3s"}, labels=labels)
    # One that fails goes Down on the ping; a later success resolves it.
    monitors.create("backup", {"period": "1h"}, labels=labels)
    backup_url = monitors.url("backup")

    # A 404 records nothing, so a job may retry it; the first ping's acceptance itself is
    # test_operator_pings' subject (DESIGN 9.9), this test's is the alert.
    wait_for(lambda: http(backup_url + "/fail").status == 200, timeout=10, what="the /fail ping")
    failed = stack.webhook.wait(
        "HeartbeatMonitorDown", "firing", 30, namespace=namespace, name="backup"
    )
    assert failed.labels["severity"] == "critical"
    assert failed.labels["label_team"] == "storage"
    assert failed.labels["mode"] == "period"
    assert "label_tier" not in failed.labels
    assert failed.annotations["summary"] == f"Heartbeat monitor {namespace}/backup is Down"
    description = failed.annotations["description"]
    assert f"HeartbeatMonitor backup in namespace {namespace} is Down" in description
    assert "(1 in a row, reaching its failureThreshold)" in description
    assert "No success recorded yet." in description
    token = backup_url.rsplit("/", 1)[1]
    assert all(token not in json.dumps(n.__dict__) for n in stack.webhook.notifications)

    missed = stack.webhook.wait(
        "HeartbeatMonitorDown", "firing", 30, namespace=namespace, name="nightly"
    )
    assert missed.labels["label_team"] == "storage"
    # On its way to Down it was Late first (Grace between nextDueTime and alertTime).
    late = stack.webhook.matching("HeartbeatMonitorLate", namespace=namespace, name="nightly")
    assert late and late[0].labels["severity"] == "warning"
    assert late[0].received <= missed.received

    pinged = time.time()
    assert http(backup_url).status == 200
    resolved = stack.webhook.wait(
        "HeartbeatMonitorDown", "resolved", 30, namespace=namespace, name="backup"
    )
    assert resolved.received >= pinged
    assert monitors.status("backup")["state"] == "Healthy"

    # The never-pinged monitor is still Down: still firing, never resolved.
    assert monitors.status("nightly")["state"] == "Down"
    assert not stack.webhook.matching(
        "HeartbeatMonitorDown", "resolved", namespace=namespace, name="nightly"
    )


def test_a_paused_monitor_never_fires(
    stack: Stack, operator_factory: Any, monitors: Monitors, namespace: str
) -> None:
    operator = operator_factory.start(*isolated(namespace))
    stack.scrape(operator.metrics_port)
    # Silent monitors with a 2 s period: unpaused, each would be Down within 3 s.
    monitors.create("created-paused", {"period": "2s", "grace": "1s", "paused": True})
    monitors.create("paused-later", {"period": "2s", "grace": "1s"})
    monitors.patch_spec("paused-later", {"paused": True})
    for name in ("created-paused", "paused-later"):
        monitors.wait_state(name, "Paused", timeout=10)
    # Prometheus has seen them paused for 10 scrapes (five periods each), and the rules
    # were evaluated all along.
    for name in ("created-paused", "paused-later"):
        stack.wait_query(
            f'count_over_time(heartbeat_monitor_state{{namespace="{namespace}",name="{name}",'
            f'state="Paused"}}[1m]) >= 10',
            timeout=30,
        )
    for name in ("created-paused", "paused-later"):
        assert monitors.status(name)["state"] == "Paused"
        window = f'ALERTS{{namespace="{namespace}",name="{name}"}}'
        assert not stack.query(f"count_over_time({window}[10m])"), f"{name} was pending or firing"
    assert not [n for n in stack.webhook.notifications if n.labels.get("namespace") == namespace]


def test_a_leader_handover_keeps_the_alert_firing(
    stack: Stack, operator_factory: Any, monitors: Monitors, namespace: str
) -> None:
    first = operator_factory.start(*isolated(namespace), name="first")
    second = operator_factory.start(*isolated(namespace), name="second")
    stack.scrape(first.metrics_port, second.metrics_port)
    monitors.create("backup", {"period": "1h"})
    url = monitors.url("backup")
    wait_for(lambda: http(url + "/fail").status == 200, timeout=10, what="the /fail ping")
    stack.webhook.wait("HeartbeatMonitorDown", "firing", 30, namespace=namespace, name="backup")

    (leader,) = stack.wait_query("heartbeat_leader == 1")
    port = int(leader["metric"]["instance"].rsplit(":", 1)[1])
    old, new = (first, second) if port == first.metrics_port else (second, first)
    old.kill()  # no Lease release: the follower takes over when the Lease expires
    stack.wait_query(
        f'heartbeat_leader{{instance="127.0.0.1:{new.metrics_port}"}} == 1', timeout=30
    )
    stack.wait_query(
        f'heartbeat_monitor_up{{namespace="{namespace}",name="backup",'
        f'instance="127.0.0.1:{new.metrics_port}"}} == 0',
        timeout=10,
    )
    handed_over = time.time()
    # A few more evaluations with the new leader's series, then: the alert never resolved
    # and was never sent as a second, differently-labelled alert.
    wait_for(lambda: time.time() > handed_over + 5, timeout=10, what="five more evaluations")
    down = stack.webhook.matching("HeartbeatMonitorDown", namespace=namespace, name="backup")
    assert {n.status for n in down} == {"firing"}
    assert len({json.dumps(n.labels, sort_keys=True) for n in down}) == 1
    (active,) = [
        a for a in stack.alerts() if a["labels"].get("alertname") == "HeartbeatMonitorDown"
    ]
    assert active["state"] == "firing"
    assert not stack.webhook.matching("HeartbeatOperatorAbsent")


def test_stopping_the_operator_fires_operator_absent_after_two_minutes(
    stack: Stack, operator_factory: Any, namespace: str
) -> None:
    operator = operator_factory.start(*isolated(namespace))
    stack.scrape(operator.metrics_port)
    stack.wait_query("heartbeat_leader == 1")
    # Pending since Prometheus started without a target; a scraped leader clears it.
    wait_for(
        lambda: (
            not [a for a in stack.alerts() if a["labels"]["alertname"] == "HeartbeatOperatorAbsent"]
        ),
        timeout=10,
        what="HeartbeatOperatorAbsent inactive while a leader is scraped",
    )

    assert operator.stop() == 0
    stopped = time.time()
    stack.wait_query('ALERTS{alertname="HeartbeatOperatorAbsent",alertstate="pending"}', timeout=15)
    absent = stack.webhook.wait("HeartbeatOperatorAbsent", "firing", timeout=180)
    # `for: 2m`: not before two minutes without a leader (one scrape interval of slack)
    assert absent.received - stopped >= 119
    assert absent.labels["severity"] == "critical"
    assert "heartbeat_leader" in absent.annotations["description"]


def test_an_invalid_monitor_notifies_and_the_fix_resolves_it(
    stack: Stack, operator_factory: Any, monitors: Monitors, namespace: str
) -> None:
    """DESIGN 10.4: a monitor that cannot be evaluated (Ready=False) is not silent.

    The monitor is made unusable by a weak token in the user's Secret (Ready=False
    WeakToken): unlike a schedule or time zone typo, which the admission webhook may
    refuse before the operator ever sees it, nothing at admission can refuse that, so the
    test does not depend on which other checks are installed. The alert reads
    heartbeat_monitor_ready alone, whatever the reason.
    """
    operator = operator_factory.start(*isolated(namespace, "--metrics-label", "team"))
    stack.scrape(operator.metrics_port)
    monitors.core.create_namespaced_secret(
        namespace,
        k8s.V1Secret(metadata=k8s.V1ObjectMeta(name="weak"), string_data={"token": "short"}),
    )
    # A 2 s period: valid, it would be Down in seconds; invalid, nothing is judged.
    spec = {"period": "2s", "grace": "1s", "tokenSecretName": "weak"}
    monitors.create("typo", spec, labels={"team": "storage"})
    monitors.create("fine", {"period": "1h"}, labels={"team": "storage"})
    wait_for(
        lambda: condition(monitors.status("typo"), "Ready").get("reason") == "WeakToken",
        timeout=10,
        what="typo Ready=False WeakToken",
    )

    invalid = stack.webhook.wait(
        "HeartbeatMonitorInvalid", "firing", 30, namespace=namespace, name="typo"
    )
    assert invalid.labels["severity"] == "warning"
    assert invalid.labels["label_team"] == "storage"
    assert invalid.labels["mode"] == "period"
    assert (
        invalid.annotations["summary"] == f"Heartbeat monitor {namespace}/typo cannot be evaluated"
    )
    description = invalid.annotations["description"]
    assert "Ready=False" in description
    assert f"kubectl describe heartbeatmonitor -n {namespace} typo" in description
    assert "short" not in json.dumps(invalid.__dict__)
    # Invalid, not Down: the 2 s slots that passed were not judged (DESIGN 9.7).
    assert not stack.webhook.matching("HeartbeatMonitorDown", namespace=namespace, name="typo")
    assert not stack.webhook.matching("HeartbeatMonitorInvalid", namespace=namespace, name="fine")

    # The fix the docs give: a strong token in the Secret, then the rotation annotation
    # so the operator re-reads it (docs/operating.md, "Known limits").
    fixed = time.time()
    monitors.core.patch_namespaced_secret(
        "weak", namespace, {"stringData": {"token": "a-strong-token-0123456789abcdefghijklmn"}}
    )
    monitors.custom.patch_namespaced_custom_object(
        "heartbeat.dev",
        "v1alpha1",
        namespace,
        "heartbeatmonitors",
        "typo",
        {"metadata": {"annotations": {"heartbeat.dev/rotate-token": "1"}}},
    )
    resolved = stack.webhook.wait(
        "HeartbeatMonitorInvalid", "resolved", 30, namespace=namespace, name="typo"
    )
    assert resolved.received >= fixed
    assert condition(monitors.status("typo"), "Ready")["status"] == "True"
