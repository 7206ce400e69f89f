# -*- test-case-name: tests.test_kubernetes_index -*-
"""
Reduced Kubernetes objects: only the fields DNS answers need, taken from the
API server's JSON (plain dicts, never the client's model objects).

Strings that repeat across objects (namespaces, node, zone and cluster
names, protocols) are interned, so a cluster's worth of them costs one copy each.
"""

from __future__ import annotations

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


def _intern(text: str | None) -> str | None:
    return sys.intern(text) if text else None


def _metadata(raw: dict) -> tuple[str, str]:
    metadata = raw.get("metadata") or {}
    return sys.intern(metadata.get("namespace") or ""), metadata.get("name") or ""


def _labels(raw: dict) -> dict:
    return (raw.get("metadata") or {}).get("labels") or {}


NO_PORTS = (Port("", -1, ""),)


def _declared_ports(raw_ports) -> tuple[Port, ...]:
    return tuple(
        Port(port.get("name") or "", int(port.get("port") or 0), sys.intern(port.get("protocol") or "TCP"))
        for port in raw_ports or ()
    )


def _ports(raw_ports) -> tuple[Port, ...]:
    """The ports, or CoreDNS's placeholder port -1 when there are none: addresses answer, SRV skips them."""
    return _declared_ports(raw_ports) or NO_PORTS


def reduce_service(raw: dict) -> Service:
    """A Service from its JSON: cluster IPs of every family, none when headless."""
    namespace, name = _metadata(raw)
    spec = raw.get("spec") or {}
    cluster_ips = tuple(spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else []))
    cluster_ips = tuple(ip for ip in cluster_ips if ip and ip != "None")
    service_type = sys.intern(spec.get("type") or "ClusterIP")
    external_name = spec.get("externalName") if service_type == "ExternalName" else None
    if service_type == "ExternalName":
        cluster_ips = ()
    return Service(namespace, name, service_type, cluster_ips, _ports(spec.get("ports")), external_name)


def reduce_endpoint_slice(raw: dict) -> EndpointSlice:
    """An EndpointSlice from its JSON, keeping only endpoints that are ready (or not said not to be)."""
    namespace, name = _metadata(raw)
    ports = _ports(raw.get("ports"))
    endpoints = []
    if raw.get("addressType") in ("IPv4", "IPv6"):
        for endpoint in raw.get("endpoints") or ():
            if (endpoint.get("conditions") or {}).get("ready") is False:
                continue
            target = endpoint.get("targetRef") or {}
            hostname = endpoint.get("hostname") or None
            pod = target.get("name") if target.get("kind") == "Pod" else None
            endpoints.append(
                Endpoint(
                    tuple(endpoint.get("addresses") or ()),
                    hostname,
                    _intern(endpoint.get("nodeName")),
                    _intern((endpoint.get("zone") or "").lower()),
                    hostname if pod == hostname else pod,
                    ports,
                )
            )
    service = _labels(raw).get(SERVICE_NAME_LABEL)
    return EndpointSlice(namespace, name, _intern(service), tuple(endpoints), None, _trigger_time(raw))


def _trigger_time(raw: dict) -> float | None:
    """The slice's C{endpoints.kubernetes.io/last-change-trigger-time}, in Unix seconds."""
    annotations = (raw.get("metadata") or {}).get("annotations") or {}
    text = annotations.get(TRIGGER_TIME_ANNOTATION)
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def reduce_multicluster_endpoint_slice(raw: dict) -> EndpointSlice:
    """A multi-cluster EndpointSlice: endpoints as in any slice, of the ServiceImport and cluster its labels name."""
    labels = _labels(raw)
    service, cluster = labels.get(MULTICLUSTER_SERVICE_NAME_LABEL), labels.get(SOURCE_CLUSTER_LABEL)
    return reduce_endpoint_slice(raw)._replace(service=_intern(service), cluster=_intern(cluster))


def reduce_service_import(raw: dict) -> ServiceImport:
    """A ServiceImport (multicluster.x-k8s.io/v1alpha1) from its JSON: its type, ClusterSetIPs and ports.

    Unlike a Service, an import without ports gets no placeholder (as in CoreDNS): its ClusterSetIP
    name does not exist.
    """
    namespace, name = _metadata(raw)
    spec = raw.get("spec") or {}
    ips = tuple(ip for ip in spec.get("ips") or () if ip)
    import_type = sys.intern(spec.get("type") or "ClusterSetIP")
    return ServiceImport(namespace, name, import_type, ips, _declared_ports(spec.get("ports")))


def reduce_pod(raw: dict) -> Pod:
    """A Pod from its JSON: its IPs, none while it is being deleted."""
    namespace, name = _metadata(raw)
    if (raw.get("metadata") or {}).get("deletionTimestamp"):
        return Pod(namespace, name, ())
    status = raw.get("status") or {}
    ips = tuple(entry.get("ip") for entry in status.get("podIPs") or () if entry.get("ip"))
    if not ips and status.get("podIP"):
        ips = (status["podIP"],)
    return Pod(namespace, name, ips)


def reduce_namespace(raw: dict) -> Namespace:
    return Namespace(_metadata(raw)[1])
