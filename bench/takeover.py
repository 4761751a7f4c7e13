"""Takeover (issue 8): kill the leader with 10,000 monitors; the other replica must be
evaluating within 15 s, with no false Down.

Seeded (``bench/seeding.py``) into one namespace:

- 10,000 *quiet* monitors: Healthy, period 1h, last ping within the last 30 minutes —
  nothing is due during the run; any Down among them is false;
- 100 *pinged* monitors: period 60s, grace 30s, pinged every 5 s during the whole run
  through whichever replica answers — a Down among them is false too;
- 20 *probes* in Grace whose ``alertTime`` falls 1, 2, ... 20 s after the kill: the
  ones due while nobody leads must go Down as soon as the new leader evaluates, with
  the rule's transition time (``alertTime``), not the takeover's.

Two replicas run (``--lease-namespace`` the same); once the first leads and both are
ready, the leader gets SIGKILL (a crash: its Lease is not released, so the survivor
waits out the 8 s Lease duration, DESIGN 9.1). Measured from the kill: when the
survivor reports ``heartbeat_leader 1``, and when its first deadline write (a probe's
Down) arrives in a watch.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import seeding
from harness import (
    MONITORS,
    PLURAL,
    QUICK,
    Api,
    ControlPlane,
    OperatorProcess,
    Row,
    condition,
    say,
    wait_until,
    writes_between,
)

from heartbeat_operator.domain.timefmt import format_time

NAMESPACE = "bench-takeover"
PINGED = 100
PROBES = 20


async def pinger(
    replicas: list[OperatorProcess], tokens: list[str], stop: asyncio.Event, tally: dict[str, int]
) -> None:
    """Every 5 s one success ping per token, to the first replica that answers 200."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:

        async def ping(token: str) -> None:
            for op in replicas:
                if not op.alive():
                    continue
                try:
                    async with session.get(f"{op.base}/ping/{token}") as response:
                        if response.status == 200:
                            tally["ok"] += 1
                            return
                except (aiohttp.ClientError, TimeoutError):
                    continue
            tally["failed"] += 1

        while not stop.is_set():
            await asyncio.gather(*(ping(t) for t in tokens))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 5)  # the ping period of these monitors


