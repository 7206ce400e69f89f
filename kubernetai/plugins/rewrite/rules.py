# -*- test-case-name: tests.test_rewrite,tests.test_rewrite_rules -*-
"""
What every rewrite rule shares (CoreDNS's rewrite.go, reverter.go): the
question as the rules rewrite it, a rule, the rules applied in order, and
the match kinds (exact, prefix, suffix, substring, regex) that C{ttl},
C{rcode} and C{cname} rules test the question's name with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from kubernetai.chain import PluginError, Request
from kubernetai.goregexp import GoRegexpError, compile_go
from kubernetai.zones import normalize_zone

STOP = "stop"
CONTINUE = "continue"
MAX_REGEX_LENGTH = 10000
# The UDP size of the OPT record a rule adds to a query that had none (miekg/dns's SetEdns0(4096, false)).
ADDED_OPT_SIZE = 4096
MATCH_KINDS = ("exact", "prefix", "suffix", "substring", "regex")


@dataclass
class Question:
    """The query as the rules rewrite it: the name with its final dot, case kept; type and class; the
    options of its OPT record (None: it has none); and the query it came from, for what rules read of it."""

    name: str
    qtype: int
    qclass: int
    options: list[tuple[int, bytes]] | None = None
    payload_size: int = 512
    request: Request | None = field(default=None, compare=False)

    @property
    def lowered(self) -> str:
        """The name as CoreDNS's rules match it (C{state.Name()}): lower case."""
        return self.name.lower()

    def opt(self) -> list[tuple[int, bytes]]:
        """The options of the query's OPT record, one added if it had none (CoreDNS's setupEdns0Opt)."""
        if self.options is None:
            self.options, self.payload_size = [], ADDED_OPT_SIZE
        return self.options


@dataclass(frozen=True)
class Rule:
    """One rewrite line: C{apply} changes a question and gives its response rules, or None when it does not match."""

    mode: str
    apply: Callable[[Question], list[Any] | None]
    text: str
    kind: str = ""


def rewrite_question(rules: list[Rule], question: Question) -> list[Any] | None:
    """Apply C{rules} to C{question} in order as CoreDNS does; the matched rules' response rules, None if none matched."""
    response_rules: list[Any] | None = None
    for rule in rules:
        found = rule.apply(question)
        if found is None:
            continue
        if not is_domain_name(question.name):
            raise PluginError("rewrite", f"invalid name after rewrite: {question.name}")
        response_rules = (response_rules or []) + found
        if rule.mode == STOP:
            break
    return response_rules


def is_domain_name(name: str) -> bool:
    """Whether C{name} (with its final dot) is a domain name as miekg/dns's IsDomainName sees it (no escapes)."""
    if name == ".":
        return True
    labels = name.rstrip(".").split(".") if name.endswith(".") else name.split(".")
    if name.endswith(".."):
        return False
    return all(0 < len(label.encode("latin-1")) <= 63 for label in labels) and len(name.encode("latin-1")) + 1 <= 255


def name_test(kind: str, text: str, rule: str) -> Callable[[str], bool]:
    """Whether a lowered name matches C{text} as match C{kind} says (CoreDNS's ttl and rcode rules)."""
    if kind == "regex":
        pattern = compile_pattern(text, f"in a {rule} rule")
        return lambda name: pattern.search(name) is not None
    normalized = normalize_zone(text)
    if kind == "exact":
        return lambda name: name == normalized
    if kind == "prefix":
        return lambda name: name.startswith(normalized)
    if kind == "suffix":
        return lambda name: name.endswith(normalized)
    return lambda name: normalized in name


def compile_pattern(text: str, where: str) -> re.Pattern:
    """C{text} as a regex, with CoreDNS's errors for one too long or invalid C{where} (C{in a ttl rule})."""
    if len(text) > MAX_REGEX_LENGTH:
        raise ValueError(f"regex pattern too long {where}: {len(text)} > {MAX_REGEX_LENGTH}")
    try:
        return compile_go(text)
    except GoRegexpError as err:
        raise ValueError(f"invalid regex pattern {where}: {text}: {err}") from None


def fqdn(name: str) -> str:
    return name if name.endswith(".") else name + "."
