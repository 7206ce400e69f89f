"""
Unit tables asked row by row of a daemon that syncs their clusters from a real kube-apiserver,
and compared as the unit tests compare (L{tests.test_kubernetes_fidelity}): the cluster-set
table of L{tests.test_kubernetes_multicluster} (C{multicluster}, KEP-1645: Services,
EndpointSlices, ServiceImports, a custom resource defined here, and each cluster's slices)
and the zonal table of L{tests.test_kubernetes_records} (C{zonal}: C{_zone} names of a
headless Service spread over topology zones).  The other tables hold Services that share a
ClusterIP or lie outside any service range, which no real server accepts;
L{tests.e2e.test_names} asks their name forms of a cluster made for it.
"""

from __future__ import annotations

import socket

from kubernetes import client

from kubernetai.kubernetes.kinds import SERVICE_IMPORT_RESOURCE
from tests import test_kubernetes_records as records
from tests.e2e.support import Daemon, E2ETestCase, eventually, stanza
from tests.test_kubernetes_fidelity import difference, read_reply, readdress, row_query
from tests import test_kubernetes_multicluster as multicluster

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


def table_stanza(options: str, kubeconfig: str) -> str:
    """A table's C{options} (C{kubernetes ZONES {\n OPTION\n ...}}) as a stanza through C{kubeconfig}."""
    head, _, body = options.partition("{")
    zones = head.split(None, 1)[1].strip()
    return stanza(zones, kubeconfig, *(line.strip() for line in body.rstrip("}").splitlines() if line.strip()))


def table_objects(table: type) -> list[dict]:
    """A table's objects as one list, readdressed where it shares a ClusterIP with another table here."""
    objects = table.objects
    if isinstance(objects, dict):
        objects = [raw for items in objects.values() for raw in items]
    for old, new in READDRESSED.get(table, ()):
        objects = readdress(objects, old, new)
    return objects


# The tables asked here, and the addresses moved so that no two Services share one.
TABLES = (multicluster.ClusterSetZoneTests, records.ZonalTests)
READDRESSED = {records.ZonalTests: [("10.0.0.10", "10.0.7.10")]}


class TableTests(E2ETestCase):
    """The unit tables whose clusters a real server can hold (their ClusterIPs in its ranges), each
    asked row by row of a daemon with the table's options."""

    def make_objects(self) -> None:
        extensions = client.ApiextensionsV1Api(self.admin.api)
        extensions.create_custom_resource_definition(SERVICE_IMPORT_CRD)
        eventually(lambda: established(extensions), 30.0, "the ServiceImport CRD established")
        custom = client.CustomObjectsApi(self.admin.api)
        makers = {
            "Namespace": self.namespace,
            "Service": self.admin.service,
            "EndpointSlice": self.admin.endpoint_slice,
            "Pod": self.admin.pod,
            "ServiceImport": lambda raw: custom.create_namespaced_custom_object(
                GROUP, VERSION, raw["metadata"]["namespace"], PLURAL, raw),
        }
        namespaces = {raw["metadata"].get("namespace") for table in TABLES for raw in table_objects(table)}
        for namespace in sorted(namespaces - {None}):
            self.namespace({"metadata": {"name": namespace}})
        for table in TABLES:
            for raw in table_objects(table):
                if raw["kind"] != "Namespace":
                    makers[raw["kind"]](raw)

    def namespace(self, raw: dict) -> None:
        if raw["metadata"]["name"] not in {item.metadata.name for item in self.admin.core.list_namespace().items}:
            self.admin.namespace(raw["metadata"]["name"])

    def check(self, table: type) -> None:
        daemon = Daemon(self, table_stanza(table.options, self.identities.token))
        daemon.wait_ready()
        rows = table.rows
        for old, new in READDRESSED.get(table, ()):
            rows = readdress(rows, old, new)
        differences = []
        for row in rows:
            got, problems = ask(daemon.port, row)
            if problems or got != records.expected(row):
                differences.append(difference(row, got, problems))
        self.assertEqual(differences, [])

    def test_cluster_set(self):
        self.check(multicluster.ClusterSetZoneTests)

    def test_zonal(self):
        self.check(records.ZonalTests)
