# -*- test-case-name: tests.test_kubernetes_names -*-
"""
Kubernetes DNS names: a query name inside a stanza's zone as the request it
stands for, as CoreDNS's kubernetes plugin parses it (C{parse.go}).

The forms under zone Z:
  - C{service.namespace.svc.Z} and C{namespace.svc.Z}, C{svc.Z}, C{Z} (apex)
  - C{endpoint.service.namespace.svc.Z}
  - C{_port._protocol.service.namespace.svc.Z}
  - C{endpoint.cluster.service.namespace.svc.Z} in C{multicluster} zones
  - C{topozone.pin|prefer._zone.service.namespace.svc.Z} with C{zonal}
  - C{1-2-3-4.namespace.pod.Z}
"""

from __future__ import annotations

import ipaddress
from typing import NamedTuple

SVC, POD = "svc", "pod"
ZONE_LABEL = "_zone"


class InvalidName(Exception):
    """Not a name the Kubernetes DNS schema defines: NXDOMAIN."""


class NameRequest(NamedTuple):
    """What a name asks for; empty strings for parts it does not name."""

    pod_or_svc: str = ""
    namespace: str = ""
    service: str = ""
    endpoint: str = ""
    port: str = ""
    protocol: str = ""
    cluster: str = ""
    topology_zone: str = ""
    zone_prefer: bool = False


def trim_zone(name: str, zone: str) -> str:
    """The labels of C{name} left of C{zone}, without the joining dot (both lower case, fully qualified)."""
    if zone == ".":
        return name.rstrip(".")
    return name[: -len(zone)].rstrip(".")


def parse_name(name: str, zone: str, multicluster: bool = False, zonal: bool = False) -> NameRequest:
    """The request C{name} (lower case, under C{zone}) stands for; raises L{InvalidName}."""
    base = trim_zone(name, zone)
    if base in ("", SVC, POD):
        return NameRequest()
    labels = base.split(".")
    pod_or_svc = labels.pop()
    if pod_or_svc not in (SVC, POD):
        raise InvalidName(name)
    if not labels:
        return NameRequest(pod_or_svc)
    namespace = labels.pop()
    if not labels:
        return NameRequest(pod_or_svc, namespace)
    service = labels.pop()
    request = NameRequest(pod_or_svc, namespace, service)
    if not labels:
        return request
    if len(labels) == 1:
        return request._replace(endpoint=labels[0])
    if len(labels) == 2:
        return _two_labels(request, labels, multicluster)
    return _zone_scoped(request, labels, name, multicluster, zonal)


def _two_labels(request: NameRequest, labels: list[str], multicluster: bool) -> NameRequest:
    first, second = labels
    if not multicluster or first.startswith("_") or second.startswith("_"):
        return request._replace(port=_strip_underscore(first), protocol=_strip_underscore(second))
    return request._replace(endpoint=first, cluster=second)


def _zone_scoped(request: NameRequest, labels: list[str], name: str, multicluster: bool, zonal: bool):
    directive, anchor = labels[-2], labels[-1]
    if not zonal or multicluster or anchor != ZONE_LABEL or request.pod_or_svc != SVC:
        raise InvalidName(name)
    if directive not in ("pin", "prefer"):
        raise InvalidName(name)
    return request._replace(topology_zone=".".join(labels[:-2]), zone_prefer=directive == "prefer")


def _strip_underscore(label: str) -> str:
    return label[1:] if label.startswith("_") else label


def endpoint_label(address: str, hostname: str | None, pod: str | None, pod_names: bool) -> str:
    """The label naming an endpoint: its hostname, its pod's name (with endpoint_pod_names), else its dashed IP."""
    if hostname:
        return hostname
    if pod_names and pod and len(pod) <= 63:
        return pod
    if "." in address:
        return address.replace(".", "-")
    dashed = address.replace(":", "-")
    return dashed + "0" if dashed.endswith("-") else dashed


def pod_ip(label: str) -> str | None:
    """The IP a pod label such as C{1-2-3-4} or C{fd00--1} spells, or None."""
    if label.count("-") == 3 and "--" not in label:
        text = label.replace("-", ".")
    else:
        text = label.replace("-", ":")
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def reverse_address(name: str) -> str | None:
    """The IP of a full C{in-addr.arpa.} or C{ip6.arpa.} name, or None when it is not one."""
    labels = name.rstrip(".").split(".")
    if name.endswith(".in-addr.arpa.") and len(labels) == 6:
        text = ".".join(reversed(labels[:4]))
    elif name.endswith(".ip6.arpa.") and len(labels) == 34:
        nibbles = "".join(reversed(labels[:32]))
        text = ":".join(nibbles[i : i + 4] for i in range(0, 32, 4))
    else:
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def is_reverse(name: str) -> bool:
    return name.endswith(".in-addr.arpa.") or name.endswith(".ip6.arpa.") or name in ("in-addr.arpa.", "ip6.arpa.")
