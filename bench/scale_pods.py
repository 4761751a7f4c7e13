"""Scale with Pods present (issue 12): the operator's memory when CronJobs, Jobs and Pods exist.

Issue 12 has the operator read a Job's Pods to tell when a run started and why it did not
(DESIGN 10.1, 10.8.3), with two promises: never hold every Pod of a large cluster in
memory, and keep the scale benchmark's memory targets with Pods present. This is the
"scale" run (``bench/scale.py``: one replica started on seeded monitors, RSS once settled
and scraped) on a cluster that also has:

- one monitor in five (2,000 of 10,000) auto-wired: an annotated CronJob (hourly, the
  current slot 15 minutes ago, ``heartbeat.dev/grace: 50m``, so nothing falls due during
  the run, and no transition is young enough for a new leader's 10-minute Event
  catch-up) owning its monitor, with 3 Jobs (the slots 2 h, 1 h and 15 min ago) of 1 Pod
  each. The two older Jobs finished (Complete; one in ten of the 1 h ago Jobs Failed:
  ``OOMKilled`` 137 or exit 1). The current one: half Running, a fifth Complete, a
  quarter Pending with a cause (``ImagePullBackOff``, ``ErrImagePull``, ``Unschedulable``,
  ``CreateContainerConfigError``);
- 20,000 unrelated Pods (two per monitor), in 20 other namespaces, 90% Running and 10%
  Pending, that the operator must not hold;

all written straight into etcd (``bench/seeding.py``), each monitor's status rendered by
the operator's own code from those Jobs and Pods (``jobs.summarize_pods``,
``jobs.job_inputs``, folded by the domain), so a new leader owes them nothing. The
real Job, CronJob and garbage-collector controllers run on them as on any cluster.

The replica runs cluster-wide (no ``--namespace``): it watches monitors, CronJobs and
Jobs in every namespace, the configuration in which holding Pods would cost most.
kube-apiserver is restarted with an audit log of every Pod request, so the run can
say who read Pods and how: the operator must list them one Job at a time (namespaced,
``labelSelector`` on the Job's uid) and never list or watch them cluster-wide (the
request counters cannot tell the operator from the controller manager, which does).

The same run without any CronJob, Job or Pod (also cluster-wide, same session) is the
baseline the Pods' cost is read against.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import scale
import seeding
from harness import QUICK, Api, ControlPlane, OperatorProcess, Row, say

from heartbeat_operator.engine import jobs as jobs_

NAMESPACE = scale.NAMESPACE
WIRED_EVERY = 5
"""One monitor in five is a CronJob's (2,000 of 10,000)."""
JOBS_PER_CRONJOB = 3
UNRELATED_PER_MONITOR = 2
"""Pods that belong to no auto-wired CronJob, per monitor (20,000 at 10,000)."""
OTHER_NAMESPACES = 20
GRACE = "50m"
IMAGE = "registry.example/batch/report:1.4.2"
MISSING_IMAGE = "registry.example/batch/report:does-not-exist"

AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  resources:
  - group: ""
    resources: ["pods", "pods/log", "pods/status"]
