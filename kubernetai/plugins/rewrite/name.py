# -*- test-case-name: tests.test_rewrite -*-
"""
The C{name}, C{type} and C{class} rules (CoreDNS's name.go, type.go,
class.go): C{name [exact|prefix|suffix|substring|regex] FROM TO [answer auto
| answer name FROM TO | answer value FROM TO]...}, C{type FROM TO},
C{class FROM TO}.

An C{exact} rule always maps the new name back to the old one in the
answer (owner names and the names inside CNAME, DNAME, SOA, SRV, MX, NS,
PTR and NAPTR records), other kinds only with C{answer auto}; C{answer name}
and C{answer value} are regex rewrites of owner names and of those record
values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from twisted.names import dns

from kubernetai.dnsnames import CLASSES, TYPES
from kubernetai.goregexp import GoRegexpError, compile_go
from kubernetai.plugins.rewrite.rules import MAX_REGEX_LENGTH, Question, fqdn
from kubernetai.zones import normalize_zone

# The attribute holding the name inside each record type whose value C{answer value} rewrites.
VALUE_FIELDS = {dns.CNAME: "name", dns.DNAME: "name", dns.NS: "name", dns.PTR: "name", dns.MX: "name",
                dns.SRV: "target", dns.SOA: "mname", dns.NAPTR: "replacement"}

StringRewriter = Callable[[str], str]


@dataclass(frozen=True)
class AnswerRule:
    """Rewrites the owner name (C{field} "name") or the name inside (C{field} "value") of a record."""

    field: str
    rewrite: StringRewriter

    def rewrite_record(self, reply, record: dns.RRHeader) -> None:
        """Rewrite C{record} (a copy the reply owns) in place."""
        if self.field == "name":
            name = fqdn(record.name.name.decode("latin-1"))
            new = self.rewrite(name)
            if new != name:
                record.name = dns.Name(new.rstrip(".").encode("latin-1"))
            return
        attribute = VALUE_FIELDS.get(record.type)
        if attribute is None:
            return
        value = fqdn(getattr(record.payload, attribute).name.decode("latin-1"))
        new = self.rewrite(value)
        if new != value:
            setattr(record.payload, attribute, dns.Name(new.rstrip(".").encode("latin-1")))


# Response string rewriters (CoreDNS's stringRewriter kinds).

def regex_rewriter(pattern: re.Pattern, replacement: str) -> StringRewriter:
    """C{replacement} with C{{N}} filled from the match of C{pattern} in a name; the name itself when none."""

    def rewrite(name: str) -> str:
        match = pattern.search(name)
        return _expand(replacement, match) if match else name

    return rewrite


def remap_rewriter(original: str, replacement: str) -> StringRewriter:
    """C{original}, and any name below it, with C{original} replaced."""

    def rewrite(name: str) -> str:
        if name == original:
            return replacement
        cut = len(name) - len(original)
        if cut > 0 and name[cut - 1] == "." and name[cut:] == original:
            return name[:cut] + replacement
        return name

    return rewrite


def suffix_rewriter(suffix: str, replacement: str) -> StringRewriter:
    """A name ending in C{suffix} with it replaced."""
    return lambda name: name[: len(name) - len(suffix)] + replacement if name.endswith(suffix) else name


def _expand(replacement: str, match: re.Match) -> str:
    """C{replacement} with C{{0}}, C{{1}}... replaced in turn by the match's groups, as CoreDNS does."""
    for index, value in enumerate((match.group(0), *match.groups())):
        replacement = replacement.replace("{%d}" % index, value or "")
    return replacement


# Parsing (CoreDNS's newNameRule, parseAnswerRules, newTypeRule, newClassRule).

def code_rule(kind: str, args: list[str]) -> Callable[[Question], list[AnswerRule] | None]:
    """A C{type} or C{class} rule: FROM replaced by TO."""
    table, attribute = (TYPES, "qtype") if kind == "type" else (CLASSES, "qclass")
    codes = []
    for arg in args:
        if arg.upper() not in table:
            raise ValueError(f'invalid {kind} "{arg.upper()}"')
        codes.append(table[arg.upper()])
    old, new = codes

    def apply(question: Question) -> list[AnswerRule] | None:
        if getattr(question, attribute) != old:
            return None
        setattr(question, attribute, new)
        return []

    return apply


