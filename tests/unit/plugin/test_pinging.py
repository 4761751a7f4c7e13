"""The ``run`` wrapper's pure parts (issue 16 item 1); the retries against a receiver
that refuses connections are in tests/integration/test_kubectl_plugin.py."""

from __future__ import annotations

from heartbeat_operator.plugin import pinging


def test_ping_urls_follow_the_receivers_routes() -> None:
    base = "https://hb.example.com/ping/TOKEN"
    assert pinging.ping_url(base) == base
    assert pinging.ping_url(base + "/", "start", rid="r 1") == base + "/start?rid=r+1"
    assert pinging.ping_url(base, "fail") == base + "/fail"
    assert pinging.ping_url(base, "log") == base + "/log"
    assert pinging.ping_url(base, exit_code=7, rid="abc") == base + "/7?rid=abc"


def test_the_tail_keeps_the_last_bytes_and_never_starts_inside_a_character() -> None:
    tail = pinging._Tail(10)
    tail.add(b"0123456789abc")
    assert tail.value() == b"3456789abc"
    tail = pinging._Tail(4)
    tail.add("xé€".encode())  # x, 2 bytes, 3 bytes: the last 4 bytes cut é in two
    assert tail.value() == "€".encode()
    many = pinging._Tail(pinging.OUTPUT_TAIL_BYTES)
    for i in range(5000):
        many.add(f"line {i:04d}\n".encode())
    assert many.value().endswith(b"line 4999\n") and len(many.value()) == 10_000


def test_failures_are_told_without_the_url() -> None:
    refused = pinging.Outcome(False, 0, "connection refused", 5)
    assert pinging.describe_outcome("job: start", refused) == (
        "job: start ping failed after 5 attempts: connection refused"
    )
    gone = pinging.Outcome(False, 404, "not found", 1)
    assert "no such token (404" in pinging.describe_outcome("job: success", gone)
