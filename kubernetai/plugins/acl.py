# -*- test-case-name: tests.test_acl -*-
"""
acl: allows, blocks, filters or drops queries by the client's network and
the query type, as CoreDNS's acl plugin does.  C{acl [ZONES...] { ACTION
[type QTYPE...|*] [net SOURCE...|*] }}: ACTION is C{allow}, C{block}
(REFUSED with Extended DNS Error 15, Blocked), C{filter} (an empty NOERROR
with Extended DNS Error 17, Filtered) or C{drop} (no reply); without C{type}
or C{net} a line matches every type or every client; a SOURCE without a
prefix length is one address.  In each C{acl} directive whose zones hold the
name, in Corefile order, the first line matching both the type and the
client decides; C{allow}, or no line matching, hands the query on.

Kept replies: where the lines that could decide a query all match every
client, the decision is the same for all and the reply may be sent again;
otherwise every reply that passed acl is built anew for its client.

Where it differs: the Extended DNS Error rides in the reply's OPT record
only when the query has one (CoreDNS adds an OPT record of its own); the
C{coredns_acl_*} metrics are not kept.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from twisted.names import dns
from zope.interface import implementer

from kubernetai import options
from kubernetai.chain import IHandler, Request, Response, ServerConfig
from kubernetai.corefile import Directive
from kubernetai.dnsnames import TYPES
from kubernetai.reuse import always, not_reusable

ALLOW, BLOCK, FILTER, DROP = "allow", "block", "filter", "drop"
ACTIONS = (ALLOW, BLOCK, FILTER, DROP)
SECTIONS = ("type", "net")
EXTENDED_ERROR = 15
EDE_BLOCKED, EDE_FILTERED = 15, 17
# miekg/dns's TypeNone: what C{type *} (or no type section) stands for.
ALL_TYPES = 0
EVERY_NETWORK = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))


@dataclass(frozen=True)
class Policy:
    """One line of an acl block: its action, the types it matches (ALL_TYPES among them: all) and the networks."""

    action: str
    qtypes: frozenset[int]
    networks: tuple

    @property
    def every_client(self) -> bool:
        return all(network in self.networks for network in EVERY_NETWORK)

    def matches_type(self, qtype: int) -> bool:
        return ALL_TYPES in self.qtypes or qtype in self.qtypes

    def holds(self, address) -> bool:
        return any(address in network for network in self.networks if network.version == address.version)


@dataclass(frozen=True)
class Rule:
    """One acl directive: the zones it covers and its lines in order."""

    zones: tuple[str, ...]
    policies: tuple[Policy, ...]

    def covers(self, name: str) -> bool:
        return any(zone == "." or name == zone or name.endswith("." + zone) for zone in self.zones)


def decide(rules: tuple[Rule, ...], name: str, qtype: int, client: str) -> tuple[str | None, bool]:
    """The action for a query (None: no line matched) and whether another client could get another."""
    address = ipaddress.ip_address(client.split("%", 1)[0])
    depends_on_client = False
    for rule in rules:
        if not rule.covers(name):
            continue
        for policy in rule.policies:
            if not policy.matches_type(qtype):
                continue
            depends_on_client = depends_on_client or not policy.every_client
            if policy.holds(address):
                return (None if policy.action == ALLOW else policy.action), depends_on_client
    return None, depends_on_client


@implementer(IHandler)
class Acl:
    """Queries allowed, blocked, filtered or dropped by client network and type."""

    name = "acl"
    next = None

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        self.rules = rules

    def serve(self, request: Request):
        action, depends_on_client = decide(self.rules, request.name, request.qtype, request.client[0])
        valid_while = None if depends_on_client else always
        if action == DROP:
            return Response(dropped=True)
        if action == BLOCK:
            return Response(rcode=dns.EREFUSED, edns_options=((EXTENDED_ERROR, struct.pack("!H", EDE_BLOCKED)),),
                            valid_while=valid_while)
        if action == FILTER:
            return Response(edns_options=((EXTENDED_ERROR, struct.pack("!H", EDE_FILTERED)),),
                            valid_while=valid_while)
        result = self.next.serve(request)
        return not_reusable(result) if depends_on_client else result


def parse_policy(line: Directive) -> Policy:
    """One C{ACTION [type QTYPE...] [net SOURCE...]} line."""
    action = line.name.lower()
    if action not in ACTIONS:
        raise options.error(line, f"unexpected token {line.name!r}; expect 'allow', 'block', 'filter' or 'drop'")
    qtypes: set[int] = set()
    networks: list = []
    tokens = list(line.args)
    while tokens:
        token = tokens.pop(0)
        section = token.lower()
        if section not in SECTIONS:
            raise options.error(line, f"unexpected token {token!r}; expect 'type | net'")
        values = []
        while tokens and tokens[0].lower() not in SECTIONS:
            values.append(tokens.pop(0))
        if not values:
            raise options.error(line, f"no token specified in {section!r} section")
        if section == "type":
            qtypes |= {ALL_TYPES} if "*" in values else {parse_qtype(line, value) for value in values}
        else:
            networks += EVERY_NETWORK if "*" in values else [parse_network(line, value) for value in values]
    return Policy(action, frozenset(qtypes or {ALL_TYPES}), tuple(networks or EVERY_NETWORK))


def parse_qtype(line: Directive, text: str) -> int:
    code = TYPES.get(text)
    if code is None and text.startswith("TYPE") and text[4:].isdigit():
        code = int(text[4:])
    if code is None:
        raise options.error(line, f"unexpected token {text!r}; expect legal QTYPE")
    return code


def parse_network(line: Directive, text: str):
    """A network in CIDR notation, or one address (its host bits may be set, as Go's ParseCIDR takes them)."""
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise options.error(line, f"illegal CIDR notation {text!r}") from None


def setup(directives: list[Directive], config: ServerConfig) -> Acl:
    """C{acl [ZONES...] { ACTION [type QTYPE...] [net SOURCE...] }}, each directive a rule, in order."""
    rules = []
    for directive in directives:
        zones = options.zones(directive, directive.args, [address.zone for address in config.zones])
        rules.append(Rule(zones, tuple(parse_policy(line) for line in directive.block)))
    config.plan.append("acl " + "; ".join(f"{' '.join(rule.zones)}: {len(rule.policies)} line(s)" for rule in rules))
    return Acl(tuple(rules))