def name_rule(args: list[str]) -> Callable[[Question], list[AnswerRule] | None]:
    """A C{name} rule: its match kind, FROM, TO and answer rules."""
    if len(args) < 2:
        raise ValueError("too few arguments for a name rule")
    if len(args) == 2:
        match, old, new = "exact", normalize_zone(args[0]), normalize_zone(args[1])
    else:
        match = args[0].lower()
        old, new = (args[1], args[2]) if match == "regex" else (normalize_zone(args[1]), normalize_zone(args[2]))
    auto, answers = parse_answer_rules(match, args[3:]) if len(args) > 3 else (False, [])
    if match == "exact":
        valid_regex(new, old)
        return _matcher(lambda name: new if name == old else None, True, answers)
    if match == "prefix":
        return _matcher(lambda name: new + name[len(old):] if name.startswith(old) else None, auto, answers)
    if match == "suffix":
        if auto:
            back = suffix_rewriter(new, old)
            answers = [AnswerRule("name", back), AnswerRule("value", back), *answers]
        return _matcher(lambda name: name[: len(name) - len(old)] + new if name.endswith(old) else None, False,
                        answers)
    if match == "substring":
        return _matcher(lambda name: name.replace(old, new) if old in name else None, auto, answers)
    if match == "regex":
        pattern = valid_regex(old, new)
        new = normalize_zone(new)

        def regex(name: str) -> str | None:
            found = pattern.search(name)
            return _expand(new, found) if found else None

        return _matcher(regex, auto, answers)
    raise ValueError(f"name rule supports only exact, prefix, suffix, substring, and regex name matching, "
                     f"received: {match}")


def _matcher(rename: Callable[[str], str | None], auto: bool, answers: list[AnswerRule]):
    """A rule's C{apply}: C{rename} the lowered name; with C{auto}, answers map the new name back to it."""

    def apply(question: Question) -> list[AnswerRule] | None:
        old = question.lowered
        new = rename(old)
        if new is None:
            return None
        question.name = new
        if not auto:
            return list(answers)
        back = remap_rewriter(new, old)
        return [AnswerRule("name", back), AnswerRule("value", back), *answers]

    return apply


def parse_answer_rules(match: str, args: list[str]) -> tuple[bool, list[AnswerRule]]:
    """C{answer auto}, C{answer name FROM TO}, C{[answer] value FROM TO}...: (auto, explicit rules)."""
    if len(args) < 2:
        raise ValueError(f"invalid arguments for {match} rule")
    auto, rules, names, position, last = False, [], 0, 0, ""
    while position < len(args):
        if last == "" and args[position] != "answer":
            raise ValueError(f"exceeded the number of arguments for a non-answer rule argument for {match} rule")
        if args[position] == "answer":
            position += 1
        if position == len(args):
            raise ValueError(f"type missing for answer rule for {match} rule")
        last = args[position]
        position += 1
        if last == "auto":
            auto = True
            continue
        if last not in ("name", "value"):
            raise ValueError(f'invalid type "{last}" for answer rule for {match} rule')
        if len(args) - position < 2:
            raise ValueError(f"{last} answer rule for {match} rule: 2 arguments required")
        try:
            pattern = valid_regex(args[position], args[position + 1])
        except ValueError as err:
            raise ValueError(f"{last} answer rule for {match} rule: {err}") from None
        rules.append(AnswerRule(last, regex_rewriter(pattern, normalize_zone(args[position + 1]))))
        names += last == "name"
        position += 2
    if auto and names:
        raise ValueError("auto name answer rule cannot be combined with explicit name anwer rules")
    return auto, rules


def valid_regex(pattern: str, replacement: str) -> re.Pattern:
    """C{pattern} compiled, if not too long and it has as many groups as C{replacement} uses."""
    if len(pattern) > MAX_REGEX_LENGTH:
        raise ValueError(f"regex pattern too long: {len(pattern)} > {MAX_REGEX_LENGTH}")
    try:
        compiled = compile_go(pattern)
    except GoRegexpError as err:
        raise ValueError(f"invalid regex matching pattern: {pattern}: {err}") from None
    if sum("{%d}" % index in replacement for index in range(101)) > compiled.groups:
        raise ValueError(f"the rewrite regex pattern ({replacement}) uses more subexpressions than its "
                         f"corresponding matching regex pattern ({pattern})")
    return compiled