- level: None
"""

# --- bodies, as the API server would hold them (Kubernetes 1.34 shapes) ----------------------


def _t(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _container_spec(image: str = IMAGE) -> dict[str, Any]:
    return {
        "name": "main",
        "image": image,
        "command": ["/bin/report", "--since=1h", "--out=s3://reports/daily"],
        "env": [
            {"name": "REPORT_BUCKET", "value": "reports"},
            {"name": "LOG_LEVEL", "value": "info"},
            {
                "name": "DB_PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": "db-credentials", "key": "password"}},
            },
        ],
        "resources": {
            "limits": {"memory": "512Mi"},
            "requests": {"cpu": "100m", "memory": "256Mi"},
        },
        "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent",
    }


def _pod_spec(image: str = IMAGE, restart: str = "Never") -> dict[str, Any]:
    return {
        "containers": [_container_spec(image)],
        "volumes": [{"name": "scratch", "emptyDir": {}}],
        "restartPolicy": restart,
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "serviceAccountName": "default",
        "securityContext": {},
        "schedulerName": "default-scheduler",
        "tolerations": [
            {
                "key": "node.kubernetes.io/not-ready",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            },
            {
                "key": "node.kubernetes.io/unreachable",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            },
        ],
        "priority": 0,
        "enableServiceLinks": True,
        "preemptionPolicy": "PreemptLowerPriority",
    }


def _conditions(at: str, *, ready: bool, started: bool = True, why: str = "") -> list[dict]:
    def one(kind: str, ok: bool) -> dict[str, Any]:
        item: dict[str, Any] = {
            "type": kind,
            "status": "True" if ok else "False",
            "lastProbeTime": None,
            "lastTransitionTime": at,
        }
        if not ok and why:
            item["reason"] = why
        return item

    return [
        one("PodReadyToStartContainers", started),
        one("Initialized", True),
        one("Ready", ready),
        one("ContainersReady", ready),
        one("PodScheduled", True),
    ]


def _status(state: dict[str, Any], *, image: str = IMAGE, ready: bool = False) -> dict[str, Any]:
    return {
        "name": "main",
        "image": image,
        "imageID": "",
        "ready": ready,
        "started": ready,
        "restartCount": 0,
        "state": state,
    }


def pod_status(kind: str, start: datetime, end: datetime | None = None) -> dict[str, Any]:
    """What a kubelet (or the scheduler) reports: ``kind`` is ``running``, ``succeeded``,
    ``oom`` (137), ``error`` (1), ``ImagePullBackOff``, ``ErrImagePull``,
    ``CreateContainerConfigError`` or ``Unschedulable``."""
    at = _t(start)
    if kind == "running":
        return {
            "phase": "Running",
            "startTime": at,
            "conditions": _conditions(at, ready=True),
            "containerStatuses": [_status({"running": {"startedAt": at}}, ready=True)],
            "qosClass": "Burstable",
        }
    if kind in ("succeeded", "oom", "error"):
        assert end is not None
        endings = {"succeeded": (0, "Completed"), "oom": (137, "OOMKilled"), "error": (1, "Error")}
        code, why = endings[kind]
        finished = _t(end)
        terminated = {
            "exitCode": code,
            "reason": why,
            "startedAt": at,
            "finishedAt": finished,
            "containerID": f"containerd://{uuid.uuid4().hex}",
        }
        return {
            "phase": "Succeeded" if code == 0 else "Failed",
            "startTime": at,
            "conditions": _conditions(
                finished, ready=False, started=False, why="PodFailed" if code else "PodCompleted"
            ),
            "containerStatuses": [_status({"terminated": terminated})],
            "qosClass": "Burstable",
        }
    if kind == "Unschedulable":
        return {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "lastProbeTime": None,
                    "lastTransitionTime": at,
                    "reason": "Unschedulable",
                    "message": "0/12 nodes are available: 12 Insufficient memory. preemption: "
                    "0/12 nodes are available: 12 No preemption victims found for incoming pod.",
                }
            ],
            "qosClass": "Burstable",
        }
    image = MISSING_IMAGE if kind in ("ImagePullBackOff", "ErrImagePull") else IMAGE
    message = {
        "ImagePullBackOff": f'Back-off pulling image "{image}": ErrImagePull: not found',
        "ErrImagePull": f'rpc error: code = NotFound desc = failed to pull image "{image}"',
        "CreateContainerConfigError": 'secret "db-credentials" not found',
    }[kind]
    return {
        "phase": "Pending",
        "startTime": at,
        "conditions": _conditions(at, ready=False, why="ContainersNotReady"),
        "containerStatuses": [
            _status({"waiting": {"reason": kind, "message": message}}, image=image)
        ],
        "qosClass": "Burstable",
    }


def job_labels(name: str, uid: str) -> dict[str, str]:
    return {
        jobs_.CONTROLLER_UID_LABEL: uid,
        "batch.kubernetes.io/job-name": name,
        "controller-uid": uid,
        "job-name": name,
    }


def job_body(
    cronjob: Mapping[str, Any], name: str, uid: str, slot: datetime, outcome: str, pod: Mapping
) -> dict[str, Any]:
    """The Job the CronJob controller made for ``slot``, with the status the Job controller
    keeps for its one Pod (``pod``, whose status says how it went)."""
    meta = cronjob["metadata"]
    created = slot + timedelta(seconds=1)
    labels = job_labels(name, uid)
    status: dict[str, Any] = {"startTime": _t(created), "uncountedTerminatedPods": {}}
    pod_status_ = pod["status"]
    if outcome in ("succeeded", "oom", "error"):
        finished = pod_status_["containerStatuses"][0]["state"]["terminated"]["finishedAt"]
        if outcome == "succeeded":
            status.update(succeeded=1, completionTime=finished, ready=0, terminating=0)
            kinds = [("SuccessCriteriaMet", "CompletionsReached", ""), ("Complete", "", "")]
        else:
            status.update(failed=1, ready=0, terminating=0)
            why, text = "BackoffLimitExceeded", "Job has reached the specified backoff limit"
            kinds = [("FailureTarget", why, text), ("Failed", why, text)]
        status["conditions"] = [
            {
                "type": kind,
                "status": "True",
                "lastProbeTime": finished,
                "lastTransitionTime": finished,
                **({"reason": why} if why else {}),
                **({"message": text} if text else {}),
            }
            for kind, why, text in kinds
        ]
    else:
        status.update(active=1, ready=1 if outcome == "running" else 0, terminating=0)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "uid": uid,
            "generation": 1,
            "creationTimestamp": _t(created),
            "labels": labels,
            "annotations": {jobs_.SCHEDULED_TIMESTAMP_ANNOTATION: _t(slot)},
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "CronJob",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "parallelism": 1,
            "completions": 1,
            "backoffLimit": 0,
            "completionMode": "NonIndexed",
            "suspend": False,
            "manualSelector": False,
            "podReplacementPolicy": "TerminatingOrFailed",
            "selector": {"matchLabels": {jobs_.CONTROLLER_UID_LABEL: uid}},
            "template": {"metadata": {"labels": labels}, "spec": _pod_spec()},
        },
        "status": status,
    }


def job_pod(
    namespace: str, job: str, job_uid: str, outcome: str, start: datetime, end: datetime | None
) -> dict[str, Any]:
    finished = outcome in ("succeeded", "oom", "error")
    image = MISSING_IMAGE if outcome in ("ImagePullBackOff", "ErrImagePull") else IMAGE
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{job}-{uuid.uuid4().hex[:5]}",
            "generateName": f"{job}-",
            "namespace": namespace,
            "uid": str(uuid.uuid4()),
            "creationTimestamp": _t(start - timedelta(seconds=2)),
            "labels": job_labels(job, job_uid),
            # The Job controller's tracking finalizer stays on a Pod until it counted it.
            **({} if finished else {"finalizers": ["batch.kubernetes.io/job-tracking"]}),
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": job,
                    "uid": job_uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": _pod_spec(image),
        "status": pod_status(outcome, start, end),
    }


#: How the current slot's Job (15 min ago) is doing, by wired index modulo 20.
CURRENT = (
    ["running"] * 10
    + ["succeeded"] * 4
    + ["ImagePullBackOff", "ImagePullBackOff", "ErrImagePull", "Unschedulable"]
    + ["CreateContainerConfigError", "running"]
)


def wired(
    index: int, name: str, now: datetime, current_slot: datetime
) -> Iterator[tuple[str, dict[str, Any]]]:
    """One auto-wired CronJob, its 3 Jobs and their Pods, and its monitor: ``(etcd key,
    object)``; the monitor last, its status what the leader would have written."""
    schedule = f"{current_slot.minute} * * * *"
    created = current_slot - timedelta(hours=2, minutes=20)
    cronjob_uid = str(uuid.uuid4())
    slots = [current_slot - timedelta(hours=k) for k in (2, 1, 0)]
    outcomes = [
        "succeeded",
        {8: "oom", 9: "error"}.get(index % 10, "succeeded"),
        CURRENT[index % len(CURRENT)],
    ]
    cronjob: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "uid": cronjob_uid,
            "generation": 1,
            "creationTimestamp": _t(created),
            "annotations": {"heartbeat.dev/monitor": "true", "heartbeat.dev/grace": GRACE},
        },
        "spec": {
            "schedule": schedule,
            "concurrencyPolicy": "Allow",
            "suspend": False,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 1,
            "jobTemplate": {
                "metadata": {},
                "spec": {"backoffLimit": 0, "template": {"spec": _pod_spec()}},
            },
        },
        "status": {"lastScheduleTime": _t(current_slot)},
    }
    inputs = []
    active = []
    for slot, outcome in zip(slots, outcomes, strict=True):
        job_name = f"{name}-{int(slot.timestamp() // 60)}"
        job_uid = str(uuid.uuid4())
        start = slot + timedelta(seconds=4)
        end = start + timedelta(seconds=60) if outcome in ("succeeded", "oom", "error") else None
        pod = job_pod(NAMESPACE, job_name, job_uid, outcome, start, end)
        job = job_body(cronjob, job_name, job_uid, slot, outcome, pod)
        if end is None:
            active.append(
                {
                    "kind": "Job",
                    "namespace": NAMESPACE,
                    "name": job_name,
                    "uid": job_uid,
                    "apiVersion": "batch/v1",
                    "resourceVersion": "",
                }
            )
        else:
            cronjob["status"]["lastSuccessfulTime"] = _t(end)
        # What the leader folds for this Job, read when it happened (its Pods then).
        run = jobs_.JobRun.from_body(job)
        assert run is not None
        seen = end or now
        summary = jobs_.summarize_pods(run, [pod], [], seen)
        inputs += jobs_.job_inputs(run, {}, summary)
        yield seeding.etcd_key(NAMESPACE, job_name, "jobs"), job
        yield seeding.etcd_key(NAMESPACE, pod["metadata"]["name"], "pods"), pod
    if active:
        cronjob["status"]["active"] = active
    yield seeding.etcd_key(NAMESPACE, name, "cronjobs"), cronjob
    item = seeding.seed(
        name,
        {"schedule": schedule, "grace": GRACE},
        created=created,
        now=now,
        inputs=sorted(inputs, key=lambda i: i.time),
    )
    monitor = seeding.render(NAMESPACE, item)
    monitor["metadata"]["labels"] = {"app.kubernetes.io/managed-by": "heartbeat-operator"}
    monitor["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "name": name,
            "uid": cronjob_uid,
            "controller": True,
            "blockOwnerDeletion": False,
        }
    ]
    yield seeding.etcd_key(NAMESPACE, name), monitor


def unrelated(count: int, now: datetime) -> Iterator[tuple[str, dict[str, Any]]]:
    """Pods of other workloads in other namespaces: 90% Running, 10% Pending (no owner,
    so the garbage collector leaves them; no node, so the Pod GC does too)."""
    rng = random.Random(7)
    for k in range(count):
        namespace = f"bench-other-{k % OTHER_NAMESPACES:02d}"
        app = f"web-{(k // OTHER_NAMESPACES) % 50:02d}"
        name = f"{app}-{uuid.uuid4().hex[:10]}-{uuid.uuid4().hex[:5]}"
        start = now - timedelta(minutes=rng.randint(5, 3000))
        kind = "ImagePullBackOff" if k % 10 == 9 else "running"
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": str(uuid.uuid4()),
                "creationTimestamp": _t(start - timedelta(seconds=3)),
                "labels": {"app": app, "pod-template-hash": name.split("-")[2]},
            },
            "spec": _pod_spec(restart="Always"),
            "status": pod_status(kind, start),
        }
        yield seeding.etcd_key(namespace, name, "pods"), pod


def seeded_world(
    count: int, now: datetime, last_token: list[str], counts: Counter[str]
) -> Iterator[tuple[str, dict[str, Any]]]:
    current_slot = (now - timedelta(minutes=15)).replace(second=0, microsecond=0)
    plain = scale.objects(count, now, last_token)
    for i in range(count):
        obj = next(plain)  # keeps the plain run's monitors (and its last token) as they are
        if i % WIRED_EVERY == 0 and i != count - 1:
            for key, item in wired(i // WIRED_EVERY, obj["metadata"]["name"], now, current_slot):
                counts[key.split("/")[2] if "heartbeat.dev" not in key else "monitors"] += 1
                yield key, item
        else:
            counts["monitors"] += 1
            yield seeding.etcd_key(NAMESPACE, obj["metadata"]["name"]), obj
    for key, item in unrelated(count * UNRELATED_PER_MONITOR, now):
        counts["unrelated pods"] += 1
        yield key, item


async def seed_world(
    plane: ControlPlane, api: Api, count: int, last_token: list[str]
) -> dict[str, Any]:
    for k in range(OTHER_NAMESPACES):
        await api.create_namespace(f"bench-other-{k:02d}")
    counts: Counter[str] = Counter()
    now = datetime.now(UTC).replace(microsecond=0)
    seconds = await seeding.put_keyed(plane, seeded_world(count, now, last_token, counts))
    say(f"scale-pods: seeded {dict(counts)} in {seconds:.1f}s")
    # The API serves what etcd holds: every Pod listed (paged, so nobody holds them all).
    listed = await count_listed(api, "/api/v1/pods")
    jobs_listed = await count_listed(api, "/apis/batch/v1/jobs")
    return {
        "seed_s": seconds,
        "seeded": dict(counts),
        "pods_listed": listed,
        "jobs_listed": jobs_listed,
    }


async def count_listed(api: Api, path: str) -> int:
    page = await api.request("GET", f"{path}?limit=1", timeout=300)
    return len(page.get("items") or []) + int(page["metadata"].get("remainingItemCount") or 0)


# --- who read Pods: the audit log -----------------------------------------------------------


def audit_summary(log: Path) -> dict[str, Any]:
    """Pod requests by user agent, verb and scope (``cluster``: no namespace in the path)."""
    out: Counter[str] = Counter()
    selectors: Counter[str] = Counter()
    if not log.exists():
        return {"requests": {}, "error": f"no audit log at {log}"}
    with log.open() as lines:
        for line in lines:
            event = json.loads(line)
            if event.get("stage") != "ResponseComplete":
                continue
            ref = event.get("objectRef") or {}
            if ref.get("resource") != "pods":
                continue
            agent = str(event.get("userAgent") or "")
            who = "operator" if agent.startswith(("heartbeat-operator", "kopf")) else "other"
            user = str((event.get("user") or {}).get("username") or "")
            if who == "other":
                who = "controller-manager" if user.startswith("system:") else f"other({user})"
            scope = "namespace" if ref.get("namespace") else "cluster"
            sub = f"/{ref['subresource']}" if ref.get("subresource") else ""
            out[f"{who} {event.get('verb')}{sub} {scope}"] += 1
            if who == "operator" and event.get("verb") == "list":
                query = parse_qs(urlsplit(str(event.get("requestURI") or "")).query)
                chosen = (query.get("labelSelector") or [""])[0].split("=")[0]
                selectors[chosen or "(none)"] += 1
    return {"requests": dict(out), "operator_list_selectors": dict(selectors)}


def operator_cluster_pod_reads(summary: Mapping[str, Any]) -> int:
    return sum(
        n
        for key, n in summary["requests"].items()
        if key.startswith("operator ")
        and key.endswith(" cluster")
        and key.split()[1] in ("list", "watch")
    )


# --- the benchmark --------------------------------------------------------------------------


async def bench(plane: ControlPlane, log_dir: Path) -> tuple[list[Row], dict[str, Any]]:
    sizes = [1_000] if QUICK else [10_000]
    facts: dict[str, Any] = {}
    rows = []
    audit: list[Path] = []

    def prepare(plane: ControlPlane) -> None:
        audit[:] = [plane.audit(AUDIT_POLICY)]

    async def inspect(api: Api, op: OperatorProcess) -> dict[str, Any]:
        return {"audit": audit_summary(audit[0])}

    for count in sizes:
        base = facts[f"{count}-baseline"] = await scale.one_size(
            plane, log_dir, count, clusterwide=True, label="-baseline"
        )
        got = facts[str(count)] = await scale.one_size(
            plane,
            log_dir,
            count,
            seed=seed_world,
            prepare=prepare,
            inspect=inspect,
            clusterwide=True,
            label="-pods",
        )
        target = scale.TARGETS_MIB.get(count)
        seeded = got["seeded"]
        cluster_reads = operator_cluster_pod_reads(got["audit"])
        pod_reads = sorted(
            (k, v) for k, v in got["audit"]["requests"].items() if k.startswith("operator")
        )
        writes = {k: v for k, v in got["writes"].items() if k != "leases"}
        rows.append(
            Row(
                "scale, Pods present",
                f"{count:,} monitors (seeded), {seeded.get('cronjobs', 0):,} of them "
                f"CronJob-wired with {seeded.get('jobs', 0):,} Jobs and "
                f"{seeded.get('pods', 0):,} Pods, plus "
                f"{seeded.get('unrelated pods', 0):,} unrelated Pods in "
                f"{OTHER_NAMESPACES} other namespaces; one replica, cluster-wide",
                f"RSS ≤ {target:,} MiB; no cluster-wide Pod list/watch" if target else "—",
                f"RSS {got['rss_mib']:.0f} MiB once settled (peak {got['peak_mib']:.0f} MiB); "
                f"without CronJobs, Jobs and Pods, same session: {base['rss_mib']:.0f} MiB "
                f"(peak {base['peak_mib']:.0f}); ready in {got['ready_s']:.1f} s, leading "
                f"{got['leader_s']:.1f} s, settled {scale.settled(got['quiet_s'])}, "
                f"{got['cpu_s']:.0f} CPU-s; operator's Pod requests (audit log): "
                + ", ".join(f"{k.removeprefix('operator ')} {v:,.0f}" for k, v in pod_reads)
                + f", cluster-wide list/watch {cluster_reads}; writes at start-up "
                + ", ".join(f"{k} {v:,.0f}" for k, v in sorted(writes.items()) if v),
                None
                if target is None
                else got["rss_mib"] <= target and got["peak_mib"] <= target and cluster_reads == 0,
            )
        )
    return rows, facts
