# -*- test-case-name: tests.test_kubernetes_index -*-
"""
A stanza's in-memory index: the lookups DNS answers need, as immutable
snapshots.

One writer (the stanza's index thread) owns a L{Store}, applies batches of
reduced objects to it, and publishes a new L{Snapshot}; readers (the reactor
thread) take the current snapshot once per query and see every table of it
consistent.  A snapshot's tables are never changed after it is published:
the next one copies the tables a batch changed and updates the copies.

With C{multicluster}, ServiceImports and the multi-cluster EndpointSlices of
each import are kinds of their own, in tables of their own, with their own
time of last change (the SOA serial of the multicluster zones, as in CoreDNS).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Iterable, NamedTuple

from kubernetai.kubernetes.kinds import Kind, Listed
from kubernetai.kubernetes.objects import Endpoint, EndpointSlice, Namespace, Pod, Service, ServiceImport, is_address
from kubernetai.kubernetes.shardedmap import ShardedMap


ServiceKey = tuple[str, str]


class ReverseEntry(NamedTuple):
    """What one IP is: a service's cluster IP (endpoint None) or one of its endpoints."""

    namespace: str
    service: str
    endpoint: Endpoint | None


@dataclass(frozen=True)
class Snapshot:
    """Everything a stanza answers from, as of one moment; never changed once published."""

    generation: int = 0
    modified: int = 0
    services: Mapping[ServiceKey, Service] = field(default_factory=ShardedMap)
    endpoints: Mapping[ServiceKey, tuple[Endpoint, ...]] = field(default_factory=ShardedMap)
    reverse: Mapping[str, tuple[ReverseEntry, ...]] = field(default_factory=ShardedMap)
    pods_by_ip: Mapping[str, tuple[Pod, ...]] = field(default_factory=ShardedMap)
    namespaces: frozenset[str] = frozenset()
    multicluster_modified: int = 0
    imports: dict[ServiceKey, ServiceImport] = field(default_factory=dict)
    multicluster_slices: dict[ServiceKey, tuple[EndpointSlice, ...]] = field(default_factory=dict)
    # The services each of their external IPs and LoadBalancer ingress IPs belongs to.
    external_reverse: Mapping[str, tuple[ServiceKey, ...]] = field(default_factory=ShardedMap)

    def service(self, namespace: str, name: str) -> Service | None:
        return self.services.get((namespace, name))

    def endpoints_of(self, namespace: str, name: str) -> tuple[Endpoint, ...]:
        """The ready endpoints of a service, merged across its slices without duplicates."""
        return self.endpoints.get((namespace, name), ())

    def service_import(self, namespace: str, name: str) -> ServiceImport | None:
        return self.imports.get((namespace, name))

    def multicluster_slices_of(self, namespace: str, name: str) -> tuple[EndpointSlice, ...]:
        """The multi-cluster EndpointSlices of a ServiceImport, each with its cluster, in name order."""
        return self.multicluster_slices.get((namespace, name), ())

    def counts(self) -> dict[str, int]:
        return {
            "services": len(self.services),
            "endpoints": sum(len(endpoints) for endpoints in self.endpoints.values()),
            "pods": sum(len(pods) for pods in self.pods_by_ip.values()),
            "namespaces": len(self.namespaces),
            "serviceimports": len(self.imports),
            "multicluster_endpoints": sum(
                len(each.endpoints) for slices in self.multicluster_slices.values() for each in slices
            ),
        }


