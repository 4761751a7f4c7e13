"""Typed application state (``web.AppKey``): what the views and middlewares read.

Everything a request needs is put on the application by the factories in ``app.py``;
there are no module-level singletons.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from aiohttp import web

from heartbeat_operator.pausing import PauseControl
from heartbeat_operator.receiver.connections import ConnectionGuards
from heartbeat_operator.receiver.health import Health
from heartbeat_operator.recording import PingRecorder
from heartbeat_operator.settings import ReceiverSettings

#: ``(route_class, code, seconds)``: called once per answered request; route classes are
#: ``ping | hb | v1 | api | probe | other`` (DESIGN 9.14). Supplied by ``metrics.Metrics.observe``.
RequestObserver = Callable[[str, int, float], None]

#: The wall clock a ping's time is read from (aware, UTC). Tests pass their own.
Clock = Callable[[], datetime]

RECEIVER_SETTINGS: web.AppKey[ReceiverSettings] = web.AppKey("receiver_settings")
RECORDER: web.AppKey[PingRecorder] = web.AppKey("recorder")
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
HEALTH: web.AppKey[Health] = web.AppKey("health")
#: Absent when nobody observes (e.g. unit tests that do not care about metrics).
OBSERVER: web.AppKey[RequestObserver] = web.AppKey("observer")
#: The listener's connection guards (header timeout, cap), when served by ``serving.serve``.
GUARDS: web.AppKey[ConnectionGuards] = web.AppKey("guards")
#: The pause API's Kubernetes side (issue 16 item 2); absent: the API is off (404).
PAUSES: web.AppKey[PauseControl] = web.AppKey("pauses")
