"""The pause API's HTTP side (issue 16 item 2), with a fake ``PauseControl`` (our seam,
pausing.py). What the API server says of a real token: tests/integration/test_pause_api.py.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from tests.unit.receiver.conftest import FakeClock, FakeRecorder, Observed, settings_with

from heartbeat_operator.pausing import (
    Forbidden,
    MonitorNotFound,
    PauseDone,
    PauseError,
    PauseRequest,
    PauseUnavailable,
    Unauthenticated,
)
from heartbeat_operator.receiver.app import make_ping_app
from heartbeat_operator.receiver.paths import redact_path

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6Y2k6ZGVwbG95In0.c2lnbmF0dXJl"
PATH = "/api/v1/namespaces/ops/heartbeatmonitors/queue-worker"
BEARER = {"Authorization": f"Bearer {JWT}"}


@dataclass
class FakePauses:
    calls: list[tuple[str, PauseRequest]] = field(default_factory=list)
    error: PauseError | None = None

    async def set_paused(self, token: str, request: PauseRequest) -> PauseDone:
        self.calls.append((token, request))
        if self.error is not None:
            raise self.error
        return PauseDone(user="system:serviceaccount:ci:deploy")


Client = TestClient[web.Request, web.Application]


@pytest.fixture
def pauses() -> FakePauses:
    return FakePauses()


@pytest.fixture
async def api(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
    recorder: FakeRecorder,
    clock: FakeClock,
    observed: Observed,
    pauses: FakePauses,
) -> Client:
    app = make_ping_app(settings_with(), recorder, observer=observed, clock=clock, pauses=pauses)
    return await aiohttp_client(app)


async def test_pause_patches_through_the_control_and_says_so(
    api: Client, pauses: FakePauses, observed: Observed
) -> None:
    reply = await api.post(f"{PATH}/pause", headers=BEARER)
    assert (reply.status, await reply.text()) == (200, "paused ops/queue-worker")
    assert pauses.calls == [(JWT, PauseRequest("ops", "queue-worker", paused=True))]
    assert observed.calls[-1][:2] == ("api", 200)


async def test_pause_for_a_duration_sets_the_time_it_ends(
    api: Client, pauses: FakePauses, clock: FakeClock
) -> None:
    reply = await api.post(f"{PATH}/pause?for=30m", headers=BEARER)
    until = clock.now + timedelta(minutes=30)
    assert reply.status == 200
    assert await reply.text() == "paused ops/queue-worker until 2026-03-29T01:29:30.250Z"
    assert pauses.calls[0][1] == PauseRequest("ops", "queue-worker", paused=True, until=until)


async def test_resume(api: Client, pauses: FakePauses) -> None:
    reply = await api.post(f"{PATH}/resume", headers={"Authorization": f"bearer {JWT}"})
    assert (reply.status, await reply.text()) == (200, "resumed ops/queue-worker")
    assert pauses.calls[0][1] == PauseRequest("ops", "queue-worker", paused=False)


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({}, "send a ServiceAccount token as 'Authorization: Bearer <token>'"),
        ({"Authorization": f"Basic {JWT}"}, "the Authorization header must be 'Bearer <token>'"),
        ({"Authorization": "Bearer"}, "the Authorization header must be 'Bearer <token>'"),
        ({"Authorization": "Bearer a b"}, "the bearer token is malformed"),
    ],
)
async def test_no_usable_token_is_401_before_anyone_is_asked(
    api: Client, pauses: FakePauses, headers: dict[str, str], why: str
) -> None:
    reply = await api.post(f"{PATH}/pause", headers=headers)
    assert reply.status == 401
    assert await reply.text() == f"unauthorized: {why}"
    assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    assert pauses.calls == []


@pytest.mark.parametrize(
    ("error", "status", "challenge"),
    [
        (Unauthenticated("the API server did not accept the bearer token"), 401, True),
        (Forbidden("system:serviceaccount:ci:deploy may not patch it"), 403, False),
        (MonitorNotFound("heartbeatmonitor ops/queue-worker not found"), 404, False),
        (PauseUnavailable("the operator could not reach the Kubernetes API"), 503, False),
    ],
)
async def test_outcomes_map_to_statuses_with_the_sentence(
    api: Client, pauses: FakePauses, error: PauseError, status: int, challenge: bool
) -> None:
    pauses.error = error
    reply = await api.post(f"{PATH}/pause", headers=BEARER)
    assert reply.status == status
    assert str(error) in await reply.text()
    assert ("WWW-Authenticate" in reply.headers) is challenge
    if status == 503:
        assert reply.headers["Retry-After"] == "5"


@pytest.mark.parametrize(
    ("path", "status", "text"),
    [
        (f"{PATH}/pause?for=0s", 400, "bad request: for= must be a duration like 30s, 5m"),
        (f"{PATH}/pause?for=soon", 400, "bad request: for= must be a duration"),
        (f"{PATH}/pause?for=5m&for=6m", 400, "bad request: give for= once"),
        (f"{PATH}/resume?for=5m", 400, "bad request: for= goes with pause, not resume"),
        (f"{PATH}/stop", 404, "not found: the actions are pause and resume"),
        ("/api/v1/namespaces/Ops/heartbeatmonitors/x/pause", 400, "bad request: the namespace"),
        ("/api/v1/namespaces/ops/heartbeatmonitors/X_y/pause", 400, "bad request: the name"),
    ],
)
async def test_malformed_requests_are_400_or_404_and_never_sent_on(
    api: Client, pauses: FakePauses, path: str, status: int, text: str
) -> None:
    reply = await api.post(path, headers=BEARER)
    assert reply.status == status
    assert (await reply.text()).startswith(text)
    assert pauses.calls == []


async def test_only_post(api: Client, pauses: FakePauses) -> None:
    reply = await api.get(f"{PATH}/pause", headers=BEARER)
    assert (reply.status, reply.headers["Allow"]) == (405, "POST")
    assert pauses.calls == []


async def test_without_a_pause_control_the_api_is_not_there(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
    recorder: FakeRecorder,
) -> None:
    client = await aiohttp_client(make_ping_app(settings_with(), recorder))
    reply = await client.post(f"{PATH}/pause", headers=BEARER)
    assert reply.status == 404


async def test_the_token_is_in_no_reply_and_no_log_line(
    api: Client, pauses: FakePauses, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    pauses.error = Forbidden("system:serviceaccount:ci:deploy may not patch it")
    replies = [await api.post(f"{PATH}/pause", headers=BEARER)]
    pauses.error = None
    replies.append(await api.post(f"{PATH}/resume", headers=BEARER))
    for reply in replies:
        assert JWT not in await reply.text()
        assert JWT not in str(reply.headers)
    assert JWT not in caplog.text


def test_access_log_shows_the_monitor_not_a_token() -> None:
    assert redact_path(f"{PATH}/pause") == f"{PATH}/pause"
    token_named = "/api/v1/namespaces/ops/heartbeatmonitors/" + "a" * 43 + "/pause"
    assert "a" * 43 not in redact_path(token_named)