class Slices:
    """EndpointSlices by (namespace, name), and the keys of the slices of each service they name."""

    def __init__(self) -> None:
        self.by_key: dict[tuple[str, str], EndpointSlice] = {}
        self.of_service: dict[ServiceKey, set[tuple[str, str]]] = {}

    def put(self, obj: EndpointSlice) -> set[ServiceKey]:
        """Add or replace one slice; the services whose endpoints that changes."""
        key = (obj.namespace, obj.name)
        touched = self.delete(key)
        self.by_key[key] = obj
        if obj.service is not None:
            service_key = (obj.namespace, obj.service)
            self.of_service.setdefault(service_key, set()).add(key)
            touched.add(service_key)
        return touched

    def delete(self, key: tuple[str, str]) -> set[ServiceKey]:
        """Remove one slice; the services whose endpoints that changes."""
        old = self.by_key.pop(key, None)
        if old is None or old.service is None:
            return set()
        service_key = (old.namespace, old.service)
        slice_keys = self.of_service.get(service_key, set())
        slice_keys.discard(key)
        if not slice_keys:
            self.of_service.pop(service_key, None)
        return {service_key}

    def of(self, service_key: ServiceKey) -> tuple[EndpointSlice, ...]:
        """The slices of one service, in key order."""
        return tuple(self.by_key[key] for key in sorted(self.of_service.get(service_key, ())))


