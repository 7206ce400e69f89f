# -*- test-case-name: tests.test_transfer -*-
"""
A stanza's zone as a zone transfer sends it, record for record and in the
order of CoreDNS's kubernetes plugin (C{plugin/kubernetes/xfr.go}): the
SOA, the NS records and their addresses, every exposed service in name
order, and the SOA again.

Per service: a ClusterIP (NodePort, LoadBalancer) service's cluster IPs
and, per port, an SRV record at its name and, for a named port, one at
C{_port._proto} below it; a headless service's endpoints, each an address
at the service's name and at the endpoint's, and an SRV per named port; an
ExternalName service's CNAME.  A multicluster zone does the same with its
ServiceImports and their clusters' endpoints.

Where xfr.go disagrees with what the stanza answers, this follows the
answers, so that a secondary serves the same names: an endpoint of a
multicluster zone is named with its cluster (C{ep.cluster.svc.ns.svc.Z},
where xfr.go leaves the cluster out); SRV weights share 100 among all of a
service's endpoint addresses (xfr.go: among each EndpointSlice's); a
service without ports has no SRV record (xfr.go sends its placeholder port
-1 as 65535).

Everything here is pure: a function of a snapshot and the stanza's options.
"""

from __future__ import annotations

import math

from twisted.names import dns

from kubernetai.kubernetes.names import endpoint_label
from kubernetai.kubernetes.entries import View, host_type, name_servers, service_addresses
from kubernetai.kubernetes.records import address_record, record, soa_record

CLUSTER_IP_WEIGHT = 100


def zone_transfer(view: View, zone: str, serial: int = 0) -> list[dns.RRHeader]:
    """The records of C{zone} (one of the stanza's, lower case) in transfer order, its SOA first and last.

    A C{serial} (an IXFR's) equal to the zone's gets the SOA alone: the client is up to date.
    """
    soa = soa_record(view, _owner(zone).encode(), zone)
    if serial and soa.payload.serial == serial:
        return [soa]
    body = multicluster_records(view, zone) if view.is_multicluster(zone) else service_records(view, zone)
    return [soa, *name_server_records(view, zone), *body, soa]


def name_server_records(view: View, zone: str) -> list[dns.RRHeader]:
    """An NS record per name this server goes by, then every address of each (CoreDNS's nsAddrs)."""
    servers = name_servers(view, zone)
    hosts = dict.fromkeys(host for host, _ in servers)
    records = [record(_owner(zone), dns.NS, view.ttl, dns.Record_NS(_owner(host), view.ttl)) for host in hosts]
    return records + [address_record(_owner(host), ip, view.ttl) for host, ip in servers]


def service_records(view: View, zone: str) -> list[dns.RRHeader]:
    """The records of every Service in an exposed namespace, by name (then namespace)."""
    records = []
    for service in sorted(view.snapshot.services.values(), key=_by_name):
        if not view.namespace_exposed(service.namespace):
            continue
        name = _service_name(service, zone)
        if service.type == "ExternalName":
            records += _external_name_records(view, service.external_name, name)
        elif service.cluster_ips:
            records += _virtual_ip_records(view, service_addresses(view.config, service), service.ports, name)
        else:
            endpoints = view.snapshot.endpoints_of(service.namespace, service.name)
            weight = srv_weight(sum(len(endpoint.addresses) for endpoint in endpoints))
            records += _endpoint_records(view, endpoints, name, name, weight)
    return records


def multicluster_records(view: View, zone: str) -> list[dns.RRHeader]:
    """The records of every ServiceImport in an exposed namespace, by name (then namespace)."""
    records = []
    for service_import in sorted(view.snapshot.imports.values(), key=_by_name):
        if not view.namespace_exposed(service_import.namespace):
            continue
        name = _service_name(service_import, zone)
        if service_import.ips:
            records += _virtual_ip_records(view, service_import.ips, service_import.ports, name)
            continue
        slices = view.snapshot.multicluster_slices_of(service_import.namespace, service_import.name)
        weight = srv_weight(sum(len(endpoint.addresses) for each in slices for endpoint in each.endpoints))
        for each in slices:
            parent = f"{each.cluster}.{name}" if each.cluster else name
            records += _endpoint_records(view, each.endpoints, name, parent, weight)
    return records


def srv_weight(targets: int) -> int:
    """CoreDNS's calcSRVWeight: 100 shared among C{targets} of the same priority, at least 1."""
    return max(1, math.floor(100.0 / (100 * targets) * 100)) if targets else 0


def _virtual_ip_records(view: View, ips, ports, name: str) -> list[dns.RRHeader]:
    """A service's (or import's) addresses, then per port an SRV at its name and one at C{_port._proto}.

    With external_names, C{ips} may be a load balancer's host name instead: its CNAME, and the SRVs' target.
    """
    if not ips:
        return []
    if host_type(ips[0]) == dns.CNAME:
        target = ips[0]
        records = _external_name_records(view, target, name)
    else:
        target = name
        records = [address_record(_owner(name), ip, view.ttl) for ip in ips]
    for port in ports:
        if port.port < 0:
            continue
        records.append(_srv(view, name, target, port.port, CLUSTER_IP_WEIGHT))
        if port.name:
            records.append(_srv(view, _port_name(port, name), target, port.port, CLUSTER_IP_WEIGHT))
    return records


def _endpoint_records(view: View, endpoints, name: str, parent: str, weight: int) -> list[dns.RRHeader]:
    """Per endpoint address: an address at the service's name, one at the endpoint's, an SRV per named port."""
    records = []
    for endpoint in endpoints:
        for address in endpoint.addresses:
            label = endpoint_label(address, endpoint.hostname, endpoint.pod, view.config.endpoint_pod_names)
            host = f"{label}.{parent}"
            records.append(address_record(_owner(name), address, view.ttl))
            records.append(address_record(_owner(host), address, view.ttl))
            records += [_srv(view, _port_name(port, name), host, port.port, weight)
                        for port in endpoint.ports if port.name]
    return records


def _external_name_records(view: View, target: str | None, name: str) -> list[dns.RRHeader]:
    """The CNAME of an ExternalName service whose target is a name (an IP gets nothing, as in CoreDNS)."""
    if not target or host_type(target) != dns.CNAME:
        return []
    return [record(_owner(name), dns.CNAME, view.ttl, dns.Record_CNAME(_owner(target), view.ttl))]


def _srv(view: View, owner: str, target: str, port: int, weight: int) -> dns.RRHeader:
    return record(_owner(owner), dns.SRV, view.ttl, dns.Record_SRV(0, weight, port, _owner(target), view.ttl))


def _port_name(port, name: str) -> str:
    return f"_{port.name.lower()}._{port.protocol.lower()}.{name}"


def _service_name(service, zone: str) -> str:
    """C{name.namespace.svc.Z.}, fully qualified."""
    return f"{service.name}.{service.namespace}.svc.{zone if zone != '.' else ''}"


def _by_name(service) -> tuple[str, str]:
    return service.name, service.namespace


def _owner(name: str) -> str:
    """A fully qualified name as twisted.names writes an owner or target: without the final dot."""
    return name.rstrip(".")
