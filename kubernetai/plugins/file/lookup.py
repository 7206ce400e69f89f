# -*- test-case-name: tests.test_file -*-
"""
The file plugin's answers: a pure function from a L{Zone} and a question to
the records of the three sections and a result, step for step as CoreDNS's
C{plugin/file/lookup.go} (delegations, DNAME, CNAME chasing inside the zone,
RFC 4592 wildcards, empty non-terminals, NSEC denials with the DO bit).

A CNAME whose target the zone does not hold ends in a L{Chase}: the handler
resolves the target through the server (CoreDNS's upstream) and completes
the answer with L{Chase.complete}.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from twisted.names import dns as tdns

from kubernetai.plugins.file.zone import Node, Zone, data_name, name_key, renamed, target_of
from kubernetai.zones import in_zone

DNAME, DS, NSEC = 39, 43, 47
# How many CNAMEs after the first externalLookup follows inside the zone before it stops (its i > 8).
MAX_CHASE = 8


class Result(enum.Enum):
    SUCCESS = "success"
    NAME_ERROR = "name error"
    DELEGATION = "delegation"
    NO_DATA = "no data"
    SERVER_FAILURE = "server failure"


@dataclass
class Found:
    """The sections of an answer and what kind of answer it is."""

    result: Result
    answer: list = field(default_factory=list)
    authority: list = field(default_factory=list)
    additional: list = field(default_factory=list)


@dataclass
class Chase:
    """An answer that needs C{target}'s records from the server: C{before} and C{chain} come before them."""

    chain: list
    target: str
    before: list = field(default_factory=list)

    def complete(self, zone: Zone, dnssec: bool, upstream: Found) -> Found:
        """The whole answer, given the lookup's answer records and result (lookup.go's doLookup)."""
        answer = self.chain + upstream.answer
        result = upstream.result
        authority = zone.soa_records(dnssec) if result in (Result.NAME_ERROR, Result.NO_DATA) \
            else zone.ns_records(dnssec)
        return Found(result, self.before + answer, authority, additional(zone, answer, dnssec))


def upstream_result(rcode: int, answers: list) -> Found:
    """What the server's answer to a chased target means to the chase (lookup.go's doLookup)."""
    if rcode == tdns.ENAME:
        return Found(Result.NAME_ERROR, answers)
    if rcode == tdns.ESERVER:
        return Found(Result.SERVER_FAILURE, answers)
    if rcode == tdns.OK and not answers:
        return Found(Result.NO_DATA)
    return Found(Result.SUCCESS, answers)


def lookup(zone: Zone, qname: str, qtype: int, dnssec: bool) -> Found | Chase:
    """C{qname} (lower case, with the final dot, in the zone) of C{qtype} in C{zone}."""
    if zone.soa is None:
        return Found(Result.SERVER_FAILURE)
    if qname == zone.origin and qtype == tdns.SOA:
        return Found(Result.SUCCESS, zone.soa_records(dnssec), zone.ns_records(dnssec))
    if qname == zone.origin and qtype == tdns.NS:
        ns = zone.ns_records(dnssec)
        return Found(Result.SUCCESS, ns, [], glue(zone, ns, dnssec))
    wild_name, wild = None, None
    elem = None
    for parts in names_from_right(zone.origin, qname):
        elem = zone.search(parts)
        if elem is None:
            wildcard = asterisk_of(parts)
            if wildcard and zone.search(wildcard) is not None:
                wild_name, wild = wildcard, zone.search(wildcard)
            elif wildcard and zone.has_descendant(wildcard):
                wild_name, wild = wildcard, None
            continue
        dname = elem.of(DNAME)
        if dname:
            synthesized = synthesize_cname(qname, dname[0])
            if synthesized is not None:
                return substituted(zone, elem, dname, synthesized, qtype, dnssec)
        referral = delegation(zone, elem, parts, qname, qtype, dnssec)
        if referral is not None:
            return referral
    if elem is not None:
        return exact(zone, elem, qname, qtype, dnssec)
    if wild_name is not None and not closer_empty_non_terminal(zone, qname, wild_name):
        return wildcard_answer(zone, wild, qname, qtype, dnssec)
    return denial(zone, qname, dnssec)