class Store:
    """The writer's view: objects by kind and key, what changed since the last publish, and that snapshot."""

    def __init__(self) -> None:
        self.services: dict[ServiceKey, Service] = {}
        self.slices = Slices()
        self.pods: dict[tuple[str, str], Pod] = {}
        self.namespaces: set[str] = set()
        self.imports: dict[ServiceKey, ServiceImport] = {}
        self.multicluster_slices = Slices()
        self.snapshot = Snapshot()
        self.changed_services: set[ServiceKey] = set()
        self.changed_imports: set[ServiceKey] = set()
        self.pods_before: dict[tuple[str, str], Pod | None] = {}

    def replace(self, kind: Kind, objects: Iterable, namespace: str | None = None) -> None:
        """Make C{objects} the whole of C{kind} (in C{namespace}, or everywhere), as after a list."""
        if kind == Kind.NAMESPACES:
            self.namespaces = {namespace.name for namespace in objects}
            return
        fresh = {(obj.namespace, obj.name): obj for obj in objects}
        gone = [key for key in self._table(kind) if key not in fresh and namespace in (None, key[0])]
        for key in gone:
            self.delete(kind, key)
        for obj in fresh.values():
            self.put(kind, obj)

    def _table(self, kind: Kind) -> dict:
        """The objects of C{kind} (not namespaces) by (namespace, name)."""
        return {
            Kind.SERVICES: self.services,
            Kind.ENDPOINT_SLICES: self.slices.by_key,
            Kind.PODS: self.pods,
            Kind.SERVICE_IMPORTS: self.imports,
            Kind.MULTICLUSTER_ENDPOINT_SLICES: self.multicluster_slices.by_key,
        }[kind]

    def listed(self, kind: Kind, namespace: str | None = None) -> Listed:
        """What the store holds of C{kind} (in C{namespace}, or everywhere), as the list that would bring it."""
        if kind == Kind.NAMESPACES:
            return Listed(kind, namespace, [Namespace(name) for name in sorted(self.namespaces)])
        objects = [obj for key, obj in self._table(kind).items() if namespace in (None, key[0])]
        return Listed(kind, namespace, objects)

    def put(self, kind: Kind, obj) -> None:
        """Add or replace one object."""
        _PUT[kind](self, (obj.namespace, obj.name), obj)

    def delete(self, kind: Kind, key: tuple[str, str]) -> None:
        """Remove one object by (namespace, name)."""
        _DELETE[kind](self, key)

    def _put_service(self, key: ServiceKey, service: Service) -> None:
        self.services[key] = service
        self.changed_services.add(key)

    def _delete_service(self, key: ServiceKey) -> None:
        if self.services.pop(key, None) is not None:
            self.changed_services.add(key)

    def _put_slice(self, key: tuple[str, str], endpoint_slice: EndpointSlice) -> None:
        self.changed_services |= self.slices.put(endpoint_slice)

    def _delete_slice(self, key: tuple[str, str]) -> None:
        self.changed_services |= self.slices.delete(key)

    def _put_pod(self, key: tuple[str, str], pod: Pod) -> None:
        self.pods_before.setdefault(key, self.pods.get(key))
        self.pods[key] = pod

    def _delete_pod(self, key: tuple[str, str]) -> None:
        if key in self.pods:
            self.pods_before.setdefault(key, self.pods.pop(key))

    def _put_namespace(self, key: tuple[str, str], namespace) -> None:
        self.namespaces.add(namespace.name)

    def _delete_namespace(self, key: tuple[str, str]) -> None:
        self.namespaces.discard(key[1])

    def _put_import(self, key: ServiceKey, service_import: ServiceImport) -> None:
        self.imports[key] = service_import
        self.changed_imports.add(key)

    def _delete_import(self, key: ServiceKey) -> None:
        if self.imports.pop(key, None) is not None:
            self.changed_imports.add(key)

    def _put_multicluster_slice(self, key: tuple[str, str], endpoint_slice: EndpointSlice) -> None:
        self.changed_imports |= self.multicluster_slices.put(endpoint_slice)

    def _delete_multicluster_slice(self, key: tuple[str, str]) -> None:
        self.changed_imports |= self.multicluster_slices.delete(key)

    def merged_endpoints(self, service_key: ServiceKey) -> tuple[Endpoint, ...]:
        """The service's endpoints across its slices, the first of each (addresses, ports) kept."""
        seen: set[tuple] = set()
        merged = []
        for endpoint_slice in self.slices.of(service_key):
            for endpoint in endpoint_slice.endpoints:
                identity = (endpoint.addresses, endpoint.ports)
                if identity not in seen:
                    seen.add(identity)
                    merged.append(endpoint)
        return tuple(merged)

    def publish(self, now: float | None = None) -> Snapshot:
        """A new snapshot: the tables the changes touched copied and updated, the rest shared.

        Its C{modified} (the SOA serial) is C{now}, in Unix seconds, when anything changed; its
        C{multicluster_modified} (the multicluster zones' serial) when an import or its slices did.
        """
        old = self.snapshot
        now = int(time.time() if now is None else now)
        changed = bool(self.changed_services or self.pods_before) or self.namespaces != old.namespaces
        modified = now if changed else old.modified
        services, endpoints, reverse, pods_by_ip = old.services, old.endpoints, old.reverse, old.pods_by_ip
        external_reverse = old.external_reverse
        if self.changed_services:
            services, endpoints, reverse = services.editor(), endpoints.editor(), reverse.editor()
            external_reverse = external_reverse.editor()
            for key in self.changed_services:
                _update_service(self, key, old, services, endpoints, reverse)
                _update_external(key, old.services.get(key), self.services.get(key), external_reverse)
            services, endpoints, reverse = services.build(), endpoints.build(), reverse.build()
            external_reverse = external_reverse.build()
        if self.pods_before:
            pods_by_ip = pods_by_ip.editor()
            for key, before in self.pods_before.items():
                _update_pod(before, self.pods.get(key), pods_by_ip)
            pods_by_ip = pods_by_ip.build()
        namespaces = old.namespaces if self.namespaces == old.namespaces else frozenset(self.namespaces)
        multicluster_modified, imports, slices = old.multicluster_modified, old.imports, old.multicluster_slices
        if self.changed_imports:
            multicluster_modified, imports, slices = now, dict(imports), dict(slices)
            for key in self.changed_imports:
                _update_import(self, key, imports, slices)
        self.snapshot = Snapshot(
            old.generation + 1, modified, services, endpoints, reverse, pods_by_ip, namespaces,
            multicluster_modified, imports, slices, external_reverse,
        )
        self.changed_services, self.changed_imports, self.pods_before = set(), set(), {}
        return self.snapshot


