"""A stand-in for the kubelet: finishes the Pods the *real* Job controller creates.

The local control plane has no nodes, so a Job's Pods would stay Pending forever. Tests
that need a Job to complete or fail play the kubelet's one part that matters here: they
write the Pod's status — phase, ``startTime``, each container's state (``running``, then
``terminated`` with an exit code) — exactly as a kubelet reports it. The Job controller
(kube-controller-manager, real) then counts the Pod and sets the Job's ``Complete`` or
``Failed`` condition, ``startTime``/``completionTime`` and the failure reason itself; the
test never writes a Job.

Why this and not kwok: kwok would be one more Go build on the 2 shared cores next to the
control plane's, and its stages finish Pods on timers and by configured rules, while the
tests here want to say, per Pod, "run the job's own work now, then exit 3". Both leave the
Job's conditions to the real controller, which is what the tests are about.

``Kubelet.run_pod`` can also do what the job's container would do before it exits: its
``work`` callable gets the container's environment resolved like the kubelet resolves it
(``value`` and ``secretKeyRef``), so a "job" can read its ping URL from the Secret and
call it. ``Kubelet.autopilot`` finishes every new Pod of a namespace in a background
thread (for Jobs a CronJob creates on its own schedule).
"""

from __future__ import annotations

import base64
import datetime
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s
from kubernetes import watch as k8s_watch

from tests.support.waiting import wait_for

JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
MERGE_PATCH = "application/merge-patch+json"

Work = Callable[[dict[str, str]], None]


def now_text(at: datetime.datetime | None = None) -> str:
    """A kubelet-style timestamp (RFC 3339, seconds)."""
    at = at or datetime.datetime.now(datetime.UTC)
    return at.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Outcome:
    """How a Pod ends: its main container's exit code (0: Succeeded) and optional work."""

    exit_code: int = 0
    work: Work | None = None


