# -*- test-case-name: tests.test_kubernetes_records,tests.test_kubernetes_multicluster,tests.test_external_names -*-
"""
A name in a stanza's zone to what it stands for, as CoreDNS's kubernetes
plugin finds it (C{kubernetes.go}'s Records, findPods, findServices,
findMultiClusterServices; C{ns.go}): a list of L{Entry} (an address or a
CNAME target, a port, the name that owns it), or L{NoSuchName}.
L{kubernetai.kubernetes.records} turns entries into each query type's
records.  Pure: a function of a L{View} (options and one snapshot) and a name.

Ours, not CoreDNS's: with the stanza option C{external_names}, the name of a
service with a cluster IP stands for the addresses L{service_addresses}
gives (its LoadBalancer ingress or external IPs).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import NamedTuple

from twisted.names import dns

from kubernetai.kubernetes.config import CLUSTERIP, LOADBALANCER
from kubernetai.kubernetes.index import Snapshot
from kubernetai.kubernetes.names import (
    POD,
    InvalidName,
    NameRequest,
    endpoint_label,
    is_reverse,
    parse_name,
    pod_ip,
)


class NoSuchName(Exception):
    """The name does not exist (CoreDNS's errNoItems, errNsNotExposed, errInvalidRequest)."""


class Entry(NamedTuple):
    """CoreDNS's msg.Service: an address or a CNAME target, a port (-1: none), and its owner name."""

    host: str
    port: int
    owner: str


@dataclass(frozen=True)
class View:
    """What a stanza answers from: its options, one snapshot, and the addresses this server answers on."""

    config: object
    snapshot: Snapshot
    local_ips: tuple[str, ...] = ()

    @property
    def ttl(self) -> int:
        return self.config.ttl

    def namespace_exposed(self, namespace: str) -> bool:
        """Whether a namespace exists in the cluster and is exposed by C{namespaces} / C{namespace_labels}."""
        if self.config.namespaces and namespace not in self.config.namespaces:
            return False
        return namespace in self.snapshot.namespaces

    def is_multicluster(self, zone: str) -> bool:
        return zone in self.config.multicluster

    def serial(self, zone: str) -> int:
        """The SOA serial of C{zone}: when what it answers from last changed (imports, in multicluster zones)."""
        return self.snapshot.multicluster_modified if self.is_multicluster(zone) else self.snapshot.modified


def host_type(host: str) -> int:
    """A for an IPv4 address, AAAA for IPv6, CNAME for a name."""
    try:
        return dns.A if ipaddress.ip_address(host).version == 4 else dns.AAAA
    except ValueError:
        return dns.CNAME


def entries(view: View, name: str, zone: str, qzone: str, name_server: bool = True) -> list[Entry]:
    """The entries a name stands for; raises L{NoSuchName}.

    C{qzone} is the zone as the query spelled it; C{name_server} whether
    C{ns.dns.Z} stands for the stanza's own addresses (not for TXT queries).
    """
    if name_server and name == "ns.dns." + zone:
        return [Entry(ip, -1, owner) for owner, ip in name_servers(view, qzone)]
    try:
        request = parse_name(name, zone, view.is_multicluster(zone), view.config.zonal)
    except InvalidName:
        raise NoSuchName(name) from None
    if not request.pod_or_svc:
        return []
    if is_reverse(name):
        raise NoSuchName(name)
    if not view.namespace_exposed(request.namespace):
        raise NoSuchName(name)
    if request.pod_or_svc == POD:
        return find_pods(view, request, qzone)
    if view.is_multicluster(zone):
        return find_multicluster_services(view, request, qzone)
    return find_services(view, request, qzone)


def find_pods(view: View, request: NameRequest, qzone: str) -> list[Entry]:
    """The pod a C{1-2-3-4.namespace.pod.Z} name names, as the stanza's pods mode allows."""
    mode = view.config.pods
    if mode == "disabled":
        raise NoSuchName(request.service)
    if not request.service:
        return []
    ip = pod_ip(request.service)
    if ip is None:
        raise NoSuchName(request.service)
    owner = f"{request.service}.{request.namespace}.pod.{qzone}"
    if mode == "insecure":
        return [Entry(ip, -1, owner)]
    found = [pod for pod in view.snapshot.pods_by_ip.get(ip, ()) if pod.namespace == request.namespace]
    if not found:
        raise NoSuchName(request.service)
    return [Entry(ip, -1, owner) for _ in found]


def find_services(view: View, request: NameRequest, qzone: str) -> list[Entry]:
    """The entries of C{service.namespace.svc.Z} and the names below it."""
    if not request.service:
        return []
    service = view.snapshot.service(request.namespace, request.service)
    if service is None:
        raise NoSuchName(request.service)
    endpoints = view.snapshot.endpoints_of(service.namespace, service.name)
    if view.config.ignore_empty_service and service.type != "ExternalName" and not service.headless:
        if not any(endpoint.addresses for endpoint in endpoints):
            raise NoSuchName(request.service)
    if request.topology_zone and not service.headless:
        raise NoSuchName(request.service)
    service_name = f"{service.name}.{service.namespace}.svc.{qzone}"
    if service.type == "ExternalName":
        if request.endpoint or request.port or request.protocol or host_type(service.external_name or "") != dns.CNAME:
            raise NoSuchName(request.service)
        return [Entry(service.external_name.rstrip(".") + ".", -1, service_name)]
    if service.headless or request.endpoint:
        found = _endpoint_entries(view, request, endpoints, service_name, request.topology_zone)
        if not found and request.zone_prefer:
            found = _endpoint_entries(view, request, endpoints, service_name, "")
        if not found and not request.topology_zone:
            raise NoSuchName(request.service)
        return found
    addresses = service_addresses(view.config, service)
    if not addresses:
        raise NoSuchName(request.service)
    return _virtual_ip_entries(request, addresses, service.ports, service_name)


def service_addresses(config, service) -> tuple[str, ...]:
    """What the name of a service with a cluster IP answers: its cluster IPs; with C{external_names}, the
    addresses of the first source listed that has any (a load balancer's IPs, else its first host name,
    fully qualified), else its cluster IPs (C{fallback clusterip}) or nothing (C{fallback nxdomain})."""
    external = config.external_names
    if external is None:
        return service.cluster_ips
    for source in external.sources:
        found = service.ingress if source == LOADBALANCER else service.external_ips
        ips = tuple(host for host in found if host_type(host) != dns.CNAME)
        if ips or found:
            return ips or found[:1]
    return service.cluster_ips if external.fallback == CLUSTERIP else ()


def find_multicluster_services(view: View, request: NameRequest, qzone: str) -> list[Entry]:
    """The entries of C{import.namespace.svc.Z} in a multicluster zone, and of C{endpoint.cluster.import...}."""
    if not request.service:
        return []
    service_import = view.snapshot.service_import(request.namespace, request.service)
    if service_import is None:
        raise NoSuchName(request.service)
    slices = view.snapshot.multicluster_slices_of(service_import.namespace, service_import.name)
    if view.config.ignore_empty_service and not service_import.headless:
        if not any(endpoint.addresses for each in slices for endpoint in each.endpoints):
            raise NoSuchName(request.service)
    service_name = f"{service_import.name}.{service_import.namespace}.svc.{qzone}"
    if not (service_import.headless or request.endpoint):
        return _virtual_ip_entries(request, service_import.ips, service_import.ports, service_name)
    found = []
    for each in slices:
        if request.endpoint and (each.cluster or "").lower() != request.cluster:
            continue
        cluster_name = f"{each.cluster}.{service_name}" if each.cluster else service_name
        found += _endpoint_entries(view, request, each.endpoints, cluster_name, "")
    if not found:
        raise NoSuchName(request.service)
    return found


def _virtual_ip_entries(request: NameRequest, ips, ports, service_name: str) -> list[Entry]:
    """A ClusterIP service's (or ClusterSetIP import's) entries: every IP at every port the name asks for."""
    matching = [port for port in ports if _port_matches(request, port.name, port.protocol)]
    if not matching:
        raise NoSuchName(request.service)
    return [Entry(ip, port.port, service_name) for port in matching for ip in ips]


def _endpoint_entries(view: View, request: NameRequest, endpoints, service_name: str, topology_zone: str):
    found = []
    for endpoint in endpoints:
        if topology_zone and endpoint.zone != topology_zone:
            continue
        for address in endpoint.addresses:
            label = endpoint_label(address, endpoint.hostname, endpoint.pod, view.config.endpoint_pod_names)
            if request.endpoint and label != request.endpoint:
                continue
            found += [
                Entry(address, port.port, f"{label}.{service_name}")
                for port in endpoint.ports
                if _port_matches(request, port.name, port.protocol)
            ]
    return found


def _port_matches(request: NameRequest, name: str, protocol: str) -> bool:
    return (not request.port or request.port == name.lower()) and (
        not request.protocol or request.protocol == protocol.lower()
    )


def name_servers(view: View, qzone: str) -> list[tuple[str, str]]:
    """(name, address) of this server: the service whose endpoint is one of our IPs, else ns.dns.Z."""
    found = []
    for local_ip in view.local_ips:
        for entry in view.snapshot.reverse.get(local_ip, ()):
            if entry.endpoint is None:
                continue
            service = view.snapshot.service(entry.namespace, entry.service)
            service_name = f"{entry.service}.{entry.namespace}.svc.{qzone}"
            if service is not None and service.headless:
                label = endpoint_label(local_ip, entry.endpoint.hostname, entry.endpoint.pod,
                                       view.config.endpoint_pod_names)
                found.append((f"{label}.{service_name}", local_ip))
            elif service is not None:
                found += [(service_name, ip) for ip in service_addresses(view.config, service)
                          if host_type(ip) != dns.CNAME]
    return found or [("ns.dns." + qzone, ip) for ip in view.local_ips]
