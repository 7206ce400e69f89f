# -*- test-case-name: tests.test_kubernetes_records,tests.test_kubernetes_multicluster -*-
"""
A stanza's answers: from a snapshot, its options and a question to the
rcode and records CoreDNS's kubernetes plugin gives (C{kubernetes.go},
C{handler.go}, C{reverse.go}, C{ns.go} and C{plugin/backend_lookup.go}).

As in CoreDNS, a name first becomes a list of entries
(L{kubernetai.kubernetes.entries}), and each query type turns that list into
records.  Everything here is pure: no I/O, no clock.  With the stanza option
C{external_names}, SRV, PTR and NS records follow the addresses a service's
name stands for.
"""

from __future__ import annotations

import functools

from twisted.names import dns

from kubernetai.chain import Response
from kubernetai.kubernetes.entries import (
    Entry,
    NoSuchName,
    View,
    entries,
    host_type,
    name_servers,
    service_addresses,
)
from kubernetai.kubernetes.names import endpoint_label, parse_name, reverse_address
from kubernetai.zones import in_zone

DNS_SCHEMA_VERSION = "1.1.0"
DNS_VERSION_TTL = 28800
MAX_CNAME_CHAIN = 7


def answer(view: View, qname: bytes, name: str, qtype: int, zone: str) -> Response:
    """The stanza's reply to C{qname} (as asked) / C{name} (lower case) of C{qtype}, in C{zone}."""
    owner = _owner_of_zone(qname, zone)
    qzone = owner.decode("ascii", "replace") + "." if owner else ""
    builder = _BUILDERS.get(qtype, _exists_only)
    try:
        answers, additional = builder(view, qname, name, zone, qtype, qzone)
    except NoSuchName:
        return denial(view, qname, zone, dns.ENAME)
    except Refused:
        return Response(rcode=dns.EREFUSED)
    if not answers:
        return denial(view, qname, zone, dns.OK)
    return Response(answers=answers, additional=additional, authoritative=True,
                    follow=_outside_target(answers[-1], zone, qtype))


def _outside_target(last: dns.RRHeader, zone: str, qtype: int) -> tuple[str, int] | None:
    """An answer ending in a CNAME out of the zone is completed by resolving its target (A and AAAA)."""
    if last.type != dns.CNAME or qtype not in (dns.A, dns.AAAA):
        return None
    target = last.payload.name.name.decode("ascii", "replace").lower() + "."
    return None if in_zone(target, zone) else (target, qtype)


def soa_record(view: View, qname: bytes, zone: str) -> dns.RRHeader:
    """The zone's SOA, named as the query spelled the zone; its serial is the last change's time."""
    return _soa_record(_owner_of_zone(qname, zone), view.serial(zone), view.ttl)


@functools.lru_cache(maxsize=1024)
def _soa_record(owner: bytes, serial: int, ttl: int) -> dns.RRHeader:
    """One SOA record per spelling of the zone, serial and TTL: every denial carries it, and records
    are never changed in place once built (plugins copy one to change it)."""
    soa = dns.Record_SOA(
        mname=_join(b"ns.dns", owner),
        rname=_join(b"hostmaster", owner),
        serial=serial,
        refresh=7200,
        retry=1800,
        expire=86400,
        minimum=ttl,
        ttl=min(ttl, 300),
    )
    return record(owner, dns.SOA, min(ttl, 300), soa)


def denial(view: View, qname: bytes, zone: str, rcode: int) -> Response:
    """NXDOMAIN or NODATA (rcode OK): no answers, the zone's SOA as authority."""
    return Response(rcode=rcode, authority=[soa_record(view, qname, zone)], authoritative=True)


def _owner_of_zone(qname: bytes, zone: str) -> bytes:
    """The zone as the question spelled it (CoreDNS keeps the query's case)."""
    if zone == ".":
        return b""
    length = len(zone) - 1
    return qname[-length:] if len(qname) >= length else zone.rstrip(".").encode()


