# -*- test-case-name: tests.test_transfer -*-
"""
transfer: zone transfers of the kubernetai stanzas' zones and the file
plugin's, as CoreDNS's transfer plugin answers them.

C{transfer [ZONES...] { to ADDRESS... }}, once or more per server block;
ZONES default to the block's.  ADDRESS is an IP (a port after it, as
CoreDNS writes NOTIFY targets, is ignored), a network such as C{10.0.0.0/8}
(CoreDNS takes none), or C{*} for anyone; C{to} may be repeated.  C{source}
is refused: it only sets where NOTIFY messages come from, and the
kubernetes plugin sends none.

A query that is not AXFR or IXFR goes on.  Over UDP one is REFUSED.  The
C{transfer} whose zones hold the name most specifically decides (none: the
query goes on); a client it does not list is REFUSED.  The zone comes from
the first stanza of this server block (in Corefile order) with that very
zone, else from the block's C{file} zone of that name; none: the query goes
on, so the kubernetai plugin REFUSES it or nothing follows and it is
SERVFAIL, as in CoreDNS.  A stanza not yet synced (a zone file not yet read)
answers SERVFAIL rather than an empty zone.  IXFR is answered as AXFR,
except that a client whose SOA serial is the zone's gets the SOA alone; an
IXFR without exactly one SOA in its authority section is SERVFAIL.

The transfer goes out as messages of at most 63,000 bytes of (uncompressed)
records each, every one with the query's ID and question, as CoreDNS sends
it.  The records are built from the stanza's snapshot in a thread of the
reactor's pool: a large cluster's zone takes seconds of work that queries
should not wait behind.
"""

from __future__ import annotations

import ipaddress
from functools import partial
from io import BytesIO
from typing import NamedTuple

from twisted.internet import threads
from twisted.logger import Logger
from twisted.names import dns
from zope.interface import implementer

from kubernetai import options
from kubernetai.chain import IHandler, Request, Response, ServerConfig
from kubernetai.corefile import Directive
from kubernetai.kubernetes.xfr import zone_transfer
from kubernetai.plugins.file import File
from kubernetai.plugins.kubernetai import Kubernetai
from kubernetai.zones import in_zone

log = Logger(namespace="kubernetai.plugins.transfer")

# What authority() gives for a zone whose plugin has no data yet (a stanza not synced, a file not read): SERVFAIL.
NOT_READY = object()

# transfer.go flushes a message before its records pass this many bytes, leaving room in 64 KiB for the rest.
ENVELOPE_BYTES = 63000

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Rule(NamedTuple):
    """One C{transfer} directive: its zones, and the clients allowed (None: anyone)."""

    zones: tuple[str, ...]
    to: tuple[Network | None, ...]

    def allows(self, host: str) -> bool:
        address = ipaddress.ip_address(host)
        return any(network is None or address in network for network in self.to)

    def describe(self) -> str:
        return f"transfer {' '.join(self.zones)} to {' '.join(_client_text(network) for network in self.to)}"


@implementer(IHandler)
class Transfer:
    """Answers AXFR and IXFR over TCP from the block's stanzas, for the clients its rules allow."""

    name = "transfer"
    next = None

    def __init__(self, rules: list[Rule], handlers: list[IHandler], reactor) -> None:
        self.rules = rules
        # The block's handlers, the kubernetai stanzas among them once the chain is built.
        self.handlers = handlers
        self.reactor = reactor

    def serve(self, request: Request):
        if request.qtype not in (dns.AXFR, dns.IXFR):
            return self.next.serve(request)
        if request.protocol != "tcp":
            return Response(rcode=dns.EREFUSED)
        rule = longest_match(self.rules, request.name)
        if rule is None:
            return self.next.serve(request)
        if not rule.allows(request.client[0]):
            return Response(rcode=dns.EREFUSED)
        serial = ixfr_serial(request.message) if request.qtype == dns.IXFR else 0
        if serial is None:
            return Response(rcode=dns.ESERVER)
        records_of = self.authority(request.name)
        if records_of is None:
            return self.next.serve(request)
        if records_of is NOT_READY:
            return Response(rcode=dns.ESERVER)
        pool = self.reactor.getThreadPool()
        built = threads.deferToThreadPool(self.reactor, pool, transfer_response, records_of, serial)
        return built.addCallback(_logged, request)

    def authority(self, zone: str):
        """What gives C{zone}'s records for a client's serial, from the first of the block's stanzas (or file
        zones) serving C{zone} itself; None when none does, NOT_READY when it has no data yet."""
        for handler in self.handlers:
            if isinstance(handler, Kubernetai):
                for stanza in handler.stanzas:
                    if zone in stanza.config.zones:
                        return partial(zone_transfer, stanza.view(), zone) if stanza.cluster.synced else NOT_READY
            if isinstance(handler, File) and zone in handler.zones:
                served = handler.zones[zone]
                return served.transfer if served.soa is not None else NOT_READY
        return None


