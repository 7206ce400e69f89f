# -*- test-case-name: tests.test_kubernetes_index -*-
"""
Reduced Kubernetes objects: only the fields DNS answers need, taken from the
API server's JSON (plain dicts, never the client's model objects).

Strings that repeat across objects (namespaces, node, zone and cluster
names, protocols) are interned, so a cluster's worth of them costs one copy each.

Whatever the JSON holds, a reducer returns an object of the right shape: a field
of the wrong type reads as absent, addresses that are not IP addresses and names
that cannot be labels of a DNS name are left out, and a Service, ServiceImport or
Namespace whose own name cannot be is no object at all (None).  A broken or
hostile API server must not stop the index or the answers.
"""

from __future__ import annotations

import socket
import sys
from datetime import datetime
from typing import NamedTuple

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"
# KEP-1645 (Multi-Cluster Services): the ServiceImport a slice serves, and the cluster its endpoints are in.
MULTICLUSTER_SERVICE_NAME_LABEL = "multicluster.kubernetes.io/service-name"
SOURCE_CLUSTER_LABEL = "multicluster.kubernetes.io/source-cluster"


class Port(NamedTuple):
    name: str
    port: int
    protocol: str


class Service(NamedTuple):
    namespace: str
    name: str
    type: str
    cluster_ips: tuple[str, ...]
    ports: tuple[Port, ...]
    external_name: str | None
    # spec.externalIPs, and status.loadBalancer.ingress (each its IP, else its hostname, fully qualified).
    external_ips: tuple[str, ...] = ()
    ingress: tuple[str, ...] = ()

    @property
    def headless(self) -> bool:
        return not self.cluster_ips and self.type != "ExternalName"


class ServiceImport(NamedTuple):
    """A multi-cluster service: ClusterSetIP (its C{ips}) or Headless (its clusters' endpoints)."""

    namespace: str
    name: str
    type: str
    ips: tuple[str, ...]
    ports: tuple[Port, ...]

    @property
    def headless(self) -> bool:
        return self.type == "Headless"


class Endpoint(NamedTuple):
    """A ready endpoint: its addresses, what names it, and its slice's ports (one tuple shared by the slice)."""

    addresses: tuple[str, ...]
    hostname: str | None
    node: str | None
    zone: str | None
    pod: str | None
    ports: tuple[Port, ...] = ()


class EndpointSlice(NamedTuple):
    """A slice of a Service's endpoints, or of a ServiceImport's from one C{cluster} (multi-cluster slices)."""

    namespace: str
    name: str
    service: str | None
    endpoints: tuple[Endpoint, ...]
    cluster: str | None = None
    # Unix time of the change the endpoints controller made this slice for (its last-change-trigger-time).
    triggered_at: float | None = None


class Pod(NamedTuple):
    namespace: str
    name: str
    ips: tuple[str, ...]


class Namespace(NamedTuple):
    name: str
    namespace: str = ""


def _intern(value) -> str | None:
    return sys.intern(value) if isinstance(value, str) and value else None


def _text(value) -> str:
    return value if isinstance(value, str) else ""


def _object(value) -> dict:
    return value if isinstance(value, dict) else {}


def _objects(value) -> list[dict]:
    """The JSON objects in array C{value}."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _addresses(value) -> tuple[str, ...]:
    """The IP addresses in array C{value}, as socket.inet_pton (and so the records) takes them."""
    return tuple(item for item in value if is_address(item)) if isinstance(value, list) else ()


def is_address(value) -> bool:
    """Whether C{value} is an IPv4 or IPv6 address."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, value)
            return True
        except (OSError, TypeError, ValueError):
            pass
    return False


def _label(value) -> str | None:
    """C{value} if it can be one label of a DNS name: ASCII, 1 to 63 octets, no dot."""
    if isinstance(value, str) and value.isascii() and 0 < len(value) <= 63 and "." not in value:
        return value
    return None


def _domain_name(value) -> str | None:
    """C{value} if it is a domain name (or an IP address) whose every label can be one."""
    if not isinstance(value, str) or len(value.rstrip(".")) > 253:
        return None
    return value if all(_label(label) for label in value.rstrip(".").split(".")) else None


def _metadata(raw: dict) -> tuple[str, str]:
    metadata = _object(raw.get("metadata"))
    return sys.intern(_text(metadata.get("namespace"))), _text(metadata.get("name"))


def _labels(raw: dict) -> dict:
    return _object(_object(raw.get("metadata")).get("labels"))


NO_PORTS = (Port("", -1, ""),)


def _declared_ports(raw_ports) -> tuple[Port, ...]:
    return tuple(
        Port(_label(port.get("name")) or "", _port_number(port.get("port")),
             sys.intern(_label(port.get("protocol")) or "TCP"))
        for port in _objects(raw_ports)
    )


