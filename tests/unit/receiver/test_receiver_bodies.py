"""Ping bodies: kept up to the body limit, cut on a UTF-8 boundary, capped at 1 MiB."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from heartbeat_operator.receiver.bodies import REDACTION_MARGIN, decode_body

from .conftest import TOKEN, AppFactory, FakeRecorder

Client = TestClient[web.Request, web.Application]


async def post(client: Client, data: Any, path: str = f"/ping/{TOKEN}/fail", **kwargs: Any) -> int:
    async with client.post(path, data=data, **kwargs) as response:
        await response.read()
        return response.status


def kept_body(recorder: FakeRecorder) -> str | None:
    [(_, ping)] = recorder.pings
    return ping.body


async def test_20kb_body_keeps_exactly_the_first_10000_bytes(
    client: Client, recorder: FakeRecorder
) -> None:
    data = "".join(f"line {i:05d}\n" for i in range(2000)).encode()  # 22,000 bytes
    assert await post(client, data) == 200
    assert kept_body(recorder) == data[:10_000].decode()


async def test_small_body_is_kept_whole_and_kind_unchanged(
    client: Client, recorder: FakeRecorder
) -> None:
    assert await post(client, b"backup failed: disk full\n") == 200
    [(_, ping)] = recorder.pings
    assert (ping.kind, ping.body) == ("fail", "backup failed: disk full\n")


@pytest.mark.parametrize("method", ["POST", "PUT"])
async def test_put_and_post_bodies_are_kept(
    client: Client, recorder: FakeRecorder, method: str
) -> None:
    async with client.request(method, f"/ping/{TOKEN}/log", data=b"hello") as response:
        assert response.status == 200
    assert kept_body(recorder) == "hello"


async def test_empty_body_is_no_body(client: Client, recorder: FakeRecorder) -> None:
    assert await post(client, b"") == 200
    assert kept_body(recorder) is None


async def test_get_body_is_ignored(client: Client, recorder: FakeRecorder) -> None:
    async with client.get(f"/ping/{TOKEN}", data=b"ignored") as response:
        assert response.status == 200
    assert kept_body(recorder) is None


async def test_a_get_body_over_one_mib_is_413_too(client: Client, recorder: FakeRecorder) -> None:
    async with client.get(f"/ping/{TOKEN}", data=b"x" * (1024 * 1024 + 1)) as response:
        assert response.status == 413
    assert recorder.pings == []


async def test_cut_inside_a_multibyte_character_drops_it(
    client: Client, recorder: FakeRecorder
) -> None:
    data = b"a" * 9_999 + "€uro".encode()  # "€" is 3 bytes: byte 10,000 is its first
    assert await post(client, data) == 200
    assert kept_body(recorder) == "a" * 9_999


async def test_invalid_utf8_is_replaced(client: Client, recorder: FakeRecorder) -> None:
    assert await post(client, b"ok \xff\xfe then text") == 200
    assert kept_body(recorder) == "ok \ufffd\ufffd then text"


async def test_body_limit_is_a_setting(make_client: AppFactory, recorder: FakeRecorder) -> None:
    client = await make_client(body_limit=5)
    async with client.post(f"/ping/{TOKEN}", data=b"0123456789") as response:
        assert response.status == 200
        assert response.headers["Ping-Body-Limit"] == "5"
    assert kept_body(recorder) == "01234"


async def test_exactly_one_mib_is_accepted(client: Client, recorder: FakeRecorder) -> None:
    assert await post(client, b"x" * (1024 * 1024)) == 200
    assert kept_body(recorder) == "x" * 10_000


async def test_over_one_mib_is_413_and_not_recorded(client: Client, recorder: FakeRecorder) -> None:
    status = await post(client, b"x" * (1024 * 1024 + 1))
    assert status == 413
    assert recorder.calls == 0


async def test_over_one_mib_chunked_is_413(client: Client, recorder: FakeRecorder) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(17):
            yield b"y" * 65_536  # 17 x 64 KiB: one chunk past 1 MiB, no Content-Length

    async with client.post(f"/ping/{TOKEN}", data=chunks()) as response:
        assert response.status == 413
        assert response.headers["Ping-Body-Limit"] == "10000"
    assert recorder.calls == 0


async def test_hard_cap_is_a_setting(make_client: AppFactory, recorder: FakeRecorder) -> None:
    client = await make_client(max_body=100, body_limit=50)
    assert await post(client, b"z" * 100) == 200
    assert await post(client, b"z" * 101) == 413
    assert len(recorder.pings) == 1


@pytest.mark.parametrize(
    ("data", "limit", "expected"),
    [
        (b"", 10, None),
        (b"plain", 10, "plain"),
        (b"plain text", 5, "plain"),
        ("é".encode() * 3, 5, "éé"),  # 6 bytes cut to 5: the half "é" goes
        ("€".encode(), 2, None),  # nothing but a cut character: no body
        ("€".encode(), 3, "€"),
        ("𝄞".encode() + b"!", 4, "𝄞"),  # a 4-byte character kept whole
        ("𝄞".encode(), 3, None),
        (b"ab\xe2\x82", 10, "ab"),  # an incomplete trailing sequence is dropped
        (b"ab\x82", 10, "ab\ufffd"),  # a stray continuation byte is not a cut: replaced
        (b"\xff" * 3, 10, "\ufffd" * 3),
    ],
)
def test_decode_body(data: bytes, limit: int, expected: str | None) -> None:
    assert decode_body(data, limit) == expected


# --- tokens in bodies (issue 18 item 5) -----------------------------------------------------

OTHER_MONITORS_TOKEN = "another-Monitors_token" + "x" * 21


async def test_tokens_in_a_body_are_redacted_before_it_is_recorded(
    client: Client, recorder: FakeRecorder
) -> None:
    trace = (
        f"* Connected to hb.example.com\n> POST /ping/{TOKEN}/fail HTTP/1.1\n"
        f"< HTTP/1.1 200 OK\nTOKEN={TOKEN}\n"
        f"curl -fsS https://hb.example.com/hb/{OTHER_MONITORS_TOKEN}/start\n"
        "\xff not utf-8, kept as before\n"
    ).encode("latin-1")
    assert await post(client, trace) == 200
    body = kept_body(recorder)
    assert body is not None
    assert TOKEN not in body and OTHER_MONITORS_TOKEN not in body
    assert body == (
        "* Connected to hb.example.com\n> POST /ping/<redacted>/fail HTTP/1.1\n"
        "< HTTP/1.1 200 OK\nTOKEN=<redacted>\n"
        "curl -fsS https://hb.example.com/hb/<redacted>/start\n"
        "\ufffd not utf-8, kept as before\n"
    )


async def test_a_token_cut_by_the_body_limit_leaves_no_part_of_it(
    client: Client, recorder: FakeRecorder
) -> None:
    data = ("." * (10_000 - 10) + TOKEN + " and more").encode()  # the limit cuts the token
    assert await post(client, data) == 200
    body = kept_body(recorder)
    assert body is not None
    assert TOKEN[:10] not in body
    assert body == "." * 9_990 + "<redacted>"


@pytest.mark.parametrize("straddle_at", [10_000, 10_000 + REDACTION_MARGIN])
async def test_tokens_before_the_cut_do_not_move_it(
    client: Client, recorder: FakeRecorder, straddle_at: int
) -> None:
    # A `set -x` trace quoting the URL 150 times: each token redacted shortens the text,
    # so redacting before cutting used to cut ~6,000 bytes further on, past the bytes read
    # beyond the limit, and keep the first part of a token straddling that end.
    line = f"+ curl -fsS {TOKEN} \n"
    head = line * 150
    data = (head + "." * (straddle_at - 20 - len(head)) + TOKEN + "x" * 1_000).encode()
    assert await post(client, data) == 200
    body = kept_body(recorder)
    assert body is not None
    assert TOKEN[:12] not in body and TOKEN[-12:] not in body
    first_bytes = data[:10_000].decode()
    if straddle_at == 10_000:  # the cut falls in the token: it is redacted whole
        first_bytes = first_bytes[:-20] + "<redacted>"
    assert body == first_bytes.replace(TOKEN, "<redacted>")  # nothing from past the cut
