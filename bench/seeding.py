"""Seeding thousands of monitors fast, with a status the operator would have written.

On this 2-core machine the API server writes about 100-300 objects per second (every
write is a JSON decode, schema validation, managedFields and an etcd transaction), and a
monitor costs four writes before it is usable (create, ``tokenHash``, Secret,
``tokenSecretName``): 10,000 monitors take minutes and 100,000 most of an hour. The
detection, burst, takeover and scale benchmarks are about what the operator does *after*
set-up, so they seed their monitors instead:

- the status is rendered by the operator's own domain code (``Record`` folded through
  ``apply``, then ``render_status``), exactly what the leader would have written: token
  hash, ``Ready=True``, the state at the seeding time, ``nextDueTime`` and ``alertTime``;
- the objects are written straight into etcd (``/registry/heartbeat.dev/...``, JSON, as
  the API server stores custom resources) through etcd's HTTP gateway, many at once.
  The API server's watch cache picks them up like any other write, and the operator lists
  and watches them through the API as usual.

Each monitor's token is made here too and kept by the caller (for pinging); no Secret is
stored (the operator reads a Secret only while setting a token up, never afterwards).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from harness import GROUP, PLURAL, VERSION, ControlPlane

from heartbeat_operator.domain.inputs import Input, Ping, Tick
from heartbeat_operator.domain.machine import apply
from heartbeat_operator.domain.records import Record
from heartbeat_operator.domain.specs import parse_spec
from heartbeat_operator.domain.statuses import READY_TOKEN, render_status
from heartbeat_operator.domain.timefmt import format_time
from heartbeat_operator.domain.tokens import new_token, token_hash


@dataclass(frozen=True)
class Seed:
    """One monitor to seed: its spec, when it was created, its success pings, the time its
    status is rendered at (``now``), and its token."""

    name: str
    spec: Mapping[str, Any]
    created: datetime
    pings: Sequence[datetime]
    now: datetime
    token: str
    inputs: Sequence[Input] = ()
    """Folded after ``pings``, each at its own time (a CronJob's Job pings, for instance)."""


def seed(name: str, spec: Mapping[str, Any], *, created: datetime, pings: Sequence[datetime] = (),
         now: datetime, inputs: Sequence[Input] = ()) -> Seed:  # fmt: skip
    return Seed(name, dict(spec), created, tuple(pings), now, new_token(), tuple(inputs))


def render(namespace: str, item: Seed) -> dict[str, Any]:
    """The whole object as the API server would store it (no resourceVersion: etcd's)."""
    spec = parse_spec(item.spec, name=item.name)
    record = Record.new(item.created)
    for moment in item.pings:
        record, _ = apply(spec, record, Ping(time=moment, kind="success"), moment)
    for item_input in item.inputs:
        record, _ = apply(spec, record, item_input, item_input.time)
    record, _ = apply(spec, record, Tick(item.now), item.now)
    status = render_status(
        spec=spec,
        record=record,
        now=item.now,
        generation=1,
        ready=READY_TOKEN,
        token_hash=token_hash(item.token),
        token_secret_name=f"{item.name}-heartbeat",
    )
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "HeartbeatMonitor",
        "metadata": {
            "name": item.name,
            "namespace": namespace,
            "uid": str(uuid.uuid4()),
            "generation": 1,
            "creationTimestamp": format_time(item.created.replace(microsecond=0)),
        },
        "spec": {
            "grace": "5m",
            "failureThreshold": 1,
            "successThreshold": 1,
            "paused": False,
            **item.spec,
        },
        "status": status,
    }


def retokened(obj: Mapping[str, Any], name: str) -> tuple[dict[str, Any], str]:
    """A copy of a rendered object under another name, with a token of its own (cheap: the
    scale benchmark seeds 100,000 monitors from a few hundred rendered ones)."""
    token = new_token()
    copy = json.loads(json.dumps(obj))
    copy["metadata"]["name"] = name
    copy["metadata"]["uid"] = str(uuid.uuid4())
    copy["status"]["tokenHash"] = "sha256:" + hashlib.sha256(token.encode()).hexdigest()
    copy["status"]["tokenSecretName"] = f"{name}-heartbeat"
    return copy, token


def etcd_key(namespace: str, name: str, resource: str = f"{GROUP}/{PLURAL}") -> str:
    """Where the API server keeps an object: ``/registry/<group>/<plural>/...`` for custom
    resources, ``/registry/<plural>/...`` for built-in ones (``pods``, ``jobs``,
    ``cronjobs``). Built-in types are stored as protobuf by the API server it writes, but
    its storage decoder recognises JSON too, so JSON written here reads back the same."""
    return f"/registry/{resource}/{namespace}/{name}"


async def put_all(
    plane: ControlPlane,
    namespace: str,
    objects: Iterable[Mapping[str, Any]],
    *,
    concurrency: int = 64,
) -> float:
    """Write every monitor into etcd (HTTP gateway ``/v3/kv/put``); seconds taken.

    ``objects`` is consumed lazily: 100,000 rendered objects never sit in memory at once.
    """
    keyed = ((etcd_key(namespace, obj["metadata"]["name"]), obj) for obj in objects)
    return await put_keyed(plane, keyed, concurrency=concurrency)


async def put_keyed(
    plane: ControlPlane,
    objects: Iterable[tuple[str, Mapping[str, Any]]],
    *,
    concurrency: int = 64,
) -> float:
    """Write ``(etcd key, object)`` pairs into etcd, lazily, many at once; seconds taken."""
    url = f"http://127.0.0.1:{plane.etcd_port()}/v3/kv/put"
    source = iter(objects)

    async def worker(session: aiohttp.ClientSession) -> None:
        for key, obj in source:
            body = {
                "key": base64.b64encode(key.encode()).decode(),
                "value": base64.b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode(),
            }
            async with session.post(url, json=body) as response:
                if response.status != 200:
                    raise RuntimeError(f"etcd put {key}: {response.status} {await response.text()}")

    began = time.monotonic()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return time.monotonic() - began


def token_secrets(namespace: str, names: Iterable[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(etcd key, Secret)`` for each monitor's token Secret (``<name>-heartbeat``).

    The leader's Secret sweep (DESIGN 10.8.14) re-creates a missing token Secret with a
    new token; seeded monitors without one would have their tokens rotated under a ping
    benchmark (404s) and their re-creation counted as its API writes. The sweep only
    reads whether the Secret exists, so an empty one is enough."""
    made = format_time(datetime.now(UTC).replace(microsecond=0))
    for name in names:
        secret = f"{name}-heartbeat"
        yield (
            f"/registry/secrets/{namespace}/{secret}",
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "Opaque",
                "metadata": {
                    "name": secret,
                    "namespace": namespace,
                    "uid": str(uuid.uuid4()),
                    "creationTimestamp": made,
                },
                "data": {},
            },
        )


def minus(moment: datetime, seconds: float) -> datetime:
    return moment - timedelta(seconds=seconds)
