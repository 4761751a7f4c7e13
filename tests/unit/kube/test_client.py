"""The async client against a tiny HTTP server standing in for an API server that rotates
credentials: a 401 makes the client read its credentials again and retry once."""

from __future__ import annotations

import kopf
import pytest
from aiohttp import web

from heartbeat_operator.kube.client import ApiError, KubeClient


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
