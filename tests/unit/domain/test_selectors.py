"""Label selectors on Namespaces (issue 12, item 5): what the API server's ``-l`` accepts
selects the same Namespaces here, and what it refuses is refused with a sentence."""

from __future__ import annotations

import pytest

from heartbeat_operator.domain.selectors import SelectorError, parse_selector

TEAM_A = {"team": "a", "kubernetes.io/metadata.name": "payments"}
TEAM_C = {"team": "c", "kubernetes.io/metadata.name": "search"}
NO_TEAM = {"kubernetes.io/metadata.name": "default"}


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        # equality: = and == are the same; the label must be set
        ("team=a", TEAM_A, True),
        ("team==a", TEAM_A, True),
        ("team=a", TEAM_C, False),
        ("team=a", NO_TEAM, False),
        ("heartbeat.dev/monitor-cronjobs=true", {"heartbeat.dev/monitor-cronjobs": "true"}, True),
        ("heartbeat.dev/monitor-cronjobs=true", {"heartbeat.dev/monitor-cronjobs": "True"}, False),
        # != also selects namespaces without the label
        ("team!=a", TEAM_A, False),
        ("team!=a", TEAM_C, True),
        ("team!=a", NO_TEAM, True),
        # in: set to one of them
        ("team in (a,b)", TEAM_A, True),
        ("team in (a, b)", TEAM_C, False),
        ("team in (a,b)", NO_TEAM, False),
        # notin: unset, or set to none of them
        ("team notin (a,b)", TEAM_A, False),
        ("team notin (a,b)", TEAM_C, True),
        ("team notin (a,b)", NO_TEAM, True),
        # exists and !exists
        ("team", TEAM_A, True),
        ("team", NO_TEAM, False),
        ("!team", TEAM_A, False),
        ("!team", NO_TEAM, True),
        ("team", {"team": ""}, True),
        # an empty value is a value
        ("team=", {"team": ""}, True),
        ("team=", NO_TEAM, False),
        # integers
        ("tier>1", {"tier": "2"}, True),
        ("tier>1", {"tier": "1"}, False),
        ("tier<2", {"tier": "1"}, True),
        ("tier<2", {"tier": "one"}, False),
        ("tier<2", NO_TEAM, False),
        # every requirement must hold
        ("team in (a,b),!legacy", TEAM_A, True),
        ("team in (a,b),!legacy", {**TEAM_A, "legacy": "yes"}, False),
        ("team=a, kubernetes.io/metadata.name=payments", TEAM_A, True),
        ("team=a,kubernetes.io/metadata.name=search", TEAM_A, False),
        ("  team  =  a  ", TEAM_A, True),
    ],
)
def test_matches_like_the_api_server(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_selector(selector).matches(labels) is expected


def test_keeps_its_text_for_messages() -> None:
    assert str(parse_selector(" team in (a,b) ")) == "team in (a,b)"


@pytest.mark.parametrize(
    ("selector", "complaint"),
    [
        ("team in (a", "closing ')'"),
        ("team in a,b", "parenthesised list"),
        ("team in ()", "at least one value"),
        ("team notin (a b)", "expected ',' or ')'"),
        ("team=a,", "must follow the last ','"),
        (",team", "expected a label key"),
        ("team=a b", "expected ',' between requirements"),
        ("team is a", "expected an operator"),
        ("!team=a", "takes no operator"),
        ("!", "expected a label key, found the end"),
        ("team=(a)", "expected a value"),
        ("-team=a", "not a valid name"),
        ("Example.COM/team=a", "invalid prefix"),
        ("/team=a", "invalid prefix"),
        ("team=a*", "label value 'a*' is not valid"),
        ("team=" + "a" * 64, "is not valid"),
        ("tier>high", "whole number"),
        ("tier<", "needs a value"),
    ],
)
def test_refuses_what_the_api_server_refuses_with_a_sentence(selector: str, complaint: str) -> None:
    with pytest.raises(SelectorError) as caught:
        parse_selector(selector)
    message = str(caught.value)
    assert complaint in message
    assert "\n" not in message
