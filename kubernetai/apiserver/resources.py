# -*- test-case-name: tests.test_apiserver -*-
"""
The pure half of the fake API server in L{kubernetai.apiserver.server}: resource types, URL routing,
label selectors, watch-event filtering and builders of objects in real Kubernetes JSON shape.
"""

import ipaddress
from dataclasses import dataclass
from typing import Callable

from kubernetai.kubernetes.selector import label_selector_matches, parse_label_selector


@dataclass(frozen=True)
class ResourceType:
    """A kind of object the server keeps, and where it lives in the API."""

    plural: str
    kind: str
    api_version: str
    namespaced: bool


RESOURCES = {
    resource.plural: resource
    for resource in (
        ResourceType("services", "Service", "v1", True),
        ResourceType("pods", "Pod", "v1", True),
        ResourceType("namespaces", "Namespace", "v1", False),
        ResourceType("endpointslices", "EndpointSlice", "discovery.k8s.io/v1", True),
        ResourceType("serviceimports", "ServiceImport", "multicluster.x-k8s.io/v1alpha1", True),
    )
}
_BY_KIND = {resource.kind: resource for resource in RESOURCES.values()}

# What a v1.35 server answers on its discovery paths, as far as clients read it.
DISCOVERY = {
    "/version": {
        "major": "1", "minor": "35", "emulationMajor": "1", "emulationMinor": "35",
        "minCompatibilityMajor": "1", "minCompatibilityMinor": "34", "gitVersion": "v1.35.4",
        "gitCommit": "0" * 40, "gitTreeState": "clean", "buildDate": "2026-04-15T10:00:00Z",
        "goVersion": "go1.25.9", "compiler": "gc", "platform": "linux/amd64",
    },
    "/api": {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []},
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
        {
            "name": group,
            "versions": [{"groupVersion": f"{group}/{version}", "version": version}],
            "preferredVersion": {"groupVersion": f"{group}/{version}", "version": version},
        }
        for group, version in (("discovery.k8s.io", "v1"), ("multicluster.x-k8s.io", "v1alpha1"))
    ]},
}


def resource_type(kind):
    """The L{ResourceType} named by its plural ("services") or its kind ("Service")."""
    return RESOURCES.get(kind) or _BY_KIND[kind]


def route(path):
    """Map a collection URL path to (ResourceType, namespace or None), or None if unknown."""
    parts = [part for part in path.split("/") if part]
    if parts[:2] == ["api", "v1"]:
        api_version, rest = "v1", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        api_version, rest = parts[1] + "/" + parts[2], parts[3:]
    else:
        return None
    namespace = None
    if len(rest) == 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    resource = RESOURCES.get(rest[0]) if len(rest) == 1 else None
    if resource is None or resource.api_version != api_version:
        return None
    if namespace is not None and not resource.namespaced:
        return None
    return resource, namespace


def parse_selector(text):
    """A predicate over a labels dict for label selector C{text} (C{a=b,c!=d,e in (f,g),h,!i}); raises
    C{ValueError} saying what is wrong if it is malformed."""
    requirements = parse_label_selector(text or "")
    return lambda labels: label_selector_matches(requirements, labels)


@dataclass(frozen=True)
class Event:
    """One change to the store: its resourceVersion, the object after it, and before it."""

    resource_version: int
    resource: ResourceType
    type: str
    obj: dict
    old: dict | None = None


@dataclass(frozen=True)
class Query:
    """What a list or watch request asks for: one resource, maybe one namespace, a selector."""

    resource: ResourceType
    namespace: str | None
    selector: Callable

    def matches(self, obj):
        """Whether the object is in this query's namespace and its labels match the selector."""
        metadata = obj["metadata"]
        in_namespace = self.namespace is None or metadata.get("namespace") == self.namespace
        return in_namespace and self.selector(metadata.get("labels") or {})

    def event_type(self, event):
        """The type a watcher with this query sees the event as, or None; an object whose
        labels move into or out of the selector is ADDED or DELETED, as on a real server."""
        if event.resource != self.resource:
            return None
        now = self.matches(event.obj)
        if event.type != "MODIFIED":
            return event.type if now else None
        before = self.matches(event.old)
        return {(True, True): "MODIFIED", (False, True): "ADDED", (True, False): "DELETED"}.get((before, now))


_REASONS = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 410: "Expired",
    422: "Invalid", 429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable",
    504: "Timeout",
}


def status_object(code, message, details=None):
    """A Kubernetes Status object reporting a failure with this HTTP code (and C{details}, if any)."""
    status = {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": _REASONS.get(code, "Unknown"), "code": code,
    }
    if details is not None:
        status["details"] = details
    return status


class InvalidOptions(ValueError):
    """List options a real server refuses as 422 Invalid, naming the field and why."""

    def __init__(self, field, reason):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    def status(self):
        """The Status a real server answers, with its C{details}."""
        details = {"group": "meta.k8s.io", "kind": "ListOptions", "causes": [
            {"reason": "FieldValueForbidden", "message": self.reason, "field": self.field}]}
        message = f'ListOptions.meta.k8s.io "" is invalid: {self}'
        return status_object(422, message, details)


def too_large_status(wanted, current):
    """What a real server answers (504, after waiting for it) to a list at a resourceVersion it has not reached."""
    details = {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
               "retryAfterSeconds": 1}
    return status_object(504, f"Timeout: Too large resource version: {wanted}, current: {current}", details)


def not_found_status():
    """What a real server answers for a resource it does not serve under an API group it does."""
    return status_object(404, "the server could not find the requested resource", {})


