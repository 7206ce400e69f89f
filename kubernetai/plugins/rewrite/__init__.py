# -*- test-case-name: tests.test_rewrite,tests.test_rewrite_rules -*-
"""
rewrite: changes a query before the rest of the chain sees it, and its
reply before the client does, as CoreDNS's rewrite plugin does.

C{rewrite [continue|stop] RULE...}, or C{rewrite [continue|stop] { RULE }};
the rules are C{name}, C{type}, C{class} (L{name}), C{edns0} (L{edns0}),
C{ttl}, C{rcode} and C{cname} (L{response}).  Every C{rewrite} line of a
block is one rule, tried in Corefile order: a matching C{stop} rule (the
default) is the last one applied, a matching C{continue} rule lets the next
ones match the rewritten query.

The client always sees its own question.  The reply is passed through the
response rules of the rules that matched, the last matched rule's first
(L{response.revert}); a reply the rest of the chain failed to give gets the
rcode rules too.  A rewritten name that is no domain name is SERVFAIL.

Differs from CoreDNS: a reply to a query without an OPT record gets none,
though an C{edns0} rule added one to the query; the options C{edns0} rules
name are carried into a forwarded reply too (CoreDNS's carries the
upstream's options, which kubernetai's C{forward} drops).
"""

from __future__ import annotations

import dataclasses

from twisted.internet import defer
from twisted.names import dns
from twisted.python.failure import Failure
from zope.interface import implementer

from kubernetai import options
from kubernetai.chain import IHandler, PluginError, Request, Response, ServerConfig
from kubernetai.corefile import Directive
from kubernetai.message import OPTION_FIXED, edns_options
from kubernetai.plugins.rewrite.edns0 import OptionRevert, edns0_rule
from kubernetai.plugins.rewrite.name import code_rule, name_rule
from kubernetai.plugins.rewrite.response import RcodeRule, cname_rule, rcode_rule, revert, ttl_rule
from kubernetai.plugins.rewrite.rules import CONTINUE, STOP, Question, Rule, fqdn, is_domain_name, rewrite_question
from kubernetai.reuse import not_reusable

__all__ = ["Question", "Rewrite", "is_domain_name", "revert", "rewrite_question", "setup"]


@implementer(IHandler)
class Rewrite:
    """Sends the rewritten query down the chain and rewrites its reply for the client."""

    name = "rewrite"
    next = None

    def __init__(self, rules: list[Rule], reflected: frozenset[int] = frozenset(), edns: bool = False) -> None:
        self.rules = rules
        self.reflected = reflected
        self.edns = edns

    def serve(self, request: Request):
        question = Question(fqdn(request.qname.decode("latin-1")), request.qtype, request.qclass,
                            list(edns_options(request)) if self.edns and request.edns else None,
                            request.payload_size, request)
        response_rules = rewrite_question(self.rules, question)
        if response_rules is None and not self.reflected:
            return self.next.serve(request)
        result = defer.maybeDeferred(self.next.serve, asking(request, question))
        result.addCallbacks(self._rewritten, self._failed, (question, response_rules or []),
                            errbackArgs=(response_rules or [],))
        if response_rules is None:
            return result
        # The reply depends on a query the server's ready replies do not key on: built anew each time.
        return not_reusable(result)

    def _rewritten(self, response: Response, question: Question, response_rules: list):
        result = revert(response, response_rules)
        if not self.reflected:
            return result
        if isinstance(result, defer.Deferred):
            return result.addCallback(self._reflect, question, response_rules)
        return self._reflect(result, question, response_rules)

    def _reflect(self, response: Response, question: Question, response_rules: list) -> Response:
        """C{response} with the query's options of the codes the rules name, reverted where the rules say,
        when it has no options of its own (CoreDNS's reply takes the query's OPT record then)."""
        reverts = [rule for rule in reversed(response_rules) if isinstance(rule, OptionRevert)]
        carried = list(response.edns_options) or [option for option in question.options or ()
                                                  if option[0] in self.reflected]
        for rule in reverts:
            rule.revert(carried)
        return dataclasses.replace(response, edns_options=tuple(carried))

    @staticmethod
    def _failed(failure: Failure, response_rules: list) -> Failure:
        """The failure of the rest of the chain, with its rcode rewritten by the rcode rules that matched."""
        rcode = failure.value.rcode if failure.check(PluginError) else dns.ESERVER
        new = rcode
        for rule in reversed(response_rules):
            if isinstance(rule, RcodeRule) and new == rule.old:
                new = rule.new
        if new == rcode:
            return failure
        plugin = failure.value.plugin if failure.check(PluginError) else "rewrite"
        raise PluginError(plugin, str(failure.value), new)


def asking(request: Request, question: Question) -> Request:
    """C{request} with C{question} as its question and OPT record, for the rest of the chain."""
    original_options = list(edns_options(request)) if request.edns else None
    same_question = (question.name, question.qtype, question.qclass) == \
        (fqdn(request.qname.decode("latin-1")), request.qtype, request.qclass)
    if same_question and (question.options is None or question.options == original_options):
        return request
    asked = request.asking(question.name.rstrip(".").encode("latin-1"))
    asked.query.type, asked.query.cls = question.qtype, question.qclass
    if question.options is not None:
        data = b"".join(OPTION_FIXED.pack(code, len(value)) + value for code, value in question.options)
        opt = [record for record in asked.message.additional if record.type == dns.OPT]
        if opt:
            opt[0].payload = dns.UnknownRecord(data)
        else:
            asked.message.additional.append(dns.RRHeader(b"", dns.OPT, question.payload_size, 0,
                                                         dns.UnknownRecord(data)))
        asked.edns, asked.payload_size = True, question.payload_size
    asked.packet = asked.message.toStr()
    return asked


def parse_rule(directive: Directive) -> tuple[Rule, frozenset[int]]:
    """One C{rewrite} line as a Rule, with CoreDNS's errors; and the EDNS option codes it names."""
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
    codes: set[int] = set()
    try:
        if kind == "answer":
            raise ValueError("response rewrites must begin with a name rule")
        if kind == "name":
            apply = name_rule(rest)
        elif kind in ("type", "class"):
            if len(rest) != 2:
                raise ValueError(f"{kind} rules must have exactly two arguments")
            apply = code_rule(kind, rest)
        elif kind == "edns0":
            apply, codes = edns0_rule(rest)
        elif kind in RESPONSE_RULES:
            apply = RESPONSE_RULES[kind](rest)
        else:
            raise ValueError(f'invalid rule type "{args[0]}"')
    except ValueError as err:
        raise options.error(directive, str(err)) from None
    return Rule(mode, apply, f"{mode} {kind} {' '.join(rest)}", kind), frozenset(codes)


RESPONSE_RULES = {"ttl": ttl_rule, "rcode": rcode_rule, "cname": cname_rule}


def setup(directives: list[Directive], config: ServerConfig) -> Rewrite:
    """One handler for all the C{rewrite} lines of a server block, their rules in Corefile order."""
    parsed = [parse_rule(directive) for directive in directives]
    for rule, _ in parsed:
        config.plan.append(f"rewrite {rule.text}")
    reflected = frozenset().union(*(codes for _, codes in parsed))
    edns = any(rule.kind == "edns0" for rule, _ in parsed)
    return Rewrite([rule for rule, _ in parsed], reflected, edns)
