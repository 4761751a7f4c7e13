"""SVG status badges on the metrics port (issue 16 item 4): off unless asked for; a
monitor's name and state, nothing more; 404 for an unknown monitor."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from heartbeat_operator.receiver.app import make_metrics_app
from heartbeat_operator.receiver.badges import COLOURS, render_badge

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]

STATES = {
    ("ops", "nightly-backup"): "Down",
    ("ops", "queue-worker"): "Healthy",
    ("ops", "fresh"): "",
}


def lookup(namespace: str, name: str) -> str | None:
    return STATES.get((namespace, name))


def metrics() -> tuple[bytes, str]:
    return b"", "text/plain"


def texts(svg: str) -> list[str]:
    root = ET.fromstring(svg)  # well-formed XML, or this raises
    return [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text")]


async def test_a_badge_shows_the_monitors_name_and_state(aiohttp_client: MakeClient) -> None:
    client = await aiohttp_client(make_metrics_app(metrics, badges=lookup))
    reply = await client.get("/badge/ops/nightly-backup.svg")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("image/svg+xml")
    assert reply.headers["Cache-Control"] == "max-age=60"
    svg = await reply.text()
    assert texts(svg) == ["nightly-backup", "down"]
    assert COLOURS["Down"] in svg
    reply = await client.get("/badge/ops/queue-worker.svg")
    assert texts(await reply.text()) == ["queue-worker", "healthy"]
    reply = await client.get("/badge/ops/fresh.svg")  # not judged yet
    assert texts(await reply.text()) == ["fresh", "pending"]


@pytest.mark.parametrize(
    "path", ["/badge/ops/nope.svg", "/badge/other/queue-worker.svg", "/badge/ops/queue-worker"]
)
async def test_unknown_monitors_are_404(aiohttp_client: MakeClient, path: str) -> None:
    client = await aiohttp_client(make_metrics_app(metrics, badges=lookup))
    reply = await client.get(path)
    assert reply.status == 404


async def test_badges_are_read_only(aiohttp_client: MakeClient) -> None:
    client = await aiohttp_client(make_metrics_app(metrics, badges=lookup))
    reply = await client.post("/badge/ops/queue-worker.svg")
    assert (reply.status, reply.headers["Allow"]) == (405, "GET, HEAD")


async def test_off_by_default(aiohttp_client: MakeClient) -> None:
    client = await aiohttp_client(make_metrics_app(metrics))
    assert (await client.get("/badge/ops/queue-worker.svg")).status == 404


def test_text_is_escaped_and_the_badge_grows_with_it() -> None:
    svg = render_badge("a<b>&c", "down", COLOURS["Down"])
    assert texts(svg) == ["a<b>&c", "down"]
    short = ET.fromstring(render_badge("ab", "down", "#000")).get("width")
    long = ET.fromstring(render_badge("a" * 40, "down", "#000")).get("width")
    assert int(short or 0) < int(long or 0)
