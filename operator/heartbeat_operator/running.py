"""``heartbeat-operator run``: kopf's watches, the ping receiver, metrics and the leader,
in one asyncio loop (DESIGN 6).

Every replica watches monitors (``kube.watching``), serves pings and writes what they
change (``engine.writing``); the Lease holder (``kube.leasing``) also runs the scheduler
(``engine.scheduling``) that writes what time, spec edits and tokens change.

Life cycle (DESIGN 9.20): on SIGTERM ``/readyz`` turns 503 on both ports, the leader stops
scheduling and releases the Lease, pings in flight are written and answered, kopf stops,
and the process exits 0 — all within 10 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import errno
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import kopf
import uvloop

from heartbeat_operator import settings as settings_module
from heartbeat_operator.admission.serving import serve_webhook
from heartbeat_operator.domain.machine import view
from heartbeat_operator.domain.records import Record
from heartbeat_operator.domain.specs import MonitorSpec
from heartbeat_operator.domain.timefmt import TimeFormatError, parse_time
from heartbeat_operator.engine.api import ApiError
from heartbeat_operator.engine.autowiring import AutoWiring
from heartbeat_operator.engine.events import EventKeeper, InvolvedObject
from heartbeat_operator.engine.journal import Absorber, Journal, JournalReader, JournalRecorder
from heartbeat_operator.engine.monitors import MonitorEntry, MonitorTable
from heartbeat_operator.engine.scheduling import Judging, Scheduler
from heartbeat_operator.engine.tokens import TokenKeeper, Urls
from heartbeat_operator.engine.workqueue import WorkQueue
from heartbeat_operator.engine.writing import Writer, WriterConfig
from heartbeat_operator.kube import watching
from heartbeat_operator.kube.client import KubeClient
from heartbeat_operator.kube.credentials import Credentials
from heartbeat_operator.kube.leasing import Leadership, LeaseConfig
from heartbeat_operator.kube.pauses import KubePauses
from heartbeat_operator.kube.replicas import Replicas
from heartbeat_operator.metrics import Metrics, make_metrics_handler
from heartbeat_operator.receiver.app import make_metrics_app, make_ping_app
from heartbeat_operator.receiver.health import Health
from heartbeat_operator.receiver.serving import serve
from heartbeat_operator.settings import Settings

logger = logging.getLogger("heartbeat_operator")

#: Seconds kopf gets to stop its watches after the receiver has drained.
KOPF_STOP_TIMEOUT = 1.5
#: Seconds each other shutdown step (Lease loop, Lease release) may take.
STEP_TIMEOUT = 2.0
#: Seconds from SIGTERM by which every shutdown step has had its turn (DESIGN 9.20: exit
#: within 10 s); a step left with less gets ``MIN_STEP``.
EXIT_WITHIN = 9.0
MIN_STEP = 0.1
#: Seconds tasks still alive after ``run`` returned (kopf's internals) get to cancel.
LEFTOVER_TIMEOUT = 1.0


def configure(parser: argparse.ArgumentParser) -> None:
    settings_module.add_arguments(parser)


def main(args: argparse.Namespace) -> int:
    try:
        settings = settings_module.build_settings(args)
    except settings_module.SettingsError as exc:
        print(f"heartbeat-operator run: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=getattr(logging, settings.server.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # kopf is chatty at INFO about every watch (re)connection; warnings are what matter.
    logging.getLogger("kopf").setLevel(max(logging.WARNING, logging.getLogger().level))
    # A port already taken is one line naming the setting, not a traceback from deep in
    # aiohttp after kopf has started (issue 17 item 6).
    busy = busy_port(settings)
    if busy is not None:
        print(f"heartbeat-operator run: {busy}", file=sys.stderr)
        return 2
    try:
        return run_to_exit(run(settings))
    except OSError as exc:  # taken between the check and the bind
        if exc.errno != errno.EADDRINUSE:
            raise
        print(
            f"heartbeat-operator run: {exc.strerror}: {busy_port(settings) or exc}", file=sys.stderr
        )
        return 2


async def _let_go(
    op: Operator, loops: set[asyncio.Task[None]], left: Callable[[float], float]
) -> None:
    """End the Lease loops and release the leadership and replica Leases, each step bounded:
    a renewal stuck on an unreachable API must not hold the exit past 10 s (DESIGN 9.20)."""
    await asyncio.wait(loops, timeout=left(STEP_TIMEOUT))
    releases = asyncio.gather(
        op.leadership.release(), op.replicas.release(), return_exceptions=True
    )
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(releases, left(STEP_TIMEOUT))


def busy_port(settings: Settings) -> str | None:
    """What to tell the user when a port this replica must listen on is already taken
    (by another operator, a second `make run`, anything): the port, and the variable and
    flag that move it. None when every port can be bound."""
    server = settings.server
    ports = [
        (server.port, "HEARTBEAT_PORT", "--port"),
        (server.metrics_port, "HEARTBEAT_METRICS_PORT", "--metrics-port"),
    ]
    webhook = settings.webhook
    if webhook.cert_file is not None and webhook.key_file is not None:
        ports.append((webhook.port, "HEARTBEAT_WEBHOOK_PORT", "--webhook-port"))
    for port, variable, flag in ports:
        if port == 0:
            continue
        try:
            # SO_REUSEADDR, as aiohttp binds: only a listener counts, not TIME_WAIT.
            socket.create_server((server.host, port)).close()
        except OSError as exc:
            if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                raise
            return (
                f"port {port} ({server.host}) is already in use: stop what listens there or "
                f"choose another port with {variable}=<port> (or {flag})"
            )
    return None


def run_to_exit(main_coro: Coroutine[Any, Any, int]) -> int:
    """``asyncio.run``, except that cancelling the tasks left behind is bounded.

    Stopped within moments of starting, kopf 1.45's namespace watcher can wait forever in
    a shielded close of its own task scheduler, and ``asyncio.run`` would never return.
    By then ``run`` has answered every ping and released the Lease, so the replica's work
    is done: exit with its status within the 10 s DESIGN 9.20 allows.

    The loop is uvloop's: with the journal, the replica's single loop serves thousands of
    pings a second, and on uvloop their p99 was half of asyncio's loop's at the same
    throughput (bench/README.md, "Issue 15, fourth session").
    """
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    code = loop.run_until_complete(main_coro)
    leftovers = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in leftovers:
        task.cancel()
    stuck: set[asyncio.Task[Any]] = set()
    if leftovers:
        _, stuck = loop.run_until_complete(asyncio.wait(leftovers, timeout=LEFTOVER_TIMEOUT))
    if stuck:
        names = ", ".join(sorted(task.get_name() for task in stuck))
        logger.warning("exiting with tasks that did not stop: %s", names)
        logging.shutdown()
        os._exit(code)  # a normal exit would wait for them again
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()
    return code


class Operator:
    """The parts of one replica, wired together (tests may build one in-process)."""

    def __init__(
        self, settings: Settings, credentials: Credentials, info: kopf.ConnectionInfo
    ) -> None:
        self.settings = settings
        self.credentials = credentials
        self.info = info
        self.table = MonitorTable()
        self.leadership: Leadership  # built below; the metrics only ask it at scrape time
        self.metrics = Metrics(
            self.table.snapshots,
            self.is_leader,
            label_keys=settings.metrics.label_allowlist,
            monitor_metrics=settings.metrics.monitor_metrics,
        )
        self.client = KubeClient(
            info,
            on_write=self.metrics.api_write,
            relogin=lambda: credentials.get(refresh=True),  # after a 401 or at expiry
        )
        w = settings.writer
        self.writer = Writer(self.client, self.table, WriterConfig.from_settings(settings))
        urls = Urls(settings.server.external_url, settings.server.internal_url)
        self.tokens = TokenKeeper(
            self.client,
            self.table,
            self.writer,
            urls,
            instance=settings.watching.identity,
            poke=lambda key: self.scheduler.poke(key),
            targets=self._event_targets,
        )
        self._sweep: asyncio.Task[None] | None = None
        # One keyed work queue for the leader's loops: monitors and CronJobs (issue 14 item 3).
        self.work = WorkQueue()
        self._journal_task: asyncio.Task[None] | None = None
        keeper = EventKeeper(self.client, self._event_targets, settings.watching.identity)
        self.writer.on_events_posted.append(keeper.posted)
        self.scheduler = Scheduler(
            self.table,
            self.writer,
            self.tokens,
            deadline_delay=w.deadline_delay,
            judge=self._before_judging,
            events=keeper,
            work=self.work,
        )
        lease = settings.leadership
        self.leadership = Leadership(
            self.client,
            LeaseConfig.from_settings(settings),
            on_change=self._leadership_changed,
        )
        # DESIGN 10.5, 10.8.9: this replica's Lease, and the outages every write judges with.
        self.replicas = Replicas(
            self.client,
            self.leadership,
            namespace=settings.watching.lease_namespace,
            identity=settings.watching.identity,
            interval=lease.renew_interval,
            duration=lease.lease_duration,
            earliest_open=lambda: earliest_open(self.table),
        )
        self.writer.outages = self.replicas.outages
        self.scheduler.prepare = self.replicas.prepare
        self.health = Health(self.ready, drain_delay=settings.server.drain_delay)
        # CronJob auto-wiring (DESIGN 4): its watches on every replica, its writes on the leader.
        self.wiring = AutoWiring(
            client=self.client,
            monitors=self.table,
            submit=self.writer.submit,
            is_leader=self.is_leader,
            exit_codes=settings.jobs.exit_codes,
            capture_logs=settings.jobs.capture_logs,
            namespace_selector=settings.jobs.namespace_selector,
            instance=settings.watching.identity,
            work=self.work,
        )
        self.writer.on_transitions.append(self.wiring.mirror_transitions)
        # DESIGN 10.7 (issue 15): with the journal on, a 200 means stored in this
        # replica's journal Secret; the status absorbs it behind the reply.
        j = settings.journal
        self.journal: Journal | None = None
        self.absorber: Absorber | None = None
        self.journals: JournalReader | None = None
        self.recorder: Any = self.writer
        if j.enabled:
            self.journal = Journal(
                self.client,
                namespace=settings.watching.lease_namespace,
                identity=settings.watching.identity,
                max_bytes=j.max_bytes,
                max_segments=j.max_segments,
                write_timeout=settings.receiver.write_timeout,
                max_unabsorbed=settings.writer.max_waiting_pings,
            )
            self.journals = JournalReader(
                self.client,
                self.writer,
                namespace=settings.watching.lease_namespace,
                lease_duration=lease.lease_duration,
                own=self.journal,
            )
            self.absorber = Absorber(
                self.journal,
                self.writer,
                interval=j.absorb_interval,
                writes_per_second=j.absorb_writes_per_second,
                max_lag=j.absorb_max_lag,
                reader=self.journals,
            )
            self.recorder = JournalRecorder(self.writer, self.journal)
            journal = self.journal
            self.metrics.track_journal(lambda: journal.backlog, lambda: journal.segments)
            self.journal.on_flush.append(self.metrics.journal_flushed)
            self.absorber.on_absorbed.append(self.metrics.status_lag)

    async def _before_judging(
        self, entry: MonitorEntry, spec: MonitorSpec, record: Record, until: datetime.datetime
    ) -> Judging:
        judging = await self.wiring.before_judging(entry, spec, record, until)
        if self.journals is None or judging.hold_until is not None:
            return judging
        # DESIGN 10.8.11: before a deadline transition, every journaled ping of the
        # monitor is folded in the same write; the reconciles of one batch of deadlines
        # (all woken at deadline + 0.5 s) share one LIST of the journals.
        due = view(spec, record, until, outages=self.replicas.outages()).next_change_at
        listed = await self.journals.list_since(
            (due or until).timestamp() + self.settings.writer.deadline_delay
        )
        absorb = listed.pings_for(entry)
        return dataclasses.replace(judging, absorb=absorb) if absorb else judging

    def _event_targets(self, entry: MonitorEntry) -> list[InvolvedObject]:
        """A monitor's transitions are posted on it, and on its CronJob if auto-wired."""
        own = InvolvedObject(entry.namespace, entry.name, entry.uid)
        return [own, *self.wiring.event_targets(entry)]

    def _leadership_changed(self, leading: bool) -> None:
        self.scheduler.set_leading(leading)
        self.wiring.leadership_changed(leading)
        if leading:
            self.tokens.leading_again()
            # Secrets written with other --external-url/--internal-url get the new ones.
            self.writer.spawn(self.tokens.refresh_urls(self.leadership.annotations))
            self.writer.spawn(self._warm_metrics())
            # DESIGN 10.8.14: deleted token Secrets are found by a slow sweep of reads.
            self.stop_sweep()
            self._sweep = asyncio.create_task(
                self.tokens.sweep_forever(
                    self.is_leader,
                    reads_per_second=self.settings.tokens.sweep_reads_per_second,
                    interval=self.settings.tokens.sweep_interval,
                ),
                name="token sweep",
            )
            if self.journals is not None:
                # DESIGN 10.8.10: journals of replicas whose Lease expired.
                self._journal_task = asyncio.create_task(
                    self.journals.run(
                        self.is_leader,
                        self.table.get,
                        interval=self.settings.leadership.renew_interval,
                    ),
                    name="dead journals",
                )
        else:
            self.metrics.monitors.forget()
            self.stop_sweep()

    def stop_sweep(self) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        if self._journal_task is not None:
            self._journal_task.cancel()
            self._journal_task = None

    async def _warm_metrics(self) -> None:
        """The leader's first scrape finds every monitor rendered (metrics: ``warm``)."""
        await self.table.wait_synced()
        await self.metrics.monitors.warm()

    def badge_state(self, namespace: str, name: str) -> str | None:
        """A monitor's ``status.state`` for its badge (issue 16 item 4); None: unknown."""
        entry = self.table.get((namespace, name))
        if entry is None:
            return None
        state = entry.summary.get("state")
        return state if isinstance(state, str) else ""

    def is_leader(self) -> bool:
        leadership = getattr(self, "leadership", None)
        return leadership is not None and leadership.is_leader()

    def ready(self) -> bool:
        """DESIGN 9.2: the token index holds the initial list and the API answered lately;
        and the replica has looked for an outage before its start (DESIGN 10.8.9), so no
        ping it takes settles a slot that the outage should excuse."""
        return (
            self.table.synced
            and self.replicas.started
            and self.client.stats.answered_within(self.settings.watching.api_fresh_window)
        )


