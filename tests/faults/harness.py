"""The fault suite's tools (issue 18): steady ping load with every reply recorded, the
accounting of what was stored against what was answered, and a lossy TCP proxy.

Every ping carries a unique ``rid`` (``/ping/<token>?rid=<id>``, receiver/paths.py), and
no monitor gets more pings than ``recentPings`` keeps (``MAX_RECENT_PINGS``, minus room to
see duplicates): so the run ids in ``status.recentPings`` name every stored ping, and
``status.pingCount`` counts them. Each scenario then knows, ping by ping, whether a ``200``
was lost, a ``503`` was stored, or one ping was stored twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from kubernetes import client as k8s

from heartbeat_operator.domain.records import MAX_RECENT_PINGS
from heartbeat_operator.settings import build_settings
from tests.integration.operator_process import GROUP, PLURAL, VERSION, Monitors
from tests.support.waiting import WaitTimeout, wait_for

#: Pings per monitor: recentPings keeps MAX_RECENT_PINGS; two places are left free so a
#: ping stored twice (or three times) still shows in the list.
PINGS_PER_MONITOR = MAX_RECENT_PINGS - 2


def journal_on() -> bool:
    """Whether the operators started here run with the ping journal: they inherit this
    process's environment, so its ``HEARTBEAT_JOURNAL`` decides as the operator's own
    settings read it (on by default; ``HEARTBEAT_JOURNAL=0 make faults``: without)."""
    return build_settings().journal.enabled


#: The summary lines of this session, printed again at its end (tests/faults/conftest.py).
SUMMARIES: list[str] = []


# --- monitors ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One monitor and the path of its ping URL (``/ping/<token>``)."""

    name: str
    path: str


def make_monitors(
    monitors: Monitors, count: int, prefix: str = "m", spec: Mapping[str, Any] | None = None
) -> list[Target]:
    """``count`` monitors (``period: 1h`` unless ``spec``), each ready with its token."""
    names = [f"{prefix}{i:03d}" for i in range(count)]
    for name in names:
        monitors.create(name, dict(spec or {"period": "1h"}))
    targets = []
    for name in names:
        url = monitors.url(name)  # waits for Ready and the token Secret
        targets.append(Target(name, "/ping/" + url.split("/ping/", 1)[1]))
    return targets


def monitors_needed(rate: float, seconds: float) -> int:
    """Monitors for ``seconds`` of load at ``rate`` pings/s, none pinged too often to see."""
    return math.ceil(rate * seconds * 1.25 / PINGS_PER_MONITOR) + 1


# --- load ----------------------------------------------------------------------------------


@dataclass
class Shot:
    """One ping sent and what came back (``status`` None: no HTTP answer, see ``error``)."""

    monitor: str
    rid: str
    replica: str
    sent: float
    status: int | None = None
    error: str | None = None
    took: float = 0.0


