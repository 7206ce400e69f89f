# -*- test-case-name: tests.test_plugins -*-
"""
whoami: answers every query with the client's address and port, as CoreDNS's
whoami plugin does: an A or AAAA record for the client's IP and an SRV record
C{_udp.NAME} / C{_tcp.NAME} with its port, both in the additional section.
"""

from __future__ import annotations

import ipaddress

from twisted.names import dns
from zope.interface import implementer

from kubernetai import options
from kubernetai.chain import IHandler, Request, Response, ServerConfig
from kubernetai.corefile import Directive


@implementer(IHandler)
class Whoami:
    """Tells the client who it is."""

    name = "whoami"
    next = None

    def serve(self, request: Request) -> Response:
        host, port = request.client
        qname = request.qname
        if ipaddress.ip_address(host).version == 4:
            address = dns.RRHeader(qname, dns.A, request.qclass, 0, dns.Record_A(host))
        else:
            address = dns.RRHeader(qname, dns.AAAA, request.qclass, 0, dns.Record_AAAA(host))
        srv_name = b"_" + request.protocol.encode() + (b"." + qname if qname else b"")
        srv = dns.RRHeader(srv_name, dns.SRV, request.qclass, 0, dns.Record_SRV(0, 0, port, b""))
        return Response(additional=[address, srv], authoritative=True)


def setup(directives: list[Directive], config: ServerConfig) -> Whoami:
    """C{whoami} takes no arguments."""
    directive = options.only_once(directives)
    options.arg_count(directive, 0, 0)
    options.no_block(directive)
    config.plan.append("whoami")
    return Whoami()