def earliest_open(table: MonitorTable) -> datetime.datetime | None:
    """The earliest instant a window still to be judged may start: the earliest
    ``nextDueTime`` or open run's start in any monitor's status (``kube.replicas`` keeps an
    outage while one may overlap it). Before the table is synced: the beginning of time."""
    if not table.synced:
        return datetime.datetime.min.replace(tzinfo=datetime.UTC)
    found: datetime.datetime | None = None
    for entry in table:
        status = entry.status  # openRuns is packed with the histories; called rarely
        times = [status.get("nextDueTime")]
        times += [r.get("startTime") for r in status.get("openRuns") or () if not r.get("timedOut")]
        for text in times:
            if not isinstance(text, str):
                continue
            with contextlib.suppress(TimeFormatError):
                at = parse_time(text)
                found = at if found is None or at < found else found
    return found


async def _prime(op: Operator, namespaces: list[str]) -> None:
    """The initial list of monitors, retried until the API answers (readiness needs it)."""
    delay = 0.5
    while not op.table.synced:
        try:
            await watching.prime(op.client, op.table, namespaces)
        except ApiError as exc:
            logger.warning("listing monitors failed: %s", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def run(settings: Settings) -> int:
    loop = asyncio.get_running_loop()
    credentials = Credentials()
    op = Operator(settings, credentials, await asyncio.to_thread(credentials.get))
    stop = asyncio.Event()
    kopf_stop = asyncio.Event()
    namespaces = list(settings.watching.namespaces)

    # kopf installs its own SIGINT/SIGTERM handlers at every (re)start of its watches; ours
    # drain first (DESIGN 9.20), so they go back on after each.
    signalled = asyncio.Event()

    def on_signal() -> None:
        signalled.set()
        stop.set()

    def own_signal_handlers() -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal)

    own_signal_handlers()
    kopf_runner = asyncio.create_task(
        watching.run_watches(
            watching.build_registry(op.table, op.credentials.kopf_login(), op.wiring),
            namespaces,
            kopf_stop,
            started=own_signal_handlers,
            restarted=op.metrics.watch_restarted,
        ),
        name="kopf",
    )
    kopf_runner.add_done_callback(lambda _: stop.set())  # the watch loop died: stop too
    primer = asyncio.create_task(_prime(op, namespaces), name="prime")
    lease_stop = asyncio.Event()
    lease_task = asyncio.create_task(op.leadership.run(lease_stop), name="lease")
    replica_task = asyncio.create_task(op.replicas.run(lease_stop), name="replica lease")
    wiring_task = asyncio.create_task(op.wiring.run(lease_stop), name="cronjobs")

    server = settings.server
    receiver = settings.receiver
    pauses = (
        KubePauses(op.client, audience=receiver.pause_api_audience) if receiver.pause_api else None
    )
    ping_app = make_ping_app(
        settings, op.recorder, op.health, observer=op.metrics.observe, pauses=pauses
    )
    metrics_app = make_metrics_app(
        make_metrics_handler(op.metrics),
        op.health,
        observer=op.metrics.observe,
        badges=op.badge_state if settings.metrics.badges else None,
    )
    webhook = settings.webhook
    # Every replica serves the webhook, leader or not (DESIGN 10.4); only with a
    # certificate (settings.WebhookSettings.cert_file).
    admission = (
        serve_webhook(server.host, webhook.port, webhook.cert_file, webhook.key_file)
        if webhook.cert_file is not None and webhook.key_file is not None
        else contextlib.nullcontext()
    )
    async with (
        serve(ping_app, server.host, server.port, shutdown_timeout=server.shutdown_timeout),
        serve(metrics_app, server.host, server.metrics_port, shutdown_timeout=1.0),
        admission,
    ):
        logger.info(
            "heartbeat-operator %s: pings on :%d, metrics on :%d, lease %s/%s",
            settings.watching.identity,
            server.port,
            server.metrics_port,
            settings.watching.lease_namespace,
            settings.leadership.lease_name,
        )
        await stop.wait()
        # DESIGN 9.20: the process exits within 10 s of SIGTERM, also with the API server
        # unreachable, when every step below would wait out its own bound.
        exit_by = loop.time() + EXIT_WITHIN

        def left(step: float) -> float:
            return max(MIN_STEP, min(step, exit_by - loop.time()))

        primer.cancel()
        logger.info("stopping: /readyz is 503, answering pings in flight")
        op.health.begin_shutdown()
        lease_stop.set()
        await op.scheduler.stop()
        op.stop_sweep()
        # Side by side with the receiver's drain (leaving this block: pings in flight are
        # answered, within 5 s each): the Lease loops end and both Leases are let go.
        letting_go = asyncio.create_task(
            _let_go(op, {lease_task, wiring_task, replica_task}, left), name="let go"
        )
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(letting_go, left(2 * STEP_TIMEOUT))
    if op.absorber is not None and op.journal is not None:
        # DESIGN 10.8.10: absorb what we can within the grace, leave the rest to the
        # leader (our replica Lease is released: the leader takes our journal as dead).
        await op.absorber.absorb_all(timeout=left(STEP_TIMEOUT))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(op.journal.delete_if_empty(), left(STEP_TIMEOUT))
    # The receiver has answered every ping in flight; Events for their writes go out now.
    await op.writer.drain(timeout=left(1.0))
    kopf_stop.set()
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await asyncio.wait_for(kopf_runner, left(KOPF_STOP_TIMEOUT))
    await op.client.close()
    if not signalled.is_set():
        logger.error("stopped: the watches ended unexpectedly")
        return 1
    logger.info("stopped")
    return 0
