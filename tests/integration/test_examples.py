"""Every example in examples/ does what its README says, against the real API server with
the operator running (issue 7). Each README's `$ kubectl ...` sessions are replayed as
written, in order, and each command's output must have the shape the README shows
(tests/support/sessions.py; issue 16 "Tests", issue 17 item 6). (annotated-cronjob's
session needs the kubelet stand-in between its commands: tests/integration/test_cronjobs.py
replays it, with the real CronJob and Job controllers.)

The control plane has no kubelet, so no container of a CronJob ever runs here. What is
checkable is checked: the manifests are admitted (server-side dry-run, then for real), the
Secret and key a CronJob's `secretKeyRef` names exist once the operator has made them,
and the CronJob's own container command, run here with that environment, turns the monitor
Healthy. The scripts and snippets run for real, as in their READMEs.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from kubernetes import client as k8s

from heartbeat_operator import devcluster
from heartbeat_operator.domain.timefmt import parse_time
from tests.e2e.scenarios import Monitors, condition
from tests.integration.conftest import KubectlRunner, OperatorFactory, OperatorProcess
from tests.support import sessions
from tests.support.waiting import WaitTimeout, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SCRIPTS = [
    EXAMPLES / "deploy-pause" / "deploy-paused.sh",
    EXAMPLES / "ping-snippets" / "ping.sh",
]


def test_example_scripts_pass_shellcheck() -> None:
    shellcheck = ROOT / ".venv" / "bin" / "shellcheck"
    exe = str(shellcheck) if shellcheck.exists() else "shellcheck"
    done = subprocess.run([exe, *map(str, SCRIPTS)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def example_namespace(folder: Path) -> str:
    return str(yaml.safe_load((folder / "namespace.yaml").read_text())["metadata"]["name"])


FOLDERS = sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir())
# Sessions that need more than a shell between commands: annotated-cronjob's Jobs are
# finished by the kubelet stand-in (tests/integration/test_cronjobs.py replays it).
REPLAYED_HERE = [name for name in FOLDERS if name != "annotated-cronjob"]


@pytest.mark.parametrize("example", FOLDERS)
def test_every_example_creates_its_namespace_and_its_readme_says_where(example: str) -> None:
    """Issue 17 item 6: a user on a fresh cluster copies the README's commands in order and
    they work: the first creates the example's namespace, every other one names it."""
    folder = EXAMPLES / example
    assert list(folder.glob("*.yaml")), f"{example} has no YAML"
    ns = example_namespace(folder)
    for manifest in folder.glob("*.yaml"):
        for doc in yaml.safe_load_all(manifest.read_text()):
            # No manifest pins a namespace: the README (and make run) say where.
            assert "namespace" not in doc.get("metadata", {}), f"{manifest.name}: {doc}"
    blocks = sessions.parse((folder / "README.md").read_text())
    commands = [c.text for b in blocks for c in b.commands]
    assert commands, f"{example}/README.md shows no session"
    assert commands[0] == f"kubectl apply -f examples/{example}/namespace.yaml"
    for command in commands[1:]:
        for call in re.findall(r"kubectl(?: heartbeat)? [^|;&)$]*", command):
            if "namespace" in call.split()[1:3] or call.startswith("kubectl apply -f -"):
                continue
            assert f"-n {ns}" in call, f"{example}: `{call}` does not name namespace {ns}"
    assert commands[-1] == f"kubectl delete namespace {ns}"


def test_each_readme_shows_the_plugin() -> None:
    """Issue 16: each example's session shows `kubectl heartbeat`."""
    for example in FOLDERS:
        readme = (EXAMPLES / example / "README.md").read_text()
        assert "$ kubectl heartbeat " in readme, example


@pytest.fixture
def operator(operator_factory: OperatorFactory, namespace: str) -> OperatorProcess:
    # The operator keeps to this test's namespace and Lease (parallel sessions share the
    # control plane).
    return operator_factory.start("--namespace", namespace, "--lease-namespace", namespace)