def exact(zone: Zone, elem: Node, qname: str, qtype: int, dnssec: bool) -> Found | Chase:
    """The answer from the node of the name itself."""
    cnames = elem.of(tdns.CNAME)
    if cnames and qtype != tdns.CNAME:
        return chase(zone, elem, cnames, qtype, dnssec)
    records = elem.of(qtype)
    if not records:
        return Found(Result.NO_DATA, [], zone.soa_records(dnssec) + (elem.of(NSEC, True) if dnssec else []))
    extra = additional(zone, records, dnssec)
    return Found(Result.SUCCESS, elem.of(qtype, dnssec), zone.ns_records(dnssec), extra)


def wildcard_answer(zone: Zone, wild: Node | None, qname: str, qtype: int, dnssec: bool) -> Found | Chase:
    """The answer synthesized from wildcard C{wild} (None: an empty non-terminal wildcard, NODATA)."""
    if wild is None:
        return Found(Result.NO_DATA, [], zone.soa_records(dnssec))
    cnames = renamed(wild.of(tdns.CNAME), qname)
    if cnames and qtype != tdns.CNAME:
        return chase(zone, wild, cnames, qtype, dnssec)
    records = renamed(wild.of(qtype), qname)
    if not records:
        return Found(Result.NO_DATA, [], zone.soa_records(dnssec) + (wild.of(NSEC, True) if dnssec else []))
    extra = additional(zone, records, dnssec)
    authority = zone.ns_records(dnssec)
    if dnssec:
        deny = zone.prev(qname)
        if deny is not None:
            authority += zone.nodes[deny].of(NSEC, True)
        records += renamed(wild.signed(qtype), qname)
    return Found(Result.SUCCESS, records, authority, extra)


def denial(zone: Zone, qname: str, dnssec: bool) -> Found:
    """NXDOMAIN, or NODATA for an empty non-terminal, with the SOA (and NSECs with DO) in authority."""
    result = Result.SUCCESS if zone.has_descendant(qname) else Result.NAME_ERROR
    authority = zone.soa_records(dnssec)
    deny = zone.prev(qname) if dnssec else None
    if deny is None:
        return Found(result, [], authority)
    authority += zone.nodes[deny].of(NSEC, True)
    if result is Result.NAME_ERROR:
        encloser = closest_encloser(zone, qname)
        source = zone.prev("*." + encloser) if encloser is not None else None
        if source is not None and source != deny:
            authority += zone.nodes[source].of(NSEC, True)
    return Found(result, [], authority)


def substituted(zone: Zone, elem: Node, dname: list, cname: tdns.RRHeader, qtype: int, dnssec: bool):
    """The answer through a DNAME: the DNAME (and its signatures), the CNAME made of it, what it leads to."""
    if cname.payload.name.name.lower() == cname.name.name.lower():
        return Found(Result.SERVER_FAILURE)
    if dnssec:
        dname = dname + elem.signed(DNAME)
    if qtype == tdns.CNAME:
        return Found(Result.SUCCESS, dname + [cname], zone.ns_records(dnssec))
    found = chase(zone, elem, [cname], qtype, dnssec)
    if isinstance(found, Chase):
        found.before = dname + found.before
    else:
        found.answer = dname + found.answer
    return found


def chase(zone: Zone, elem: Node, records: list, qtype: int, dnssec: bool) -> Found | Chase:
    """Follow CNAME C{records} (of C{elem}) inside the zone (lookup.go's externalLookup)."""
    if dnssec:
        records = records + elem.signed(tdns.CNAME)
    hops = 0
    while True:
        target = records_target(records)
        elem = zone.search(target)
        referral = find_delegation(zone, target, qtype, dnssec, elem)
        if referral is not None:
            return Found(Result.DELEGATION, records, referral.authority, referral.additional)
        if elem is None or qtype == tdns.NS or (qtype == tdns.SOA and target == zone.origin):
            return Chase(records, target)
        if hops > MAX_CHASE:
            break
        cnames = elem.of(tdns.CNAME, dnssec)
        if not cnames:
            records = records + elem.of(qtype, dnssec)
            break
        records = records + cnames
        hops += 1
    return Found(Result.SUCCESS, records, zone.ns_records(dnssec), additional(zone, records, dnssec))


def records_target(records: list) -> str:
    """The target of the last CNAME among C{records}."""
    cname = [record for record in records if record.type == tdns.CNAME][-1]
    return name_key(cname.payload.name)


