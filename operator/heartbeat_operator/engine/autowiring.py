"""CronJob auto-wiring: the tables every replica keeps, the leader's reconciler (DESIGN 4, 6).

``AutoWiring`` keeps the in-memory CronJob, Job and owner tables every replica fills from
kopf's watch (``kube.watching.register_autowiring`` adds the ``@kopf.on.event`` handlers:
no change handlers, timers, daemons or finalizers, so kopf never writes to a CronJob, Job
or Pod), and runs the leader's reconciler: only the Lease holder applies monitors, deletes
them and submits Job pings and pause/resume (DESIGN 6: the leader writes what Jobs
change). Status writes go through the writer's per-monitor lane (``Writer.submit``) like
every other; reconciles go through the work queue shared with the scheduler
(``engine.workqueue``). What a CronJob's monitor should be is ``engine.cronjobs`` (pure).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from heartbeat_operator.domain.inputs import (
    Input,
    JobPending,
    Ping,
    SlotSkipped,
)
from heartbeat_operator.domain.records import Record
from heartbeat_operator.domain.selectors import Selector
from heartbeat_operator.domain.specs import MonitorSpec
from heartbeat_operator.domain.tokens import redact_tokens
from heartbeat_operator.engine import jobs as jobs_
from heartbeat_operator.engine.api import (
    APPLY_PATCH,
    PLURAL,
    ApiError,
    KubeApi,
    monitor_path,
)
from heartbeat_operator.engine.cronjobs import (
    CRONJOB_API_VERSION,
    FIELD_MANAGER,
    JOB_CREATION_ALLOWANCE,
    MAX_RECONCILES,
    CronJobInfo,
    EventLike,
    Owner,
    annotation_problems,
    build_monitor,
    created_by_operator,
    desired_spec,
    entry_owner,
    in_sync,
    invalid_annotation_event,
    mirrored_events,
    monitor_owner,
    monitoring,
    name_conflict_event,
    pause_inputs,
    skipped_slot_cause,
)
from heartbeat_operator.engine.events import (
    InvolvedObject,
    apply_event,
)
from heartbeat_operator.engine.folding import Change
from heartbeat_operator.engine.monitors import Key, MonitorEntry, MonitorTable
from heartbeat_operator.engine.scheduling import Judging
from heartbeat_operator.engine.workqueue import WorkQueue
from heartbeat_operator.recording import UnknownToken

logger = logging.getLogger(__name__)

CRONJOBS = "cronjob"  # the auto-wiring's kind of key in the shared work queue


# --- the watches and the leader's reconciler ------------------------------------------------

Submit = Callable[[Key, Change], Awaitable[MonitorEntry]]


class AutoWiring:
    """CronJob auto-wiring for one replica: tables on every replica, actions on the leader.

    Hooks (``running``): ``register(registry, wiring)`` adds the watches;
    ``writer.on_transitions.append(wiring.mirror_transitions)``;
    ``wiring.leadership_changed(leading)`` from the Lease; ``await wiring.run(stop)``.
    """

    def __init__(
        self,
        *,
        client: KubeApi,
        monitors: MonitorTable,
        submit: Submit,
        is_leader: Callable[[], bool],
        exit_codes: bool = True,
        capture_logs: bool = False,
        namespace_selector: Selector | None = None,
        instance: str = "",
        now: Callable[[], datetime.datetime] | None = None,
        work: WorkQueue | None = None,
    ) -> None:
        self.client = client
        self.monitors = monitors
        self.submit = submit
        self.is_leader = is_leader
        self.read_pods = exit_codes
        # Issue 12, item 4: a failed Job's log tail follows the cause in its fail ping
        # (RBAC pods/log get, granted only while on).
        self.capture_logs = capture_logs
        # Issue 12, item 5: coverage by policy; None (off) when no selector is set.
        self.namespace_selector = namespace_selector
        self.instance = instance
        self._now = now or (lambda: datetime.datetime.now(datetime.UTC))
        self.cronjobs: dict[Key, CronJobInfo] = {}
        self.jobs = jobs_.JobTable()
        self.owners: dict[Key, Owner] = {}
        # Labels of every Namespace seen (only watched with a namespace selector) and the
        # CronJobs of each, so a Namespace relabelled re-decides exactly its CronJobs.
        self.namespace_labels: dict[str, Mapping[str, str]] = {}
        self._names_in: dict[str, set[str]] = {}
        self._applied: dict[Key, dict[str, Any]] = {}
        # The latest read of a Job's Pods, by Job uid (only this summary: no Pod is held).
        self._pods: dict[str, jobs_.JobPods] = {}
        # Jobs deleted before they finished (Replace, kubectl delete): a failure each.
        self._deleted: dict[Key, list[tuple[jobs_.JobRun, datetime.datetime]]] = {}
        self._posted: set[str] = set()
        # CronJobs to reconcile: the work queue shared with the scheduler (issue 14 item
        # 3), held while this replica does not lead (a follower keeps its marks).
        self.work = work or WorkQueue()
        # At most MAX_RECONCILES at once, and none before the initial list of monitors is
        # in (``run``): 2,000 CronJobs at once timed out and cost the Lease (bench scale-pods).
        self.work.add_kind(CRONJOBS, self._reconcile_guarded, limit=MAX_RECONCILES)
        self._monitors_listed = False
        self._tasks: set[asyncio.Task[Any]] = set()  # Event posts

    # --- fed by the watches (every replica) ---------------------------------------------

    def cronjob_event(self, type: str | None, body: Mapping[str, Any]) -> None:
        info = CronJobInfo.from_body(body)
        if not info.namespace or not info.name:
            return
        if type == "DELETED":
            if self.cronjobs.get(info.key, info).uid == info.uid:
                self.cronjobs.pop(info.key, None)
                self._applied.pop(info.key, None)
                self._forget_deleted_jobs(info.key)
                names = self._names_in.get(info.namespace)
                if names is not None:
                    names.discard(info.name)
                    if not names:
                        del self._names_in[info.namespace]
            return
        self.cronjobs[info.key] = info
        self._names_in.setdefault(info.namespace, set()).add(info.name)
        self.mark(info.key)

    def _forget_deleted_jobs(self, key: Key) -> None:
        for job, _ in self._deleted.pop(key, ()):
            self._pods.pop(job.uid, None)

    def namespace_event(self, type: str | None, body: Mapping[str, Any]) -> None:
        """A Namespace's labels decide its un-annotated CronJobs (issue 12, item 5).

        Labelled to match: they gain monitors; unlabelled: the monitors the operator made
        for them are deleted, as when an annotation is removed. Only a change of the
        selector's answer re-decides the Namespace's CronJobs (first sight is one).
        """
        meta = body.get("metadata") or {}
        name = str(meta.get("name") or "")
        if not name or self.namespace_selector is None:
            return
        before = self.namespace_labels.get(name)
        if type == "DELETED":
            self.namespace_labels.pop(name, None)
            return  # its CronJobs and their monitors go with it (garbage collector)
        labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
        self.namespace_labels[name] = labels
        if before is not None and self.namespace_selector.matches(
            before
        ) == self.namespace_selector.matches(labels):
            return
        for cronjob in self._names_in.get(name, ()):
            self.mark((name, cronjob))

    def monitoring(self, cronjob: CronJobInfo) -> bool | None:
        """``monitoring`` with this replica's selector and Namespace table."""
        return monitoring(
            cronjob, self.namespace_labels.get(cronjob.namespace), self.namespace_selector
        )

    def job_event(self, type: str | None, body: Mapping[str, Any]) -> None:
        if type == "DELETED":
            uid = str((body.get("metadata") or {}).get("uid") or "")
            gone = self.jobs.remove(uid)
            if gone is not None:
                # The Job as it was deleted is its last word: a Job that finished and was
                # removed at once (successfulJobsHistoryLimit: 0, ttlSecondsAfterFinished:
                # 0) is deleted before the reconcile that reports its finish has run.
                # Kept until that finish, or its failure by deletion, is reported.
                final = jobs_.JobRun.from_body(body)
                last = final if final is not None and final.uid == uid else gone
                deleted = self._deleted.setdefault(gone.key, [])
                deleted.append((last, self._now()))
                for forgotten, _ in deleted[: -jobs_.MAX_DELETED_REMEMBERED]:
                    self._pods.pop(forgotten.uid, None)
                del deleted[: -jobs_.MAX_DELETED_REMEMBERED]
                self.mark(gone.key)
            else:
                self._pods.pop(uid, None)
            return
        job = self.jobs.upsert(body)
        if job is not None:
            self.mark(job.key)

    def monitor_event(self, type: str | None, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        owner = monitor_owner(body)
        if type == "DELETED":
            current = self.owners.get(key)
            if current is not None and current.monitor_uid == meta.get("uid"):
                del self.owners[key]
            self._applied.pop(key, None)
        elif owner is None:
            self.owners.pop(key, None)
        else:
            self.owners[key] = owner
        if key in self.cronjobs:
            self.mark(key)

    def leadership_changed(self, leading: bool) -> None:
        """A new leader starts from what the watches hold (DESIGN 9.1). The CronJob copies
        of Events missing after a leader change are the scheduler's ``EventKeeper``'s,
        through ``event_targets``."""
        self._applied.clear()
        if leading:
            for key in self.cronjobs:
                self.mark(key)
            if self._monitors_listed:
                self.work.release(CRONJOBS)
        else:
            self.work.hold(CRONJOBS)

    def event_targets(self, entry: MonitorEntry) -> list[InvolvedObject]:
        """The CronJob an auto-wired monitor's Events are also posted on (or none)."""
        owner = self.owners.get(entry.key)
        if owner is None or owner.monitor_uid != entry.uid:
            return []
        cronjob = InvolvedObject(
            entry.namespace,
            owner.cronjob,
            owner.cronjob_uid,
            api_version=CRONJOB_API_VERSION,
            kind="CronJob",
        )
        return [cronjob]

    def mark(self, key: Key) -> None:
        self.work.mark(CRONJOBS, key)

    # --- every replica: Events of an auto-wired monitor also go to its CronJob --------------

    def mirror_transitions(self, entry: MonitorEntry, transitions: Sequence[EventLike]) -> None:
        """``Writer.on_transitions`` listener (any replica: whoever wrote the transition)."""
        owner = self.owners.get(entry.key)
        if owner is None or owner.monitor_uid != entry.uid:
            return
        for body in mirrored_events(owner, entry.namespace, transitions, instance=self.instance):
            self._spawn(apply_event(self.client, body))

    # --- the leader's loop -------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Reconcile marked CronJobs while leading until ``stop``, each key one at a time
        and at most ``MAX_RECONCILES`` at once (the shared ``WorkQueue``; a follower keeps its
        marks: at most one per CronJob, all re-marked when it starts leading). Not before the
        initial list of monitors is in: until then every CronJob's monitor looks missing and
        would be applied blind."""
        stopping = asyncio.ensure_future(stop.wait())
        try:
            synced = asyncio.ensure_future(self.monitors.wait_synced())
            await asyncio.wait({synced, stopping}, return_when=asyncio.FIRST_COMPLETED)
            synced.cancel()
            self._monitors_listed = True
            if self.is_leader():
                self.work.release(CRONJOBS)
            await stopping
        finally:
            stopping.cancel()
            self.work.hold(CRONJOBS)

    async def drain(self, timeout: float) -> None:
        """Wait (up to ``timeout``) for the Event posts and reconciles running now."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
        await self.work.drain(timeout)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reconcile_guarded(self, key: Key) -> None:
        try:
            await self.reconcile(key)
        except Exception:
            logger.exception("auto-wiring of CronJob %s/%s failed", *key)

    async def reconcile(self, key: Key) -> None:
        """Bring the CronJob's monitor, its pause and its Job pings up to date (leader)."""
        cronjob = self.cronjobs.get(key)
        if cronjob is None or not self.is_leader():
            return
        if cronjob.deleting:
            # Applying now would put back the owner reference the garbage collector just
            # took off (--cascade=orphan), and then delete the monitor as a dependent of
            # a CronJob that is gone: leave it to the collector (docs/cronjobs.md).
            return
        entry = self.monitors.get(key)
        # Ownership from the monitor the table holds, not from the owner map: that map is fed
        # by kopf's watch of monitors, which lags behind our own list at start-up, and a
        # guess there posted a false NameConflict on every auto-wired CronJob (issue 12).
        owner = entry_owner(entry) if entry is not None else None
        ours = entry is not None and created_by_operator(entry, owner, cronjob)
        monitored = self.monitoring(cronjob)
        if monitored is None:
            return  # its Namespace is not in yet: that Namespace's event marks it again
        now = self._now()
        slips = annotation_problems(cronjob, monitored=monitored)
        if not monitored:
            for problem in slips:
                await self._post_once(
                    invalid_annotation_event(cronjob, problem, now=now, instance=self.instance)
                )
            self._forget_deleted_jobs(key)  # nobody is owed their finish
            if entry is not None and ours and owner is not None and not entry.deleting:
                # Only a monitor a CronJob owns: one left by a CronJob deleted with
                # --cascade=orphan is adopted by a monitored CronJob, never deleted.
                await self._delete(entry)
            return
        spec, problems = desired_spec(cronjob)
        for problem in [*problems, *slips]:
            await self._post_once(
                invalid_annotation_event(cronjob, problem, now=now, instance=self.instance)
            )
        if entry is not None and not ours:
            await self._post_once(name_conflict_event(cronjob, now=now, instance=self.instance))
            return
        body = build_monitor(cronjob, spec)
        if (
            entry is None
            or self._applied.get(key) != body
            or not in_sync(entry, owner, cronjob, spec)
        ):
            if not await self._apply(key, body):
                return
            entry = self.monitors.get(key)
        if entry is None or entry.deleting or not entry.has_status:
            return  # the leader's first write (token, Ready) comes before any Job ping
        inputs: list[Input] = pause_inputs(cronjob, entry, now)
        inputs.extend(await self._job_inputs(cronjob, entry))
        if inputs:
            try:
                await self.submit(key, Change(inputs=tuple(inputs)))
            except UnknownToken:
                logger.debug("monitor %s/%s went away before its Job pings were written", *key)

    async def _job_inputs(
        self, cronjob: CronJobInfo, entry: MonitorEntry, *, fresh: bool = False
    ) -> list[Input]:
        """What the CronJob's Jobs still owe the monitor (``jobs.job_inputs``), reading
        each Job's Pods when its start or failure is not known yet (``fresh``: always)."""
        out: list[Input] = []
        reported = jobs_.reported_phases(entry.status)
        for job in self.jobs.of_cronjob(cronjob.namespace, cronjob.uid):
            phases = reported.get(job.uid, set())
            if phases & jobs_.FINISHED_PHASES:
                self._pods.pop(job.uid, None)
                continue
            pods = await self._pods_of(job, fresh=fresh)
            out.extend(jobs_.job_inputs(job, entry.status, pods))
        deleted = self._deleted.get(cronjob.key, [])
        for job, when in list(deleted):
            if job.finished:  # its finish is owed as if it were still there
                pods = await self._pods_of(job, fresh=fresh)
                owed = jobs_.job_inputs(job, entry.status, pods)
            else:
                owed = jobs_.deleted_inputs(job, when, entry.status)
            if not owed:
                deleted.remove((job, when))
                self._pods.pop(job.uid, None)
            out.extend(owed)
        return [_redacted(i, entry.token_hash) for i in out]

    async def _pods_of(self, job: jobs_.JobRun, *, fresh: bool) -> jobs_.JobPods | None:
        """The Job's Pods as last read, read again unless that read still tells all: a
        start seen before the Job finished needs no other read until it does."""
        if not self.read_pods:
            return None
        known = self._pods.get(job.uid)
        # Whether the Job had finished at that read, never its finish time against the
        # read's: API times have whole seconds (and another clock), so a failure in the
        # second of a read looked older than the read and kept the Pods of before it.
        if (
            known is not None
            and not fresh
            and ((known.started_at is not None and not job.finished) or known.job_finished)
        ):
            return known
        pods = await jobs_.read_job_pods(
            self.client, job, self._now(), capture_logs=self.capture_logs
        )
        if (
            pods is not None
            and not pods.found
            and known is not None
            and known.found
            and known.started_at is None
            and known.waiting
        ):
            # The Job controller deletes a Pod that never ran when the Job fails
            # (DeadlineExceeded): what it said before is still why (DESIGN 10.1).
            pods = dataclasses.replace(pods, waiting=known.waiting)
        if pods is not None:
            self._pods[job.uid] = pods
        return pods

    async def before_judging(
        self, entry: MonitorEntry, spec: MonitorSpec, record: Record, until: datetime.datetime
    ) -> Judging:
        """What the cluster says of the slot about to be judged (leader; DESIGN 10.8.3).

        The scheduler calls this when a deadline of ``entry`` is due by ``until``. For an
        auto-wired monitor it re-reads the Pods of the Jobs that may stand for the slot:
        a start found at or before the deadline is folded first (the run was on time); a
        Job still waiting gets its cause refreshed, so ``NotStarted`` names what the
        cluster says now; a slot with no Job says why (``SlotSkipped``). While the CronJob
        controller may still be creating the slot's Job, the Late judgement is held.
        """
        cronjob = self.cronjobs.get(entry.key)
        owner = self.owners.get(entry.key)
        if cronjob is None or owner is None or owner.monitor_uid != entry.uid:
            return Judging()
        if record.paused_since is not None:
            return Judging()
        inputs = await self._job_inputs(cronjob, entry, fresh=True)
        slot = spec.slots.next_slot(record.reference_time)
        if slot is None:
            return Judging(tuple(inputs))
        alert = slot.alert(spec.grace)
        waiting = [p for p in record.pending_starts if p.due == slot.due]
        made_for_slot = waiting or any(
            isinstance(i, JobPending | Ping) and i.time <= alert for i in inputs
        )
        if (
            not made_for_slot
            and record.state in ("New", "Healthy")
            # Only the slot's own Late judgement waits for its Job: a run's deadline before
            # the slot is due (maxRuntime) is judged on time.
            and slot.due <= until < slot.due + JOB_CREATION_ALLOWANCE
            and not cronjob.suspend
        ):
            return Judging(tuple(inputs), hold_until=slot.due + JOB_CREATION_ALLOWANCE)
        if alert > until:
            return Judging(tuple(inputs))
        for pending in waiting:
            job = self.jobs.get(pending.uid)
            pods = self._pods.get(pending.uid)
            if job is None or pods is None or pods.started_at is not None:
                continue
            inputs.append(
                JobPending(
                    time=alert,
                    uid=job.uid,
                    name=job.name,
                    created=pending.created,
                    cause=pods.waiting,
                    scheduled_time=job.scheduled_time,
                )
            )
        if not waiting:
            jobs = self.jobs.of_cronjob(cronjob.namespace, cronjob.uid)
            why = skipped_slot_cause(cronjob, jobs, slot.due, until)
            if why:
                inputs.append(SlotSkipped(alert, slot.due, why))
        return Judging(tuple(inputs))

    async def _apply(self, key: Key, body: dict[str, Any]) -> bool:
        try:
            written = await self.client.patch(
                monitor_path(*key),
                body,
                kind=PLURAL,
                content_type=APPLY_PATCH,
                params={"fieldManager": FIELD_MANAGER, "force": "true"},
            )
        except ApiError as exc:
            logger.warning("could not apply the monitor of CronJob %s/%s: %s", *key, exc)
            return False
        self._applied[key] = body
        if written:
            self.monitors.upsert(written)
            owner = monitor_owner(written)
            if owner is not None:
                self.owners[key] = owner
        return True

    async def _delete(self, entry: MonitorEntry) -> None:
        """Delete the monitor the operator made (the annotation was removed), by uid."""
        path = monitor_path(entry.namespace, entry.name)
        try:
            await self.client.request(
                "DELETE",
                path,
                body={
                    "apiVersion": "v1",
                    "kind": "DeleteOptions",
                    "preconditions": {"uid": entry.uid},
                },
                kind=PLURAL,
            )
        except ApiError as exc:
            if not exc.not_found and not exc.conflict:
                logger.warning("could not delete monitor %s/%s: %s", *entry.key, exc)
            return
        self._applied.pop(entry.key, None)
        logger.info(
            "deleted monitor %s/%s: its CronJob is no longer monitored (annotation or "
            "namespace labels)",
            *entry.key,
        )

    async def _post_once(self, body: dict[str, Any]) -> None:
        name = body["metadata"]["name"]
        if name in self._posted:
            return
        if await apply_event(self.client, body):
            self._posted.add(name)


def _redacted(item: Input, hashed: str | None) -> Input:
    """A Job's words with no ping token in them: its failure message, its container's
    termination message and log tail (``--capture-logs``) may hold the job's own ping URL
    (a ``curl -v`` trace), and they are stored in status and quoted in Events (issue 18
    item 5). The mirror knows the monitor's token by its hash only."""
    if isinstance(item, Ping) and item.body:
        return dataclasses.replace(item, body=redact_tokens(item.body, hashed=hashed))
    if isinstance(item, JobPending) and item.cause:
        return dataclasses.replace(item, cause=redact_tokens(item.cause, hashed=hashed))
    return item
