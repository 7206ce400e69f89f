# -*- test-case-name: tests.test_k8s_external -*-
"""
k8s_external: names outside the cluster for services' external IPs and
LoadBalancer ingress, as CoreDNS's k8s_external plugin gives them
(C{plugin/k8s_external}: external.go, apex.go, msg_to_dns.go, setup.go).

C{k8s_external [ZONES...] { apex APEX; ttl TTL; headless; fallthrough
[ZONES...] }}, once per server block, which must also hold a C{kubernetes}
or C{kubernetai} stanza.  C{service.namespace.ZONE} answers A and AAAA with
the service's spec.externalIPs and ingress IPs (an ingress host name as a
CNAME, completed by resolving it through the server), SRV with its ports
(C{_port._protocol.service.namespace.ZONE} too), PTR for an external IP in
a reverse zone listed; with C{headless}, a headless service without
external IPs answers with its endpoints, and C{endpoint.service.namespace.ZONE}
with one of them.  Other types are NODATA.  The apex has an SOA
(C{ns1.APEX.ZONE}, C{hostmaster.APEX.ZONE}) and an NS, C{ns1.APEX.ZONE}
the addresses of this server (the external IPs of the service whose
endpoint it is, else its own).

The stanzas of the block answer in Corefile order: the first that holds the
name (its namespace exposed, the service with addresses) answers; when none
does, NXDOMAIN (SERVFAIL while a stanza has not synced), which goes on to
the next plugin with C{fallthrough}.  As in CoreDNS, address and PTR
records have k8s_external's TTL, SRV and CNAME records the answering
stanza's, and the SOA's serial is the last change of any stanza's data.

Where we differ from CoreDNS: no zone transfers of these zones (the
transfer plugin serves the stanzas' zones only); a second k8s_external in
one block is an error, and so is an APEX that is not one DNS label; a host
name ingress of a service with several ports gives one CNAME, not one per
port.
"""

from __future__ import annotations

import math
import re

from twisted.internet import defer
from twisted.names import dns
from zope.interface import implementer

from kubernetai import options
from kubernetai.chain import IHandler, Request, Response, ServerConfig
from kubernetai.corefile import Directive
from kubernetai.kubernetes.entries import host_type
from kubernetai.kubernetes.external import external_entries, external_name_server_ips
from kubernetai.kubernetes.records import address_record, record
from kubernetai.kubernetes.stanza import unchanged_since
from kubernetai.reuse import all_valid, also_valid_while
from kubernetai.zones import Fallthrough, in_zone, most_specific

DEFAULT_TTL = 5
DEFAULT_APEX = "dns"
HOSTMASTER = "hostmaster"
STANZA_DIRECTIVES = ("kubernetes", "kubernetai")
_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")


