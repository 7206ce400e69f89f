# -*- test-case-name: tests.test_loadbalance_loop -*-
"""
loadbalance: shuffles the A, AAAA and MX records of every successful answer,
as CoreDNS's loadbalance plugin does, keeping CNAMEs in front because some
stub resolvers (glibc) insist on it.

C{loadbalance [round_robin] { prefer CIDR... }}: C{round_robin} (the
default) shuffles the answer, authority and additional sections; C{prefer}
then moves the A and AAAA records inside the given subnets to the front, in
the order the subnets are listed.  The C{weighted} policy is refused.

A reply that may come out in another order next time is never sent again
from the server's ready replies: its C{valid_while} is cleared.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import random

from twisted.names import dns
from zope.interface import implementer

from kubernetai import options
from kubernetai.chain import IHandler, Request, Response, ServerConfig, then
from kubernetai.corefile import Directive

ROUND_ROBIN = "round_robin"
WEIGHTED = "weighted"
ADDRESS_TYPES = (dns.A, dns.AAAA)
ZONE_TRANSFERS = (dns.AXFR, dns.IXFR)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@implementer(IHandler)
class LoadBalance:
    """Reorders the answer of the rest of the chain."""

    name = "loadbalance"
    next = None

    def __init__(self, prefer: tuple[Network, ...] = ()) -> None:
        self.prefer = prefer

    def serve(self, request: Request):
        return then(self.next.serve(request), self.reorder, request.qtype)

    def passes_alike(self, zone: str) -> bool:
        """Only answers are shuffled; a denial passes as it is."""
        return True

    def reorder(self, response: Response, qtype: int) -> Response:
        """C{response} shuffled (and its preferred subnets first), as CoreDNS writes it; never changed in place."""
        if response.rcode != dns.OK or qtype in ZONE_TRANSFERS:
            return response
        answers, authority, additional = (round_robin(response.answers), round_robin(response.authority),
                                          round_robin(response.additional))
        if self.prefer:
            answers = prefer_subnets(answers, self.prefer)
            additional = prefer_subnets(additional, self.prefer)
        valid_while = response.valid_while
        if any(shuffles(section) for section in (response.answers, response.authority, response.additional)):
            valid_while = None
        return dataclasses.replace(response, answers=answers, authority=authority, additional=additional,
                                   valid_while=valid_while)


def shuffles(records: list[dns.RRHeader]) -> bool:
    """Whether L{round_robin} may order C{records} differently from one call to the next."""
    addresses = sum(1 for record in records if record.type in ADDRESS_TYPES)
    mail = sum(1 for record in records if record.type == dns.MX)
    return addresses > 1 or mail > 1


def round_robin(records: list[dns.RRHeader]) -> list[dns.RRHeader]:
    """A new list: only-A (or only-AAAA) records shuffled; else CNAMEs, the rest, shuffled addresses, shuffled MX."""
    if len(records) <= 1:
        return list(records)
    if records[0].type in ADDRESS_TYPES and all(record.type == records[0].type for record in records):
        return shuffled(records)
    cnames = [record for record in records if record.type == dns.CNAME]
    rest = [record for record in records if record.type not in (dns.CNAME, dns.MX, *ADDRESS_TYPES)]
    addresses = [record for record in records if record.type in ADDRESS_TYPES]
    mail = [record for record in records if record.type == dns.MX]
    return cnames + rest + shuffled(addresses) + shuffled(mail)


def shuffled(records: list[dns.RRHeader]) -> list[dns.RRHeader]:
    """C{records} in CoreDNS's random order: each place swapped with a later one picked by a 16-bit random ID."""
    out = list(records)
    count = len(out)
    if count == 2:
        if random.getrandbits(16) % 2 == 0:
            out.reverse()
    elif count > 2:
        for place in range(count):
            other = place + random.getrandbits(16) % (count - place)
            out[place], out[other] = out[other], out[place]
    return out


def prefer_subnets(records: list[dns.RRHeader], subnets: tuple[Network, ...]) -> list[dns.RRHeader]:
    """CNAMEs, then addresses in C{subnets} (subnet by subnet), the other addresses, MX, and the rest."""
    addresses = [record for record in records if record.type in ADDRESS_TYPES]
    preferred: list[int] = []
    for subnet in subnets:
        preferred += [index for index, record in enumerate(addresses)
                      if index not in preferred and ipaddress.ip_address(record.payload.address) in subnet]
    others = [record for index, record in enumerate(addresses) if index not in preferred]
    cnames = [record for record in records if record.type == dns.CNAME]
    mail = [record for record in records if record.type == dns.MX]
    rest = [record for record in records if record.type not in (dns.CNAME, dns.MX, *ADDRESS_TYPES)]
    return cnames + [addresses[index] for index in preferred] + others + mail + rest


def setup(directives: list[Directive], config: ServerConfig) -> LoadBalance:
    """C{loadbalance [round_robin] { prefer CIDR... }}, once per server block."""
    directive = options.only_once(directives)
    parse_policy(directive)
    prefer = parse_block(directive)
    subnets = " ".join(str(subnet) for subnet in prefer)
    config.plan.append(f"loadbalance round_robin (A, AAAA, MX){' prefer ' + subnets if prefer else ''}")
    return LoadBalance(prefer)


def parse_policy(directive: Directive) -> str:
    """The policy the arguments name, checked as CoreDNS checks them."""
    if not directive.args:
        return ROUND_ROBIN
    policy = directive.args[0]
    if policy == WEIGHTED:
        raise options.error(directive, "policy 'weighted' is not supported by kubernetai; use round_robin")
    if policy != ROUND_ROBIN:
        raise options.error(directive, f"unknown policy: {policy}")
    if len(directive.args) > 1:
        raise options.error(directive, f"unknown property for {policy}")
    return policy


def parse_block(directive: Directive) -> tuple[Network, ...]:
    """The subnets of the block's C{prefer} lines, in order."""
    subnets: list[Network] = []
    for option in directive.block:
        if option.name != "prefer":
            raise options.unknown(option, "property", ("prefer",))
        subnets += [parse_cidr(option, text) for text in option.args]
    return tuple(subnets)


def parse_cidr(option: Directive, text: str) -> Network:
    """A subnet as Go's net.ParseCIDR reads it: an address and a prefix length, host bits allowed."""
    try:
        if "/" not in text:
            raise ValueError(f"invalid CIDR address: {text}")
        return ipaddress.ip_network(text, strict=False)
    except ValueError as err:
        raise options.error(option, f"invalid CIDR {text!r}: {err}") from None
