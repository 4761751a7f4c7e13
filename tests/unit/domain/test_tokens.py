import hashlib
import re

from heartbeat_operator.domain.tokens import is_valid_user_token, new_token, token_hash


def test_new_tokens_are_256_bit_url_safe_and_distinct() -> None:
    tokens = {new_token() for _ in range(50)}
    assert len(tokens) == 50
    for t in tokens:
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", t)
        assert is_valid_user_token(t)


def test_hash_is_prefixed_sha256() -> None:
    assert token_hash("abc") == "sha256:" + hashlib.sha256(b"abc").hexdigest()


def test_user_token_rules() -> None:
    assert is_valid_user_token("a" * 32)
    assert is_valid_user_token("A-z_9" * 25 + "abc")  # 128
    assert not is_valid_user_token("a" * 31)
    assert not is_valid_user_token("a" * 129)
    assert not is_valid_user_token("a" * 31 + "!")
    assert not is_valid_user_token("a" * 32 + "\n")
