# -*- test-case-name: tests.test_kubernetes_watch,tests.test_kubernetes_index -*-
"""
The kinds of object a stanza watches, one table row each: the API resource
behind it (what RBAC must allow), how the kubernetes client lists and
watches it, its page size, its reducer, and what the sync's log line counts
it as; and the changes its watches send the index thread.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import StrEnum
from typing import Callable

from kubernetes import client

from kubernetai.kubernetes.objects import (
    reduce_endpoint_slice,
    reduce_multicluster_endpoint_slice,
    reduce_namespace,
    reduce_pod,
    reduce_service,
    reduce_service_import,
)

LIST_PAGE_SIZE = 500
# An EndpointSlice holds up to 100 endpoints: smaller pages keep one response's JSON small.
ENDPOINT_SLICE_PAGE_SIZE = 50
# Where ServiceImports live: a custom resource of the Multi-Cluster Services API.
SERVICE_IMPORT_RESOURCE = {"group": "multicluster.x-k8s.io", "version": "v1alpha1", "plural": "serviceimports"}


class Kind(StrEnum):
    SERVICES = "services"
    ENDPOINT_SLICES = "endpointslices"
    PODS = "pods"
    NAMESPACES = "namespaces"
    SERVICE_IMPORTS = "serviceimports"
    # The EndpointSlices of imported services (by the ServiceImport-name label), with multicluster.
    MULTICLUSTER_ENDPOINT_SLICES = "multicluster-endpointslices"


@dataclass(frozen=True)
class KindTable:
    """How a stanza lists, watches and keeps one kind of object."""

    # The API group and resource: what the stanza's identity must be allowed to list and watch.
    api_resource: tuple[str, str]
    # The client's calls, from an ApiClient: across all namespaces, and in one namespace (None: none).
    list_all: Callable[[client.ApiClient], Callable]
    list_namespaced: Callable[[client.ApiClient], Callable] | None
    page_size: int
    reduce: Callable[[dict], object]
    # The snapshot count that says how many objects it brought (for the sync's log line).
    counted_as: str

    def list_function(self, api_client: client.ApiClient, namespace: str | None) -> Callable:
        """The client's list-or-watch call in C{namespace} (None: all namespaces)."""
        if namespace is None:
            return self.list_all(api_client)
        return self.list_namespaced(api_client)


def _core(name: str):
    return lambda api_client: getattr(client.CoreV1Api(api_client), name)


def _discovery(name: str):
    return lambda api_client: getattr(client.DiscoveryV1Api(api_client), name)


def _custom(name: str):
    return lambda api_client: functools.partial(getattr(client.CustomObjectsApi(api_client), name),
                                                **SERVICE_IMPORT_RESOURCE)


KINDS: dict[Kind, KindTable] = {
    Kind.SERVICES: KindTable(("", "services"), _core("list_service_for_all_namespaces"),
                             _core("list_namespaced_service"), LIST_PAGE_SIZE, reduce_service, "services"),
    Kind.ENDPOINT_SLICES: KindTable(("discovery.k8s.io", "endpointslices"),
                                    _discovery("list_endpoint_slice_for_all_namespaces"),
                                    _discovery("list_namespaced_endpoint_slice"), ENDPOINT_SLICE_PAGE_SIZE,
                                    reduce_endpoint_slice, "endpoints"),
    Kind.PODS: KindTable(("", "pods"), _core("list_pod_for_all_namespaces"), _core("list_namespaced_pod"),
                         LIST_PAGE_SIZE, reduce_pod, "pods"),
    Kind.NAMESPACES: KindTable(("", "namespaces"), _core("list_namespace"), None, LIST_PAGE_SIZE, reduce_namespace,
                               "namespaces"),
    Kind.SERVICE_IMPORTS: KindTable((SERVICE_IMPORT_RESOURCE["group"], SERVICE_IMPORT_RESOURCE["plural"]),
                                    _custom("list_cluster_custom_object"), _custom("list_namespaced_custom_object"),
                                    LIST_PAGE_SIZE, reduce_service_import, "serviceimports"),
    Kind.MULTICLUSTER_ENDPOINT_SLICES: KindTable(("discovery.k8s.io", "endpointslices"),
                                                 _discovery("list_endpoint_slice_for_all_namespaces"),
                                                 _discovery("list_namespaced_endpoint_slice"),
                                                 ENDPOINT_SLICE_PAGE_SIZE, reduce_multicluster_endpoint_slice,
                                                 "multicluster_endpoints"),
}


@dataclass(frozen=True)
class Listed:
    """A list's result: C{objects} are the whole of C{kind} in C{namespace} (None: everywhere)."""

    kind: Kind
    namespace: str | None
    objects: list


@dataclass(frozen=True)
class Changed:
    """An object added or modified."""

    kind: Kind
    obj: object


@dataclass(frozen=True)
class Deleted:
    """An object deleted."""

    kind: Kind
    obj: object