class Kubelet:
    """Plays the kubelet for the Pods of one namespace (see the module docstring)."""

    def __init__(self, api_client: k8s.ApiClient, namespace: str) -> None:
        self.api_client = api_client
        self.core = k8s.CoreV1Api(api_client)
        self.namespace = namespace

    # --- finding Pods -------------------------------------------------------------------

    def pods_of_job(self, job_name: str) -> list[Any]:
        pods = self.core.list_namespaced_pod(
            self.namespace, label_selector=f"{JOB_NAME_LABEL}={job_name}"
        )
        return list(pods.items)

    def wait_for_pod(self, job_name: str, *, timeout: float = 30.0) -> Any:
        """The (first) Pod the Job controller created for ``job_name``."""

        def probe() -> Any:
            pods = [p for p in self.pods_of_job(job_name) if not p.metadata.deletion_timestamp]
            return pods[0] if pods else None

        return wait_for(probe, timeout=timeout, what=f"a Pod of Job {job_name}")

    # --- what the kubelet reports ---------------------------------------------------------

    def environment(self, pod: Any, container: str | None = None) -> dict[str, str]:
        """The container's environment as the kubelet would resolve it (value, secretKeyRef)."""
        spec = pod.spec.containers[0]
        if container is not None:
            spec = next(c for c in pod.spec.containers if c.name == container)
        env: dict[str, str] = {}
        for var in spec.env or ():
            if var.value is not None:
                env[var.name] = var.value
            elif var.value_from is not None and var.value_from.secret_key_ref is not None:
                ref = var.value_from.secret_key_ref
                secret = self.core.read_namespaced_secret(ref.name, self.namespace)
                raw = (secret.data or {}).get(ref.key)
                if raw is not None:
                    env[var.name] = base64.b64decode(raw).decode("utf-8")
        return env

    def _patch_status(self, name: str, status: Mapping[str, Any]) -> None:
        self.core.patch_namespaced_pod_status(
            name, self.namespace, {"status": dict(status)}, _content_type=MERGE_PATCH
        )

    def start(self, pod: Any, *, at: datetime.datetime | None = None) -> str:
        """Phase Running, every container running since ``at`` (now). Returns the time."""
        started = now_text(at)
        self._patch_status(
            pod.metadata.name,
            {
                "phase": "Running",
                "startTime": started,
                "containerStatuses": [
                    _container(c, {"running": {"startedAt": started}}, ready=True, started=True)
                    for c in pod.spec.containers
                ],
            },
        )
        return started

    def finish(
        self,
        pod: Any,
        exit_code: int,
        *,
        started_at: str | None = None,
        at: datetime.datetime | None = None,
    ) -> None:
        """Every container terminated; the first exits ``exit_code``, the others 0.

        Phase ``Succeeded`` for 0, else ``Failed`` (the Pod's ``restartPolicy`` must be
        ``Never``; the Job controller then counts one failure).
        """
        finished = now_text(at)
        started_at = started_at or finished
        statuses = []
        for index, container in enumerate(pod.spec.containers):
            code = exit_code if index == 0 else 0
            terminated = {
                "exitCode": code,
                "reason": "Completed" if code == 0 else "Error",
                "startedAt": started_at,
                "finishedAt": finished,
                "containerID": f"fake://{pod.metadata.uid}/{container.name}",
            }
            statuses.append(_container(container, {"terminated": terminated}))
        self._patch_status(
            pod.metadata.name,
            {
                "phase": "Succeeded" if exit_code == 0 else "Failed",
                "startTime": started_at,
                "containerStatuses": statuses,
            },
        )

    def run_pod(self, pod: Any, outcome: Outcome) -> None:
        """Start the Pod, do the container's ``work`` (if any), exit with its code."""
        started = self.start(pod)
        if outcome.work is not None:
            outcome.work(self.environment(pod))
        self.finish(pod, outcome.exit_code, started_at=started)

    def run_job(
        self, job_name: str, outcome: Outcome | None = None, *, timeout: float = 30.0
    ) -> Any:
        """Wait for the Job's Pod and run it to ``outcome`` (default: exit 0). Returns it."""
        pod = self.wait_for_pod(job_name, timeout=timeout)
        self.run_pod(pod, outcome or Outcome())
        return pod

    # --- every new Pod, in the background -------------------------------------------------

    @contextmanager
    def autopilot(
        self, decide: Callable[[Any], Outcome | None] = lambda pod: Outcome()
    ) -> Iterator[list[str]]:
        """Run every Pod that appears in the namespace to ``decide(pod)`` (None: leave it).

        Yields the list of Pod names handled so far. A watch, not polling; stopped (and
        joined) when the block ends. Errors are kept and raised at the end of the block.
        """
        handled: list[str] = []
        errors: list[BaseException] = []
        stop = threading.Event()
        watcher = k8s_watch.Watch()

        def loop() -> None:
            while not stop.is_set():
                try:
                    for event in watcher.stream(
                        self.core.list_namespaced_pod, self.namespace, timeout_seconds=5
                    ):
                        if stop.is_set():
                            return
                        pod = event["object"]
                        if (
                            event["type"] == "DELETED"
                            or pod.metadata.name in handled
                            or pod.metadata.deletion_timestamp
                            or (pod.status and pod.status.phase not in (None, "Pending"))
                        ):
                            continue
                        outcome = decide(pod)
                        if outcome is None:
                            continue
                        handled.append(pod.metadata.name)
                        self.run_pod(pod, outcome)
                except Exception as exc:  # kept for the test, which raises it at the end
                    if not stop.is_set():
                        errors.append(exc)
                        return

        thread = threading.Thread(target=loop, name=f"kubelet {self.namespace}", daemon=True)
        thread.start()
        try:
            yield handled
        finally:
            stop.set()
            watcher.stop()
            thread.join(timeout=10)
        if errors:
            raise errors[0]


def _container(
    container: Any, state: dict[str, Any], *, ready: bool = False, started: bool = False
) -> dict[str, Any]:
    return {
        "name": container.name,
        "image": container.image,
        "imageID": "",
        "ready": ready,
        "started": started,
        "restartCount": 0,
        "state": state,
    }