class Load:
    """Pings at a steady ``rate`` from a thread of its own until stopped.

    Ping ``i`` goes to the replicas ``route()`` returns (round robin over them, read
    afresh for each ping) and to the monitors in turn: a batch of ``active`` monitors is
    pinged round robin until each has had ``PINGS_PER_MONITOR``, then the next batch. When
    the monitors run out the load stops and ``exhausted`` is set (size them with
    ``monitors_needed``). Each ping is its own connection, as a job's curl is.
    """

    def __init__(
        self,
        targets: Sequence[Target],
        route: Callable[[], Sequence[tuple[str, str]]],
        *,
        rate: float = 12.0,
        active: int = 20,
        timeout: float = 20.0,
    ) -> None:
        self.targets = list(targets)
        self.route = route
        self.rate = rate
        self.active = min(active, len(self.targets))
        self.timeout = timeout
        self.shots: list[Shot] = []
        self.exhausted = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._counter = itertools.count()
        self._run_tag = f"{random.getrandbits(32):08x}"

    def _plan(self, i: int) -> Target | None:
        batch = self.active * PINGS_PER_MONITOR
        index = (i // batch) * self.active + i % self.active
        return self.targets[index] if index < len(self.targets) else None

    def start(self) -> None:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + 15)

    def answered(self, status: int | None = 200) -> int:
        return sum(1 for s in list(self.shots) if s.status == status)

    def wait_answers(self, more: int, timeout: float, status: int = 200) -> None:
        """Wait until ``more`` further answers with ``status`` have come back."""
        goal = self.answered(status) + more
        wait_for(
            lambda: self.answered(status) >= goal or self.exhausted,
            timeout=timeout,
            what=f"{more} more {status}s from the load",
        )
        assert not self.exhausted, "the load ran out of monitors: size them with monitors_needed"

    async def _run(self) -> None:
        connector = aiohttp.TCPConnector(force_close=True, limit=0)
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        tasks: set[asyncio.Task[None]] = set()
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            began = time.monotonic()
            for i in itertools.count():
                if self._stop.is_set():
                    break
                target = self._plan(i)
                if target is None:
                    self.exhausted = True
                    break
                replicas = list(self.route())
                if replicas:
                    replica, base = replicas[i % len(replicas)]
                    task = asyncio.create_task(self._shoot(session, target, replica, base))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                # The next tick of a fixed schedule: the rate holds while pings hang.
                delay = began + (i + 1) / self.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            if tasks:
                await asyncio.wait(tasks)

    async def _shoot(
        self, session: aiohttp.ClientSession, target: Target, replica: str, base: str
    ) -> None:
        rid = f"{self._run_tag}-{next(self._counter):05d}"
        shot = Shot(target.name, rid, replica, time.time())
        self.shots.append(shot)
        began = time.monotonic()
        try:
            async with session.get(f"{base}{target.path}?rid={rid}") as response:
                await response.read()
                shot.status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            shot.error = type(exc).__name__
        shot.took = time.monotonic() - began


# --- what the API holds ------------------------------------------------------------------


def list_statuses(api_client: k8s.ApiClient, namespace: str) -> dict[str, dict[str, Any]]:
    items = k8s.CustomObjectsApi(api_client).list_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, _request_timeout=10
    )["items"]
    return {item["metadata"]["name"]: item.get("status") or {} for item in items}


def settle(
    api_client: k8s.ApiClient, namespace: str, quiet: float = 5.0, timeout: float = 60.0
) -> dict[str, dict[str, Any]]:
    """The monitors' statuses once no pingCount has changed for ``quiet`` seconds (writes
    queued during a fault land late: issue 18 item 1)."""
    seen: dict[str, Any] = {"counts": None, "since": time.monotonic(), "statuses": {}}

    def quiet_now() -> dict[str, dict[str, Any]] | None:
        statuses = list_statuses(api_client, namespace)
        counts = {name: s.get("pingCount", 0) for name, s in statuses.items()}
        if counts != seen["counts"]:
            seen.update(counts=counts, since=time.monotonic())
        seen["statuses"] = statuses
        return statuses if time.monotonic() - seen["since"] >= quiet else None

    try:
        return wait_for(quiet_now, timeout=timeout, interval=0.5, what="pingCounts to settle")
    except WaitTimeout:
        return seen["statuses"]  # still changing: count what is there; the asserts say more


def first_ping_events(api_client: k8s.ApiClient, namespace: str) -> Counter[str]:
    """FirstPing Events per monitor name."""
    events = k8s.CoreV1Api(api_client).list_namespaced_event(namespace, _request_timeout=10).items
    return Counter(e.involved_object.name for e in events if e.reason == "FirstPing")