def _join(label: bytes, suffix: bytes) -> bytes:
    return label + b"." + suffix if suffix else label


def record(owner, qtype: int, ttl: int, payload) -> dns.RRHeader:
    """An authoritative IN record of C{owner} (a name without the final dot)."""
    return dns.RRHeader(owner, qtype, dns.IN, ttl, payload, auth=True)


def address_record(owner, host: str, ttl: int) -> dns.RRHeader:
    """C{host}'s A record, or its AAAA record when it is an IPv6 address."""
    if host_type(host) == dns.A:
        return record(owner, dns.A, ttl, dns.Record_A(host, ttl))
    return record(owner, dns.AAAA, ttl, dns.Record_AAAA(host, ttl))


def _apex_entries(view: View, name: str, zone: str, qzone: str) -> list[Entry]:
    if name != zone:
        return entries(view, name, zone, qzone)
    try:
        return entries(view, "apex.dns." + zone, zone, qzone)
    except NoSuchName:
        return entries(view, name, zone, qzone)


def _addresses(view, qname, name, zone, qtype, qzone, chain=()):
    """A or AAAA records for C{name}, following CNAMEs that stay in the zone."""
    records = []
    seen = set()
    for entry in _apex_entries(view, name, zone, qzone):
        kind = host_type(entry.host)
        if kind == dns.CNAME and entry.host not in seen:
            seen.add(entry.host)
            records += _chase(view, qname, name, zone, qtype, qzone, entry, chain)
        elif kind == qtype and entry.host not in seen:
            seen.add(entry.host)
            records.append(address_record(qname, entry.host, view.ttl))
    return records, []


def _chase(view, qname, name, zone, qtype, qzone, entry: Entry, chain) -> list:
    """The CNAME to an ExternalName's target, and the target's addresses when it is in the zone."""
    target = entry.host.lower()
    if target == name or len(chain) > MAX_CNAME_CHAIN or target in chain:
        return []
    cname = record(qname, dns.CNAME, view.ttl, dns.Record_CNAME(entry.host.rstrip("."), view.ttl))
    if not in_zone(target, zone):
        return [cname]
    try:
        following, _ = _addresses(view, entry.host.rstrip(".").encode(), target, zone, qtype, qzone, chain + (name,))
    except NoSuchName:
        return []
    return [cname] + following if following else []


def _srv(view, qname, name, zone, qtype, qzone):
    """SRV records for C{name}'s ports, targets' addresses as additional; a target that is a host name
    (a load balancer's, with external_names) is the SRV's target itself (an ExternalName has no port)."""
    found = [entry for entry in entries(view, name, zone, qzone)
             if host_type(entry.host) != dns.CNAME or entry.port != -1]
    weight = max(1, int(100.0 / (100 * len(found)) * 100)) if found else 0
    records, additional, seen = [], [], set()
    for entry in found:
        if entry.port == -1:
            continue
        named_host = host_type(entry.host) == dns.CNAME
        target = entry.host if named_host else entry.owner
        srv = dns.Record_SRV(0, weight, entry.port, target.rstrip("."), view.ttl)
        if (target, entry.port) not in seen:
            seen.add((target, entry.port))
            records.append(record(qname, dns.SRV, view.ttl, srv))
        if not named_host and (entry.owner, entry.host) not in seen:
            seen.add((entry.owner, entry.host))
            additional.append(address_record(entry.owner.rstrip("."), entry.host, view.ttl))
    return records, additional


def _txt(view, qname, name, zone, qtype, qzone):
    """dns-version's TXT; NODATA for a name with records of other types, else NXDOMAIN (as CoreDNS)."""
    if name == "dns-version." + zone:
        version = dns.Record_TXT(DNS_SCHEMA_VERSION.encode(), ttl=DNS_VERSION_TTL)
        return [record(qname, dns.TXT, DNS_VERSION_TTL, version)], []
    if entries(view, name, zone, qzone, name_server=False):
        return [], []
    request = parse_name(name, zone, view.is_multicluster(zone), view.config.zonal)
    if view.config.zonal and request.topology_zone:
        return [], []
    raise NoSuchName(name)


