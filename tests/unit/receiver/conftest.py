"""Fixtures for the receiver: the real app, in-process, with a fake ``PingRecorder``.

The recorder is our own seam (recording.py), so faking it is allowed; nothing inside
aiohttp is mocked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from heartbeat_operator.domain.inputs import Ping
from heartbeat_operator.receiver.app import make_ping_app
from heartbeat_operator.receiver.health import Health
from heartbeat_operator.recording import UnknownToken
from heartbeat_operator.settings import ReceiverSettings, Settings

#: A token of the shape every monitor's token has (43 URL-safe characters).
TOKEN = "tok_" + "A" * 20 + "b-c_d" * 3 + "9999"
#: Well-formed, but no monitor has it.
OTHER_TOKEN = "unknownTokenXYZ_" + "z" * 30


@dataclass
class FakeRecorder:
    """Records into a list; ``error`` makes every call raise; ``gate`` holds calls."""

    tokens: set[str] = field(default_factory=lambda: {TOKEN})
    pings: list[tuple[str, Ping]] = field(default_factory=list)
    calls: int = 0
    error: Exception | None = None
    gate: asyncio.Event | None = None
    waiting: int = 0

    async def record(self, token: str, ping: Ping) -> None:
        self.calls += 1
        if self.gate is not None:
            self.waiting += 1
            try:
                await self.gate.wait()
            finally:
                self.waiting -= 1
        if self.error is not None:
            raise self.error
        if token not in self.tokens:
            raise UnknownToken("no monitor has this token")
        self.pings.append((token, ping))


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 29, 0, 59, 30, 250000, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Observed:
    calls: list[tuple[str, int, float]] = field(default_factory=list)

    def __call__(self, route_class: str, code: int, seconds: float) -> None:
        self.calls.append((route_class, code, seconds))


@pytest.fixture
def recorder() -> FakeRecorder:
    return FakeRecorder()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def observed() -> Observed:
    return Observed()


@pytest.fixture
def health() -> Health:
    return Health()


def settings_with(**receiver: Any) -> Settings:
    return replace(Settings(), receiver=replace(ReceiverSettings(), **receiver))


AppFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture
def make_client(
    aiohttp_client: Callable[
        [web.Application], Awaitable[TestClient[web.Request, web.Application]]
    ],
    recorder: FakeRecorder,
    clock: FakeClock,
    observed: Observed,
    health: Health,
) -> AppFactory:
    async def make(**receiver: object) -> TestClient[web.Request, web.Application]:
        app = make_ping_app(
            settings_with(**receiver), recorder, health, observer=observed, clock=clock
        )
        return await aiohttp_client(app)

    return make


@pytest.fixture
async def client(make_client: AppFactory) -> TestClient[web.Request, web.Application]:
    return await make_client()