@dataclass
class Ledger:
    """What the load was answered, against what the API stored."""

    scenario: str
    shots: list[Shot]
    statuses: Mapping[str, Mapping[str, Any]]
    events_expected: int = 0
    events_posted: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.answers: Counter[int | str] = Counter(
            s.status if s.status is not None else f"error:{s.error}" for s in self.shots
        )
        stored: Counter[str] = Counter()  # run id -> times stored
        sent: dict[str, set[str]] = {}
        for shot in self.shots:
            sent.setdefault(shot.monitor, set()).add(shot.rid)
        self.stored = 0
        self.duplicates = 0
        self.uncountable: list[str] = []  # pingCount and the run ids listed disagree
        self.truncated: set[str] = set()  # more stored than recentPings keeps: by count
        for name, status in self.statuses.items():
            count = int(status.get("pingCount", 0))
            rids = [p.get("runId") for p in status.get("recentPings") or () if p.get("runId")]
            self.stored += count
            stored.update(rids)
            listed = Counter(rids)
            seen_twice = sum(n - 1 for n in listed.values() if n > 1)
            if count > len(rids) and len(rids) >= MAX_RECENT_PINGS:
                # Duplicates pushed the oldest entries out: what is missing from the list
                # is known only by count (at least count - pings sent were doubles).
                self.truncated.add(name)
                self.duplicates += max(seen_twice, count - len(sent.get(name, ())))
            else:
                self.duplicates += seen_twice
                if count != len(rids):
                    self.uncountable.append(f"{name}: pingCount {count}, {len(rids)} run ids")
        self.stored_rids = stored
        by_status: dict[int | None, set[str]] = {}
        for shot in self.shots:
            by_status.setdefault(shot.status, set()).add(shot.rid)
        acked = by_status.get(200, set())
        self.acks = len(acked)
        # A truncated monitor's missing entries are its oldest: an ack not listed there is
        # unstored only if the count says so (fewer stored than acknowledged).
        truncated_ok = {
            s.rid
            for s in self.shots
            if s.monitor in self.truncated
            and int(self.statuses[s.monitor].get("pingCount", 0))
            >= sum(1 for x in self.shots if x.monitor == s.monitor and x.status == 200)
        }
        self.unstored_acks = sorted(acked - set(stored) - truncated_ok)
        self.stored_503s = sorted(by_status.get(503, set()) & set(stored))
        self.stored_unanswered = sorted(by_status.get(None, set()) & set(stored))
        self.stored_unknown = sorted(set(stored) - {s.rid for s in self.shots})
        self.n503 = self.answers.get(503, 0)
        self.n404 = self.answers.get(404, 0)
        self.errors = sum(n for k, n in self.answers.items() if isinstance(k, str))
        self.other = {k: n for k, n in self.answers.items() if k not in (200, 503, 404)}

    def line(self) -> str:
        other = {k: n for k, n in self.other.items() if not str(k).startswith("error:")}
        journal = " [journal]" if journal_on() else ""
        parts = [
            f"FAULT {self.scenario}{journal}:",
            f"pings={len(self.shots)}",
            f"acks={self.acks}",
            f"503s={self.n503}",
            f"404s={self.n404}",
            f"no-answer={self.errors}",
            f"other={other or 0}",
            f"stored={self.stored}",
            f"duplicates={self.duplicates}",
            f"unstored-200s={len(self.unstored_acks)}",
            f"stored-503s={len(self.stored_503s)}",
            f"stored-no-answer={len(self.stored_unanswered)}",
            f"lists-overflowed={len(self.truncated)}",
            f"events expected={self.events_expected} posted={self.events_posted}",
        ]
        parts += [f"{k}={v}" for k, v in self.extra.items()]
        return " ".join(parts)

    def report(self) -> str:
        line = self.line()
        print("\n" + line)
        SUMMARIES.append(line)
        return line

    def detail(self) -> str:
        slow = sorted(self.shots, key=lambda s: -s.took)[:3]
        return json.dumps(
            {
                "answers": {str(k): n for k, n in self.answers.items()},
                "unstored 200s (first 10)": self.unstored_acks[:10],
                "stored 503s (first 10)": self.stored_503s[:10],
                "stored twice (first 10)": [r for r, n in self.stored_rids.items() if n > 1][:10],
                "monitors whose count and run ids differ": self.uncountable[:10],
                "monitors counted by pingCount (list overflowed)": sorted(self.truncated)[:10],
                "slowest": [(s.rid, s.status, round(s.took, 2)) for s in slow],
            },
            indent=1,
        )


