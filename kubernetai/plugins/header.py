# -*- test-case-name: tests.test_header -*-
"""
header: sets or clears flags of the query the rest of the chain sees and of
the reply, as CoreDNS's header plugin does.  C{header { query|response
set|clear FLAG... }}, one rule a line, applied in order; FLAG is C{aa},
C{ra} or C{rd}.

A query rule changes the query the plugins after header see (forward sends
it upstream so), and, as in CoreDNS, where the reply copies the query's RD
bit, that too.  Kept replies stay right: the rules are the same for every
client and the server keeps a reply by the client's own query bytes.
"""

from __future__ import annotations

import dataclasses

from zope.interface import implementer

from kubernetai import options
from kubernetai.chain import IHandler, Request, Response, ServerConfig, then
from kubernetai.corefile import Directive

FLAGS = ("aa", "ra", "rd")
# Each flag's attribute in a query's dns.Message and in a Response.
MESSAGE_FLAGS = {"aa": "auth", "ra": "recAv", "rd": "recDes"}
RESPONSE_FLAGS = {"aa": "authoritative", "ra": "recursion_available", "rd": "recursion_desired"}


def with_query_flags(request: Request, rules: tuple[tuple[str, bool], ...]) -> Request:
    """A copy of C{request} whose message has C{rules}' flags (the copy's packet too)."""
    asked = request.asking(request.qname)
    for flag, state in rules:
        setattr(asked.message, MESSAGE_FLAGS[flag], int(state))
    asked.packet = asked.message.toStr()
    return asked


def with_reply_flags(response: Response, rules: tuple[tuple[str, bool], ...]) -> Response:
    """C{response} with C{rules}' flags; never changed in place."""
    return dataclasses.replace(response, **{RESPONSE_FLAGS[flag]: state for flag, state in rules})


@implementer(IHandler)
class Header:
    """Flags of the query going down and of the reply coming back."""

    name = "header"
    next = None

    def __init__(self, query_rules, response_rules) -> None:
        self.query_rules = tuple(query_rules)
        # A query's RD comes back in its reply; later response rules win.
        self.reply_rules = tuple((flag, state) for flag, state in self.query_rules if flag == "rd") + tuple(
            response_rules)

    def serve(self, request: Request):
        asked = with_query_flags(request, self.query_rules) if self.query_rules else request
        result = self.next.serve(asked)
        if not self.reply_rules:
            return result
        return then(result, with_reply_flags, self.reply_rules)


def parse_rule(line: Directive) -> list[tuple[str, bool]]:
    """The (flag, state) of one C{query|response set|clear FLAG...} line."""
    action, *flags = line.args or ("",)
    if not flags:
        raise options.error(line, "invalid length for flags, at least one should be provided")
    if action.lower() not in ("set", "clear"):
        raise options.error(line, f"unknown flag action={action.lower()}, should be set or clear")
    for flag in flags:
        if flag.lower() not in FLAGS:
            raise options.error(line, f"unknown/unsupported flag={flag.lower()}: expected aa, ra or rd")
    return [(flag.lower(), action.lower() == "set") for flag in flags]


def parse_header(directives: list[Directive]) -> tuple[list, list]:
    """(query rules, response rules) of the block's one C{header} directive."""
    directive = options.only_once(directives)
    options.arg_count(directive, 0, 0)
    rules: dict[str, list] = {"query": [], "response": []}
    for line in directive.block:
        selector = line.name.lower()
        if selector not in rules:
            raise options.error(line, f"invalid selector={selector} should be query or response")
        rules[selector] += parse_rule(line)
    if not directive.block:
        raise options.error(directive, "expected a block of query or response rules")
    return rules["query"], rules["response"]


def setup(directives: list[Directive], config: ServerConfig) -> Header:
    """C{header { query|response set|clear FLAG... }}."""
    query_rules, response_rules = parse_header(directives)
    described = [f"{'query' if rules is query_rules else 'response'} {'set' if state else 'clear'} {flag}"
                 for rules in (query_rules, response_rules) for flag, state in rules]
    config.plan.append("header " + ", ".join(described))
    return Header(query_rules, response_rules)
