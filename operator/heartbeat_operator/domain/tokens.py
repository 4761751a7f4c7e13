"""Ping tokens (DESIGN section 3 and 9.9): generation, hashing, validation of users' tokens.

``new_token`` is the domain's only source of randomness (not a clock, so purity holds).
"""

from __future__ import annotations

import hashlib
import re
import secrets

_USER_TOKEN = re.compile(r"[A-Za-z0-9_-]{32,128}")


def new_token() -> str:
    """A fresh token: 256 bits from ``secrets``, URL-safe (43 characters)."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """``"sha256:<64 hex>"`` of the token: the only form that ever reaches status."""
    return "sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()


def is_valid_user_token(token: str) -> bool:
    """Whether a user-supplied token matches ``^[A-Za-z0-9_-]{32,128}$`` (else ``WeakToken``)."""
    return isinstance(token, str) and _USER_TOKEN.fullmatch(token) is not None
