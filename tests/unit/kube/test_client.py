"""The async client against a tiny HTTP server standing in for an API server that rotates
credentials: a 401 makes the client read its credentials again and retry once."""

from __future__ import annotations

import time

import kopf
import pytest
from aiohttp import web

from heartbeat_operator.engine.api import ApiError
from heartbeat_operator.kube.client import THROTTLE_RETRIES, KubeClient


@pytest.fixture
async def server(aiohttp_server):
    accepted = {"token": "fresh-token"}
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        if request.headers.get("Authorization") != f"Bearer {accepted['token']}":
            return web.json_response({"reason": "Unauthorized", "message": "no"}, status=401)
        return web.json_response({"kind": "Lease"})

    app = web.Application()
    app.router.add_get("/apis/x", handler)
    srv = await aiohttp_server(app)
    srv.seen = seen
    srv.accepted = accepted
    return srv


def info(server, token: str) -> kopf.ConnectionInfo:
    return kopf.ConnectionInfo(server=str(server.make_url("")), token=token)


async def test_a_401_reads_credentials_again_and_retries_once(server):
    client = KubeClient(info(server, "expired-token"), relogin=lambda: info(server, "fresh-token"))
    try:
        assert await client.get("/apis/x") == {"kind": "Lease"}
        assert server.seen == ["Bearer expired-token", "Bearer fresh-token"]
        # The fresh credentials stay in use.
        assert await client.get("/apis/x") == {"kind": "Lease"}
        assert server.seen[-1] == "Bearer fresh-token"
    finally:
        await client.close()


async def test_credentials_still_refused_after_relogin_raise_the_401(server):
    client = KubeClient(info(server, "expired-token"), relogin=lambda: info(server, "also-bad"))
    try:
        with pytest.raises(ApiError) as refused:
            await client.get("/apis/x")
        assert refused.value.status == 401
        assert len(server.seen) == 2  # one retry, not a loop
    finally:
        await client.close()


@pytest.fixture
async def throttling(aiohttp_server):
    """An API server that answers 429 with ``Retry-After`` a number of times, then 200."""
    state = {"throttle": 0, "retry_after": "1"}
    seen: list[float] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(time.monotonic())
        if state["throttle"]:
            state["throttle"] -= 1
            headers = {"Retry-After": state["retry_after"]} if state["retry_after"] else {}
            return web.json_response(
                {"reason": "TooManyRequests", "message": "too many requests, retry later"},
                status=429,
                headers=headers,
            )
        return web.json_response({"kind": "Lease"})

    app = web.Application()
    app.router.add_route("*", "/apis/x", handler)
    srv = await aiohttp_server(app)
    srv.seen = seen
    srv.state = state
    return srv


async def test_a_429_is_retried_after_its_retry_after(throttling):
    # Issue 13 item 14: the retry waits for Retry-After, it never hammers the server.
    throttling.state.update(throttle=2, retry_after="1")
    client = KubeClient(info(throttling, "t"))
    try:
        assert await client.put("/apis/x", {"kind": "Lease"}, kind="leases") == {"kind": "Lease"}
    finally:
        await client.close()
    assert len(throttling.seen) == 3
    gaps = [b - a for a, b in zip(throttling.seen, throttling.seen[1:], strict=False)]
    assert all(gap >= 0.95 for gap in gaps), gaps


async def test_a_429_without_retry_after_waits_a_second(throttling):
    throttling.state.update(throttle=1, retry_after="")
    client = KubeClient(info(throttling, "t"))
    try:
        assert await client.get("/apis/x") == {"kind": "Lease"}
    finally:
        await client.close()
    assert throttling.seen[1] - throttling.seen[0] >= 0.95


async def test_429_retries_are_bounded(throttling):
    throttling.state.update(throttle=100, retry_after="0")
    client = KubeClient(info(throttling, "t"))
    try:
        with pytest.raises(ApiError) as throttled:
            await client.get("/apis/x")
    finally:
        await client.close()
    assert throttled.value.status == 429
    assert len(throttling.seen) == 1 + THROTTLE_RETRIES


async def test_a_429_is_not_waited_for_past_the_requests_timeout(throttling):
    # A ping's write has 5 s (DESIGN 9.13): a Retry-After beyond what is left is an error now.
    throttling.state.update(throttle=1, retry_after="5")
    client = KubeClient(info(throttling, "t"))
    try:
        with pytest.raises(ApiError) as throttled:
            await client.put("/apis/x", {"kind": "Lease"}, timeout=1.0)
    finally:
        await client.close()
    assert throttled.value.status == 429
    assert throttled.value.retry_after == 5
    assert len(throttling.seen) == 1
