"""Ping paths: parsing and redaction, including properties over arbitrary tokens."""

from __future__ import annotations

import secrets

import pytest
from hypothesis import given
from hypothesis import strategies as st

from heartbeat_operator.receiver.paths import (
    PathError,
    parse_ping_path,
    parse_run_id,
    redact_path,
    redact_text,
    route_class,
)

tokens = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-",
    min_size=32,
    max_size=128,
)
suffixes = st.sampled_from(["", "/", "/start", "/fail", "/log", "/0", "/255", "/256", "/x/y"])


@given(token=tokens, prefix=st.sampled_from(["/ping/", "/hb/", "/v1/heartbeats/"]), rest=suffixes)
def test_redacted_path_never_holds_the_token(token: str, prefix: str, rest: str) -> None:
    shown = redact_path(prefix + token + rest)
    assert token not in shown
    assert shown.startswith(prefix + "<redacted>")


@given(token=tokens, before=st.text(max_size=40), after=st.text(max_size=40))
def test_redacted_text_never_holds_the_token(token: str, before: str, after: str) -> None:
    assert token not in redact_text(f"{before} /ping/{token} {after}")
    assert token not in redact_text(f"{before}'{token}'{after}")


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/ping/T", "/ping/<redacted>"),
        ("/ping/T/start", "/ping/<redacted>/start"),
        ("/hb/T/42", "/hb/<redacted>/42"),
        ("/ping/T/whatever/else", "/ping/<redacted>/…"),
        ("/v1/heartbeats/T/ping", "/v1/heartbeats/<redacted>/ping"),
        ("/v1/heartbeats/T/other", "/v1/heartbeats/<redacted>/…"),
        ("/healthz", "/healthz"),
        ("/metrics", "/metrics"),
        ("/other/thing/deeper", "/other/<redacted>"),
        ("/ping/T/start?rid=1", "/ping/<redacted>/start"),
    ],
)
def test_redact_path_examples(path: str, shown: str) -> None:
    assert redact_path(path) == shown


def test_real_tokens_are_redacted_from_text() -> None:
    token = secrets.token_urlsafe(32)
    assert token not in redact_text(f"KeyError: {token!r}")


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/ping/x", "ping"),
        ("/ping", "ping"),
        ("/hb/x/start", "hb"),
        ("/v1/heartbeats/x/ping", "v1"),
        ("/healthz", "probe"),
        ("/readyz", "probe"),
        ("/metrics", "other"),
        ("/pingx", "other"),
    ],
)
def test_route_class(path: str, route: str) -> None:
    assert route_class(path) == route


@given(code=st.integers(min_value=0, max_value=255))
def test_every_exit_code_parses(code: int) -> None:
    parsed = parse_ping_path("ping", f"tok/{code}")
    # DESIGN 3: 0 success, 1-255 failure, recorded with the code (section 2's example)
    assert (parsed.kind, parsed.exit_code) == ("success" if code == 0 else "fail", code)


@given(code=st.integers().filter(lambda n: not 0 <= n <= 255))
def test_other_numbers_are_rejected(code: int) -> None:
    with pytest.raises(PathError, match="exit code must be 0-255"):
        parse_ping_path("ping", f"tok/{code}")


def test_leading_zeros_within_range_are_exit_codes() -> None:
    assert parse_ping_path("hb", "tok/007").exit_code == 7


@pytest.mark.parametrize("rid", ["a", "A-b_c.d~e", "9" * 64])
def test_run_ids_accepted(rid: str) -> None:
    assert parse_run_id([rid]) == rid


def test_no_run_id_is_none() -> None:
    assert parse_run_id([]) is None
