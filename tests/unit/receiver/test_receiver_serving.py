"""Serving over real sockets on 127.0.0.1: timeouts, the connection cap, redacted logs,
graceful shutdown, and the metrics listener."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from tests.support.waiting import async_wait_for

from heartbeat_operator.receiver.app import make_metrics_app, make_ping_app
from heartbeat_operator.receiver.health import Health
from heartbeat_operator.receiver.serving import Served, serve

from .conftest import TOKEN, FakeClock, FakeRecorder, Observed, settings_with

#: Short enough for a quick test, long enough for a loaded CI machine to send a request.
SHORT = 0.5


@contextlib.asynccontextmanager
async def serving(
    recorder: FakeRecorder,
    health: Health | None = None,
    observer: Observed | None = None,
    **receiver: object,
) -> AsyncIterator[Served]:
    app = make_ping_app(
        settings_with(**receiver), recorder, health, observer=observer, clock=FakeClock()
    )
    async with serve(app, "127.0.0.1", 0, shutdown_timeout=5.0) as served:
        yield served


async def read_all(reader: asyncio.StreamReader, timeout: float = 10.0) -> bytes:
    """Everything the server sends until it closes the connection."""
    async with asyncio.timeout(timeout):
        return await reader.read()


async def test_served_ping_round_trip(recorder: FakeRecorder) -> None:
    async with (
        serving(recorder) as served,
        aiohttp.ClientSession() as session,
        session.post(f"{served.url}/ping/{TOKEN}/log", data=b"hi") as response,
    ):
        assert response.status == 200
        assert await response.text() == "OK"
        assert response.headers["Ping-Body-Limit"] == "10000"
    assert [(p.kind, p.body) for _, p in recorder.pings] == [("log", "hi")]


async def test_access_log_redacts_tokens(
    recorder: FakeRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with serving(recorder) as served, aiohttp.ClientSession() as session:
        for method, path in [
            ("GET", f"/ping/{TOKEN}/start?rid=run-1"),
            ("POST", f"/hb/{TOKEN}/3"),
            ("POST", f"/v1/heartbeats/{TOKEN}/ping"),
            ("GET", f"/ping/{TOKEN}/256"),
            ("GET", f"/ping/{TOKEN}/{TOKEN}"),
            ("GET", f"/elsewhere/{TOKEN}"),
        ]:
            async with session.request(method, served.url + path) as response:
                await response.read()
    access = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert len(access) == 6
    assert '"GET /ping/<redacted>/start"' in access[0]
    assert '"POST /hb/<redacted>/3"' in access[1]
    assert '"POST /v1/heartbeats/<redacted>/ping"' in access[2]
    assert '"GET /ping/<redacted>/256" 400' in access[3]
    assert '"GET /ping/<redacted>/…" 400' in access[4]
    assert '"GET /elsewhere/<redacted>" 404' in access[5]
    assert TOKEN not in caplog.text
    assert "run-1" not in caplog.text  # no query strings in the access log


async def test_malformed_request_line_is_logged_without_token(
    recorder: FakeRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with serving(recorder) as served:
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        writer.write(f"GET /ping/{TOKEN} HTTP/1.1 trailing\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        reply = await read_all(reader)
        writer.close()
    assert reply.split(b"\r\n", 1)[0].endswith(b" 400 Bad Request")
    assert b"<redacted>" in reply  # aiohttp quotes the request line back, token removed
    assert b"Ping-Body-Limit: 10000\r\n" in reply  # DESIGN 3: on every reply
    assert TOKEN not in caplog.text
    assert TOKEN.encode() not in reply


async def test_slow_headers_get_408(recorder: FakeRecorder, observed: Observed) -> None:
    async with serving(recorder, observer=observed, read_timeout=SHORT) as served:
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        writer.write(f"GET /ping/{TOKEN} HTTP/1.1\r\nHost: x\r\n".encode())  # never finished
        await writer.drain()
        reply = await read_all(reader)
        writer.close()
    head = reply.decode()
    assert head.startswith("HTTP/1.1 408 Request Timeout\r\n")
    assert "Ping-Body-Limit: 10000\r\n" in head
    assert recorder.calls == 0
    assert [(route, code) for route, code, _ in observed.calls] == [("other", 408)]


async def test_idle_connection_is_closed_quietly(recorder: FakeRecorder) -> None:
    async with serving(recorder, read_timeout=SHORT) as served:
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        assert await read_all(reader) == b""  # closed, nothing said
        writer.close()


async def test_keep_alive_connection_gets_a_fresh_header_window(recorder: FakeRecorder) -> None:
    async with serving(recorder, read_timeout=SHORT) as served:
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        request = f"GET /ping/{TOKEN} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        for _ in range(2):
            writer.write(request)
            await writer.drain()
            async with asyncio.timeout(10):
                head = await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(2)  # "OK"
            assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        writer.write(b"GET /ping/")  # a third request, left unfinished
        await writer.drain()
        assert (await read_all(reader)).startswith(b"HTTP/1.1 408")
        writer.close()
    assert len(recorder.pings) == 2


async def test_slow_body_gets_408(recorder: FakeRecorder) -> None:
    async with serving(recorder, read_timeout=SHORT) as served:
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        writer.write(
            f"POST /ping/{TOKEN}/fail HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n".encode()
            + b"only ten b"
        )
        await writer.drain()
        reply = await read_all(reader)
        writer.close()
    assert reply.startswith(b"HTTP/1.1 408")
    assert b"Ping-Body-Limit: 10000" in reply
    assert recorder.calls == 0


async def test_connections_beyond_the_cap_get_503(
    recorder: FakeRecorder, observed: Observed
) -> None:
    async with serving(recorder, observer=observed, max_connections=2) as served:
        held = [await asyncio.open_connection("127.0.0.1", served.port) for _ in range(2)]

        async def both_accepted() -> bool:
            return len(served.guards) == 2

        await async_wait_for(both_accepted, timeout=5, what="two accepted connections")
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        reply = (await read_all(reader)).decode()
        writer.close()
        assert reply.startswith("HTTP/1.1 503 Service Unavailable\r\n")
        assert "Retry-After: 1\r\n" in reply
        assert "Ping-Body-Limit: 10000\r\n" in reply
        assert [(route, code) for route, code, _ in observed.calls] == [("other", 503)]

        # A held connection still works, and once one closes a new one is accepted.
        first_reader, first_writer = held[0]
        first_writer.write(
            f"GET /ping/{TOKEN} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        )
        assert (await read_all(first_reader)).startswith(b"HTTP/1.1 200")
        first_writer.close()

        async def one_left() -> bool:
            return len(served.guards) == 1

        await async_wait_for(one_left, timeout=5, what="the closed connection to be forgotten")
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{served.url}/ping/{TOKEN}") as response,
        ):
            assert response.status == 200
        for _, writer in held[1:]:
            writer.close()


async def test_shutdown_answers_pings_in_flight_and_turns_readyz_503(
    recorder: FakeRecorder,
) -> None:
    recorder.gate = asyncio.Event()
    health = Health()
    app = make_ping_app(settings_with(), recorder, health, clock=FakeClock())
    server = serve(app, "127.0.0.1", 0, shutdown_timeout=10.0)
    served = await server.__aenter__()
    async with aiohttp.ClientSession() as session:
        in_flight = asyncio.create_task(session.get(f"{served.url}/ping/{TOKEN}/fail"))

        async def recorder_waiting() -> bool:
            return recorder.waiting == 1

        await async_wait_for(recorder_waiting, timeout=5, what="the ping to reach the recorder")
        stopping = asyncio.create_task(server.__aexit__(None, None, None))

        async def refused() -> bool:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", served.port)
            except OSError:
                return True
            writer.close()
            return False

        await async_wait_for(refused, timeout=5, what="the listener to stop accepting")
        assert health.stopping and not health.ready()
        assert not stopping.done()  # still waiting for the ping in flight

        recorder.gate.set()
        response = await in_flight
        assert response.status == 200
        assert await response.text() == "OK"
        response.release()
        async with asyncio.timeout(10):
            await stopping
    assert [p.kind for _, p in recorder.pings] == ["fail"]


async def test_metrics_app_serves_metrics_and_probes() -> None:
    health = Health()

    def render() -> tuple[bytes, str]:
        return b"heartbeat_leader 1\n", "text/plain; version=0.0.4; charset=utf-8"

    async with (
        serve(make_metrics_app(render, health), "127.0.0.1", 0) as served,
        aiohttp.ClientSession() as session,
    ):
        async with session.get(f"{served.url}/metrics") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            assert await response.text() == "heartbeat_leader 1\n"
        async with session.get(f"{served.url}/healthz") as response:
            assert response.status == 200
        async with session.get(f"{served.url}/readyz") as response:
            assert response.status == 200
        async with session.get(f"{served.url}/ping/{TOKEN}") as response:
            assert response.status == 404  # pings are on the other port only
        health.begin_shutdown()
        async with session.get(f"{served.url}/readyz") as response:
            assert response.status == 503


async def test_metrics_app_accepts_an_aiohttp_handler() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(text="# from a handler\n")

    async with (
        serve(make_metrics_app(handler), "127.0.0.1", 0) as served,
        aiohttp.ClientSession() as session,
        session.get(f"{served.url}/metrics") as response,
    ):
        assert response.status == 200
        assert await response.text() == "# from a handler\n"


async def test_metrics_handler_from_the_metrics_module() -> None:
    from heartbeat_operator.metrics import Metrics, make_metrics_handler

    metrics = Metrics(lambda: [], lambda: True)
    recorder = FakeRecorder()
    ping_app = make_ping_app(settings_with(), recorder, observer=metrics.observe)
    async with (
        serve(ping_app, "127.0.0.1", 0) as pings,
        serve(make_metrics_app(make_metrics_handler(metrics)), "127.0.0.1", 0) as served,
        aiohttp.ClientSession() as session,
    ):
        async with session.get(f"{pings.url}/ping/{TOKEN}") as response:
            assert response.status == 200
        async with session.get(f"{served.url}/metrics") as response:
            assert response.status == 200
            text = await response.text()
    assert "heartbeat_leader 1" in text
    assert 'route="ping"' in text
    assert TOKEN not in text


# --- draining: the Pod's preStop hook (DESIGN 10.6, fine print 10.8.15) ------------------


def _metrics() -> tuple[bytes, str]:
    return b"", "text/plain; version=0.0.4; charset=utf-8"


async def test_drain_turns_readyz_503_at_once_keeps_serving_pings_and_answers_after_the_delay(
    recorder: FakeRecorder,
) -> None:
    # Long enough that a loaded machine sees the drain still pending; short for a unit test.
    health = Health(drain_delay=1.0)
    async with (
        serving(recorder, health) as pings,
        serve(make_metrics_app(_metrics, health), "127.0.0.1", 0) as metrics,
        aiohttp.ClientSession() as session,
    ):
        async with session.get(f"{metrics.url}/readyz") as response:
            assert response.status == 200
        async with session.get(f"{pings.url}/ping/{TOKEN}") as response:
            assert response.headers.get("Connection", "").lower() != "close"
        drain = asyncio.create_task(session.post(f"{metrics.url}/drain"))

        async def unready() -> bool:
            async with session.get(f"{pings.url}/readyz") as response:
                return response.status == 503 and await response.text() == "draining"

        await async_wait_for(unready, timeout=5, what="/readyz 503 on the ping port")
        assert not drain.done()  # the hook holds the kubelet's SIGTERM back meanwhile
        async with session.get(f"{metrics.url}/readyz") as response:
            assert (response.status, await response.text()) == (503, "draining")
        # Pings are still served, and each reply closes its connection: a kept-alive
        # client's next ping goes through the Service to a replica that stays.
        async with session.get(f"{pings.url}/ping/{TOKEN}") as response:
            assert (response.status, await response.text()) == (200, "OK")
            assert response.headers["Connection"].lower() == "close"
        response = await drain
        assert (response.status, await response.text()) == (200, "drained")
        response.release()
        async with session.get(f"{pings.url}/readyz") as after:
            assert after.status == 503  # SIGTERM follows the hook; never ready again before it
    assert len(recorder.pings) == 2


async def test_drain_is_on_the_metrics_port_only_and_takes_get_or_post(
    recorder: FakeRecorder,
) -> None:
    health = Health(drain_delay=0)
    async with (
        serving(recorder, health) as pings,
        serve(make_metrics_app(_metrics, health), "127.0.0.1", 0) as metrics,
        aiohttp.ClientSession() as session,
    ):
        async with session.get(f"{pings.url}/drain") as response:
            assert response.status == 404  # jobs and Ingresses reach the ping port
        assert health.ready()
        async with session.put(f"{metrics.url}/drain") as response:
            assert response.status == 405
            assert response.headers["Allow"] == "GET, POST"
        assert health.ready()
        async with session.get(f"{metrics.url}/drain") as response:  # the kubelet's httpGet
            assert (response.status, await response.text()) == (200, "drained")
        assert not health.ready()


class _Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_drain_with_no_sigterm_after_it_is_undone() -> None:
    """A stray ``/drain`` (the metrics port is reachable by scrapers) must not keep a
    replica out of its Service for good: readiness comes back a while after the delay."""
    from heartbeat_operator.receiver.health import DRAIN_UNDO_AFTER

    clock = _Monotonic()
    health = Health(drain_delay=0, clock=clock)
    await health.drain()
    assert not health.ready() and health.draining
    clock.now += DRAIN_UNDO_AFTER - 1
    assert not health.ready()
    clock.now += 1
    assert health.ready() and not health.draining
    await health.drain()  # a later drain starts over
    assert not health.ready()
    health.begin_shutdown()
    clock.now += DRAIN_UNDO_AFTER * 2
    assert not health.ready()  # after SIGTERM, never ready again


async def test_a_second_drain_joins_the_first() -> None:
    clock = _Monotonic()
    health = Health(drain_delay=30.0, clock=clock)
    first = asyncio.create_task(health.drain())

    async def draining() -> bool:
        return not health.ready()

    await async_wait_for(draining, timeout=1.0, interval=0.01, what="the first drain begun")
    clock.now += 30.0  # the first drain's delay has passed by this clock
    await asyncio.wait_for(health.drain(), timeout=1)  # a retried hook returns at once
    first.cancel()
