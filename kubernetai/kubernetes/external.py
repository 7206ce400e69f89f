# -*- test-case-name: tests.test_k8s_external -*-
"""
What a stanza gives the k8s_external plugin, as CoreDNS's kubernetes plugin
gives it (C{plugin/kubernetes/external.go}, C{ns.go}'s nsAddrs): the entries
of C{service.namespace.ZONE} from a service's external IPs and LoadBalancer
ingress (or, with C{headless}, its endpoints), the services an external IP
belongs to, and the addresses of this server for the zone's name servers.

Everything here is pure: a function of a stanza's L{View} and a question.
"""

from __future__ import annotations

from twisted.names import dns

from kubernetai.kubernetes.names import endpoint_label, reverse_address, trim_zone
from kubernetai.kubernetes.entries import Entry, View, host_type


def external_entries(view: View, name: str, zone: str, qtype: int, headless: bool) -> tuple[list[Entry], int]:
    """The entries of C{name} (lower case) in k8s_external's C{zone}, and the rcode when there are none.

    C{[endpoint.]service.namespace.ZONE} and C{_port._protocol.service.namespace.ZONE}; a PTR question
    for a reverse name gets the services of that external IP (hosts C{service.namespace}).
    """
    if qtype == dns.PTR:
        ip = reverse_address(name)
        if ip is not None:
            found = [Entry(host, -1, "") for host in external_reverse(view, ip)]
            return found, dns.OK if found else dns.ENAME
    labels = trim_zone(name, zone).split(".") if trim_zone(name, zone) else []
    if not labels:
        return [], dns.ESERVER
    namespace = labels.pop()
    if not view.namespace_exposed(namespace):
        return [], dns.ENAME
    if not labels:
        return [], dns.OK
    service_name = labels.pop()
    endpoint = port = protocol = ""
    if len(labels) == 1:
        endpoint = _strip_underscore(labels[0])
    elif len(labels) == 2:
        port, protocol = _strip_underscore(labels[0]), _strip_underscore(labels[1])
    elif labels:
        return [], dns.ENAME
    service = view.snapshot.service(namespace, service_name)
    if service is None:
        return [], dns.ENAME
    owner = f"{service.name}.{service.namespace}.{zone}"
    hosts = service.external_ips + service.ingress
    if headless and not hosts and (service.headless or endpoint):
        found = _endpoint_entries(view, service, owner, endpoint, port, protocol)
    else:
        found = [Entry(host, each.port, owner) for host in hosts for each in service.ports
                 if _matches(port, protocol, each)]
    if qtype == dns.PTR:
        return [], dns.OK if found else dns.ENAME
    return found, dns.OK if found else dns.ENAME


def _endpoint_entries(view: View, service, owner: str, endpoint: str, port: str, protocol: str) -> list[Entry]:
    found = []
    for each in view.snapshot.endpoints_of(service.namespace, service.name):
        for address in each.addresses:
            label = endpoint_label(address, each.hostname, each.pod, view.config.endpoint_pod_names)
            if endpoint and endpoint != label.lower():
                continue
            found += [Entry(address, served.port, f"{label}.{owner}") for served in each.ports
                      if _matches(port, protocol, served)]
    return found


def _matches(port: str, protocol: str, served) -> bool:
    return (not port or port == served.name.lower()) and (not protocol or protocol == served.protocol.lower())


def _strip_underscore(label: str) -> str:
    return label[1:] if label.startswith("_") else label


def external_reverse(view: View, ip: str) -> list[str]:
    """C{service.namespace} of each service with external IP C{ip}, in a namespace it exposes."""
    found = []
    for namespace, name in view.snapshot.external_reverse.get(ip, ()):
        if view.config.namespaces and not view.namespace_exposed(namespace):
            continue
        found.append(f"{name}.{namespace}")
    return found


def external_name_server_ips(view: View, headless: bool) -> list[str] | None:
    """The addresses of this server as k8s_external's name servers: the external IPs of the services
    whose endpoint is one of our addresses (a headless one's endpoints, with C{headless}); None when
    no endpoint is ours (the caller then takes our own addresses)."""
    found, ours = [], False
    for local_ip in view.local_ips:
        for entry in view.snapshot.reverse.get(local_ip, ()):
            service = view.snapshot.service(entry.namespace, entry.service)
            if entry.endpoint is None or service is None:
                continue
            ours = True
            if headless and service.headless:
                found += [address for each in view.snapshot.endpoints_of(service.namespace, service.name)
                          for address in each.addresses]
            else:
                found += [host for host in service.external_ips + service.ingress if host_type(host) != dns.CNAME]
    return found if ours else None
