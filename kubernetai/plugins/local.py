# -*- test-case-name: tests.test_small_plugins -*-
"""
local: answers the names RFC 6761 keeps local without asking anyone, as
CoreDNS's local plugin does: C{localhost.} (A 127.0.0.1, AAAA ::1, NS, SOA),
every name under C{localhost.} (A and AAAA), C{1.0.0.127.in-addr.arpa.} (PTR
localhost.), and the zones C{0.in-addr.arpa.}, C{127.in-addr.arpa.},
C{255.in-addr.arpa.} (NXDOMAIN or NODATA with their SOA); and, unless
C{localhost_prefix off}, names starting with C{localhost.} (as
C{localhost.example.net.}), as if they were localhost.  Everything else goes
on down the chain.  TTL 604800.

C{local { localhost_prefix on|off }}.  With C{debug}, each answer is logged
at debug level, as CoreDNS logs it.  Where it differs: CoreDNS's
C{coredns_local_localhost_requests_total} metric is not kept.
"""

from __future__ import annotations

from twisted.logger import Logger
from twisted.names import dns
from zope.interface import implementer

from kubernetai import options
from kubernetai.chain import IHandler, Request, Response, ServerConfig
from kubernetai.corefile import Directive
from kubernetai.dnsnames import type_name
from kubernetai.logs import debugging
from kubernetai.reuse import always

log = Logger(namespace="kubernetai.plugins.local")

TTL = 604800
LOCALHOST = "localhost."
ZONES = (LOCALHOST, "0.in-addr.arpa.", "127.in-addr.arpa.", "255.in-addr.arpa.")
LOOPBACK_PTR = "1.0.0.127.in-addr.arpa."


def record(name: bytes, payload) -> dns.RRHeader:
    return dns.RRHeader(name, payload.TYPE, dns.IN, TTL, payload)


def soa(origin: bytes) -> list[dns.RRHeader]:
    """The SOA of a local zone whose name is C{origin}, as CoreDNS's soaFromOrigin writes it."""
    return [record(origin, dns.Record_SOA(b"localhost", b"root.localhost", 1, 0, 0, 0, TTL, ttl=TTL))]


def loopback(qname: bytes, qtype: int) -> Response | None:
    """The loopback address of a localhost name for A and AAAA; None for other types."""
    if qtype == dns.A:
        return Response(answers=[record(qname, dns.Record_A("127.0.0.1", ttl=TTL))], valid_while=always)
    if qtype == dns.AAAA:
        return Response(answers=[record(qname, dns.Record_AAAA("::1", ttl=TTL))], valid_while=always)
    return None


def local_answer(name: str, qname: bytes, qtype: int, localhost_prefix: bool) -> Response | None:
    """The answer to a local name, None for a name that is not one (C{name} lowercase with its dot)."""
    under_localhost = name.endswith("." + LOCALHOST)
    if len(name) > len(LOCALHOST) and (under_localhost or (localhost_prefix and name.startswith(LOCALHOST))):
        return loopback(qname, qtype) or Response(authority=soa(qname), valid_while=always)
    zone = next((zone for zone in ZONES if name == zone or name.endswith("." + zone)), None)
    if zone is None:
        return None
    zone_name = qname[len(qname) - len(zone) + 1 :]
    if name in ZONES:
        if qtype == dns.SOA:
            return Response(answers=soa(qname), valid_while=always)
        if qtype == dns.NS:
            return Response(answers=[record(qname, dns.Record_NS(b"localhost", ttl=TTL))], valid_while=always)
        return (name == LOCALHOST and loopback(qname, qtype)) or Response(authority=soa(qname), valid_while=always)
    if name == LOOPBACK_PTR:
        if qtype == dns.PTR:
            return Response(answers=[record(qname, dns.Record_PTR(b"localhost", ttl=TTL))], valid_while=always)
        return Response(authority=soa(zone_name), valid_while=always)
    return Response(rcode=dns.ENAME, authority=soa(zone_name), valid_while=always)


@implementer(IHandler)
class Local:
    """RFC 6761's local names, answered here."""

    name = "local"
    next = None

    def __init__(self, localhost_prefix: bool = True) -> None:
        self.localhost_prefix = localhost_prefix

    def serve(self, request: Request):
        if request.qclass == dns.IN:
            response = local_answer(request.name, request.qname, request.qtype, self.localhost_prefix)
            if response is not None:
                if debugging():
                    log.debug('Intercepting localhost query for "{name}" {qtype}, from {client}', name=request.name,
                              qtype=type_name(request.qtype), client=request.client[0])
                return response
        return self.next.serve(request)


def parse_local(directives: list[Directive]) -> bool:
    """Whether names starting with C{localhost.} are answered (C{localhost_prefix}, on by default)."""
    directive = options.only_once(directives)
    options.arg_count(directive, 0, 0)
    localhost_prefix = True
    for option in directive.block:
        if option.name != "localhost_prefix":
            raise options.unknown(option, "property", ["localhost_prefix"])
        (value,) = options.arg_count(option, 1, 1)
        if value not in ("on", "off"):
            raise options.error(option, f"localhost_prefix expects 'on' or 'off', got {value!r}")
        localhost_prefix = value == "on"
    return localhost_prefix


def setup(directives: list[Directive], config: ServerConfig) -> Local:
    """C{local { localhost_prefix on|off }}."""
    localhost_prefix = parse_local(directives)
    config.plan.append("local" + ("" if localhost_prefix else " (localhost_prefix off)"))
    return Local(localhost_prefix)