def expect(ledger: Ledger, checks: Iterable[tuple[str, bool]]) -> None:
    """Fail with every broken part of the contract named, and the counts."""
    broken = [what for what, ok in checks if not ok]
    assert not broken, f"{ledger.line()}\nbroken: {'; '.join(broken)}\n{ledger.detail()}"


# --- a TCP proxy that loses answers ------------------------------------------------------


class LossyProxy:
    """A TCP proxy (TLS passes through untouched) that, with probability ``drop``, closes
    a connection after the client's request was forwarded and before the server's answer
    is relayed: the write may or may not have happened, and the client cannot tell
    (issue 18 item 2). The first exchange of each connection (the TLS handshake) is
    always relayed. ``drop`` can be changed while it runs."""

    def __init__(self, upstream_host: str, upstream_port: int, drop: float = 0.0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.drop = drop
        self.dropped = 0
        self.connections = 0
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._random = random.Random()

    def start(self) -> LossyProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the proxy did not start")
        return self

    def close(self) -> None:
        if self._loop is not None and self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._server = loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        with contextlib.suppress(RuntimeError):
            loop.run_forever()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            server_r, server_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.close()
            return
        state = {"asked": False, "exchanges": 0, "closed": False}

        def close_both() -> None:
            state["closed"] = True
            for writer in (client_w, server_w):
                with contextlib.suppress(Exception):
                    writer.transport.abort()

        async def upstream() -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await client_r.read(65536):
                    state["asked"] = True
                    server_w.write(data)
                    await server_w.drain()
            with contextlib.suppress(OSError, ConnectionError, RuntimeError):
                server_w.write_eof()

        async def downstream() -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await server_r.read(65536):
                    if state["asked"]:
                        state["asked"] = False
                        state["exchanges"] += 1
                        if state["exchanges"] > 1 and self._random.random() < self.drop:
                            self.dropped += 1
                            close_both()
                            return
                    client_w.write(data)
                    await client_w.drain()
            with contextlib.suppress(OSError, ConnectionError, RuntimeError):
                client_w.write_eof()

        await asyncio.gather(upstream(), downstream(), return_exceptions=True)
        if not state["closed"]:
            for writer in (client_w, server_w):
                with contextlib.suppress(Exception):
                    writer.close()


# --- replicas ------------------------------------------------------------------------------


class Replicas:
    """Operator processes (named ``a``, ``b``, …) that the load is routed to directly.

    ``kill`` takes a replica out of the route as soon as it is dead (a Service's endpoints
    would lag more: connections to it would be refused, and refused pings are never
    acknowledged, so leaving it in adds nothing to the contract). ``restart`` starts a new
    process under the same name (another port) and puts it back into the route.
    """

    def __init__(self, factory: Any, flags: Sequence[str], names: Sequence[str] = ("a", "b")):
        self.factory = factory
        self.flags = list(flags)
        self.ops: dict[str, Any] = {}
        self.routed: set[str] = set()
        for name in names:
            self.restart(name)

    def route(self) -> list[tuple[str, str]]:
        return [(name, self.ops[name].url) for name in sorted(self.routed)]

    def leader(self, timeout: float = 20.0) -> str:
        from tests.integration.test_operator_restarts import leads

        return wait_for(
            lambda: next((n for n, op in self.ops.items() if op.is_running() and leads(op)), None),
            timeout=timeout,
            what="a leader",
        )

    def kill(self, name: str) -> None:
        self.ops[name].kill()
        self.routed.discard(name)

    def restart(self, name: str, *, wait_ready: bool = True, route_at_once: bool = False) -> None:
        """A new process for ``name``; routed once ready (or at once: pings may then be
        refused until it listens, and answered by whatever it says before it is ready)."""
        op = self.factory.start(*self.flags, name=name, wait_ready=False)
        self.ops[name] = op
        if route_at_once:
            self.routed.add(name)
        if wait_ready:
            op.wait_ready(60)
            self.routed.add(name)
