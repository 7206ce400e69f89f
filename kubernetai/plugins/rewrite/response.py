# -*- test-case-name: tests.test_rewrite_rules -*-
"""
The rules that rewrite the reply (CoreDNS's ttl.go, rcode.go,
cname_target.go and reverter.go): C{ttl [KIND] NAME SECONDS|MIN-MAX},
C{rcode [KIND] NAME FROM TO}, C{cname [KIND] FROM TO}, and L{revert}, which
passes a reply through the response rules of the rules that matched.

As CoreDNS's ResponseReverter does, L{revert} takes every record of the
authority, answer and additional sections in turn through the response
rules, the last matched rule's first; a reply without records gets the
rcode rules once.  A C{cname} rule whose target matches resolves the new
target through the server (as CoreDNS's upstream does) and puts that answer
after the CNAME records up to the rewritten one.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Callable

from twisted.internet import defer
from twisted.logger import Logger
from twisted.names import dns

from kubernetai.chain import Response
from kubernetai.dnsnames import RCODES
from kubernetai.plugins.rewrite.rules import MATCH_KINDS, Question, compile_pattern, fqdn, name_test
from kubernetai.zones import normalize_zone

log = Logger(namespace="kubernetai.plugins.rewrite.response")

# CoreDNS's bound of a TTL range left open above.
MAX_TTL = 2147483647
SECTIONS = ("authority", "answers", "additional")


@dataclass
class Reply:
    """The reply as the response rules rewrite it: its own records (copies), rcode and TC bit."""

    rcode: int
    authority: list[dns.RRHeader]
    answers: list[dns.RRHeader]
    additional: list[dns.RRHeader]
    truncated: bool

    @classmethod
    def of(cls, response: Response) -> Reply:
        return cls(response.rcode, *([_copy(record) for record in getattr(response, section)] for section in SECTIONS),
                   response.truncated)

    def response(self, response: Response) -> Response:
        """C{response} with what the rules made of it."""
        return dataclasses.replace(response, rcode=self.rcode, answers=self.answers, authority=self.authority,
                                   additional=self.additional, truncated=self.truncated)


def _copy(record: dns.RRHeader) -> dns.RRHeader:
    copied = copy.copy(record)
    copied.payload = copy.copy(record.payload)
    return copied


def revert(response: Response, response_rules: list[Any]):
    """C{response} passed through C{response_rules} (never changed in place): a Response, or a Deferred
    firing with one when a C{cname} rule resolves a new target."""
    if not response_rules:
        return response
    reply = Reply.of(response)
    return _run(_steps(reply, response_rules), None, lambda: reply.response(response))


def _steps(reply: Reply, response_rules: list[Any]):
    """Apply the rules to every record as CoreDNS does, yielding each lookup a rule asks for (its
    answer is sent back to it)."""
    records = [record for section in SECTIONS for record in getattr(reply, section)]
    for record in records:
        for rule in reversed(response_rules):
            if hasattr(rule, "rewrite_record"):
                pending = rule.rewrite_record(reply, record)
                if pending is not None:
                    yield from pending
    if not records:
        for rule in reversed(response_rules):
            if isinstance(rule, RcodeRule):
                rule.rewrite_message(reply)


def _run(steps, value, finish: Callable[[], Response]):
    """Drive C{steps} to their end: synchronously, until one yields a Deferred."""
    while True:
        try:
            pending = steps.send(value)
        except StopIteration:
            return finish()
        if isinstance(pending, defer.Deferred):
            return pending.addCallback(lambda result: _run(steps, result, finish))
        value = pending


@dataclass(frozen=True)
class TtlRule:
    """Bring every record's TTL into [minimum, maximum]."""

    minimum: int
    maximum: int

    def rewrite_record(self, reply: Reply, record: dns.RRHeader) -> None:
        if record.ttl < self.minimum:
            record.ttl = self.minimum
        elif record.ttl > self.maximum:
            record.ttl = self.maximum


@dataclass(frozen=True)
class RcodeRule:
    """Replace the rcode C{old} by C{new}."""

    old: int
    new: int

    def rewrite_record(self, reply: Reply, record: dns.RRHeader) -> None:
        self.rewrite_message(reply)

    def rewrite_message(self, reply: Reply) -> None:
        if reply.rcode == self.old:
            reply.rcode = self.new


def _matching(args: list[str], values: int, rule: str) -> tuple[str, str, list[str]]:
    """(match kind, name, values) of C{[KIND] NAME VALUE...}; KIND is given when the arguments are one more."""
    if len(args) == values + 2:
        kind = args[0].lower()
        if kind not in MATCH_KINDS:
            raise ValueError(f"{rule} rule supports only exact, prefix, suffix, substring, and regex name matching")
        return kind, args[1], args[2:]
    return "exact", args[0], args[1:]


def ttl_rule(args: list[str]) -> Callable[[Question], list[Any] | None]:
    """C{ttl [KIND] NAME SECONDS|MIN-MAX}, with CoreDNS's errors in its order."""
    if len(args) < 2:
        raise ValueError(f"too few ({len(args)}) arguments for a ttl rule")
    text = args[1] if len(args) == 2 else args[2] if len(args) == 3 else ""
    bounds = ttl_bounds(text)
    if bounds is None:
        raise ValueError(f"invalid TTL '{text}' for a ttl rule")
    kind, name, _ = _matching(args, 1, "ttl")
    return _when(name_test(kind, name, "ttl"), TtlRule(*bounds))