@pytest.fixture
def monitors(api_client: k8s.ApiClient, namespace: str, operator: OperatorProcess) -> Monitors:
    return Monitors(api_client, namespace)


@pytest.fixture
def shell_env(dev_cluster: devcluster.Cluster, namespace: str, tmp_path: Path) -> dict[str, str]:
    """What a user's shell has: kubectl on PATH, KUBECONFIG with the namespace as default."""
    config = tmp_path / "kubeconfig"
    shutil.copy(dev_cluster.kubeconfig, config)
    env = {**os.environ, "KUBECONFIG": str(config)}
    env["PATH"] = f"{dev_cluster.bin_dir}{os.pathsep}{env['PATH']}"
    subprocess.run(
        ["kubectl", "config", "set-context", "--current", f"--namespace={namespace}"],
        env=env,
        check=True,
        capture_output=True,
    )
    return env


Run = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture
def run(shell_env: dict[str, str]) -> Run:
    def run(*argv: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv,
            env={**shell_env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
            check=False,
        )

    return run


def apply(kubectl: KubectlRunner, namespace: str, path: Path) -> None:
    dry = kubectl("apply", "--dry-run=server", "-n", namespace, "-f", str(path))
    assert "(server dry run)" in dry.stdout
    kubectl("apply", "-n", namespace, "-f", str(path))


# --- every README, replayed ------------------------------------------------------------------


@contextmanager
def example_namespace_to_ourselves(dev_cluster: devcluster.Cluster, ns: str) -> Iterator[None]:
    """The README names a fixed namespace: one replay at a time per control plane (parallel
    sessions share it), starting from none, and none left behind."""
    lock_path = dev_cluster.state_dir / f"example-{ns}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        delete = ["delete", "namespace", ns, "--ignore-not-found"]
        done = dev_cluster.kubectl(*delete, "--wait", "--timeout=60s", check=False, timeout=90)
        assert done.returncode == 0, done.stderr
        try:
            yield
        finally:
            dev_cluster.kubectl(*delete, "--wait=false", check=False)


def replay(shell: sessions.Shell, command: sessions.Command) -> None:
    problems: list[str] = []

    def matches() -> bool:
        done = shell.run(command.text)
        assert done.returncode == 0, f"$ {command.text}\nexited {done.returncode}:\n{done.stdout}"
        problem = sessions.same_shape(command.text, command.expected, done.stdout)
        problems.append(problem or "")
        return problem is None

    if not sessions.rereadable(command.text):
        assert matches(), problems[-1]
        return
    # A read of what the operator writes a moment later (an Event, a status): poll.
    try:
        wait_for(matches, timeout=15, interval=0.5, what=command.text)
    except WaitTimeout:
        raise AssertionError(problems[-1]) from None


def clear_of_a_tick(minutes: int, margin: float = 25.0) -> None:
    """cron-monitor's session shows the monitor before any tick of its `*/5` schedule: a
    tick during the replay would make it Late and add the CronJob's Job. Start right after
    a tick when the next one is closer than ``margin`` seconds."""

    def seconds_to_tick() -> float:
        now = time.time()
        return minutes * 60 - now % (minutes * 60)

    if seconds_to_tick() < margin:
        wait_for(lambda: seconds_to_tick() > margin, timeout=margin + 5, what="the tick past")


@pytest.mark.parametrize("example", REPLAYED_HERE)
def test_readme_session_replays_as_written(
    example: str,
    dev_cluster: devcluster.Cluster,
    namespace: str,
    operator_factory: OperatorFactory,
    tmp_path: Path,
) -> None:
    folder = EXAMPLES / example
    ns = example_namespace(folder)
    blocks = sessions.parse((folder / "README.md").read_text())
    config = tmp_path / "kubeconfig"
    shutil.copy(dev_cluster.kubeconfig, config)
    venv_bin = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEARTBEAT_", "PING_", "KUBE"))}
    env.update(
        KUBECONFIG=str(config),
        PATH=os.pathsep.join([str(venv_bin), str(dev_cluster.bin_dir), env["PATH"]]),
    )
    if example == "cron-monitor":
        clear_of_a_tick(minutes=5)
    with example_namespace_to_ourselves(dev_cluster, ns):
        # As `make run` would, keeping to the example's namespace (the Lease in the test's).
        operator = operator_factory.start("--namespace", ns, "--lease-namespace", namespace)
        shell = sessions.Shell(
            env,
            # The README's `make run` listens on 8080; this one on a free port.
            substitutions={
                "127.0.0.1:8080": f"127.0.0.1:{operator.port}",
                "/tmp/token": str(tmp_path / "token"),
            },
        )
        replayed = 0
        for block in blocks:
            if not block.replayed:
                continue
            for command in block.commands:
                replay(shell, command)
                replayed += 1
        assert replayed >= 5, f"{example}: only {replayed} commands replayed"


# --- period-monitor -----------------------------------------------------------------------


def test_period_monitor_goes_healthy_and_says_when_it_turns_late_and_down(
    kubectl: KubectlRunner, namespace: str, monitors: Monitors, run: Run
) -> None:
    apply(kubectl, namespace, EXAMPLES / "period-monitor" / "monitor.yaml")
    status = monitors.wait_ready("heartbeat-demo")
    assert status["tokenSecretName"] == "heartbeat-demo-heartbeat"
    url = monitors.secret("heartbeat-demo-heartbeat")["url"]
    done = run("curl", "-fsS", "-m", "10", "--retry", "5", url)
    assert (done.returncode, done.stdout) == (0, "OK"), done.stderr
    status = monitors.absorbed("heartbeat-demo", 1)  # behind the 200 (DESIGN 10.7)
    assert (status["state"], condition(status, "Healthy")["reason"]) == ("Healthy", "PingReceived")
    # Late a minute after the ping, Down 30 s later (the README's watch shows both).
    pinged = parse_time(status["lastPingTime"])
    assert parse_time(status["nextDueTime"]) - pinged == timedelta(minutes=1)
    assert parse_time(status["alertTime"]) - pinged == timedelta(seconds=90)
    monitors.wait_event("heartbeat-demo", "FirstPing")


# --- cron-monitor -------------------------------------------------------------------------


def test_cron_monitor_cronjob_pings_through_its_secret(
    kubectl: KubectlRunner, namespace: str, monitors: Monitors, run: Run
) -> None:
    apply(kubectl, namespace, EXAMPLES / "cron-monitor")
    cronjob = json.loads(
        kubectl("get", "cronjob", "cache-warmer", "-n", namespace, "-o", "json").stdout
    )
    monitor = monitors.get("cache-warmer")
    # The monitor expects what the CronJob does.
    assert monitor["spec"]["schedule"] == cronjob["spec"]["schedule"]
    assert monitor["spec"]["timeZone"] == cronjob["spec"]["timeZone"]

    # The CronJob's secretKeyRef names the Secret and key the operator creates.
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    (env,) = container["env"]
    ref = env["valueFrom"]["secretKeyRef"]
    status = monitors.wait_ready("cache-warmer")
    assert ref == {"name": status["tokenSecretName"], "key": "url"}
    secret = monitors.secret(ref["name"])
    assert secret[ref["key"]].startswith(operator_url(monitors, ref["name"]))
    assert monitors.status("cache-warmer")["state"] == "New"

    # The container's own command, run with the environment the kubelet would give it.
    done = run(*container["command"], *container["args"], env={env["name"]: secret["url"]})
    assert done.returncode == 0, done.stderr
    assert "warming the cache" in done.stdout
    status = monitors.absorbed("cache-warmer", 1)
    assert (status["state"], condition(status, "Healthy")["reason"]) == ("Healthy", "PingReceived")
    monitors.wait_event("cache-warmer", "FirstPing")


def operator_url(monitors: Monitors, secret: str) -> str:
    url = monitors.secret(secret)["url"]
    return url[: url.index("/ping/")]


# --- deploy-pause -------------------------------------------------------------------------


def test_deploy_pause_pauses_around_the_deploy_and_keeps_its_status(
    kubectl: KubectlRunner, namespace: str, monitors: Monitors, run: Run
) -> None:
    apply(kubectl, namespace, EXAMPLES / "deploy-pause" / "monitor.yaml")
    url = monitors.url("queue-worker")
    assert run("curl", "-fsS", url).stdout == "OK"
    monitors.wait_state("queue-worker", "Healthy")
    script = str(EXAMPLES / "deploy-pause" / "deploy-paused.sh")
    show = "kubectl get hbm queue-worker -o jsonpath='{.spec.paused}/{.status.state}'"

    done = run(script, "queue-worker", "--", "sh", "-c", f"echo deploying; {show}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["deploying", "true/Paused"]
    spec = monitors.get("queue-worker")["spec"]
    assert spec["paused"] is False
    resumed = monitors.wait("queue-worker", lambda s: s.get("state") != "Paused", "resumed")
    assert resumed["state"] == "Healthy"
    monitors.wait_event("queue-worker", "Resumed")

    # A failed deploy: the monitor is resumed all the same, the deploy's status comes out.
    done = run(script, "-n", namespace, "queue-worker", "--", "sh", "-c", "exit 7")
    assert done.returncode == 7
    assert monitors.get("queue-worker")["spec"]["paused"] is False

    # No command: a usage error, and the monitor is never paused.
    done = run(script, "queue-worker", "--")
    assert done.returncode == 2
    assert monitors.get("queue-worker")["spec"]["paused"] is False


def test_deploy_pause_from_a_pod_uses_the_pause_api_with_its_projected_token(
    dev_cluster: devcluster.Cluster,
    kubectl: KubectlRunner,
    namespace: str,
    monitors: Monitors,
    operator: OperatorProcess,
    run: Run,
    tmp_path: Path,
) -> None:
    """Issue 16 item 2: deploy-job.yaml's Job, as its Pod would run it (no kubelet here):
    the script with HEARTBEAT_API and the projected token of the Job's ServiceAccount."""
    apply(kubectl, namespace, EXAMPLES / "deploy-pause" / "monitor.yaml")
    url = monitors.url("queue-worker")
    assert run("curl", "-fsS", url).stdout == "OK"
    monitors.wait_state("queue-worker", "Healthy")
    script = EXAMPLES / "deploy-pause" / "deploy-paused.sh"
    kubectl("create", "configmap", "deploy-paused", f"--from-file={script}", "-n", namespace)
    apply(kubectl, namespace, EXAMPLES / "deploy-pause" / "deploy-job.yaml")
    job = json.loads(
        kubectl("get", "job", "deploy-queue-worker", "-n", namespace, "-o", "json").stdout
    )
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (projected,) = [v["projected"] for v in pod["volumes"] if "projected" in v]
    (source,) = projected["sources"]
    audience = source["serviceAccountToken"]["audience"]
    # What the kubelet would mount: a token of the Job's account for that audience.
    token = dev_cluster.kubectl(
        "create", "token", pod["serviceAccountName"], "-n", namespace, f"--audience={audience}"
    ).stdout.strip()
    token_file = tmp_path / "token"
    token_file.write_text(token)
    env = {e["name"]: e.get("value", "") for e in container["env"]}
    env.update(HEARTBEAT_API=operator.url, HEARTBEAT_TOKEN_FILE=str(token_file))
    env["POD_NAMESPACE"] = namespace
    # The deploy: it sees the monitor Paused (waiting for the operator as a deploy's
    # rollout would take a while), then prints the pause.
    show = (
        "kubectl wait hbm/queue-worker --for=jsonpath='{.status.state}'=Paused --timeout=20s"
        " >/dev/null && kubectl get hbm queue-worker"
        " -o jsonpath='{.spec.paused}/{.spec.pausedUntil}'"
    )
    argv = [*container["command"][1:-1], "--", "sh", "-c", f"echo deploying; {show}"]
    assert argv[:3] == ["/scripts/deploy-paused.sh", "--for", "30m"]

    done = run(str(script), *argv[1:], env=env)
    assert done.returncode == 0, done.stderr
    deploying, seen = done.stdout.splitlines()
    assert deploying == "deploying"
    paused, until = seen.split("/")
    assert paused == "true" and parse_time(until)  # a timed pause, as --for 30m asked
    assert f"paused {namespace}/queue-worker until {until}" in done.stderr
    assert f"resumed {namespace}/queue-worker" in done.stderr
    spec = monitors.get("queue-worker")["spec"]
    assert spec["paused"] is False and "pausedUntil" not in spec
    monitors.wait_event("queue-worker", "Paused")
    monitors.wait_event("queue-worker", "Resumed")
    assert token not in operator.log_text()

    # An account without patch on the monitor: 403, and the deploy never runs.
    other = dev_cluster.kubectl(
        "create", "token", "default", "-n", namespace, f"--audience={audience}"
    ).stdout.strip()
    token_file.write_text(other)
    done = run(str(script), "queue-worker", "--", "echo", "deployed", env=env)
    assert done.returncode == 4
    assert done.stdout == ""
    assert f"system:serviceaccount:{namespace}:default may not patch" in done.stderr
    assert monitors.get("queue-worker")["spec"]["paused"] is False


# --- ping-snippets ------------------------------------------------------------------------

SNIPPETS = {
    "shell": ["examples/ping-snippets/ping.sh"],
    "python": ["python3", "examples/ping-snippets/ping.py"],
    "node": ["node", "examples/ping-snippets/ping.js"],
}


@pytest.mark.parametrize("language", sorted(SNIPPETS))
def test_ping_snippet_reports_exit_codes_and_output(
    kubectl: KubectlRunner, namespace: str, monitors: Monitors, run: Run, language: str
) -> None:
    apply(kubectl, namespace, EXAMPLES / "ping-snippets" / "monitor.yaml")
    ping_url = {"PING_URL": monitors.url("report-generator")}
    snippet = SNIPPETS[language]

    done = run(*snippet, "sh", "-c", "echo 'report: 42 rows'", env=ping_url)
    assert (done.returncode, done.stdout.strip()) == (0, "report: 42 rows"), done.stderr
    status = monitors.absorbed("report-generator", 2)  # the start and the finish
    assert (status["state"], status["lastExitCode"]) == ("Healthy", 0)
    assert status["lastOutput"]["body"].strip() == "report: 42 rows"
    assert condition(status, "Running")["status"] == "False"  # the start was paired
    assert status["lastDurationSeconds"] >= 0

    done = run(*snippet, "sh", "-c", "echo 'disk full' >&2; exit 3", env=ping_url)
    assert done.returncode == 3
    status = monitors.absorbed("report-generator", 4)
    assert (status["state"], status["lastExitCode"]) == ("Down", 3)
    assert condition(status, "Healthy")["reason"] == "Failed"
    assert "disk full" in status["lastOutput"]["body"]
    monitors.wait_event("report-generator", "Failed")


@pytest.mark.parametrize("language", sorted(SNIPPETS))
def test_ping_snippet_never_fails_the_job(run: Run, language: str) -> None:
    # Nothing listens on port 9 (discard) here: every ping fails at once.
    unreachable = {"PING_URL": "http://127.0.0.1:9/ping/nowhere", "PING_ATTEMPTS": "2"}
    for status in (0, 4):
        done = run(*SNIPPETS[language], "sh", "-c", f"echo work; exit {status}", env=unreachable)
        assert done.returncode == status, done.stderr
        assert "work" in done.stdout
        assert "heartbeat ping failed; the job goes on" in done.stderr
    # No writable temporary directory (a read-only root filesystem): the job still runs.
    readonly = {**unreachable, "TMPDIR": "/nonexistent/tmp"}
    done = run(*SNIPPETS[language], "sh", "-c", "echo work; exit 6", env=readonly)
    assert (done.returncode, done.stdout.strip()) == (6, "work"), done.stderr
    # No URL configured at all: the job runs and says why it did not ping.
    missing = run(*SNIPPETS[language], "sh", "-c", "exit 0", env={"PING_URL": ""})
    assert missing.returncode == 0
    assert "PING_URL is not set" in missing.stderr
