"""Issue 18, scenario 5: a token planted in a ping body is never shown (DESIGN 9.13).

A job's output often holds its own ping URL: a ``curl -v`` trace, an error message quoting
the URL. A ``/fail`` ping (and a ``/log`` ping) whose body holds the monitor's ping URL, its
bare token and a curl trace must not put the token into the Warning Event, ``lastOutput``,
``recentPings`` or any other status field (readable with the ``view`` role, which cannot
read Secrets), nor into the operator's log.
"""

from __future__ import annotations

import contextlib
import json
import socket

import pytest

from tests.faults.harness import SUMMARIES
from tests.integration.operator_process import Monitors, http, isolated
from tests.support.waiting import wait_for


def raw_request(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        with contextlib.suppress(OSError):
            while chunk := sock.recv(4096):
                chunks.append(chunk)
    return b"".join(chunks)


def curl_trace(url: str, token: str) -> str:
    host = url.split("/")[2]
    return "\n".join(
        [
            f"backup failed: disk full; ping {url}/fail",
            f"*   Trying {host}...",
            f"* Connected to {host.split(':')[0]} port {host.split(':')[1]}",
            f"> POST /ping/{token}/fail HTTP/1.1",
            f"> Host: {host}",
            "> User-Agent: curl/8.5.0",
            "> Accept: */*",
            "< HTTP/1.1 200 OK",
            f"curl: (22) The requested URL returned error: 503 for {url}/fail",
            f"retrying with {url}?rid=nightly",
            f"HEARTBEAT_TOKEN={token}",
        ]
    )


@pytest.mark.quick_fault
def test_a_token_planted_in_ping_bodies_is_in_no_event_status_or_log(
    operator_factory, api_client, namespace
):
    monitors = Monitors(api_client, namespace)
    op = operator_factory.start(*isolated(namespace))
    monitors.create("planted", {"period": "1h"})
    url = monitors.url("planted")
    token = url.split("/ping/", 1)[1]
    body = curl_trace(url, token).encode()
    replies = [
        http(url + "/log", method="POST", data=body).status,
        http(url + "/fail", method="POST", data=body).status,
    ]
    assert replies == [200, 200]
    # And in request lines the receiver cannot parse (issue 18 item 6): the token inside a
    # long run of URL-safe characters, and a request line with a stray field.
    padded = http(f"{op.url}/ping/{'x' * 90}{token}{'y' * 90}").status
    assert padded in (400, 404), padded
    raw_request(op.port, f"GET /ping/{token}/fail HTTP/1.1 junk\r\nHost: x\r\n\r\n".encode())
    monitors.wait_state("planted", "Down", timeout=10)
    wait_for(
        lambda: any(e.type == "Warning" for e in monitors.events("planted")),
        timeout=10,
        what="the failure's Warning Event",
    )
    status = monitors.status("planted")
    events = monitors.events("planted")
    # The rest of the body is kept: the check below is not vacuous.
    assert "backup failed" in json.dumps(status.get("lastOutput"))
    places = {
        "Events": json.dumps([e.to_dict() for e in events], default=str),
        "status": json.dumps(status),
        "operator log": op.log_text(),
    }
    leaks = {where: text.count(token) for where, text in places.items()}
    line = (
        f"FAULT planted-token: pings=4 acks={replies.count(200)} events={len(events)} "
        + " ".join(f"token-in-{w.replace(' ', '-')}={n}" for w, n in leaks.items())
    )
    print("\n" + line)
    SUMMARIES.append(line)
    assert not any(leaks.values()), f"{line}\nthe token is shown where it must not be"
