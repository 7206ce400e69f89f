# -*- test-case-name: tests.test_view -*-
"""
view: a server block takes only the queries its expressions admit, as
CoreDNS's view plugin does (split DNS by client network, query type...).

C{view NAME { expr EXPRESSION... }}, once per server block: the block
admits a query when every C{expr} is true for it (none: every query).
Several blocks may then serve the same zone on the same port, at most one
of them without C{view}; a query goes to the first of them, in Corefile
order, that admits it, and with none, on to the blocks of shorter zones
(CoreDNS's server). EXPRESSION is the subset of expr-lang/expr described
in L{kubernetai.expression}; an expression outside it stops start-up.

Differs from CoreDNS: C{metadata(LABEL)} is always empty (kubernetai has
no metadata plugin, which CoreDNS needs to fill it); C{size()} is the
query's length as received.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import cached_property

from kubernetai import options
from kubernetai.chain import Request, ServerConfig
from kubernetai.corefile import Directive
from kubernetai.expression import Expression, compile_expression
from kubernetai.dnsnames import class_name, type_name

# miekg/dns escapes these in a label with a backslash (the dot is lost in Twisted's names).
SPECIAL = frozenset(b" '@;()\"\\")


@dataclass(frozen=True)
class View:
    """A named view: the expressions a query must all satisfy."""

    name: str
    expressions: tuple[Expression, ...]

    def admits(self, request: Request) -> bool:
        facts = QueryFacts(request)
        return all(expression.matches(facts) for expression in self.expressions)


class QueryFacts:
    """What the expression functions read of a query, as CoreDNS's request.Request gives it."""

    def __init__(self, request: Request) -> None:
        self.request = request

    @cached_property
    def name(self) -> str:
        return presentation_name(self.request.qname)

    @property
    def type_name(self) -> str:
        return type_name(self.request.qtype)

    @property
    def class_name(self) -> str:
        return class_name(self.request.qclass)

    @property
    def protocol(self) -> str:
        return self.request.protocol

    @property
    def size(self) -> int:
        return self.request.size

    @property
    def client_ip(self) -> str:
        return self.request.client[0]

    @property
    def client_port(self) -> str:
        return str(self.request.client[1])

    @property
    def id(self) -> int:
        return self.request.message.id

    @property
    def opcode(self) -> int:
        return self.request.message.opCode

    @property
    def dnssec_ok(self) -> bool:
        return self.request.dnssec_ok

    @property
    def bufsize(self) -> int:
        return self.request.max_size

    @property
    def server_ip(self) -> str:
        return _unmapped(self.request.local[0]) if self.request.local else ""

    @property
    def server_port(self) -> str:
        return str(self.request.local[1]) if self.request.local else "0"


def presentation_name(qname: bytes) -> str:
    """C{qname} as CoreDNS's C{state.Name()} shows it: lower case, a final dot, special octets escaped."""
    if not qname:
        return "."
    labels = []
    for label in qname.lower().split(b"."):
        labels.append("".join(
            "\\" + chr(octet) if octet in SPECIAL else chr(octet) if 0x20 <= octet <= 0x7E else f"\\{octet:03d}"
            for octet in label))
    return ".".join(labels) + "."


def _unmapped(host: str) -> str:
    """An IPv4-mapped IPv6 address as Go prints it: the IPv4 address."""
    try:
        mapped = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(mapped, ipaddress.IPv6Address) and mapped.ipv4_mapped is not None:
        return str(mapped.ipv4_mapped)
    return host


def parse_view(directives: list[Directive]) -> View:
    """The block's one C{view NAME { expr EXPRESSION }}, with CoreDNS's errors."""
    directive = options.only_once(directives)
    if len(directive.args) != 1:
        raise options.error(directive, "Wrong argument count or unexpected line ending after 'view'")
    expressions = []
    for line in directive.block:
        if line.name != "expr":
            raise options.error(line, f"unknown property '{line.name}'")
        options.no_block(line)
        text = " ".join(line.args)
        try:
            expressions.append(compile_expression(text))
        except ValueError as err:
            raise options.error(line, f"expr {text!r}: {err}") from None
    return View(directive.args[0], tuple(expressions))


def setup(directives: list[Directive], config: ServerConfig) -> None:
    """The block admits only the queries its view does; no handler joins the chain."""
    view = parse_view(directives)
    config.admits = view.admits
    tests = " and ".join(f"({expression.text})" for expression in view.expressions)
    config.plan.append(f"view {view.name}: {tests or 'every query'}")
