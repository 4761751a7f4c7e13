"""Tokens taken out of ping bodies and Job output before they are stored or quoted
(issue 18 item 5)."""

from __future__ import annotations

from heartbeat_operator.domain.tokens import REDACTED, redact_tokens, token_hash

OWN = "Own_token-" + "a" * 33
OTHER = "0ther-token_" + "Z9" * 16


def test_the_monitors_own_token_is_redacted_wherever_it_is() -> None:
    text = f"TOKEN={OWN}\nx{OWN}y and {OWN}"
    assert redact_tokens(text, token=OWN) == f"TOKEN={REDACTED}\nx{REDACTED}y and {REDACTED}"


def test_any_ping_url_loses_its_token_segment() -> None:
    text = (
        f"> POST /ping/{OTHER}/fail?rid=7 HTTP/1.1\n"
        f"--2026-12-04--  https://hb.example.com/hb/{OTHER}/3\n"
        f"curl -X POST http://h/v1/heartbeats/{OTHER}/ping\n"
        f"redirect=%2Fping%2F{OTHER}\n"
    )
    out = redact_tokens(text)
    assert OTHER not in out
    assert out == (
        f"> POST /ping/{REDACTED}/fail?rid=7 HTTP/1.1\n"
        f"--2026-12-04--  https://hb.example.com/hb/{REDACTED}/3\n"
        f"curl -X POST http://h/v1/heartbeats/{REDACTED}/ping\n"
        f"redirect=%2Fping%2F{REDACTED}\n"
    )


def test_a_token_known_only_by_its_hash_is_redacted_as_a_standalone_run() -> None:
    text = f"export TOKEN='{OWN}'; sha={'f' * 40}"
    out = redact_tokens(text, hashed=token_hash(OWN))
    assert out == f"export TOKEN='{REDACTED}'; sha={'f' * 40}"


def test_other_output_is_kept_as_it_is() -> None:
    text = f"/ping/short ok; commit {'0123456789abcdef' * 3}; /pingx/{'a' * 40}; ünïcode ✓"
    assert redact_tokens(text, token=OWN, hashed=token_hash(OWN)) == text


def test_a_token_that_is_not_token_shaped_is_not_searched_for() -> None:
    # Tokens are 32-128 URL-safe characters (DESIGN 9.9); anything shorter never reaches
    # a body, and replacing "ok" everywhere would ruin the output.
    assert redact_tokens("ok ok", token="ok") == "ok ok"