def _cname(view, qname, name, zone, qtype, qzone):
    records = [
        record(qname, dns.CNAME, view.ttl, dns.Record_CNAME(entry.host.rstrip("."), view.ttl))
        for entry in entries(view, name, zone, qzone)
        if host_type(entry.host) == dns.CNAME
    ]
    return records, []


def _ptr(view, qname, name, zone, qtype, qzone):
    ip = reverse_address(name)
    if ip is None:
        return _exists_only(view, qname, name, zone, dns.A, qzone)
    targets = ptr_targets(view, ip)
    if not targets:
        raise NoSuchName(name)
    return [record(qname, dns.PTR, view.ttl, dns.Record_PTR(target.rstrip("."), view.ttl)) for target in targets], []


def ptr_targets(view: View, ip: str) -> list[str]:
    """The names an IP answers to: its service's name for a cluster IP (with external_names: for an
    address the service's name answers with), else one per endpoint."""
    primary = view.config.primary_zone
    for namespace, service in _services_named_by(view, ip):
        if view.namespace_exposed(namespace):
            return [f"{service}.{namespace}.svc.{primary}"]
    entries_for_ip = view.snapshot.reverse.get(ip, ())
    targets = []
    for entry in entries_for_ip:
        if entry.endpoint is not None and view.namespace_exposed(entry.namespace):
            label = endpoint_label(ip, entry.endpoint.hostname, entry.endpoint.pod, view.config.endpoint_pod_names)
            target = f"{label}.{entry.service}.{entry.namespace}.svc.{primary}"
            if target not in targets:
                targets.append(target)
    return targets


def _services_named_by(view: View, ip: str) -> list[tuple[str, str]]:
    """(namespace, name) of the services whose names answer with C{ip}: those whose cluster IP it is;
    with external_names, those of the cluster IPs and external addresses that answer with it."""
    keys = [entry[:2] for entry in view.snapshot.reverse.get(ip, ()) if entry.endpoint is None]
    if view.config.external_names is None:
        return keys
    keys += view.snapshot.external_reverse.get(ip, ())
    services = (view.snapshot.service(*key) for key in dict.fromkeys(keys))
    return [service[:2] for service in services
            if service is not None and ip in service_addresses(view.config, service)]


def _soa(view, qname, name, zone, qtype, qzone):
    if name != zone:
        return [], []
    return [soa_record(view, qname, zone)], []


def _ns(view, qname, name, zone, qtype, qzone):
    if name != zone:
        return _exists_only(view, qname, name, zone, qtype, qzone)
    records, additional, seen = [], [], set()
    for owner, ip in name_servers(view, qzone):
        additional.append(address_record(owner.rstrip("."), ip, view.ttl))
        if owner not in seen:
            seen.add(owner)
            records.append(record(qname, dns.NS, view.ttl, dns.Record_NS(owner.rstrip("."), view.ttl)))
    return records, additional


def _transfer(view, qname, name, zone, qtype, qzone):
    raise Refused()


def _exists_only(view, qname, name, zone, qtype, qzone):
    """No records of this type here: NODATA if the name exists (as an A lookup finds it), else NXDOMAIN."""
    _apex_entries(view, name, zone, qzone)
    return [], []


class Refused(Exception):
    """Zone transfers are the transfer plugin's."""


_BUILDERS = {
    dns.A: _addresses,
    dns.AAAA: _addresses,
    dns.SRV: _srv,
    dns.TXT: _txt,
    dns.CNAME: _cname,
    dns.PTR: _ptr,
    dns.SOA: _soa,
    dns.NS: _ns,
    dns.AXFR: _transfer,
    dns.IXFR: _transfer,
}
