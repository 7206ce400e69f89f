# -*- test-case-name: tests.test_rewrite -*-
"""
rewrite: changes the question of a query before the rest of the chain sees
it, and maps the names of the answer back, as CoreDNS's rewrite plugin does
for its C{name}, C{type} and C{class} rules.

C{rewrite [continue|stop] name [exact|prefix|suffix|substring|regex] FROM TO
[answer auto | answer name FROM TO | answer value FROM TO]...},
C{rewrite [continue|stop] type FROM TO} and C{rewrite [continue|stop] class
FROM TO}; a rule may also be written as C{rewrite [continue|stop] { RULE }}.
Every C{rewrite} line of a block is one rule, tried in Corefile order: a
matching C{stop} rule (the default) is the last one applied, a matching
C{continue} rule lets the next ones match the rewritten question.

The client always sees its own question.  Answer, authority and additional
records are mapped back by the response rules of the rules that matched,
the last matched rule's first: an C{exact} rule always maps the new name
back to the old one (owner names and the names inside CNAME, DNAME, SOA,
SRV, MX, NS, PTR and NAPTR records), other kinds only with C{answer auto};
C{answer name} and C{answer value} are regex rewrites of owner names and of
those record values.  A rewritten name that is no domain name is SERVFAIL.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from dataclasses import dataclass
from typing import Callable

from twisted.internet import defer
from twisted.names import dns
from zope.interface import implementer

from kubernetai import options
from kubernetai.chain import IHandler, PluginError, Request, Response, ServerConfig
from kubernetai.corefile import Directive
from kubernetai.reuse import not_reusable

STOP = "stop"
CONTINUE = "continue"
MAX_REGEX_LENGTH = 10000

# miekg/dns's StringToType and StringToClass for the mnemonics Twisted lacks.
TYPES = {**{name: code for name, code in dns.REV_TYPES.items() if name != "ALL_RECORDS"},
         "ANY": 255, "LOC": 29, "CERT": 37, "DS": 43, "RRSIG": 46, "NSEC": 47, "DNSKEY": 48, "DHCID": 49,
         "NSEC3": 50, "NSEC3PARAM": 51, "TLSA": 52, "CDS": 59, "CDNSKEY": 60, "OPENPGPKEY": 61, "SVCB": 64,
         "HTTPS": 65, "URI": 256, "CAA": 257}
CLASSES = {**dns.REV_CLASSES, "NONE": 254}

# The attribute holding the name inside each record type whose value C{answer value} rewrites.
VALUE_FIELDS = {dns.CNAME: "name", dns.DNAME: "name", dns.NS: "name", dns.PTR: "name", dns.MX: "name",
                dns.SRV: "target", dns.SOA: "mname", dns.NAPTR: "replacement"}

StringRewriter = Callable[[str], str]


@dataclass
class Question:
    """The question as the rules rewrite it: the name with its final dot, case kept; type and class."""

    name: str
    qtype: int
    qclass: int

    @property
    def lowered(self) -> str:
        """The name as CoreDNS's rules match it (C{state.Name()}): lower case."""
        return self.name.lower()


@dataclass(frozen=True)
class AnswerRule:
    """Rewrites the owner name (C{field} "name") or the name inside (C{field} "value") of a record."""

    field: str
    rewrite: StringRewriter


@dataclass(frozen=True)
class Rule:
    """One rewrite line: C{apply} changes a question and gives its answer rules, or None when it does not match."""

    mode: str
    apply: Callable[[Question], list[AnswerRule] | None]
    text: str


@implementer(IHandler)
class Rewrite:
    """Sends the rewritten question down the chain and maps the answer back to the question asked."""

    name = "rewrite"
    next = None

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules

    def serve(self, request: Request):
        question = Question(_fqdn(request.qname.decode("latin-1")), request.qtype, request.qclass)
        answer_rules = rewrite_question(self.rules, question)
        if answer_rules is None:
            return self.next.serve(request)
        result = defer.maybeDeferred(self.next.serve, asking(request, question))
        # The reply depends on a question the server's ready replies do not key on: built anew each time.
        return not_reusable(result.addCallback(revert, answer_rules))


def rewrite_question(rules: list[Rule], question: Question) -> list[AnswerRule] | None:
    """Apply C{rules} to C{question} in order as CoreDNS does; the matched rules' answer rules, None if none matched."""
    answer_rules: list[AnswerRule] | None = None
    for rule in rules:
        found = rule.apply(question)
        if found is None:
            continue
        if not is_domain_name(question.name):
            raise PluginError("rewrite", f"invalid name after rewrite: {question.name}")
        answer_rules = (answer_rules or []) + found
        if rule.mode == STOP:
            break
    return answer_rules