def transfer_response(records_of, serial: int) -> Response:
    """The reply to a transfer: the zone's records in messages, or its SOA alone for an up-to-date IXFR."""
    records = records_of(serial)
    if len(records) == 1:
        return Response(answers=records)
    return Response(messages=envelopes(records), authoritative=True)


def _logged(response: Response, request: Request) -> Response:
    """Log a transfer as CoreDNS does."""
    client = request.client[0]
    if response.messages is None:
        log.info("Outgoing noop, incremental transfer for up to date zone {zone} to {client} for {serial} SOA serial",
                 zone=request.name, client=client, serial=response.answers[0].payload.serial)
    else:
        log.info("Outgoing transfer of {count} records of zone {zone} to {client} for {serial} SOA serial",
                 count=sum(len(batch) for batch in response.messages), zone=request.name, client=client,
                 serial=response.messages[0][0].payload.serial)
    return response


def longest_match(rules: list[Rule], name: str) -> Rule | None:
    """The rule with the most specific zone holding C{name}; the first of equals."""
    found, found_zone = None, ""
    for rule in rules:
        for zone in rule.zones:
            if in_zone(name, zone) and len(zone) > len(found_zone):
                found, found_zone = rule, zone
    return found


def ixfr_serial(message: dns.Message) -> int | None:
    """The serial of the SOA an IXFR carries (the client's version), None without exactly one."""
    if len(message.authority) != 1 or message.authority[0].type != dns.SOA:
        return None
    return message.authority[0].payload.serial


def envelopes(records: list[dns.RRHeader]) -> list[list[dns.RRHeader]]:
    """C{records} in order, in messages of at most ENVELOPE_BYTES of uncompressed records (one record at least)."""
    batches: list[list[dns.RRHeader]] = [[]]
    size = 0
    for record in records:
        length = wire_length(record)
        if batches[-1] and size + length > ENVELOPE_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(record)
        size += length
    return batches


def wire_length(record: dns.RRHeader) -> int:
    """A record's size on the wire, uncompressed (miekg/dns's Len)."""
    buffer = BytesIO()
    record.encode(buffer)
    return buffer.tell()


def setup(directives: list[Directive], config: ServerConfig) -> Transfer:
    """C{transfer [ZONES...] { to ADDRESS... }}, once or more per server block."""
    server_zones = dict.fromkeys(address.zone for address in config.zones)
    rules = [parse_rule(directive, server_zones) for directive in directives]
    config.plan += [rule.describe() for rule in rules]
    return Transfer(rules, config.handlers, config.reactor)


def parse_rule(directive: Directive, server_zones) -> Rule:
    """One C{transfer} directive; C{to} is required, every other option is refused by name."""
    zones = options.zones(directive, directive.args, server_zones)
    clients: list[Network | None] = []
    for option in directive.block:
        options.no_block(option)
        if option.name == "source":
            raise options.error(option, "source is not supported: it only sets where NOTIFY comes from, "
                                        "and kubernetai sends none")
        if option.name != "to":
            raise options.unknown(option, "property", ("to",))
        clients += [parse_client(option, text) for text in options.arg_count(option, 1, None)]
    if not clients:
        raise options.error(directive, "'to' is required")
    return Rule(zones, tuple(clients))


def parse_client(option: Directive, text: str) -> Network | None:
    """A C{to} argument: None for C{*}, else the network an IP (port ignored) or CIDR stands for."""
    if text == "*":
        return None
    try:
        return ipaddress.ip_network(_without_port(text), strict=False)
    except ValueError:
        raise options.error(option, f"invalid address {text!r}: expected an IP address (optionally with a "
                                    "port), a network such as 10.0.0.0/8, or *") from None


def _without_port(text: str) -> str:
    """C{1.2.3.4:53} -> C{1.2.3.4}, C{[::1]:53} -> C{::1}; raises ValueError for a port that is not one."""
    if text.startswith("["):
        host, bracket, port = text[1:].partition("]:")
        if not bracket:
            raise ValueError(text)
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        return text
    if not (port.isascii() and port.isdigit() and int(port) <= 65535):
        raise ValueError(text)
    return host


def _client_text(network: Network | None) -> str:
    if network is None:
        return "*"
    return str(network.network_address) if network.prefixlen == network.max_prefixlen else str(network)
