"""The reads behind the causes (issue 12): a Job's Events and a container's log tail.

The real ``KubeClient`` against a tiny HTTP server standing in for the API server's
``events`` list and ``pods/log`` (``tailLines`` then ``limitBytes``, as the kubelet serves
them), like ``test_client.py``: nothing inside the HTTP library is faked.
"""

from __future__ import annotations

from typing import Any

import kopf
import pytest
from aiohttp import web

from heartbeat_operator.engine.api import ApiError
from heartbeat_operator.engine.podreads import (
    LOG_FETCH_CAP,
    list_job_events,
    read_log_tail,
    tail_text,
)
from heartbeat_operator.kube.client import KubeClient

JOB_UID = "5d0b3a3e-8c4f-4b8e-a1f2-0c9d7e6b5a41"


def status(code: int, reason: str, message: str) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
            "reason": reason, "code": code}  # fmt: skip
    return web.json_response(body, status=code)


class FakeApiServer:
    """Serves one namespace's Events and the logs of its Pods' containers."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.logs: dict[tuple[str, str, bool], bytes] = {}
        self.forbidden = False
        self.broken = False
        self.log_queries: list[dict[str, str]] = []

    async def list_events(self, request: web.Request) -> web.Response:
        if self.forbidden:
            return status(403, "Forbidden", 'events is forbidden: User "x" cannot list')
        selector = request.query.get("fieldSelector", "")
        items = [
            e for e in self.events if selector == f"involvedObject.uid={e['involvedObject']['uid']}"
        ]
        return web.json_response({"kind": "EventList", "apiVersion": "v1", "items": items})

    async def read_log(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        self.log_queries.append(query)
        if self.broken:
            return status(500, "InternalError", "an error on the server")
        if self.forbidden:
            return status(403, "Forbidden", 'pods "x" is forbidden: cannot get pods/log')
        pod = request.match_info["pod"]
        key = (pod, query.get("container", ""), query.get("previous") == "true")
        if key not in self.logs:
            if not any(k[0] == pod for k in self.logs):
                return status(404, "NotFound", f'pods "{pod}" not found')
            return status(400, "BadRequest", f'previous terminated container "{key[1]}" not found')
        data = self.logs[key]
        if "tailLines" in query:
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-int(query["tailLines"]) :])
        if "limitBytes" in query:
            data = data[: int(query["limitBytes"])]
        return web.Response(body=data, content_type="text/plain")


@pytest.fixture
async def api(aiohttp_server):
    fake = FakeApiServer()
    app = web.Application()
    app.router.add_get("/api/v1/namespaces/backups/events", fake.list_events)
    app.router.add_get("/api/v1/namespaces/backups/pods/{pod}/log", fake.read_log)
    server = await aiohttp_server(app)
    client = KubeClient(kopf.ConnectionInfo(server=str(server.make_url("")), token="t"))
    try:
        yield fake, client
    finally:
        await client.close()


def event(uid: str, reason: str) -> dict[str, Any]:
    return {"metadata": {"name": f"e-{reason}"}, "reason": reason,
            "involvedObject": {"kind": "Job", "uid": uid}}  # fmt: skip


async def test_list_job_events_selects_the_jobs_events(api):
    fake, client = api
    fake.events = [event(JOB_UID, "FailedCreate"), event("other-uid", "SuccessfulCreate")]
    assert [e["reason"] for e in await list_job_events(client, "backups", JOB_UID)] == [
        "FailedCreate"
    ]
    fake.forbidden = True
    with pytest.raises(ApiError) as refused:
        await list_job_events(client, "backups", JOB_UID)
    assert refused.value.status == 403


async def test_a_short_log_comes_back_whole(api):
    fake, client = api
    fake.logs[("p", "main", False)] = b"starting backup\nerror: disk full\n"
    assert await read_log_tail(client, "backups", "p", "main") == (
        "starting backup\nerror: disk full\n"
    )
    assert fake.log_queries[-1]["container"] == "main"
    assert "previous" not in fake.log_queries[-1]
    assert len(fake.log_queries) == 1


async def test_typical_lines_take_one_read(api):
    fake, client = api
    line = b"2026-12-04T02:04:51Z INFO copied s3://backups/2026-12-04/part-%06d.tar (4.0 MiB)\n"
    fake.logs[("p", "main", False)] = b"".join(line % n for n in range(50_000))
    tail = await read_log_tail(client, "backups", "p", "main")
    assert tail is not None and tail.endswith("part-049999.tar (4.0 MiB)\n")
    assert len(tail.encode()) == 10_000
    assert len(fake.log_queries) == 1


async def test_a_long_log_gives_its_last_ten_thousand_bytes(api):
    fake, client = api
    log = b"".join(b"line %06d of the backup job\n" % n for n in range(100_000))
    fake.logs[("p", "main", False)] = log
    tail = await read_log_tail(client, "backups", "p", "main")
    assert tail is not None
    assert len(tail.encode()) == 10_000
    assert log.endswith(tail.encode())
    assert tail.endswith("line 099999 of the backup job\n")
    # Short lines: the first read held too few, the second enough.
    assert len(fake.log_queries) == 2


async def test_long_lines_still_give_the_end_of_the_log(api):
    """250 lines of 2 KB exceed one read's cap: limitBytes returns the start of those
    lines, so a second read asks for fewer."""
    fake, client = api
    log = b"".join((b"%06d " % n) + b"x" * 2000 + b"\n" for n in range(20_000))
    fake.logs[("p", "main", False)] = log
    tail = await read_log_tail(client, "backups", "p", "main")
    assert tail is not None and log.endswith(tail.encode())
    assert len(tail.encode()) == 10_000
    assert len(fake.log_queries) == 2
    assert all(int(q["limitBytes"]) == LOG_FETCH_CAP for q in fake.log_queries)


async def test_the_cut_never_splits_a_character(api):
    fake, client = api
    fake.logs[("p", "main", False)] = (
        "Sicherung fehlgeschlagen: Größe über Limit ✗\n".encode() * 1000
    )
    tail = await read_log_tail(client, "backups", "p", "main")
    assert tail is not None
    assert "\ufffd" not in tail
    assert 9_996 < len(tail.encode()) <= 10_000
    assert tail.endswith("über Limit ✗\n")


def test_tail_text_cuts_on_a_character_boundary():
    data = "ab€".encode()  # € is 3 bytes
    assert tail_text(data, 2) == ""  # two continuation bytes: nothing whole
    assert tail_text(data, 3) == "€"
    assert tail_text(data, 4) == "b€"
    assert tail_text(b"ok \xff\n", 10) == "ok \ufffd\n"  # not UTF-8: replaced, not dropped


async def test_the_previous_runs_log(api):
    fake, client = api
    fake.logs[("p", "main", True)] = b"Killed\n"
    assert await read_log_tail(client, "backups", "p", "main", previous=True) == "Killed\n"
    assert fake.log_queries[-1]["previous"] == "true"


async def test_an_unreadable_log_is_none_and_a_server_error_raises(api):
    fake, client = api
    fake.logs[("p", "main", False)] = b"x\n"
    assert await read_log_tail(client, "backups", "gone", "main") is None  # 404
    assert await read_log_tail(client, "backups", "p", "main", previous=True) is None  # 400
    fake.forbidden = True
    assert await read_log_tail(client, "backups", "p", "main") is None  # 403
    fake.broken = True
    with pytest.raises(ApiError) as failed:
        await read_log_tail(client, "backups", "p", "main")
    assert failed.value.status == 500


def test_a_tail_never_starts_with_part_of_a_token():
    # Issue 18 item 5: a token cut in half by the tail could no longer be redacted.
    token = "T0ken_" + "x" * 37
    data = f"curl -v https://hb/ping/{token}\nfailed\n".encode()
    cut_inside = len(data) - len("failed\n") - 1 - 20  # 20 characters of the token kept
    assert tail_text(data, len(data) - cut_inside) == "\nfailed\n"
    assert tail_text(b"x ab cd", 4) == "b cd"  # a short word cut stays as it is