def _port_number(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 65535 else 0


def _ports(raw_ports) -> tuple[Port, ...]:
    """The ports, or CoreDNS's placeholder port -1 when there are none: addresses answer, SRV skips them."""
    return _declared_ports(raw_ports) or NO_PORTS


def reduce_service(raw: dict) -> Service | None:
    """A Service from its JSON: cluster IPs of every family, none when headless."""
    namespace, name = _metadata(raw)
    if not (_label(namespace) and _label(name)):
        return None
    spec = _object(raw.get("spec"))
    cluster_ips = _addresses(spec.get("clusterIPs")) or _addresses([spec.get("clusterIP")])
    service_type = sys.intern(_text(spec.get("type")) or "ClusterIP")
    external_name = _domain_name(spec.get("externalName")) if service_type == "ExternalName" else None
    if service_type == "ExternalName":
        cluster_ips = ()
    return Service(namespace, name, service_type, cluster_ips, _ports(spec.get("ports")), external_name,
                   _addresses(spec.get("externalIPs")), _ingress(raw))


def _ingress(raw: dict) -> tuple[str, ...]:
    """A LoadBalancer's ingress points: each one's IP when it has one, else its hostname (as CoreDNS takes them)."""
    points = _objects(_object(_object(raw.get("status")).get("loadBalancer")).get("ingress"))
    found = []
    for point in points:
        if point.get("ip"):
            found += _addresses([point["ip"]])
        elif _domain_name(point.get("hostname")) and not is_address(point["hostname"]):
            found.append(point["hostname"].rstrip(".").lower() + ".")
    return tuple(found)


def reduce_endpoint_slice(raw: dict) -> EndpointSlice:
    """An EndpointSlice from its JSON, keeping only endpoints that are ready (or not said not to be)."""
    namespace, name = _metadata(raw)
    ports = _ports(raw.get("ports"))
    endpoints = []
    if raw.get("addressType") in ("IPv4", "IPv6"):
        for endpoint in _objects(raw.get("endpoints")):
            if _object(endpoint.get("conditions")).get("ready") is False:
                continue
            target = _object(endpoint.get("targetRef"))
            hostname = _label(endpoint.get("hostname"))
            pod = _label(target.get("name")) if target.get("kind") == "Pod" else None
            endpoints.append(
                Endpoint(
                    _addresses(endpoint.get("addresses")),
                    hostname,
                    _intern(endpoint.get("nodeName")),
                    _intern(_text(endpoint.get("zone")).lower()),
                    hostname if pod == hostname else pod,
                    ports,
                )
            )
    service = _labels(raw).get(SERVICE_NAME_LABEL)
    return EndpointSlice(namespace, name, _intern(service), tuple(endpoints), None, _trigger_time(raw))


def _trigger_time(raw: dict) -> float | None:
    """The slice's C{endpoints.kubernetes.io/last-change-trigger-time}, in Unix seconds."""
    annotations = _object(_object(raw.get("metadata")).get("annotations"))
    text = _text(annotations.get(TRIGGER_TIME_ANNOTATION))
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError):
        return None


def reduce_multicluster_endpoint_slice(raw: dict) -> EndpointSlice:
    """A multi-cluster EndpointSlice: endpoints as in any slice, of the ServiceImport and cluster its labels name."""
    labels = _labels(raw)
    service, cluster = labels.get(MULTICLUSTER_SERVICE_NAME_LABEL), labels.get(SOURCE_CLUSTER_LABEL)
    return reduce_endpoint_slice(raw)._replace(service=_intern(service), cluster=_intern(_label(cluster)))


def reduce_service_import(raw: dict) -> ServiceImport | None:
    """A ServiceImport (multicluster.x-k8s.io/v1alpha1) from its JSON: its type, ClusterSetIPs and ports.

    Unlike a Service, an import without ports gets no placeholder (as in CoreDNS): its ClusterSetIP
    name does not exist.
    """
    namespace, name = _metadata(raw)
    if not (_label(namespace) and _label(name)):
        return None
    spec = _object(raw.get("spec"))
    ips = _addresses(spec.get("ips"))
    import_type = sys.intern(_text(spec.get("type")) or "ClusterSetIP")
    return ServiceImport(namespace, name, import_type, ips, _declared_ports(spec.get("ports")))


def reduce_pod(raw: dict) -> Pod:
    """A Pod from its JSON: its IPs, none while it is being deleted."""
    namespace, name = _metadata(raw)
    if _object(raw.get("metadata")).get("deletionTimestamp"):
        return Pod(namespace, name, ())
    status = _object(raw.get("status"))
    ips = _addresses([entry.get("ip") for entry in _objects(status.get("podIPs"))])
    return Pod(namespace, name, ips or _addresses([status.get("podIP")]))


def reduce_namespace(raw: dict) -> Namespace | None:
    name = _label(_metadata(raw)[1])
    return Namespace(name) if name else None