@implementer(IHandler)
class External:
    """Answers the k8s_external zones from the stanzas that follow it in the chain."""

    name = "k8s_external"
    next = None

    def __init__(self, zones: tuple[str, ...], apex: str = DEFAULT_APEX, ttl: int = DEFAULT_TTL,
                 headless: bool = False, fallthrough: Fallthrough | None = None) -> None:
        self.zones = zones
        self.apex = apex
        self.ttl = ttl
        self.headless = headless
        self.fallthrough = fallthrough
        self._stanzas = None

    @property
    def stanzas(self) -> list:
        """The block's stanzas, in Corefile order: those of the kubernetai handler later in the chain."""
        if self._stanzas is None:
            handler = self.next
            while handler is not None and not hasattr(handler, "stanzas"):
                handler = handler.next
            self._stanzas = handler.stanzas if handler is not None else []
        return self._stanzas

    def serve(self, request: Request):
        zone = most_specific(request.name, self.zones)
        if zone is None:
            return self.next.serve(request)
        unchanged = self.unchanged()
        for each in self.zones:
            if request.name == each:
                return _kept(self.serve_apex(request, zone), unchanged)
            if in_zone(request.name, _join(self.apex, each)):
                return _kept(self.serve_sub_apex(request, zone), unchanged)
        found, rcode, stanza = self.lookup(request.name, zone, request.qtype)
        if not found:
            if rcode == dns.ENAME and self.fallthrough is not None and self.fallthrough.through(request.name):
                return also_valid_while(self.next.serve(request), unchanged)
            return _kept(Response(rcode=rcode, authority=[self.soa(zone)], authoritative=True), unchanged)
        build = _BUILDERS.get(request.qtype)
        if build is None:
            return _kept(self.nodata(zone), unchanged)
        return _kept(build(self, request, zone, found, stanza.config.ttl), unchanged)

    def passes_alike(self, zone: str) -> bool:
        """The names of a zone apart from its own are all handed on as they are."""
        return not any(in_zone(zone, own) or in_zone(own, zone) for own in self.zones)

    def unchanged(self):
        """A check that holds while every stanza serves the data it serves now."""
        return all_valid(*(unchanged_since(stanza.cluster, stanza.cluster.snapshot.generation, stanza.cluster.synced)
                           for stanza in self.stanzas))

    def lookup(self, name: str, zone: str, qtype: int):
        """The entries of C{name}, its rcode, and the stanza that answered (SERVFAIL for a miss before a sync)."""
        for stanza in self.stanzas:
            found, rcode = external_entries(stanza.view(), name, zone, qtype, self.headless)
            if found or rcode != dns.ENAME:
                return found, rcode, stanza
        synced = all(stanza.cluster.synced for stanza in self.stanzas)
        return [], dns.ENAME if synced else dns.ESERVER, None

    def serve_apex(self, request: Request, zone: str) -> Response:
        """The zone's apex: its SOA, its NS (and the name server's addresses), NODATA for the rest."""
        if request.qtype == dns.SOA:
            return Response(answers=[self.soa(zone)], authoritative=True)
        if request.qtype != dns.NS:
            return self.nodata(zone)
        server = self.name_server(zone)
        ns = record(_owner(zone), dns.NS, self.ttl, dns.Record_NS(_owner(server), self.ttl))
        additional = [address_record(_owner(server), ip, self.ttl) for ip in self.name_server_ips()]
        return Response(answers=[ns], additional=additional, authoritative=True)

    def serve_sub_apex(self, request: Request, zone: str) -> Response:
        """The apex's C{dns} subdomain: C{ns1.dns.ZONE} has the name server's addresses, C{dns.ZONE} nothing."""
        labels = _trim(request.name, zone).split(".")
        if len(labels) == 1:
            return self.nodata(zone)
        if len(labels) != 2 or labels[0] != "ns1":
            return Response(rcode=dns.ENAME, authority=[self.soa(zone)], authoritative=True)
        answers = [address_record(request.qname, ip, self.ttl) for ip in self.name_server_ips()
                   if host_type(ip) == request.qtype]
        return Response(answers=answers, authoritative=True) if answers else self.nodata(zone)

    def name_server(self, zone: str) -> str:
        return _join("ns1", _join(self.apex, zone))

    def name_server_ips(self) -> list[str]:
        """This server's addresses: as the first stanza with an endpoint of ours has them, else its own."""
        for stanza in self.stanzas:
            found = external_name_server_ips(stanza.view(), self.headless)
            if found is not None:
                return found
        return list(self.stanzas[0].addresses) if self.stanzas else []

    def soa(self, zone: str) -> dns.RRHeader:
        serial = max((stanza.cluster.snapshot.modified for stanza in self.stanzas), default=0)
        soa = dns.Record_SOA(mname=_owner(self.name_server(zone)),
                             rname=_owner(_join(HOSTMASTER, _join(self.apex, zone))),
                             serial=serial, refresh=7200, retry=1800, expire=86400, minimum=self.ttl, ttl=self.ttl)
        return record(_owner(zone), dns.SOA, self.ttl, soa)

    def nodata(self, zone: str) -> Response:
        return Response(authority=[self.soa(zone)], authoritative=True)

    def answered(self, zone: str, answers, additional=(), truncated: bool = False) -> Response:
        """Answers, or NODATA when the name has records of other types only."""
        if not answers:
            return self.nodata(zone)
        return Response(answers=list(answers), additional=list(additional), authoritative=True, truncated=truncated)


def _kept(result, unchanged):
    """A Response the server may send again while C{unchanged} holds; a Deferred (a target resolved) never."""
    if isinstance(result, Response):
        result.valid_while = unchanged
    return result


def _addresses(external: External, request: Request, zone: str, found, stanza_ttl: int):
    """A or AAAA: the addresses of the asked family; a host name as a CNAME and what resolving it gives."""
    answers, seen, targets = [], set(), []
    for entry in found:
        kind = host_type(entry.host)
        if entry.host in seen or kind not in (dns.CNAME, request.qtype):
            continue
        seen.add(entry.host)
        if kind == dns.CNAME:
            answers.append(record(request.qname, dns.CNAME, stanza_ttl,
                                  dns.Record_CNAME(_owner(entry.host), stanza_ttl)))
            targets.append((len(answers), entry.host))
        else:
            answers.append(address_record(request.qname, entry.host, external.ttl))
    if not targets:
        return external.answered(zone, answers)
    return _completed(request, answers, targets).addCallback(
        lambda completed: external.answered(zone, completed[0], truncated=completed[1]))


