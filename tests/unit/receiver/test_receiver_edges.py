"""HTTP edges over raw sockets (issue 18 item 7), where aiohttp's own client would hide the
wire: a body that does not decode as its Content-Encoding, and ``Expect: 100-continue``;
and what malformed requests leave in the log (item 6)."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import re
import zlib
from collections.abc import AsyncIterator, Callable

import brotli
import pytest

from heartbeat_operator.logthrottle import Throttle
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
    recorder: FakeRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with serving(recorder) as served:
        reply = await exchange(
            served.port,
            post(f"/ping/{TOKEN}/fail", b"plain text, not gzip", "Content-Encoding: gzip"),
        )
    status, _, rest = reply.partition(b"\r\n")
    assert status == b"HTTP/1.1 400 Bad Request", reply
    assert rest.endswith(b"bad request: the body is not valid for its Content-Encoding")
    assert recorder.calls == 0
    # The client's mistake, answered: not an error of ours with a traceback in the log.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [("gzip", gzip.compress), ("deflate", zlib.compress), ("br", brotli.compress)],
)
async def test_a_compressed_body_is_decoded(
    recorder: FakeRecorder, encoding: str, compress: Callable[[bytes], bytes]
) -> None:
    # docs/pinging.md names the three; `br` needs the Brotli package, a dependency.
    body = compress(b"backup failed: disk full")
    async with serving(recorder) as served:
        reply = await exchange(
            served.port,
            post(f"/ping/{TOKEN}/fail", body, f"Content-Encoding: {encoding}", "Connection: close"),
        )
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n"), reply
    assert [p.body for _, p in recorder.pings] == ["backup failed: disk full"]


async def test_a_brotli_body_that_inflates_past_the_cap_is_413(recorder: FakeRecorder) -> None:
    bomb = brotli.compress(b"x" * (3 * 1024 * 1024))  # a few hundred bytes on the wire
    async with serving(recorder) as served:
        reply = await exchange(
            served.port,
            post(f"/ping/{TOKEN}/fail", bomb, "Content-Encoding: br", "Connection: close"),
        )
    assert reply.startswith(b"HTTP/1.1 413 "), reply
    assert recorder.calls == 0


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


# --- logs (issue 18 item 6) ---------------------------------------------------------------


async def test_a_burst_of_malformed_requests_logs_one_info_line_redacted(
    recorder: FakeRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # A token inside a long run of URL-safe characters, where a fuzzer put it.
    line = f"GET /x{'a' * 40}{TOKEN}{'b' * 90} HTTP/1.1 trailing\r\nHost: x\r\n\r\n"
    async with serving(recorder) as served:
        for _ in range(30):
            reply = await exchange(served.port, line.encode())
            assert reply.split(b"\r\n", 1)[0].endswith(b" 400 Bad Request")
    server = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert len(server) == 1, [r.getMessage() for r in server]
    (record,) = server
    assert record.levelno == logging.INFO
    assert record.exc_info is None and not record.exc_text  # no traceback
    message = record.getMessage()
    assert message.startswith("malformed request from 127.0.0.1: BadStatusLine: ")
    assert "\n" not in message
    assert "<redacted>" in message
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert TOKEN not in caplog.text
    assert TOKEN[:20] not in caplog.text


def test_a_throttled_line_says_how_many_were_held_back(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    throttle = Throttle(logging.getLogger("test.throttle"), interval=10.0, clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="test.throttle")
    written = []
    for step in range(25):  # one a second for 25 s
        now[0] = float(step)
        written.append(throttle.log("write", logging.WARNING, "write %d failed", step))
        throttle.log("other kind", logging.INFO, "other %d", step)
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert lines == [
        "write 0 failed",
        "write 10 failed (9 more like this in 10 s)",
        "write 20 failed (9 more like this in 10 s)",
    ]
    assert written.count(True) == 3
    assert len([r for r in caplog.records if r.levelno == logging.INFO]) == 3  # its own count