@dataclass(frozen=True)
class ListOptions:
    """The query parameters of a list or watch request."""

    watch: bool
    selector: Callable
    limit: int
    continue_token: str | None
    resource_version: int | None
    timeout: int | None
    bookmarks: bool

    @classmethod
    def from_params(cls, params):
        """Parse query parameters; raise ValueError if one is malformed, L{InvalidOptions} if
        they do not go together."""
        timeout = params.get("timeoutSeconds")
        match = params.get("resourceVersionMatch")
        if match and not params.get("resourceVersion"):
            raise InvalidOptions("resourceVersionMatch",
                                 "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided")
        return cls(
            watch=flag(params.get("watch")),
            selector=parse_selector(params.get("labelSelector")),
            limit=int(params.get("limit") or 0),
            continue_token=params.get("continue") or None,
            resource_version=int(params.get("resourceVersion") or 0) or None,
            timeout=int(timeout) if timeout else None,
            bookmarks=flag(params.get("allowWatchBookmarks")),
        )


def flag(value):
    """Whether a boolean query parameter is set ("true" or "1")."""
    return (value or "").lower() in ("true", "1")


def list_item(obj):
    """Items of a real list response carry no kind or apiVersion."""
    return {field: value for field, value in obj.items() if field not in ("kind", "apiVersion")}


def make_service(namespace, name, cluster_ips=(), ports=(), type="ClusterIP", external_name=None,
                 labels=None, headless=False, external_ips=(), ingress=()):
    """A core/v1 Service; C{ports} are dicts like C{{"name": "http", "port": 80}}; C{external_ips} its
    spec.externalIPs, C{ingress} its status.loadBalancer.ingress (IPs and host names, see L{load_balancer})."""
    spec = {"type": type, "ports": [{"protocol": "TCP", **port} for port in ports]}
    if external_ips:
        spec["externalIPs"] = list(external_ips)
    if type == "ExternalName":
        spec["externalName"] = external_name
    else:
        ips = ["None"] if headless else list(cluster_ips)
        if ips:
            spec.update(clusterIP=ips[0], clusterIPs=ips)
    return _object("Service", "v1", namespace, name, labels, spec=spec, status=load_balancer(ingress))


def load_balancer(ingress=()):
    """A Service's status with LoadBalancer C{ingress} points: each an IP (C{{"ip": ...}}) or else a host name."""
    points = [{"ip": point} if _is_ip(point) else {"hostname": point} for point in ingress]
    return {"loadBalancer": {"ingress": points} if points else {}}


def _is_ip(text):
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def make_endpoint_slice(namespace, name, service, endpoints=(), ports=(), address_type="IPv4",
                        labels=None):
    """A discovery.k8s.io/v1 EndpointSlice of C{service}; each endpoint is a dict with
    addresses and optionally hostname, ready (default True), nodeName, zone, targetRef."""
    labels = {
        "kubernetes.io/service-name": service,
        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
        **(labels or {}),
    }
    return _endpoint_slice(namespace, name, labels, endpoints, ports, address_type)


def make_multicluster_endpoint_slice(namespace, name, service, cluster, endpoints=(), ports=(),
                                     address_type="IPv4", labels=None):
    """An EndpointSlice of ServiceImport C{service} from C{cluster}, labelled as KEP-1645 has an
    MCS controller label it (and without C{kubernetes.io/service-name}); endpoints as above."""
    labels = {
        "multicluster.kubernetes.io/service-name": service,
        "multicluster.kubernetes.io/source-cluster": cluster,
        "endpointslice.kubernetes.io/managed-by": "mcs-controller.example",
        **(labels or {}),
    }
    return _endpoint_slice(namespace, name, labels, endpoints, ports, address_type)


def make_service_import(namespace, name, type="ClusterSetIP", ips=(), ports=(), labels=None):
    """A multicluster.x-k8s.io/v1alpha1 ServiceImport; C{ports} are dicts like C{{"name": "http", "port": 80}}."""
    spec = {"type": type, "ips": list(ips), "ports": [{"protocol": "TCP", **port} for port in ports]}
    return _object("ServiceImport", "multicluster.x-k8s.io/v1alpha1", namespace, name, labels, spec=spec)


def make_pod(namespace, name, ip, labels=None, node_name="node-1", phase="Running"):
    """A core/v1 Pod with one container; C{ip} None for a pod that has no address yet."""
    spec = {"nodeName": node_name, "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.9"}]}
    status = {"phase": phase}
    if ip:
        status.update(podIP=ip, podIPs=[{"ip": ip}])
    return _object("Pod", "v1", namespace, name, labels, spec=spec, status=status)


def make_namespace(name, labels=None):
    """A core/v1 Namespace, labelled with its name as the real server does."""
    labels = {"kubernetes.io/metadata.name": name, **(labels or {})}
    return _object("Namespace", "v1", None, name, labels,
                   spec={"finalizers": ["kubernetes"]}, status={"phase": "Active"})


def _endpoint_slice(namespace, name, labels, endpoints, ports, address_type):
    return _object(
        "EndpointSlice", "discovery.k8s.io/v1", namespace, name, labels,
        addressType=address_type,
        endpoints=[_endpoint(endpoint) for endpoint in endpoints],
        ports=[{"protocol": "TCP", **port} for port in ports],
    )


def _endpoint(endpoint):
    endpoint = dict(endpoint)
    ready = endpoint.pop("ready", True)
    return {**endpoint, "conditions": {"ready": ready, "serving": ready, "terminating": False}}


def _object(kind, api_version, namespace, name, labels, **fields):
    metadata = {"name": name, "labels": dict(labels or {})}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, **fields}