@defer.inlineCallbacks
def _completed(request: Request, answers: list, targets):
    """C{answers} with, after each CNAME (its position and target), what resolving the target through the
    server gives, as CoreDNS's upstream; and whether any of those answers was truncated."""
    completed, start, truncated = [], 0, False
    for position, host in targets:
        completed += answers[start:position]
        start = position
        response = yield _lookup(request, host, request.qtype)
        if response is not None:
            completed += response.answers
            truncated = truncated or response.truncated
    return completed + answers[start:], truncated


@defer.inlineCallbacks
def _lookup(request: Request, host: str, qtype: int):
    """The server's Response for C{host} C{qtype}, or None when the lookup failed (CoreDNS then adds nothing)."""
    try:
        response = yield request.lookup(host, qtype)
    except Exception:
        return None
    return response


def _srv(external: External, request: Request, zone: str, found, stanza_ttl: int):
    """SRV records of the ports; each target's addresses as additional (a host name's, resolved)."""
    weight = max(1, math.floor(100.0 / (100 * len(found)) * 100))
    answers, additional, seen, hosts = [], [], set(), []
    for entry in found:
        if entry.port == -1:
            continue
        named = host_type(entry.host) == dns.CNAME
        target = entry.host if named else entry.owner
        if (target, entry.port) not in seen:
            seen.add((target, entry.port))
            answers.append(record(request.qname, dns.SRV, stanza_ttl,
                                  dns.Record_SRV(0, weight, entry.port, _owner(target), stanza_ttl)))
        if (target, entry.host) not in seen:
            seen.add((target, entry.host))
            if named:
                hosts.append(entry.host)
            else:
                additional.append(address_record(_owner(target), entry.host, external.ttl))
    if not hosts:
        return external.answered(zone, answers, additional)
    return _targets_resolved(request, hosts).addCallback(
        lambda resolved: external.answered(zone, answers, additional + resolved))


@defer.inlineCallbacks
def _targets_resolved(request: Request, hosts: list[str]):
    """The A and AAAA records of each SRV target that is a host name, resolved through the server."""
    found = []
    for host in hosts:
        for qtype in (dns.A, dns.AAAA):
            response = yield _lookup(request, host, qtype)
            found += response.answers if response is not None else []
    return found


def _ptr(external: External, request: Request, zone: str, found, stanza_ttl: int):
    """PTR records naming each service of the external IP, in the first zone."""
    targets = dict.fromkeys(_join(entry.host, external.zones[0]) for entry in found)
    answers = [record(request.qname, dns.PTR, external.ttl, dns.Record_PTR(_owner(target), external.ttl))
               for target in targets]
    return external.answered(zone, answers)


_BUILDERS = {dns.A: _addresses, dns.AAAA: _addresses, dns.SRV: _srv, dns.PTR: _ptr}


def _join(label: str, zone: str) -> str:
    return f"{label}.{zone}" if zone != "." else f"{label}."


def _trim(name: str, zone: str) -> str:
    return name.rstrip(".") if zone == "." else name[: -len(zone)].rstrip(".")


def _owner(name: str) -> str:
    return name.rstrip(".")


def parse_apex(option: Directive) -> str:
    """C{apex APEX}: one DNS label (CoreDNS reads the first argument and checks nothing)."""
    apex = options.arg_count(option, 1, None)[0].lower()
    if not _LABEL.fullmatch(apex):
        raise options.error(option, f"apex must be one DNS label (letters, digits, '-', '_'): {apex!r}")
    return apex


def setup(directives: list[Directive], config: ServerConfig) -> External:
    """C{k8s_external [ZONES...] { apex APEX; ttl TTL; headless; fallthrough [ZONES...] }}, once per block."""
    directive = options.only_once(directives)
    if not any(each.name in STANZA_DIRECTIVES for each in config.block.directives):
        raise options.error(directive, "kubernetes plugin not loaded: add a kubernetes or kubernetai stanza "
                                       "to this server block")
    zones = options.zones(directive, directive.args, [address.zone for address in config.zones])
    settings = {}
    for option in directive.block:
        options.no_block(option)
        if option.name == "ttl":
            text = options.arg_count(option, 1, None)[0]
            settings["ttl"] = options.parse_int(option, text, -(2**63), 2**63 - 1)
            if not 0 <= settings["ttl"] <= 3600:
                raise options.error(option, f"ttl must be in range [0, 3600]: {settings['ttl']}")
        elif option.name == "apex":
            settings["apex"] = parse_apex(option)
        elif option.name == "headless":
            options.arg_count(option, 0, 0)
            settings["headless"] = True
        elif option.name == "fallthrough":
            settings["fallthrough"] = Fallthrough(options.zones(option, option.args, ()))
        else:
            raise options.unknown(option, "property", ("apex", "ttl", "headless", "fallthrough"))
    config.plan.append(f"k8s_external {' '.join(zones)}")
    return External(tuple(zones), **settings)