def find_delegation(zone: Zone, qname: str, qtype: int, dnssec: bool, exact_node: Node | None) -> Found | None:
    """The referral at the first zone cut between the apex and C{qname}, if any."""
    for parts in names_from_right(zone.origin, qname, first=1):
        elem = exact_node if parts == qname else zone.search(parts)
        if elem is None:
            if parts == qname:
                return None
            continue
        referral = delegation(zone, elem, parts, qname, qtype, dnssec)
        if referral is not None or parts == qname:
            return referral
    return None


def delegation(zone: Zone, elem: Node, owner: str, qname: str, qtype: int, dnssec: bool) -> Found | None:
    """A referral to the NS records of C{elem} (a DS question at the cut itself is answered here)."""
    ns = elem.of(tdns.NS)
    if not ns or (qtype == DS and owner == qname):
        return None
    extra = glue(zone, ns, dnssec)
    if dnssec:
        ns = ns + elem.of(DS, True)
    return Found(Result.DELEGATION, [], ns, extra)


def glue(zone: Zone, ns: list, dnssec: bool) -> list:
    """The addresses of the name servers in C{ns} that lie below their own NS record's name."""
    found = []
    for record in ns:
        if record.type != tdns.NS:
            continue
        server = name_key(record.payload.name)
        if not in_zone(server, name_key(record.name)):
            continue
        elem = zone.search(server)
        if elem is not None:
            found += elem.of(tdns.A, dnssec) + elem.of(tdns.AAAA, dnssec)
    return found


def additional(zone: Zone, answer: list, dnssec: bool) -> list:
    """A and AAAA records of the in-zone hosts SRV, MX, SVCB and HTTPS records name, each host once."""
    seen, extra = set(), []
    for record in answer:
        target = target_of(record)
        if target is None or not in_zone(target, zone.origin) or target in seen:
            continue
        seen.add(target)
        elem = zone.search(target)
        if elem is not None:
            extra += elem.of(tdns.A, dnssec) + elem.of(tdns.AAAA, dnssec)
    return extra


def names_from_right(origin: str, qname: str, first: int = 0):
    """The origin, then C{qname}'s ancestors below it one label more each (skipping C{first}), then C{qname}."""
    labels = qname.split(".")[:-1]
    origin_length = len(origin.split(".")[:-1])
    for extra in range(first, len(labels) - origin_length + 1):
        if extra == 0:
            yield origin
        else:
            yield ".".join(labels[-(origin_length + extra):]) + "."


def asterisk_of(name: str) -> str:
    """C{name} with its leftmost label replaced by C{*}; empty for the root."""
    if name == ".":
        return ""
    rest = name.split(".", 1)[1]
    return "*." + rest if rest else "*."


def closer_empty_non_terminal(zone: Zone, qname: str, wildcard: str) -> bool:
    """Whether an empty non-terminal between the wildcard's parent and C{qname} encloses it more closely."""
    parent = wildcard[2:]
    name = qname
    while name.count(".") > 1:
        name = name.split(".", 1)[1]
        if name == parent or not in_zone(name, parent):
            return False
        if zone.has_descendant(name):
            return True
    return False


def closest_encloser(zone: Zone, qname: str) -> str | None:
    """The longest of C{qname} and its ancestors with records, else the apex if it has any (closest.go)."""
    name = qname
    while name.count(".") > 1:
        if zone.search(name) is not None:
            return name
        name = name.split(".", 1)[1]
    return zone.origin if zone.search(zone.origin) is not None else None


def synthesize_cname(qname: str, dname: tdns.RRHeader) -> tdns.RRHeader | None:
    """The CNAME that DNAME C{dname} makes of C{qname} (RFC 6672), None unless C{qname} is below its owner."""
    owner = name_key(dname.name)
    if qname == owner or not in_zone(qname, owner):
        return None
    prefix = qname[: len(qname) - len(owner)] if owner != "." else qname
    new = prefix + data_name(dname.payload.data).name.decode("ascii", "replace")
    return tdns.RRHeader(qname.rstrip(".").encode("ascii", "replace"), tdns.CNAME, tdns.IN, dname.ttl,
                         tdns.Record_CNAME(new.rstrip(".").encode("ascii", "replace"), dname.ttl))
