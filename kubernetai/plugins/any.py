# -*- test-case-name: tests.test_small_plugins -*-
"""
any: answers every query of type ANY with the one HINFO record RFC 8482
allows (C{"ANY obsoleted" "See RFC 8482"}, TTL 8482), as CoreDNS's any
plugin does; other queries go on down the chain.  C{any} takes no arguments
and no block.
"""

from __future__ import annotations

from twisted.names import dns
from zope.interface import implementer

from kubernetai import options
from kubernetai.chain import IHandler, Request, Response, ServerConfig
from kubernetai.corefile import Directive
from kubernetai.reuse import always

RFC8482_TTL = 8482


@implementer(IHandler)
class Any:
    """The RFC 8482 answer to ANY."""

    name = "any"
    next = None

    def serve(self, request: Request):
        if request.qtype != dns.ALL_RECORDS:
            return self.next.serve(request)
        hinfo = dns.Record_HINFO(b"ANY obsoleted", b"See RFC 8482", ttl=RFC8482_TTL)
        return Response(answers=[dns.RRHeader(request.qname, dns.HINFO, dns.IN, RFC8482_TTL, hinfo)],
                        valid_while=always)


def setup(directives: list[Directive], config: ServerConfig) -> Any:
    """C{any} takes no arguments."""
    directive = options.only_once(directives)
    options.arg_count(directive, 0, 0)
    options.no_block(directive)
    config.plan.append("any")
    return Any()