def asking(request: Request, question: Question) -> Request:
    """C{request} with C{question} as its question, for the rest of the chain."""
    asked = request.asking(question.name.rstrip(".").encode("latin-1"))
    if (question.qtype, question.qclass) != (request.qtype, request.qclass):
        asked.query.type, asked.query.cls = question.qtype, question.qclass
        asked.packet = asked.message.toStr()
    return asked


def revert(response: Response, answer_rules: list[AnswerRule]) -> Response:
    """C{response} with every record passed through C{answer_rules}, the last first; never changed in place."""
    if not answer_rules:
        return response
    return dataclasses.replace(response, **{
        section: [_revert_record(record, answer_rules) for record in getattr(response, section)]
        for section in ("answers", "authority", "additional")})


def _revert_record(record: dns.RRHeader, answer_rules: list[AnswerRule]) -> dns.RRHeader:
    changed = record
    for rule in reversed(answer_rules):
        if rule.field == "name":
            name = _fqdn(changed.name.name.decode("latin-1"))
            new = rule.rewrite(name)
            if new != name:
                changed = copy.copy(changed)
                changed.name = dns.Name(new.rstrip(".").encode("latin-1"))
            continue
        attribute = VALUE_FIELDS.get(changed.type)
        if attribute is None:
            continue
        value = _fqdn(getattr(changed.payload, attribute).name.decode("latin-1"))
        new = rule.rewrite(value)
        if new != value:
            changed = copy.copy(changed)
            changed.payload = copy.copy(changed.payload)
            setattr(changed.payload, attribute, dns.Name(new.rstrip(".").encode("latin-1")))
    return changed


def is_domain_name(name: str) -> bool:
    """Whether C{name} (with its final dot) is a domain name as miekg/dns's IsDomainName sees it (no escapes)."""
    if name == ".":
        return True
    labels = name.rstrip(".").split(".") if name.endswith(".") else name.split(".")
    if name.endswith(".."):
        return False
    return all(0 < len(label.encode("latin-1")) <= 63 for label in labels) and len(name.encode("latin-1")) + 1 <= 255


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


# Parsing (CoreDNS's newRule, newNameRule, parseAnswerRules, newTypeRule, newClassRule).

def parse_rule(directive: Directive) -> Rule:
    """One C{rewrite} line as a Rule, with CoreDNS's errors."""
    args = list(directive.args)
    if len(args) < 2:
        for line in directive.block:
            args += [line.name, *line.args, *(token for inner in line.block for token in (inner.name, *inner.args))]
    elif directive.block:
        options.no_block(directive)
    if not args:
        raise options.error(directive, "no rule type specified for rewrite")
    first = args[0].lower()
    mode, start = STOP, 1
    if first in (CONTINUE, STOP):
        if len(args) < 2:
            raise options.error(directive, f"{first} rule must begin with a rule type")
        mode, start = first, 2
    kind = args[start - 1].lower()
    rest = args[start:]
    try:
        if kind == "answer":
            raise ValueError("response rewrites must begin with a name rule")
        if kind == "name":
            apply = name_rule(rest)
        elif kind in ("type", "class"):
            if len(rest) != 2:
                raise ValueError(f"{kind} rules must have exactly two arguments")
            apply = code_rule(kind, rest)
        elif kind in ("edns0", "ttl", "cname", "rcode"):
            raise ValueError(f"{kind} rules are not supported by kubernetai")
        else:
            raise ValueError(f'invalid rule type "{args[0]}"')
    except ValueError as err:
        raise options.error(directive, str(err)) from None
    return Rule(mode, apply, f"{mode} {kind} {' '.join(rest)}")


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
        match, old, new = "exact", _normalize(args[0]), _normalize(args[1])
    else:
        match = args[0].lower()
        old, new = (args[1], args[2]) if match == "regex" else (_normalize(args[1]), _normalize(args[2]))
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
        new = _normalize(new)

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
        rules.append(AnswerRule(last, regex_rewriter(pattern, _normalize(args[position + 1]))))
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
        compiled = re.compile(pattern)
    except re.error:
        raise ValueError(f"invalid regex matching pattern: {pattern}") from None
    if sum("{%d}" % index in replacement for index in range(101)) > compiled.groups:
        raise ValueError(f"the rewrite regex pattern ({replacement}) uses more subexpressions than its "
                         f"corresponding matching regex pattern ({pattern})")
    return compiled


def _normalize(name: str) -> str:
    """CoreDNS's C{plugin.Name(name).Normalize()}: lower case, with a final dot."""
    return _fqdn(name).lower()


def _fqdn(name: str) -> str:
    return name if name.endswith(".") else name + "."


def setup(directives: list[Directive], config: ServerConfig) -> Rewrite:
    """One handler for all the C{rewrite} lines of a server block, their rules in Corefile order."""
    rules = [parse_rule(directive) for directive in directives]
    for rule in rules:
        config.plan.append(f"rewrite {rule.text}")
    return Rewrite(rules)
