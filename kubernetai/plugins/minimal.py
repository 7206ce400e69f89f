# -*- test-case-name: tests.test_small_plugins -*-
"""
minimal: drops the authority and additional sections of a positive answer,
as CoreDNS's minimal plugin does: a NOERROR reply with answer records, or a
NOERROR reply with neither answers nor a SOA or NS in authority (CoreDNS's
C{response.Typify} calls both NoError).  Denials (NXDOMAIN, NODATA with its
SOA), delegations (NS in authority), errors and zone transfers pass as they
are.  C{minimal} takes no arguments.

Where it differs: CoreDNS logs an error for the response types it leaves
alone without naming them (update, notify, expired signatures); kubernetai
serves none of those.
"""

from __future__ import annotations

import dataclasses

from twisted.names import dns
from zope.interface import implementer

from kubernetai import options
from kubernetai.chain import IHandler, Request, Response, ServerConfig, then
from kubernetai.corefile import Directive

ZONE_TRANSFERS = (dns.AXFR, dns.IXFR)


def is_positive(response: Response) -> bool:
    """Whether C{response} is what CoreDNS's C{response.Typify} calls NoError."""
    if response.answers:
        return response.rcode == dns.OK
    types = {record.type for record in response.authority}
    return response.rcode == dns.OK and dns.SOA not in types and dns.NS not in types


def minimised(response: Response) -> Response:
    """C{response} without authority and additional records when it is positive; never changed in place."""
    if response.messages is not None or not is_positive(response):
        return response
    if not response.authority and not response.additional:
        return response
    return dataclasses.replace(response, authority=[], additional=[])


@implementer(IHandler)
class Minimal:
    """Positive answers without their authority and additional sections."""

    name = "minimal"
    next = None

    def serve(self, request: Request):
        result = self.next.serve(request)
        if request.qtype in ZONE_TRANSFERS:
            return result
        return then(result, minimised)


def setup(directives: list[Directive], config: ServerConfig) -> Minimal:
    """C{minimal} takes no arguments."""
    directive = options.only_once(directives)
    options.arg_count(directive, 0, 0)
    options.no_block(directive)
    config.plan.append("minimal")
    return Minimal()