async def bench(plane: ControlPlane, log_dir: Path) -> tuple[list[Row], dict[str, Any]]:
    count = 1000 if QUICK else 10_000
    plane.fresh()
    facts: dict[str, Any] = {"quiet": count, "pinged": PINGED, "probes": PROBES}
    async with Api(plane) as api:
        await api.create_namespace(NAMESPACE)
        now = datetime.now(UTC)
        # The kill is planned this far ahead: seeding and two replicas' start-up fit in it.
        kill_at = now + timedelta(seconds=20 + 25 * count / 10_000)
        kill_at = kill_at.replace(microsecond=0)
        seeds = [
            seeding.seed(
                f"q-{i:06d}",
                {"period": "1h"},
                created=now - timedelta(hours=2),
                # Older than 10 minutes: a new leader owes no catch-up Event for it.
                pings=[now - timedelta(seconds=660 + 1800 * i / count)],
                now=now,
            )
            for i in range(count)
        ]
        pinged = [
            seeding.seed(
                f"p-{i:03d}",
                {"period": "60s", "grace": "30s"},
                created=now - timedelta(hours=1),
                # Every 50 s from 11 minutes ago: one old FirstPing, then no transition.
                pings=[now - timedelta(seconds=660 - 50 * k) for k in range(14)],
                now=now,
            )
            for i in range(PINGED)
        ]
        probe_alerts = [kill_at + timedelta(seconds=1 + i) for i in range(PROBES)]
        probes = [
            seeding.seed(
                f"x-{i:03d}",
                {"period": "1h", "grace": "15m"},
                created=alert - timedelta(hours=2, minutes=15),
                pings=[alert - timedelta(hours=1, minutes=15)],
                now=now,
            )
            for i, alert in enumerate(probe_alerts)
        ]
        alert_of = {s.name: a for s, a in zip(probes, probe_alerts, strict=True)}
        objects = [seeding.render(NAMESPACE, s) for s in seeds + pinged + probes]
        facts["seed_s"] = await seeding.put_all(plane, NAMESPACE, objects)
        del objects
        items, rv = await api.monitors(NAMESPACE)
        total = count + PINGED + PROBES
        assert len(items) == total, f"seeded {total}, listed {len(items)}"
        del items
        say(f"takeover: seeded {total} monitors in {facts['seed_s']:.1f}s")

        downs: dict[str, float] = {}
        wrong_time: list[str] = []

        async def watch() -> None:
            path = f"{MONITORS}/namespaces/{NAMESPACE}/{PLURAL}"
            async for arrived, kind, obj in api.watch(path, rv, timeout=180):
                status = obj.get("status") or {}
                name = obj["metadata"]["name"]
                if kind == "MODIFIED" and status.get("state") == "Down" and name not in downs:
                    downs[name] = arrived
                    if name in alert_of:
                        ltt = condition(status, "Healthy").get("lastTransitionTime")
                        if ltt != format_time(alert_of[name]):
                            wrong_time.append(name)

        watcher = asyncio.create_task(watch())
        a = OperatorProcess(
            plane, namespace=NAMESPACE, lease_namespace=NAMESPACE, log_dir=log_dir, name="replica-a"
        )
        stop = asyncio.Event()
        tally = {"ok": 0, "failed": 0}
        ping_task: asyncio.Task[None] | None = None
        b: OperatorProcess | None = None
        try:
            await a.wait_ready(timeout=300)
            await wait_until(a.is_leader, timeout=120, what="replica a leading")
            ping_tokens = [s.token for s in pinged]
            b = OperatorProcess(
                plane,
                namespace=NAMESPACE,
                lease_namespace=NAMESPACE,
                log_dir=log_dir,
                name="replica-b",
            )
            ping_task = asyncio.create_task(pinger([a, b], ping_tokens, stop, tally))
            await b.wait_ready(timeout=300)
            facts["rss_mib_leader"] = a.rss_mib()
            facts["rss_mib_follower"] = b.rss_mib()
            facts["spare_before_kill_s"] = kill_at.timestamp() - time.time()
            say(
                f"takeover: both replicas ready, {facts['spare_before_kill_s']:.1f}s before the "
                f"kill; RSS leader {facts['rss_mib_leader']:.0f} MiB, follower "
                f"{facts['rss_mib_follower']:.0f} MiB"
            )
            before = await api.apiserver_requests()
            spare = kill_at.timestamp() - time.time()
            if spare > 0:
                await asyncio.sleep(spare)  # the kill is planned (the probes' alert times)
            killed = time.time()
            a.kill()
            facts["kill_late_s"] = killed - kill_at.timestamp()

            async def leads() -> bool:
                assert b is not None
                return await b.is_leader()

            await wait_until(leads, timeout=60, interval=0.1, what="replica b leading")
            facts["leader_after_s"] = time.time() - killed
            say(f"takeover: replica b leads {facts['leader_after_s']:.1f}s after the kill")

            async def probes_down() -> bool:
                return all(name in downs for name in alert_of)

            with contextlib.suppress(TimeoutError):
                await wait_until(probes_down, timeout=60, interval=0.2, what="probes Down")
            # A few more seconds in which a false Down would show.
            await asyncio.sleep(5)  # observation window after the last probe
            after = await api.apiserver_requests()
            facts["writes_after_kill"] = writes_between(before, after)
            facts["rss_mib_new_leader"] = b.rss_mib()
            first_probe_write = min(
                (downs[n] for n in alert_of if n in downs and downs[n] > killed),
                default=float("nan"),
            )
            facts["first_write_after_s"] = first_probe_write - killed
            facts["probe_lags"] = {
                n: round(downs[n] - alert_of[n].timestamp(), 3) for n in alert_of if n in downs
            }
        finally:
            stop.set()
            if ping_task is not None:
                with contextlib.suppress(Exception):
                    await ping_task
            watcher.cancel()
            for op in (a, b):
                if op is not None:
                    await op.stop()
        items, _ = await api.monitors(NAMESPACE)
        false_down = [
            i["metadata"]["name"]
            for i in items
            if not i["metadata"]["name"].startswith("x-")
            and (i.get("status") or {}).get("state") == "Down"
        ]
    facts.update(
        probes_down=sum(1 for n in alert_of if n in downs),
        wrong_time=len(wrong_time),
        false_down=len(false_down),
        false_down_examples=false_down[:5],
        pings=tally,
    )
    lead_s = facts["leader_after_s"]
    first = facts["first_write_after_s"]
    ok = (
        lead_s <= 15
        and first <= 15
        and facts["false_down"] == 0
        and facts["wrong_time"] == 0
        and facts["probes_down"] == PROBES
    )
    rows = [
        Row(
            "takeover",
            f"2 replicas, {count:,} quiet + {PINGED} pinged monitors + {PROBES} due 1–20 s "
            "after SIGKILL of the leader",
            "evaluating ≤ 15 s, no false Down",
            f"leads after {lead_s:.1f} s, first deadline write after {first:.1f} s; "
            f"{facts['probes_down']}/{PROBES} probes Down, {facts['wrong_time']} with a wrong "
            f"transition time; {facts['false_down']} false Down; pings "
            f"{tally['ok']:,} ok / {tally['failed']} failed",
            ok,
        )
    ]
    return rows, facts
