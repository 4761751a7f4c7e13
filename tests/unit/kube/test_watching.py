"""Our copy of kopf's namespace patterns keeps kopf's semantics (issue 14 item 6).

``kube.watching`` may not import kopf's private ``_cogs``; the test may, to notice when a
kopf upgrade changes what a pattern watches and our own initial list would then differ.
"""

from __future__ import annotations

import pytest
from kopf._cogs.structs import references

from heartbeat_operator.kube.watching import is_pattern, match_namespace

PATTERNS = [
    "default",
    "team-*",
    "team-?",
    "!kube-*",
    "myapp-*, !*-pr-*, *pr-123",
    "!*-pr-*, *pr-123",
    "a,b",
    " a , !b ",
    "*",
]
NAMES = [
    "default",
    "team-a",
    "team-ab",
    "kube-system",
    "myapp-test",
    "myapp-pr-123",
    "myapp-pr-456",
    "otherapp-pr-123",
    "a",
    "b",
    "c",
]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_patterns_match_as_kopf_matches_them(pattern: str) -> None:
    for name in NAMES:
        expected = references.match_namespace(references.NamespaceName(name), pattern)
        assert match_namespace(name, pattern) == expected, (name, pattern)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_a_plain_name_is_what_kopf_watches_directly(pattern: str) -> None:
    direct = references.select_specific_namespaces([pattern])
    assert (not is_pattern(pattern)) == bool(direct)
