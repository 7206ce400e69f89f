# -*- test-case-name: tests.test_kubernetes_selector -*-
"""
Kubernetes label selectors, as the C{labels} and C{namespace_labels} stanza
options take them: apimachinery's grammar (k8s.io/apimachinery/pkg/labels,
C{labels.Parse}) read into L{Requirement}s, written back as the canonical
string the API server's C{labelSelector} takes, and matched against an
object's labels.  Pure; a mistake is a C{ValueError} saying what is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Mapping

# Label-selector operators, as Requirement.operator holds them ("==" is read as "=").
EQUALS, NOT_EQUALS, IN, NOT_IN, EXISTS, DOES_NOT_EXIST = "=", "!=", "in", "notin", "exists", "!"

_IDENTIFIER, _END = "identifier", "end of string"
_SELECTOR_TOKEN = re.compile(r"[ \t\r\n]*(?:(?P<symbol>!=|==|[=!(),<>])|(?P<word>[^ \t\r\n=!(),<>]+))?")
_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_NAME_RULE = (
    "alphanumeric characters, '-', '_' or '.', starting and ending with an alphanumeric character"
)


@dataclass(frozen=True)
class Requirement:
    """One clause of a label selector: a label C{key}, an operator, and the values it compares with."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether an object with C{labels} satisfies this clause."""
        if self.operator == EXISTS:
            return self.key in labels
        if self.operator == DOES_NOT_EXIST:
            return self.key not in labels
        value = labels.get(self.key)
        if self.operator in (EQUALS, IN):
            return value is not None and value in self.values
        return value is None or value not in self.values

    def __str__(self) -> str:
        if self.operator == EXISTS:
            return self.key
        if self.operator == DOES_NOT_EXIST:
            return "!" + self.key
        if self.operator in (IN, NOT_IN):
            return f"{self.key} {self.operator} ({','.join(self.values)})"
        return f"{self.key}{self.operator}{self.values[0]}"


def parse_label_selector(text: str) -> tuple[Requirement, ...]:
    """The clauses of Kubernetes label selector C{text}, sorted by key; C{ValueError} says what is wrong."""
    requirements = _SelectorParser(text).selector()
    return tuple(sorted(requirements, key=lambda requirement: requirement.key))


def format_label_selector(requirements: Iterable[Requirement]) -> str:
    """C{requirements} as one canonical selector string, as the API server's C{labelSelector} takes it."""
    return ",".join(str(requirement) for requirement in requirements)


def label_selector_matches(requirements: Iterable[Requirement], labels: Mapping[str, str]) -> bool:
    """Whether an object with C{labels} satisfies every clause; no clauses select everything."""
    return all(requirement.matches(labels) for requirement in requirements)


def _selector_tokens(text: str) -> list[tuple[str, str]]:
    """C{text} as (kind, literal) pairs, as apimachinery's lexer splits it, ending with the end of string."""
    tokens = []
    position = 0
    while True:
        match = _SELECTOR_TOKEN.match(text, position)
        position = match.end()
        if match["symbol"]:
            tokens.append((match["symbol"], match["symbol"]))
        elif match["word"]:
            word = match["word"]
            tokens.append((word if word in (IN, NOT_IN) else _IDENTIFIER, word))
        else:
            tokens.append((_END, ""))
            return tokens


