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

It also plays the failures a real kubelet and scheduler write (Kubernetes 1.34 shapes,
issue 12): ``leave_pending`` (a container waiting with ``ImagePullBackOff``,
``CreateContainerConfigError``...), ``mark_unschedulable`` (``PodScheduled=False``),
``start_pod`` (running, ``Ready=True``), ``end_pod`` (terminated, e.g. ``OOMKilled`` 137),
``fail_to_start`` (``StartError``: the runtime could not start the container) and
``evict_pod`` (phase ``Failed``, reason ``Evicted``). Every method takes ``at``: the
instant to write (a datetime, or a timedelta from now: ``at=timedelta(seconds=-30)`` for
"started 30 s ago"); times are whole seconds, as the kubelet writes them. The Pod is not
bound to a node (``spec.nodeName`` stays empty) unless a test binds it to the Node of
``tests.support.kubelet_node``, whose stand-in kubelet serves its container logs.

``Kubelet.run_pod`` can also do what the job's container would do before it exits: its
``work`` callable gets the container's environment resolved like the kubelet resolves it
(``value`` and ``secretKeyRef``), so a "job" can read its ping URL from the Secret and
call it. ``Kubelet.autopilot`` finishes every new Pod of a namespace in a background
thread (for Jobs a CronJob creates on its own schedule).
"""

from __future__ import annotations

import base64
import datetime
import json
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


When = datetime.datetime | datetime.timedelta | None
"""An instant to write: a datetime, a timedelta from now, or None for now."""


def instant(at: When = None) -> datetime.datetime:
    """``at`` as an aware UTC datetime in whole seconds (the kubelet's precision)."""
    now = datetime.datetime.now(datetime.UTC)
    if at is None:
        value = now
    elif isinstance(at, datetime.timedelta):
        value = now + at
    else:
        value = at
    return value.astimezone(datetime.UTC).replace(microsecond=0)


def now_text(at: When = None) -> str:
    """A kubelet-style timestamp (RFC 3339, seconds)."""
    return instant(at).strftime("%Y-%m-%dT%H:%M:%SZ")


def pull_error(image: str) -> str:
    """What containerd answers the kubelet for an image that does not exist."""
    return (
        f'failed to pull and unpack image "{image}": failed to resolve reference '
        f'"{image}": {image}: not found'
    )


def waiting_message(reason: str, image: str) -> str | None:
    """The kubelet's waiting message for ``reason`` (None: it writes none)."""
    if reason == "ImagePullBackOff":
        return f'Back-off pulling image "{image}": ErrImagePull: {pull_error(image)}'
    if reason == "ErrImagePull":
        return f"rpc error: code = NotFound desc = {pull_error(image)}"
    if reason == "InvalidImageName":
        return (
            f'Failed to apply default image tag "{image}": couldn\'t parse image name '
            f'"{image}": invalid reference format'
        )
    if reason == "CreateContainerConfigError":
        return 'secret "db-credentials" not found'
    return None


def evicted_message(container: str) -> str:
    """The kubelet's eviction message for memory pressure."""
    return (
        "The node was low on resource: memory. Threshold quantity: 100Mi, available: "
        f"87864Ki. Container {container} was using 1418044Ki, request is 0, has larger "
        "consumption of memory. "
    )


def conditions(
    at: str,
    *,
    scheduled: bool = True,
    ready: bool = False,
    started: bool = True,
    reason: str = "ContainersNotReady",
    message: str | None = None,
) -> list[dict[str, Any]]:
    """The Pod conditions the scheduler and the kubelet keep."""

    def one(kind: str, ok: bool, why: str | None = None, text: str | None = None) -> dict[str, Any]:
        condition: dict[str, Any] = {
            "type": kind,
            "status": "True" if ok else "False",
            "lastProbeTime": None,
            "lastTransitionTime": at,
        }
        if not ok and why:
            condition["reason"] = why
            if text:
                condition["message"] = text
        return condition

    return [
        one("PodReadyToStartContainers", started),
        one("Initialized", True),
        one("Ready", ready, reason, message),
        one("ContainersReady", ready, reason, message),
        one("PodScheduled", scheduled),
    ]


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

    def pod_bodies(self, job_name: str) -> list[dict[str, Any]]:
        """The Job's Pods as the API returns them (camelCase JSON, what the operator reads)."""
        answer: Any = self.core.list_namespaced_pod(
            self.namespace,
            label_selector=f"{JOB_NAME_LABEL}={job_name}",
            _preload_content=False,
        )
        return list(json.loads(answer.data)["items"])

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

    def _read(self, pod: Any) -> Any:
        return self.core.read_namespaced_pod_status(pod.metadata.name, self.namespace)

    def start_pod(self, pod: Any, *, at: When = None) -> datetime.datetime:
        """Phase Running, every container running since ``at`` (now), ``Ready=True`` (the
        Job controller counts it in ``status.ready``). Returns the ``startedAt`` written."""
        started = instant(at)
        text = now_text(started)
        self._patch_status(
            pod.metadata.name,
            {
                "phase": "Running",
                "startTime": text,
                "conditions": conditions(text, ready=True),
                "containerStatuses": [
                    _container(c, {"running": {"startedAt": text}}, ready=True, started=True)
                    for c in pod.spec.containers
                ],
            },
        )
        return started

    def start(self, pod: Any, *, at: When = None) -> str:
        """``start_pod``, returning the time as the text written (for ``finish``)."""
        return now_text(self.start_pod(pod, at=at))

    def leave_pending(
        self,
        pod: Any,
        reason: str = "ImagePullBackOff",
        message: str | None = None,
        image: str | None = None,
        *,
        container: str | None = None,
        at: When = None,
    ) -> None:
        """Phase Pending, ``container`` (the first) waiting with ``reason`` and the kubelet's
        ``message`` for it (default: what the kubelet writes for that reason and ``image``,
        by default the container's own); the other containers ``ContainerCreating``."""
        target = container or pod.spec.containers[0].name
        text = now_text(at)
        statuses = []
        for spec in pod.spec.containers:
            if spec.name == target:
                image_name = image or spec.image
                said = message if message is not None else waiting_message(reason, image_name)
                waiting = {"reason": reason, **({"message": said} if said else {})}
                statuses.append(_container(spec, {"waiting": waiting}, image=image_name))
            else:
                statuses.append(_container(spec, {"waiting": {"reason": "ContainerCreating"}}))
        unready = " ".join(c.name for c in pod.spec.containers)
        self._patch_status(
            pod.metadata.name,
            {
                "phase": "Pending",
                "startTime": text,
                "conditions": conditions(
                    text, message=f"containers with unready status: [{unready}]"
                ),
                "containerStatuses": statuses,
            },
        )

    def mark_unschedulable(
        self,
        pod: Any,
        message: str = "0/3 nodes are available: 3 Insufficient memory.",
        *,
        at: When = None,
    ) -> None:
        """What the scheduler writes when no node fits: ``PodScheduled=False``, reason
        ``Unschedulable`` with its message; phase Pending, no container status."""
        self._patch_status(
            pod.metadata.name,
            {
                "phase": "Pending",
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "lastProbeTime": None,
                        "lastTransitionTime": now_text(at),
                        "reason": "Unschedulable",
                        "message": message,
                    }
                ],
            },
        )

    def end_pod(
        self,
        pod: Any,
        exit_code: int = 137,
        reason: str = "OOMKilled",
        *,
        container: str | None = None,
        at: When = None,
    ) -> None:
        """``container`` (the first) terminated with ``exit_code`` and ``reason``, the others
        ``Completed``; phase ``Failed`` (``Succeeded`` for 0). Each keeps the ``startedAt``
        it has (a container never started gets the end time)."""
        target = container or pod.spec.containers[0].name
        finished = now_text(at)
        current = {s.name: s for s in (self._read(pod).status.container_statuses or ())}
        statuses = []
        for spec in pod.spec.containers:
            code, why = (exit_code, reason) if spec.name == target else (0, "Completed")
            statuses.append(
                _container(
                    spec,
                    {
                        "terminated": {
                            "exitCode": code,
                            "reason": why,
                            "startedAt": _started_at(current.get(spec.name)) or finished,
                            "finishedAt": finished,
                            "containerID": f"fake://{pod.metadata.uid}/{spec.name}",
                        }
                    },
                )
            )
        failed = exit_code != 0
        self._patch_status(
            pod.metadata.name,
            {
                "phase": "Failed" if failed else "Succeeded",
                "conditions": conditions(
                    finished, started=False, reason="PodFailed" if failed else "PodCompleted"
                ),
                "containerStatuses": statuses,
            },
        )

    def fail_to_start(self, pod: Any, message: str | None = None, *, at: When = None) -> None:
        """What the kubelet writes when the runtime cannot start the (first) container, say
        its command is not in the image: ``terminated`` with reason ``StartError``, exit
        code 128, the runtime's message, and ``startedAt`` the zero time (1970), as
        containerd reports it; phase ``Failed`` under ``restartPolicy: Never``."""
        spec = pod.spec.containers[0]
        command = (spec.command or ["job"])[0]
        message = message or (
            "failed to create containerd task: failed to create shim task: OCI runtime "
            "create failed: runc create failed: unable to start container process: exec: "
            f'"{command}": executable file not found in $PATH: unknown'
        )
        finished = now_text(at)
        terminated = {
            "exitCode": 128,
            "reason": "StartError",
            "message": message,
            "startedAt": "1970-01-01T00:00:00Z",
            "finishedAt": finished,
            "containerID": f"fake://{pod.metadata.uid}/{spec.name}",
        }
        self._patch_status(
            pod.metadata.name,
            {
                "phase": "Failed",
                "startTime": finished,
                "conditions": conditions(finished, started=False, reason="PodFailed"),
                "containerStatuses": [_container(spec, {"terminated": terminated})],
            },
        )

    def evict_pod(self, pod: Any, message: str | None = None, *, at: When = None) -> None:
        """What the kubelet writes when it evicts the Pod under node pressure: phase
        ``Failed``, reason ``Evicted`` with its message, ``DisruptionTarget=True``; a running
        container killed (137), one never started ``ContainerStatusUnknown``."""
        message = message or evicted_message(pod.spec.containers[0].name)
        evicted = now_text(at)
        current = {s.name: s for s in (self._read(pod).status.container_statuses or ())}
        statuses = []
        for spec in pod.spec.containers:
            started = _started_at(current.get(spec.name))
            terminated: dict[str, Any] = {
                "exitCode": 137,
                "reason": "Error" if started else "ContainerStatusUnknown",
                "startedAt": started,
                "finishedAt": evicted if started else None,
            }
            if not started:
                terminated["message"] = (
                    "The container could not be located when the pod was terminated"
                )
            statuses.append(_container(spec, {"terminated": terminated}))
        disruption = {
            "type": "DisruptionTarget",
            "status": "True",
            "lastProbeTime": None,
            "lastTransitionTime": evicted,
            "reason": "TerminationByKubelet",
            "message": message,
        }
        self._patch_status(
            pod.metadata.name,
            {
                "phase": "Failed",
                "reason": "Evicted",
                "message": message,
                "conditions": [disruption, *conditions(evicted, started=False, reason="PodFailed")],
                "containerStatuses": statuses,
            },
        )

    def finish(
        self,
        pod: Any,
        exit_code: int,
        *,
        started_at: str | None = None,
        at: When = None,
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

        def play(pod: Any) -> bool:
            outcome = decide(pod)
            if outcome is None:
                return False
            self.run_pod(pod, outcome)
            return True

        with self.autoplay(play, concurrent=False) as handled:
            yield handled

    @contextmanager
    def autoplay(
        self, play: Callable[[Any], bool], *, concurrent: bool = True
    ) -> Iterator[list[str]]:
        """Play every new Pod of the namespace with ``play(pod)`` — start it, leave it
        Pending with a reason, end it OOMKilled, ... — each in a thread of its own when
        ``concurrent`` (a play may wait, like a container that runs for a while).
        ``play`` returns whether it handled the Pod. Yields the Pod names handled so far;
        errors of any play are raised when the block ends."""
        handled: list[str] = []
        seen: set[str] = set()
        errors: list[BaseException] = []
        stop = threading.Event()
        watcher = k8s_watch.Watch()
        players: list[threading.Thread] = []

        def one(pod: Any) -> None:
            try:
                if play(pod):
                    handled.append(pod.metadata.name)
            except Exception as exc:  # kept for the test, which raises it at the end
                if not stop.is_set():
                    errors.append(exc)

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
                            or pod.metadata.name in seen
                            or pod.metadata.deletion_timestamp
                            or (pod.status and pod.status.phase not in (None, "Pending"))
                        ):
                            continue
                        seen.add(pod.metadata.name)
                        if concurrent:
                            player = threading.Thread(target=one, args=(pod,), daemon=True)
                            players.append(player)
                            player.start()
                        else:
                            one(pod)
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
            for player in players:
                player.join(timeout=10)
        if errors:
            raise errors[0]


def _started_at(status: Any) -> str | None:
    """The ``startedAt`` of a container status (V1ContainerStatus) as text, if it started."""
    if status is None or status.state is None:
        return None
    for held in (status.state.running, status.state.terminated):
        if held is not None and held.started_at is not None:
            return now_text(held.started_at)
    return None


def _container(
    container: Any,
    state: dict[str, Any],
    *,
    ready: bool = False,
    started: bool = False,
    image: str | None = None,
) -> dict[str, Any]:
    return {
        "name": container.name,
        "image": image or container.image,
        "imageID": "",
        "ready": ready,
        "started": started,
        "restartCount": 0,
        "state": state,
    }