def ttl_bounds(text: str) -> tuple[int, int] | None:
    """(min, max) of C{SECONDS}, C{MIN-MAX}, C{-MAX} or C{MIN-} (CoreDNS's isValidTTL); None if invalid."""
    parts = text.split("-")
    if len(parts) == 1:
        seconds = _uint32(parts[0])
        return None if seconds is None else (seconds, seconds)
    if len(parts) != 2 or parts == ["", ""]:
        return None
    low = 0 if parts[0] == "" else _uint32(parts[0])
    high = MAX_TTL if parts[1] == "" else _uint32(parts[1])
    if low is None or high is None or low > high:
        return None
    return low, high


def _uint32(text: str) -> int | None:
    """Go's C{strconv.ParseUint(text, 10, 32)}, None for an error."""
    if not re.fullmatch(r"[0-9]+", text) or int(text) >= 2**32:
        return None
    return int(text)


def rcode_rule(args: list[str]) -> Callable[[Question], list[Any] | None]:
    """C{rcode [KIND] NAME FROM TO}, with CoreDNS's errors in its order."""
    if len(args) < 3:
        raise ValueError(f"too few ({len(args)}) arguments for a rcode rule")
    old_text, new_text = args[1:3] if len(args) == 3 else args[2:4] if len(args) == 4 else ("", "")
    old, new = rcode_value(old_text), rcode_value(new_text)
    if old is None:
        raise ValueError(f"invalid matching RCODE '{old_text}' for a rcode rule")
    if new is None:
        raise ValueError(f"invalid replacement RCODE '{new_text}' for a rcode rule")
    kind, name, _ = _matching(args, 2, "rcode")
    return _when(name_test(kind, name, "rcode"), RcodeRule(old, new))


def rcode_value(text: str) -> int | None:
    """An rcode by number (0 to 23) or miekg/dns's name; None if neither."""
    if re.fullmatch(r"[0-9]+", text) and int(text) <= 23:
        return int(text)
    return RCODES.get(text.upper())


def _when(test: Callable[[str], bool], response_rule) -> Callable[[Question], list[Any] | None]:
    """A rule's C{apply}: C{response_rule} for the reply when the question's name passes C{test}."""
    return lambda question: [response_rule] if test(question.lowered) else None


@dataclass(frozen=True)
class CnameTarget:
    """C{cname KIND FROM TO}: the new target of a CNAME whose target matches, or None."""

    kind: str
    old: str
    new: str
    pattern: re.Pattern | None

    def targets(self, target: str) -> tuple[str, str] | None:
        """(the target to find, its replacement) for a CNAME pointing at C{target}; None when it does not match."""
        if self.kind == "exact":
            return (self.old, self.new) if target == self.old else None
        if self.kind == "prefix":
            return (target, self.new + target[len(self.old):]) if target.startswith(self.old) else None
        if self.kind == "suffix":
            return (target, target[: len(target) - len(self.old)] + self.new) if target.endswith(self.old) else None
        if self.kind == "substring":
            return (target, target.replace(self.old, self.new)) if self.old in target else None
        match = self.pattern.search(target)
        if match is None:
            return None
        new = self.new
        for index, value in enumerate((match.group(0), *match.groups())):
            new = new.replace("{%d}" % index, value or "")
        return target, new


@dataclass(frozen=True)
class CnameRule:
    """A matched C{cname} rule: the question it was asked for, to resolve the new target with."""

    target: CnameTarget
    question: Question

    def rewrite_record(self, reply: Reply, record: dns.RRHeader):
        """The steps of rewriting a CNAME whose target matches: a lookup, then the new answer."""
        if record.type != dns.CNAME:
            return None
        found = self.target.targets(fqdn(record.payload.name.name.decode("latin-1")))
        if found is None:
            return None
        return self._replace(reply, *found)

    def _replace(self, reply: Reply, old: str, new: str):
        looked_up = yield self._lookup(new)
        if looked_up is None:
            return
        kept = []
        for record in reply.answers:
            if record.type == dns.CNAME:
                kept.append(record)
                if fqdn(record.payload.name.name.decode("latin-1")) == old:
                    record.payload.name = dns.Name(new.rstrip(".").encode("latin-1"))
                    break
        reply.answers = kept + list(looked_up.answers)
        reply.truncated = looked_up.truncated

    def _lookup(self, name: str) -> defer.Deferred:
        """The server's answer to C{name} of the rewritten question's type; None (logged) if it failed."""
        request = self.question.request
        if request is None:
            return defer.succeed(None)

        def failed(failure):
            log.error("upstream lookup failed: {cause}", cause=failure.getErrorMessage())

        return request.lookup(name, self.question.qtype).addErrback(failed)


def cname_rule(args: list[str]) -> Callable[[Question], list[Any] | None]:
    """C{cname [KIND] FROM TO}, with CoreDNS's errors; it matches every query (its reply decides)."""
    if len(args) == 3:
        kind = args[0].lower()
        if kind not in MATCH_KINDS:
            raise ValueError(f"unknown cname rewrite type: {kind}")
        old, new = args[1].lower(), args[2].lower()
    elif len(args) == 2:
        kind, old, new = "exact", args[0].lower(), args[1].lower()
    else:
        raise ValueError(f"too few ({len(args)}) arguments for a cname rule")
    if kind == "exact":
        old, new = normalize_zone(old), normalize_zone(new)
    pattern = None
    if kind == "regex":
        try:
            pattern = compile_pattern(old, "in a cname rule")
        except ValueError as err:
            if "too long" in str(err):
                raise
            raise ValueError(f"invalid cname rewrite regex pattern: {old}") from None
    target = CnameTarget(kind, old, new, pattern)
    return lambda question: [CnameRule(target, question)]
