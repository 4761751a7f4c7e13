"""The ping routes of DESIGN section 3, end to end through the real aiohttp app."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from heartbeat_operator.receiver.health import Health
from heartbeat_operator.recording import IndexLoading, Overloaded, WriteTimeout

from .conftest import OTHER_TOKEN, TOKEN, AppFactory, FakeClock, FakeRecorder, Observed

Client = TestClient[web.Request, web.Application]


async def call(client: Client, method: str, path: str, **kwargs: Any) -> tuple[int, str, Any]:
    async with client.request(method, path, **kwargs) as response:
        return response.status, await response.text(), response.headers


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT"])
@pytest.mark.parametrize("prefix", ["/ping", "/hb"])
async def test_success_ping_every_method(
    client: Client, recorder: FakeRecorder, clock: FakeClock, method: str, prefix: str
) -> None:
    status, body, headers = await call(client, method, f"{prefix}/{TOKEN}")
    assert status == 200
    assert body == ("" if method == "HEAD" else "OK")
    assert headers["Content-Type"].startswith("text/plain")
    assert headers["Ping-Body-Limit"] == "10000"
    [(token, ping)] = recorder.pings
    assert token == TOKEN
    assert (ping.kind, ping.exit_code, ping.run_id, ping.body) == ("success", None, None, None)
    assert ping.time == clock.now


@pytest.mark.parametrize(
    ("suffix", "kind", "exit_code"),
    [
        ("/start", "start", None),
        ("/fail", "fail", None),
        ("/log", "log", None),
        ("/0", "success", 0),
        ("/1", "fail", 1),
        ("/3", "fail", 3),
        ("/255", "fail", 255),
        ("/", "success", None),
        ("/start/", "start", None),
    ],
)
@pytest.mark.parametrize("prefix", ["/ping", "/hb"])
async def test_ping_kinds(
    client: Client,
    recorder: FakeRecorder,
    prefix: str,
    suffix: str,
    kind: str,
    exit_code: int | None,
) -> None:
    status, body, _ = await call(client, "GET", f"{prefix}/{TOKEN}{suffix}")
    assert (status, body) == (200, "OK")
    [(_, ping)] = recorder.pings
    assert (ping.kind, ping.exit_code) == (kind, exit_code)


async def test_v1_route_is_a_success_ping(client: Client, recorder: FakeRecorder) -> None:
    status, body, headers = await call(client, "POST", f"/v1/heartbeats/{TOKEN}/ping")
    assert (status, body) == (200, "OK")
    assert headers["Ping-Body-Limit"] == "10000"
    assert [p.kind for _, p in recorder.pings] == ["success"]


@pytest.mark.parametrize("method", ["GET", "PUT", "HEAD", "DELETE"])
async def test_v1_route_takes_only_post(
    client: Client, recorder: FakeRecorder, method: str
) -> None:
    status, _, headers = await call(client, method, f"/v1/heartbeats/{TOKEN}/ping")
    assert status == 405
    assert headers["Allow"] == "POST"
    assert recorder.calls == 0


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        (f"/ping/{TOKEN}/256", "exit code must be 0-255"),
        (f"/ping/{TOKEN}/-1", "exit code must be 0-255"),
        (f"/ping/{TOKEN}/1000", "exit code must be 0-255"),
        (f"/ping/{TOKEN}/abc", "unknown ping action"),
        (f"/hb/{TOKEN}/256", "exit code must be 0-255"),
        (f"/ping/{TOKEN}/start/extra", "unexpected path"),
        ("/ping/", "missing token"),
        ("/ping", "missing token"),
        ("/hb/", "missing token"),
        (f"/v1/heartbeats/{TOKEN}/start", "expected /v1/heartbeats/<token>/ping"),
        (f"/v1/heartbeats/{TOKEN}", "expected /v1/heartbeats/<token>/ping"),
    ],
)
async def test_malformed_paths_are_400_with_a_reason(
    client: Client, recorder: FakeRecorder, path: str, reason: str
) -> None:
    method = "POST" if path.startswith("/v1/") else "GET"
    status, body, headers = await call(client, method, path)
    assert status == 400
    assert reason in body
    assert TOKEN not in body
    assert headers["Ping-Body-Limit"] == "10000"
    assert recorder.calls == 0


async def test_path_is_checked_before_the_token(client: Client, recorder: FakeRecorder) -> None:
    # An unknown token with a bad exit code is a 400, not a 404: no lookup happened.
    status, _, _ = await call(client, "GET", f"/ping/{OTHER_TOKEN}/256")
    assert status == 400
    assert recorder.calls == 0


@pytest.mark.parametrize("method", ["DELETE", "PATCH", "OPTIONS"])
@pytest.mark.parametrize("path", [f"/ping/{TOKEN}", f"/hb/{TOKEN}/start", f"/ping/{TOKEN}/3"])
async def test_other_methods_are_405(
    client: Client, recorder: FakeRecorder, method: str, path: str
) -> None:
    status, _, headers = await call(client, method, path)
    assert status == 405
    assert headers["Allow"] == "GET, HEAD, POST, PUT"
    assert headers["Ping-Body-Limit"] == "10000"
    assert recorder.calls == 0


async def test_unknown_token_is_404_not_found(client: Client, recorder: FakeRecorder) -> None:
    status, body, headers = await call(client, "GET", f"/ping/{OTHER_TOKEN}")
    assert (status, body) == (404, "not found")
    assert headers["Ping-Body-Limit"] == "10000"
    assert recorder.calls == 1  # asked the recorder (the index), which said no
    assert recorder.pings == []


@pytest.mark.parametrize("token", ["short", "has.dot" + "x" * 30, "x" * 129])
async def test_impossible_token_is_404_without_lookup(
    client: Client, recorder: FakeRecorder, token: str
) -> None:
    status, body, _ = await call(client, "GET", f"/ping/{token}")
    assert (status, body) == (404, "not found")
    assert recorder.calls == 0


@pytest.mark.parametrize("path", ["/", "/nope", "/pings/x", "/v1/other"])
async def test_unknown_paths_are_404(client: Client, path: str) -> None:
    status, body, headers = await call(client, "GET", path)
    assert (status, body) == (404, "not found")
    assert headers["Ping-Body-Limit"] == "10000"


async def test_run_id_is_passed_on(client: Client, recorder: FakeRecorder) -> None:
    rid = "3f1c2a9e-7b4d-4c7e-9a51-0d7a6c2f1e88"
    status, _, _ = await call(client, "GET", f"/ping/{TOKEN}/start", params={"rid": rid})
    assert status == 200
    status, _, _ = await call(client, "POST", f"/ping/{TOKEN}", params={"rid": rid})
    assert status == 200
    assert [(p.kind, p.run_id) for _, p in recorder.pings] == [("start", rid), ("success", rid)]


async def test_run_id_of_64_characters_is_accepted(client: Client, recorder: FakeRecorder) -> None:
    status, _, _ = await call(client, "GET", f"/ping/{TOKEN}?rid={'r' * 64}")
    assert status == 200
    assert recorder.pings[0][1].run_id == "r" * 64


async def test_the_token_given_as_run_id_is_redacted(
    client: Client, recorder: FakeRecorder
) -> None:
    # DESIGN 3: the run id is shown in status and Events; a script that passes its token
    # as the rid too must not publish it there. Start and finish still pair.
    for path in (f"/ping/{TOKEN}/start", f"/ping/{TOKEN}/fail"):
        status, _, _ = await call(client, "GET", path, params={"rid": TOKEN})
        assert status == 200
    status, _, _ = await call(client, "GET", f"/ping/{TOKEN}", params={"rid": f"{TOKEN}-7"})
    assert status == 200
    assert [p.run_id for _, p in recorder.pings] == ["<redacted>", "<redacted>", "<redacted>-7"]


@pytest.mark.parametrize(
    "query",
    ["rid=" + "r" * 65, "rid=", "rid=a%20b", "rid=a/b", "rid=%C3%A9", "rid=a&rid=b"],
)
async def test_bad_run_id_is_400(client: Client, recorder: FakeRecorder, query: str) -> None:
    status, body, _ = await call(client, "GET", f"/ping/{TOKEN}/start?{query}")
    assert status == 400
    assert "rid" in body
    assert recorder.calls == 0


async def test_overloaded_is_429_retry_after_1(client: Client, recorder: FakeRecorder) -> None:
    recorder.error = Overloaded("51 pings waiting")
    status, body, headers = await call(client, "GET", f"/ping/{TOKEN}")
    assert status == 429
    assert headers["Retry-After"] == "1"
    assert headers["Ping-Body-Limit"] == "10000"
    assert "retry" in body


async def test_write_timeout_is_503_retry_after_5(client: Client, recorder: FakeRecorder) -> None:
    recorder.error = WriteTimeout("write took over 5 s")
    status, body, headers = await call(client, "POST", f"/ping/{TOKEN}/fail", data=b"boom")
    assert status == 503
    assert headers["Retry-After"] == "5"
    assert headers["Ping-Body-Limit"] == "10000"
    assert "retry" in body


async def test_index_still_loading_is_503_retry_after_not_404(
    client: Client, recorder: FakeRecorder
) -> None:
    recorder.error = IndexLoading("the token index is still loading")
    status, body, headers = await call(client, "GET", f"/ping/{TOKEN}")
    assert status == 503
    assert headers["Retry-After"] == "5"
    assert "loading" in body and "retry" in body
    assert TOKEN not in body


async def test_unexpected_error_is_500_and_logged_without_token(
    client: Client, recorder: FakeRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    recorder.error = RuntimeError(f"exploded while writing /ping/{TOKEN} for {TOKEN}")
    with caplog.at_level("DEBUG"):
        status, body, headers = await call(client, "GET", f"/ping/{TOKEN}")
    assert (status, body) == (500, "internal error")
    assert headers["Ping-Body-Limit"] == "10000"
    logged = caplog.text
    assert "RuntimeError" in logged  # the traceback is there...
    assert "Traceback" in logged
    assert TOKEN not in logged  # ...without the token


async def test_ping_time_is_the_receivers_clock(
    client: Client, recorder: FakeRecorder, clock: FakeClock
) -> None:
    first = clock.now
    await call(client, "GET", f"/ping/{TOKEN}/start")
    clock.now = first.replace(hour=3)
    await call(client, "GET", f"/ping/{TOKEN}")
    assert [p.time for _, p in recorder.pings] == [first, first.replace(hour=3)]


async def test_observer_sees_route_class_code_and_duration(
    client: Client, observed: Observed
) -> None:
    await call(client, "GET", f"/ping/{TOKEN}")
    await call(client, "GET", f"/hb/{TOKEN}/256")
    await call(client, "POST", f"/v1/heartbeats/{OTHER_TOKEN}/ping")
    await call(client, "GET", "/healthz")
    await call(client, "DELETE", "/nope")
    assert [(route, code) for route, code, _ in observed.calls] == [
        ("ping", 200),
        ("hb", 400),
        ("v1", 404),
        ("probe", 200),
        ("other", 404),
    ]
    assert all(seconds >= 0 for _, _, seconds in observed.calls)


async def test_healthz_is_200(client: Client) -> None:
    status, body, headers = await call(client, "GET", "/healthz")
    assert (status, body) == (200, "OK")
    assert headers["Ping-Body-Limit"] == "10000"


async def test_readyz_follows_readiness_then_shutdown(
    make_client: AppFactory, health: Health
) -> None:
    client = await make_client()
    status, _, _ = await call(client, "GET", "/readyz")
    assert status == 200
    health.begin_shutdown()
    status, body, _ = await call(client, "GET", "/readyz")
    assert (status, body) == (503, "shutting down")
    status, _, _ = await call(client, "GET", "/healthz")
    assert status == 200


async def test_readyz_503_until_the_readiness_callable_says_ready(
    aiohttp_client: Any, recorder: FakeRecorder
) -> None:
    from heartbeat_operator.receiver.app import make_ping_app
    from heartbeat_operator.settings import Settings

    ready = False
    client = await aiohttp_client(make_ping_app(Settings(), recorder, lambda: ready))
    status, body, _ = await call(client, "GET", "/readyz")
    assert (status, body) == (503, "not ready")
    ready = True
    status, _, _ = await call(client, "GET", "/readyz")
    assert status == 200


async def test_probes_refuse_post(client: Client) -> None:
    status, _, headers = await call(client, "POST", "/healthz")
    assert status == 405
    assert headers["Allow"] == "GET, HEAD"