class _SelectorParser:
    """apimachinery's label-selector grammar (labels.Parse), less the C{<} and C{>} that CoreDNS refuses."""

    def __init__(self, text: str) -> None:
        self.tokens = _selector_tokens(text)
        self.position = 0

    def peek(self, values: bool = True) -> tuple[str, str]:
        # Where a value may stand, "in" and "notin" are values, not operators.
        kind, literal = self.tokens[self.position]
        return (_IDENTIFIER if values and kind in (IN, NOT_IN) else kind), literal

    def take(self, values: bool = True) -> tuple[str, str]:
        token = self.peek(values)
        self.position = min(self.position + 1, len(self.tokens) - 1)
        return token

    def selector(self) -> list[Requirement]:
        kind, literal = self.peek()
        if kind == _END:
            return []
        requirements = []
        expected = "!, identifier, or 'end of string'"
        while True:
            if kind not in (_IDENTIFIER, "!"):
                raise ValueError(f"found {literal!r}, expected: {expected}")
            requirements.append(self.requirement())
            kind, literal = self.take()
            if kind == _END:
                return requirements
            if kind != ",":
                raise ValueError(f"found {literal!r}, expected: ',' or 'end of string'")
            kind, literal = self.peek()
            expected = "identifier after ','"

    def requirement(self) -> Requirement:
        operator = None
        kind, key = self.take()
        if kind == "!":
            operator = DOES_NOT_EXIST
            kind, key = self.take()
        if kind != _IDENTIFIER:
            raise ValueError(f"found {key!r}, expected: identifier")
        _check_label_key(key)
        if operator is None and self.peek()[0] in (_END, ","):
            operator = EXISTS
        if operator is not None:
            return Requirement(key, operator)
        operator = self.operator()
        values = self.value_set() if operator in (IN, NOT_IN) else (self.exact_value(),)
        for value in values:
            _check_label_value(key, value)
        return Requirement(key, operator, values)

    def operator(self) -> str:
        kind, literal = self.take(values=False)
        if kind in ("<", ">"):
            # labels.Parse knows them, but a LabelSelector (so CoreDNS) does not.
            raise ValueError(f"{literal!r} isn't supported in label selectors")
        if kind not in (IN, NOT_IN, "=", "==", "!="):
            raise ValueError(f"found {literal!r}, expected: in, notin, =, ==, !=")
        return EQUALS if kind == "==" else kind

    def value_set(self) -> tuple[str, ...]:
        """C{(a,b,...)}: values may be empty (C{()}, C{(a,)}, C{(a,,b)} hold C{""})."""
        kind, literal = self.take()
        if kind != "(":
            raise ValueError(f"found {literal!r}, expected: '('")
        values = set()
        while True:
            kind, literal = self.peek()
            if kind == _IDENTIFIER:
                values.add(literal)
                self.take()
                kind, literal = self.peek()
            else:
                values.add("")
            self.take()
            if kind == ")":
                return tuple(sorted(values))
            if kind != ",":
                raise ValueError(f"found {literal!r}, expected: ',', ')' or identifier")

    def exact_value(self) -> str:
        kind, literal = self.peek()
        if kind in (_END, ","):
            return ""
        self.take()
        if kind != _IDENTIFIER:
            raise ValueError(f"found {literal!r}, expected: identifier")
        return literal


def _check_label_key(key: str) -> None:
    """Refuse a key that is not C{[DNS-subdomain/]name}, as apimachinery's IsLabelKey does."""
    prefix, slash, name = key.rpartition("/")
    if "/" in prefix:
        problem = "expected a name with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
    elif slash and not prefix:
        problem = "prefix part must be non-empty"
    elif len(prefix) > 253:
        problem = "prefix part must be no more than 253 characters"
    elif prefix and not _DNS_SUBDOMAIN.fullmatch(prefix):
        problem = (
            "prefix part must be a lowercase RFC 1123 subdomain: lower case alphanumeric characters, "
            "'-' or '.', starting and ending with an alphanumeric character (e.g. 'example.com')"
        )
    elif not name:
        problem = "name part must be non-empty"
    elif len(name) > 63:
        problem = "name part must be no more than 63 characters"
    elif not _LABEL_NAME.fullmatch(name):
        problem = f"name part must consist of {_LABEL_NAME_RULE} (e.g. 'MyName' or 'my.name' or '123-abc')"
    else:
        return
    raise ValueError(f"invalid label key {key!r}: {problem}")


def _check_label_value(key: str, value: str) -> None:
    """Refuse a value that is not empty or a label name of at most 63 characters."""
    if len(value) > 63:
        problem = "must be no more than 63 characters"
    elif value and not _LABEL_NAME.fullmatch(value):
        problem = f"must be empty or consist of {_LABEL_NAME_RULE}"
    else:
        return
    raise ValueError(f"invalid value {value!r} for label {key!r}: {problem}")
