"""Kopf, used to watch and nothing else (DESIGN 9.1, 9.12).

Every replica runs kopf standalone (no peering: it would freeze the followers' watches
and so their token index), with Event posting off, and registers only event handlers.
Kopf writes annotations, finalizers and ``status.kopf`` only for change handlers, timers
and daemons, so with none of them it leaves objects untouched.

No ``@kopf.index``: the token index is our own table's, and with kopf's index handler
registered as well, 10,000 monitors due within a minute went Down in the API with a p99
lag of 100 s instead of 0.6 s (bench/README.md, "experiment: detection, no kopf index").
Readiness (DESIGN 9.2: the token index holds the initial list) therefore comes from
``prime``, one LIST of our own. A monitor deleted between that LIST and the start of
kopf's watch stays in the table until its next status write answers 404 and removes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import kopf

from heartbeat_operator.engine.api import GROUP, PLURAL, VERSION, monitor_path
from heartbeat_operator.engine.autowiring import AutoWiring
from heartbeat_operator.engine.monitors import MonitorTable
from heartbeat_operator.kube.client import KubeClient

logger = logging.getLogger(__name__)

#: Monitors per page of the initial list: one page decoded at a time, instead of the whole
#: list at once (at 100,000 monitors, gigabytes of dicts at start-up; bench/README.md "scale").
LIST_PAGE = 500

#: Seconds before kopf's watches are started again after they ended, doubled after each
#: failure up to ``RESTART_DELAY_MAX``, back to the first delay once they ran that long.
RESTART_DELAY = 1.0
RESTART_DELAY_MAX = 60.0
#: Seconds kopf's tasks get to stop; kopf 1.45 can hang in a shielded close (running.py).
STOP_TIMEOUT = 5.0


def build_settings(settings: kopf.OperatorSettings | None = None) -> kopf.OperatorSettings:
    """Kopf settings for a watch-only, standalone replica."""
    settings = settings or kopf.OperatorSettings()
    settings.peering.standalone = True  # DESIGN 9.1: no peering, every replica watches
    settings.peering.mandatory = False
    settings.posting.enabled = False  # our Events come from engine.events only
    settings.watching.chunk_size = LIST_PAGE  # the initial list a page at a time, as ours
    settings.watching.server_timeout = 300  # re-list after 5 min if the stream stays idle
    settings.watching.client_timeout = 330
    return settings


async def run_watches(
    registry: kopf.OperatorRegistry,
    namespaces: Sequence[str],
    stop: asyncio.Event,
    *,
    started: Callable[[], None] = lambda: None,
    restarted: Callable[[], None] = lambda: None,
) -> None:
    """Kopf's watches until ``stop`` is set, started again (a fresh list) when they end.

    Kopf ends every watch when one fails: a paged list whose ``continue`` token expired
    (``410 Gone``, when listing 100,000 monitors under load outlived etcd's 5-minute
    compaction: bench/README.md, "sustained"), a ``403`` while RBAC is re-applied, any
    watch error that is not a 410. That used to stop the replica and, with every replica
    meeting the same cause, the whole operator. Like client-go's reflectors we list and
    watch again, with backoff; the receiver, the leader and the table keep running.

    ``kopf.run_tasks`` is not used: when one of kopf's root tasks ends it cancels every
    task created since kopf started, ours included. ``started`` runs after each spawn
    (kopf installs its own signal handlers; the caller puts its own back), ``restarted``
    before each restart (a metric).
    """
    delay = RESTART_DELAY
    while not stop.is_set():
        # A flag of this spawn's own: set before kopf's tasks are cancelled, or kopf's
        # "ultimate termination" would SIGKILL the process a while later.
        spawn_stop = asyncio.Event()
        tasks = await kopf.spawn_tasks(
            registry=registry,
            settings=build_settings(),
            standalone=True,
            clusterwide=not namespaces,
            namespaces=list(namespaces),
            stop_flag=spawn_stop,
        )
        started()
        began = time.monotonic()
        stopping = asyncio.create_task(stop.wait(), name="watches: stop")
        await asyncio.wait({*tasks, stopping}, return_when=asyncio.FIRST_COMPLETED)
        spawn_stop.set()
        stopping.cancel()
        for task in tasks:
            task.cancel()
        _, stuck = await asyncio.wait(tasks, timeout=STOP_TIMEOUT)
        if stuck:
            logger.warning("%d of kopf's tasks did not stop; left behind", len(stuck))
        if stop.is_set():
            return
        if time.monotonic() - began >= RESTART_DELAY_MAX:
            delay = RESTART_DELAY
        restarted()
        logger.warning(
            "kopf's watches ended (the error is logged above); listing and watching "
            "again in %.0f s",
            delay,
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        delay = min(delay * 2, RESTART_DELAY_MAX)


def build_registry(
    table: MonitorTable,
    login: Callable[..., kopf.ConnectionInfo],
    wiring: AutoWiring | None = None,
) -> kopf.OperatorRegistry:
    """A private registry (never kopf's global one): login and the monitors' event handler.

    ``login`` is ``Credentials.kopf_login()``: credentials fetched anew when kopf asks
    (after a 401, at expiry). Returning the start-up ones forever made kopf give up with
    "Ran out of valid credentials" once the ServiceAccount token rotated (issue 13 item
    11). It is a plain function on purpose: kopf runs it in a thread, and an exec plugin
    may take seconds. The event handler is a coroutine on purpose: the table (its asyncio
    events, its listeners) belongs to the event loop's thread.

    With ``wiring`` the same handler also tells the CronJob auto-wiring (its owner table),
    after the monitor table: one handler per monitor event (issue 14), and the CronJob,
    Job and Namespace handlers are added (``register_autowiring``).
    """
    registry = kopf.OperatorRegistry()
    kopf.on.login(registry=registry, id="credentials")(login)

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def monitor_changed(type: str | None, body: kopf.Body, **_: Any) -> None:
        meta = body.get("metadata") or {}
        if type == "DELETED":
            table.remove(meta.get("namespace", ""), meta.get("name", ""), meta.get("uid"))
        else:
            table.upsert(body)
        if wiring is not None:
            wiring.monitor_event(type, body)

    return register_autowiring(registry, wiring) if wiring is not None else registry


def register_autowiring(
    registry: kopf.OperatorRegistry, wiring: AutoWiring
) -> kopf.OperatorRegistry:
    """Watch CronJobs and Jobs: ``@kopf.on.event`` only (DESIGN 9.1, 9.12); monitors'
    owners come from the monitors' own handler (``build_registry``).

    With a namespace selector also Namespaces (cluster-scoped: kopf watches them
    cluster-wide even with ``--namespace``; RBAC ``namespaces list, watch``, DESIGN 9.17).

    Returns ``registry`` (with the handlers added), for ``kopf.spawn_tasks(registry=...)``.
    The handlers are coroutines on purpose: kopf runs plain functions in a thread pool,
    and the tables and the wake-up event they touch belong to the event loop's thread.
    """

    @kopf.on.event("batch", "v1", "cronjobs", registry=registry)
    async def cronjob_seen(type: str | None, body: kopf.Body, **_: Any) -> None:
        wiring.cronjob_event(type, body)

    @kopf.on.event("batch", "v1", "jobs", registry=registry)
    async def job_seen(type: str | None, body: kopf.Body, **_: Any) -> None:
        wiring.job_event(type, body)

    if wiring.namespace_selector is not None:

        @kopf.on.event("", "v1", "namespaces", registry=registry)
        async def namespace_seen(type: str | None, body: kopf.Body, **_: Any) -> None:
            wiring.namespace_event(type, body)

    return registry


def is_pattern(namespace: str) -> bool:
    """Whether a ``--namespace`` value is one of kopf's patterns rather than a name."""
    return any(char in namespace for char in "!*?,")


def match_namespace(name: str, pattern: str) -> bool:
    """Kopf's namespace-pattern semantics, so our own list keeps exactly what kopf
    watches: comma-separated globs, ``!`` excludes, a leading exclusion implies ``*``
    first, a later inclusion re-admits only what the first glob matched.

    Kopf keeps this in its private ``_cogs`` (not re-exported), and importing kopf's
    private modules is forbidden (issue 14 item 6); tests/unit/kube/test_watching.py
    checks this copy against kopf's on every pattern shape.
    """
    globs = [glob.strip() for glob in pattern.split(",")]
    if not globs or globs[0].startswith("!"):
        globs.insert(0, "*")
    matches = first = fnmatch.fnmatch(name, globs[0])
    for glob in globs[1:]:
        if glob.startswith("!"):
            matches = matches and not fnmatch.fnmatch(name, glob.lstrip("!"))
        else:
            matches = matches or (first and fnmatch.fnmatch(name, glob))
    return matches


async def prime(client: KubeClient, table: MonitorTable, namespaces: Sequence[str]) -> None:
    """Fill the table from one LIST of our own, then mark it synced (readiness).

    Entries kopf's watch already delivered are left alone: they are as new or newer.
    """
    exact = {ns for ns in namespaces if not is_pattern(ns)}
    if namespaces and len(exact) == len(namespaces):
        paths = [monitor_path(ns) for ns in sorted(exact)]
    else:  # all namespaces, or kopf's glob patterns: list everything, keep what matches
        paths = [f"/apis/{GROUP}/{VERSION}/{PLURAL}"]
    for path in paths:
        async for body in list_pages(client, path):
            meta = body.get("metadata") or {}
            key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
            if namespaces and not any(match_namespace(key[0], p) for p in namespaces):
                continue
            if table.get(key) is None:  # kopf's copy, if already in, is as new or newer
                table.upsert(body)
    if not table.synced:
        logger.info("initial list of monitors is in (%d monitors, own list)", len(table))
    table.synced = True


async def list_pages(client: KubeClient, path: str) -> AsyncIterator[Mapping[str, Any]]:
    """Every item of a LIST, fetched ``LIST_PAGE`` at a time (``limit`` and ``continue``)."""
    token = ""
    while True:
        query = {"limit": str(LIST_PAGE), **({"continue": token} if token else {})}
        listing = await client.get(path, kind=PLURAL, params=query)
        for body in listing.get("items") or ():
            yield body
        token = (listing.get("metadata") or {}).get("continue") or ""
        if not token:
            return