# What a change of each kind does to the store.
_PUT = {
    Kind.SERVICES: Store._put_service,
    Kind.ENDPOINT_SLICES: Store._put_slice,
    Kind.PODS: Store._put_pod,
    Kind.NAMESPACES: Store._put_namespace,
    Kind.SERVICE_IMPORTS: Store._put_import,
    Kind.MULTICLUSTER_ENDPOINT_SLICES: Store._put_multicluster_slice,
}
_DELETE = {
    Kind.SERVICES: Store._delete_service,
    Kind.ENDPOINT_SLICES: Store._delete_slice,
    Kind.PODS: Store._delete_pod,
    Kind.NAMESPACES: Store._delete_namespace,
    Kind.SERVICE_IMPORTS: Store._delete_import,
    Kind.MULTICLUSTER_ENDPOINT_SLICES: Store._delete_multicluster_slice,
}


def _update_service(store: Store, key: ServiceKey, old: Snapshot, services, endpoints, reverse) -> None:
    """Bring one service's entries in the tables being edited up to date with the store."""
    namespace, name = key
    for ip in _reverse_ips(old.services.get(key), old.endpoints.get(key, ())):
        remaining = tuple(entry for entry in reverse.get(ip, ()) if entry[:2] != key)
        if remaining:
            reverse[ip] = remaining
        else:
            reverse.pop(ip, None)
    service = store.services.get(key)
    merged = store.merged_endpoints(key)
    if service is None:
        services.pop(key, None)
    else:
        services[key] = service
        for ip in service.cluster_ips:
            reverse[ip] = reverse.get(ip, ()) + (ReverseEntry(namespace, name, None),)
    if merged:
        endpoints[key] = merged
        if service is not None:
            for endpoint in merged:
                for ip in endpoint.addresses:
                    reverse[ip] = reverse.get(ip, ()) + (ReverseEntry(namespace, name, endpoint),)
    else:
        endpoints.pop(key, None)


def _update_external(key: ServiceKey, before: Service | None, after: Service | None, external_reverse) -> None:
    """Move one service's entries in the external-IP table being edited from its old addresses to its new ones."""
    for ip in external_addresses(before):
        remaining = tuple(entry for entry in external_reverse.get(ip, ()) if entry != key)
        if remaining:
            external_reverse[ip] = remaining
        else:
            external_reverse.pop(ip, None)
    for ip in external_addresses(after):
        # Sorted: the services sharing an address come in the same order whatever order the changes came in.
        external_reverse[ip] = tuple(sorted(external_reverse.get(ip, ()) + (key,)))


def external_addresses(service: Service | None) -> set[str]:
    """The IP addresses among a service's external IPs and ingress points (not its ingress hostnames)."""
    if service is None:
        return set()
    return {host for host in service.external_ips + service.ingress if is_address(host)}


def _update_import(store: Store, key: ServiceKey, imports, multicluster_slices) -> None:
    """Bring one ServiceImport's entries in the copied tables up to date with the store."""
    service_import = store.imports.get(key)
    if service_import is None:
        imports.pop(key, None)
    else:
        imports[key] = service_import
    slices = store.multicluster_slices.of(key)
    if slices:
        multicluster_slices[key] = slices
    else:
        multicluster_slices.pop(key, None)


def _reverse_ips(service: Service | None, endpoints: tuple[Endpoint, ...]) -> set[str]:
    ips = set(service.cluster_ips) if service is not None else set()
    for endpoint in endpoints:
        ips.update(endpoint.addresses)
    return ips


def _update_pod(before: Pod | None, after: Pod | None, pods_by_ip) -> None:
    """Move one pod's entries in the IP table being edited from its old IPs to its new ones."""
    if before is not None:
        for ip in before.ips:
            remaining = tuple(pod for pod in pods_by_ip.get(ip, ()) if pod[:2] != before[:2])
            if remaining:
                pods_by_ip[ip] = remaining
            else:
                pods_by_ip.pop(ip, None)
    if after is not None:
        for ip in after.ips:
            pods_by_ip[ip] = pods_by_ip.get(ip, ()) + (after,)
