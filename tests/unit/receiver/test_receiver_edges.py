"""HTTP edges over raw sockets (issue 18 item 7), where aiohttp's own client would hide the
wire: a body that does not decode as its Content-Encoding, and ``Expect: 100-continue``."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import re
from collections.abc import AsyncIterator

from heartbeat_operator.receiver.app import make_ping_app
from heartbeat_operator.receiver.serving import Served, serve

from .conftest import TOKEN, FakeClock, FakeRecorder, settings_with


@contextlib.asynccontextmanager
async def serving(recorder: FakeRecorder, **receiver: object) -> AsyncIterator[Served]:
    app = make_ping_app(settings_with(**receiver), recorder, None, clock=FakeClock())
    async with serve(app, "127.0.0.1", 0, shutdown_timeout=5.0) as served:
        yield served


async def read_reply(reader: asyncio.StreamReader) -> bytes:
    """Everything up to the end of the first final reply (interim 1xx replies included)."""
    got = b""
    async with asyncio.timeout(10):
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            got += head
            if not head.startswith(b"HTTP/1.1 1"):
                break
        length = re.search(rb"\r\nContent-Length: (\d+)\r\n", head)
        assert length is not None, got
        return got + await reader.readexactly(int(length[1]))


async def exchange(port: int, request: bytes) -> bytes:
    """Send ``request``; what the server answers, up to the end of its final reply."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await read_reply(reader)
    finally:
        writer.close()


def post(path: str, body: bytes, *headers: str) -> bytes:
    head = [f"POST {path} HTTP/1.1", "Host: x", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def test_a_body_that_is_not_gzip_under_content_encoding_gzip_is_400_with_a_reason(
    recorder: FakeRecorder,
) -> None:
    async with serving(recorder) as served:
        reply = await exchange(
            served.port,
            post(f"/ping/{TOKEN}/fail", b"plain text, not gzip", "Content-Encoding: gzip"),
        )
    status, _, rest = reply.partition(b"\r\n")
    assert status == b"HTTP/1.1 400 Bad Request", reply
    assert rest.endswith(b"bad request: the body is not valid for its Content-Encoding")
    assert recorder.calls == 0


async def test_a_gzip_body_is_still_decoded(recorder: FakeRecorder) -> None:
    body = gzip.compress(b"backup failed: disk full")
    async with serving(recorder) as served:
        reply = await exchange(
            served.port,
            post(f"/ping/{TOKEN}/fail", body, "Content-Encoding: gzip", "Connection: close"),
        )
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n"), reply
    assert [p.body for _, p in recorder.pings] == ["backup failed: disk full"]


async def test_expect_100_continue_over_the_cap_is_413_without_100_continue(
    recorder: FakeRecorder,
) -> None:
    async with serving(recorder) as served:
        head = (
            f"POST /ping/{TOKEN}/fail HTTP/1.1\r\nHost: x\r\n"
            f"Content-Length: {2 * 1024 * 1024}\r\nExpect: 100-continue\r\n\r\n"
        )
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        try:
            writer.write(head.encode())  # the body is never sent
            await writer.drain()
            reply = await read_reply(reader)
            async with asyncio.timeout(5):  # closed at once: no slot held waiting for it
                assert await reader.read() == b""
        finally:
            writer.close()
    assert b"100 Continue" not in reply
    status, _, rest = reply.partition(b"\r\n")
    assert status == b"HTTP/1.1 413 Request Entity Too Large", reply
    assert rest.endswith(b"request body over 1048576 bytes")
    assert b"Connection: close" in rest
    assert b"Ping-Body-Limit: 10000\r\n" in rest
    assert recorder.calls == 0


async def test_expect_100_continue_within_the_cap_gets_100_continue_then_200(
    recorder: FakeRecorder,
) -> None:
    async with serving(recorder) as served:
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        try:
            writer.write(
                f"POST /ping/{TOKEN}/log HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                "Expect: 100-continue\r\nConnection: close\r\n\r\n".encode()
            )
            await writer.drain()
            async with asyncio.timeout(10):
                interim = await reader.readuntil(b"\r\n\r\n")
            assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
            writer.write(b"hello")
            await writer.drain()
            reply = await read_reply(reader)
        finally:
            writer.close()
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n"), reply
    assert [p.body for _, p in recorder.pings] == ["hello"]


async def test_an_unknown_expectation_is_417(recorder: FakeRecorder) -> None:
    async with serving(recorder) as served:
        reply = await exchange(
            served.port, post(f"/ping/{TOKEN}", b"", "Expect: teapot", "Connection: close")
        )
    assert reply.startswith(b"HTTP/1.1 417 Expectation Failed\r\n"), reply
    assert recorder.calls == 0
