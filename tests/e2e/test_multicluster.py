"""
Multi-cluster names (C{multicluster}, KEP-1645) from a real kube-apiserver: the ServiceImport
custom resource defined there, the cluster-set table of L{tests.test_kubernetes_multicluster}
(its Services, EndpointSlices, ServiceImports and each cluster's slices) made by the admin,
and every row of that table asked of a running daemon and compared as the unit tests compare
(L{tests.test_kubernetes_fidelity}).
"""

from __future__ import annotations

import socket

from kubernetes import client

from kubernetai.kubernetes.cluster import SERVICE_IMPORT_RESOURCE
from kubernetai.kubernetes.index import ENDPOINT_SLICES, MULTICLUSTER_ENDPOINT_SLICES, SERVICE_IMPORTS, SERVICES
from tests import test_kubernetes_records as records
from tests.e2e.support import Daemon, E2ETestCase, eventually, stanza
from tests.test_kubernetes_fidelity import difference, read_reply, row_query
from tests.test_kubernetes_multicluster import CLUSTER_SET, CLUSTER_SET_ROWS

GROUP, VERSION, PLURAL = SERVICE_IMPORT_RESOURCE["group"], SERVICE_IMPORT_RESOURCE["version"], "serviceimports"

# The ServiceImport CRD as far as a server must know it: an MCS controller installs the full one.
SERVICE_IMPORT_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": PLURAL, "singular": "serviceimport", "kind": "ServiceImport", "listKind": "ServiceImportList"},
        "versions": [{
            "name": VERSION, "served": True, "storage": True,
            "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
        }],
    },
}


def ask(port: int, row: records.Row):
    """The daemon's reply to a row over UDP, read as L{read_reply} reads it."""
    query = row_query(row)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(query.to_wire(), ("127.0.0.1", port))
        try:
            wire = sock.recv(65535)
        except socket.timeout:
            wire = None
    return read_reply(query, wire)


def established(extensions: client.ApiextensionsV1Api) -> bool:
    definition = extensions.read_custom_resource_definition(SERVICE_IMPORT_CRD["metadata"]["name"])
    return any(condition.type == "Established" and condition.status == "True"
               for condition in definition.status.conditions or ())


class ClusterSetTests(E2ETestCase):
    def make_objects(self) -> None:
        extensions = client.ApiextensionsV1Api(self.admin.api)
        extensions.create_custom_resource_definition(SERVICE_IMPORT_CRD)
        eventually(lambda: established(extensions), 30.0, "the ServiceImport CRD established")
        custom = client.CustomObjectsApi(self.admin.api)
        for service in CLUSTER_SET[SERVICES]:
            self.admin.service(service)
        for endpoint_slice in CLUSTER_SET[ENDPOINT_SLICES] + CLUSTER_SET[MULTICLUSTER_ENDPOINT_SLICES]:
            self.admin.endpoint_slice(endpoint_slice)
        for service_import in CLUSTER_SET[SERVICE_IMPORTS]:
            custom.create_namespaced_custom_object(GROUP, VERSION, service_import["metadata"]["namespace"],
                                                   PLURAL, service_import)

    def test_cluster_set_table(self):
        daemon = Daemon(self, stanza("cluster.local clusterset.local", self.identities.token,
                                     "multicluster clusterset.local"))
        daemon.wait_ready()
        differences = []
        for row in CLUSTER_SET_ROWS:
            got, problems = ask(daemon.port, row)
            if problems or got != records.expected(row):
                differences.append(difference(row, got, problems))
        self.assertEqual(differences, [])
