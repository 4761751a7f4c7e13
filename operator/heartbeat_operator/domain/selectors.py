"""Kubernetes label selectors in their string form, parsed and matched without a cluster.

``--auto-wire-namespace-selector`` (issue 12, item 5) takes the selector a user would give
``kubectl get namespaces -l``: ``team in (a,b)``, ``heartbeat.dev/monitor-cronjobs=true,
!legacy``. The operator matches it against the Namespaces it watches itself (one watch
of every Namespace, never a LIST per CronJob), so this module follows the API server's
own parser (k8s.io/apimachinery ``labels.Parse``) for what it accepts and what matches:

- ``key=value``, ``key==value``: the label is set to that value;
- ``key!=value``: the label is unset or set to something else;
- ``key in (a,b)``: set to one of them; ``key notin (a,b)``: unset or set to none of them;
- ``key``: the label is set (to anything); ``!key``: it is unset;
- ``key>3``, ``key<3``: set to an integer greater or less than that;
- requirements separated by commas must all hold.

An empty selector matches every label set (as the API server's does); the setting treats
an empty one as "off" before it gets here.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Literal

__all__ = ["Requirement", "Selector", "SelectorError", "parse_selector"]

Operator = Literal["=", "!=", "in", "notin", "exists", "!", ">", "<"]

# Qualified names and label values, as the API server validates them
# (k8s.io/apimachinery/pkg/util/validation): a name of at most 63 characters with an
# optional DNS-subdomain prefix of at most 253.
_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_INTEGER = re.compile(r"^[+-]?[0-9]+$")
# Tokens: the operators and punctuation of the grammar, else a run of anything else.
_TOKEN = re.compile(r"\s*(==|!=|=|!|\(|\)|,|>|<|[^\s=!(),<>]+)")


class SelectorError(ValueError):
    """The text is not a label selector; the message is one sentence saying why."""


@dataclasses.dataclass(frozen=True)
class Requirement:
    """One comma-separated part of a selector."""

    key: str
    operator: Operator
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator == "exists":
            return present
        if self.operator == "!":
            return not present
        if self.operator in ("=", "in"):
            return present and value in self.values
        if self.operator in ("!=", "notin"):
            return not present or value not in self.values
        # ">" and "<": both sides integers (a label that is not one never matches).
        if value is None or not _INTEGER.match(value):
            return False
        (bound,) = self.values
        return int(value) > int(bound) if self.operator == ">" else int(value) < int(bound)


@dataclasses.dataclass(frozen=True)
class Selector:
    """A parsed label selector: every requirement must hold."""

    text: str
    requirements: tuple[Requirement, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        return self.text


def parse_selector(text: str) -> Selector:
    """Parse ``text`` as the API server would, or raise ``SelectorError``."""
    tokens = _tokens(text)
    requirements: list[Requirement] = []
    position = 0
    while position < len(tokens):
        requirement, position = _requirement(tokens, position)
        requirements.append(requirement)
        if position < len(tokens):
            if tokens[position] != ",":
                raise SelectorError(
                    f"expected ',' between requirements, found {tokens[position]!r}"
                )
            position += 1
            if position == len(tokens):
                raise SelectorError("a requirement must follow the last ','")
    return Selector(text.strip(), tuple(requirements))


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None:  # pragma: no cover - every non-space character starts a token
            raise SelectorError(f"cannot read {text[position:]!r}")
        out.append(match.group(1))
        position = match.end()
    return out


_PUNCTUATION = {"==", "!=", "=", "!", "(", ")", ",", ">", "<"}


def _requirement(tokens: list[str], position: int) -> tuple[Requirement, int]:
    if tokens[position] == "!":
        key = _key(tokens, position + 1)
        position += 2
        if position < len(tokens) and tokens[position] != ",":
            raise SelectorError(f"'!{key}' takes no operator or value, found {tokens[position]!r}")
        return Requirement(key, "!"), position
    key = _key(tokens, position)
    position += 1
    if position == len(tokens) or tokens[position] == ",":
        return Requirement(key, "exists"), position
    operator = tokens[position]
    position += 1
    if operator in ("=", "==", "!="):
        value, position = _single_value(tokens, position, key, operator)
        return Requirement(key, "!=" if operator == "!=" else "=", frozenset({value})), position
    if operator in (">", "<"):
        value, position = _single_value(tokens, position, key, operator)
        if not _INTEGER.match(value):
            raise SelectorError(f"'{key} {operator}' needs a whole number, not {value!r}")
        return Requirement(key, ">" if operator == ">" else "<", frozenset({value})), position
    if operator in ("in", "notin"):
        values, position = _value_set(tokens, position, key, operator)
        return Requirement(key, "in" if operator == "in" else "notin", values), position
    raise SelectorError(
        f"expected an operator (=, ==, !=, in, notin, >, <) or ',' after {key!r}, "
        f"found {operator!r}"
    )


def _key(tokens: list[str], position: int) -> str:
    if position >= len(tokens) or tokens[position] in _PUNCTUATION:
        found = "the end" if position >= len(tokens) else repr(tokens[position])
        raise SelectorError(f"expected a label key, found {found}")
    key = tokens[position]
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _SUBDOMAIN.match(prefix)):
        raise SelectorError(f"label key {key!r} has an invalid prefix (a DNS subdomain)")
    if len(name) > 63 or not _NAME.match(name):
        raise SelectorError(
            f"label key {key!r} is not a valid name (at most 63 letters, digits, '-', '_' "
            "or '.', starting and ending with a letter or digit)"
        )
    return key


def _value(word: str) -> str:
    if len(word) > 63 or not _NAME.match(word):
        raise SelectorError(
            f"label value {word!r} is not valid (at most 63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit)"
        )
    return word


def _single_value(tokens: list[str], position: int, key: str, operator: str) -> tuple[str, int]:
    if position == len(tokens) or tokens[position] == ",":
        if operator in (">", "<"):
            raise SelectorError(f"'{key} {operator}' needs a value")
        return "", position  # "key=" selects the empty value, as the API server's does
    word = tokens[position]
    if word in _PUNCTUATION:
        raise SelectorError(f"expected a value after '{key} {operator}', found {word!r}")
    return _value(word), position + 1


def _value_set(
    tokens: list[str], position: int, key: str, operator: str
) -> tuple[frozenset[str], int]:
    if position == len(tokens) or tokens[position] != "(":
        raise SelectorError(f"'{key} {operator}' needs a parenthesised list, like (a,b)")
    position += 1
    values: set[str] = set()
    expect_value = True
    while True:
        if position == len(tokens):
            raise SelectorError(f"the list after '{key} {operator}' lacks its closing ')'")
        word = tokens[position]
        position += 1
        if word == ")":
            if expect_value and values:
                values.add("")  # "(a,)": an empty value, as the API server reads it
            break
        if word == ",":
            if expect_value:
                values.add("")
            expect_value = True
            continue
        if not expect_value:
            raise SelectorError(f"expected ',' or ')' in the list after '{key} {operator}'")
        if word in _PUNCTUATION:
            raise SelectorError(f"expected a value in the list after '{key} {operator}'")
        values.add(_value(word))
        expect_value = False
    if not values:
        raise SelectorError(f"the list after '{key} {operator}' must name at least one value")
    return frozenset(values), position
