"""
Multi-cluster names (C{multicluster ZONES...}, KEP-1645): ServiceImports and
the EndpointSlices of each cluster answered in a stanza's multicluster zones,
as CoreDNS's C{findMultiClusterServices} answers them.

First as table rows asked of L{kubernetai.kubernetes.records.answer}, from
CoreDNS's own tables where it has them, compared as
L{tests.test_kubernetes_records} compares them; then end to end, a running
daemon over a stanza that syncs imports from the test API server.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.names import dns
from twisted.trial import unittest

from kubernetai.kubernetes.index import Snapshot, Store
from kubernetai.kubernetes.kinds import KINDS, Kind
from kubernetai.kubernetes.entries import View
from kubernetai.kubernetes.records import soa_record
from kubernetai.apiserver.resources import (
    make_endpoint_slice,
    make_multicluster_endpoint_slice,
    make_namespace,
    make_service,
    make_service_import,
)
from kubernetai.apiserver.server import ApiServer
from tests.k8sdata import DNS_UDP, HTTP, SERIAL
from tests.support import query, rcode_of, start_daemon_listening
from tests.test_kubernetes_records import COMMON_ROWS, NOERROR, NXDOMAIN, SOA, Row, TableTestCase, stanza, table
from tests.test_kubernetes_stanza import stanza_block, texts, wait_for_answer

PG = {"name": "pg", "port": 5432}


def snapshot(objects: dict[str, list[dict]], now: int = SERIAL) -> Snapshot:
    """The snapshot of a stanza that has listed C{objects}: API JSON dicts by the index's kinds."""
    store = Store()
    for kind, items in objects.items():
        store.replace(kind, [KINDS[kind].reduce(raw) for raw in items])
    return store.publish(now=now)


# handler_test.go APIConnServeTest's svcImportIndex and mcEpsIndex (its
# ServiceImports and MultiClusterEndpoints).  The fake holds hdls1's IPv4
# and IPv6 addresses in one object; a cluster has one slice per family.
SERVE_IMPORTS = [
    make_service_import("kube-system", "kubedns", ips=["10.0.0.10"], ports=[DNS_UDP]),
    make_service_import("testns", "svc1", ips=["10.0.0.1"], ports=[HTTP]),
    make_service_import("testns", "svcempty", ips=["10.0.0.1"], ports=[HTTP]),
    make_service_import("testns", "svc6", ips=["1234:abcd::1"], ports=[HTTP]),
    make_service_import("testns", "hdls1", type="Headless"),
    make_service_import("testns", "hdlsprtls", type="Headless"),
    make_service_import("unexposedns", "svc1", ips=["10.0.0.2"], ports=[HTTP]),
    make_service_import("testns", "svc-dual-stack", ips=["10.0.0.3", "10::3"], ports=[HTTP]),
]
SERVE_MULTICLUSTER_SLICES = [
    make_multicluster_endpoint_slice("kube-system", "kubedns", "kubedns", "cluster1",
                                     [{"addresses": ["172.0.0.100"]}], [DNS_UDP]),
    make_multicluster_endpoint_slice("testns", "svc1-slice1", "svc1", "cluster1",
                                     [{"addresses": ["172.0.0.1"], "hostname": "ep1a"}], [HTTP]),
    make_multicluster_endpoint_slice("testns", "svcempty-slice1", "svcempty", "cluster1", [], [HTTP]),
    make_multicluster_endpoint_slice(
        "testns", "hdls1-slice1", "hdls1", "cluster1",
        [
            {"addresses": ["172.0.0.2"]},
            {"addresses": ["172.0.0.3"]},
            {"addresses": ["172.0.0.4"], "hostname": "dup-name"},
            {"addresses": ["172.0.0.5"], "hostname": "dup-name"},
        ],
        [HTTP],
    ),
    make_multicluster_endpoint_slice(
        "testns", "hdls1-slice2", "hdls1", "cluster1",
        [{"addresses": ["5678:abcd::1"]}, {"addresses": ["5678:abcd::2"]}], [HTTP], address_type="IPv6",
    ),
    # The fake's {Port: -1} is CoreDNS's own mark for a slice without ports.
    make_multicluster_endpoint_slice("testns", "hdlsprtls-slice1", "hdlsprtls", "cluster1",
                                     [{"addresses": ["172.0.0.20"]}]),
]
SERVE_NAMESPACES = [make_namespace(name) for name in ("kube-system", "testns", "unexposedns")]
# The ServeTest cluster's multi-cluster half by the index's kinds, as L{snapshot} takes it.
SERVE_MULTICLUSTER = {
    Kind.SERVICE_IMPORTS: SERVE_IMPORTS,
    Kind.MULTICLUSTER_ENDPOINT_SLICES: SERVE_MULTICLUSTER_SLICES,
    Kind.NAMESPACES: SERVE_NAMESPACES,
}


# handler_test.go: commonDnsTestCases, then multiclusterDnsTestCases (TestMultiClusterServeDNS).
MULTICLUSTER_SERVE_ROWS = COMMON_ROWS + [
    # SRV Service (Headless)
    Row("_http._tcp.hdls1.testns.svc.cluster.local.", dns.SRV, NOERROR, answer=(
        "_http._tcp.hdls1.testns.svc.cluster.local.	5	IN	SRV	0 16 80 172-0-0-2.cluster1.hdls1.testns.svc.cluster.local.",
        "_http._tcp.hdls1.testns.svc.cluster.local.	5	IN	SRV	0 16 80 172-0-0-3.cluster1.hdls1.testns.svc.cluster.local.",
        "_http._tcp.hdls1.testns.svc.cluster.local.	5	IN	SRV	0 16 80 5678-abcd--1.cluster1.hdls1.testns.svc.cluster.local.",
        "_http._tcp.hdls1.testns.svc.cluster.local.	5	IN	SRV	0 16 80 5678-abcd--2.cluster1.hdls1.testns.svc.cluster.local.",
        "_http._tcp.hdls1.testns.svc.cluster.local.	5	IN	SRV	0 16 80 dup-name.cluster1.hdls1.testns.svc.cluster.local.",
    ), extra=(
        "172-0-0-2.cluster1.hdls1.testns.svc.cluster.local.	5	IN	A	172.0.0.2",
        "172-0-0-3.cluster1.hdls1.testns.svc.cluster.local.	5	IN	A	172.0.0.3",
        "5678-abcd--1.cluster1.hdls1.testns.svc.cluster.local.	5	IN	AAAA	5678:abcd::1",
        "5678-abcd--2.cluster1.hdls1.testns.svc.cluster.local.	5	IN	AAAA	5678:abcd::2",
        "dup-name.cluster1.hdls1.testns.svc.cluster.local.	5	IN	A	172.0.0.4",
        "dup-name.cluster1.hdls1.testns.svc.cluster.local.	5	IN	A	172.0.0.5",
    )),
    # An A record query for an existing headless service: a record for each of its ipv4 endpoints
    Row("hdls1.testns.svc.cluster.local.", dns.A, NOERROR, answer=(
        "hdls1.testns.svc.cluster.local.	5	IN	A	172.0.0.2",
        "hdls1.testns.svc.cluster.local.	5	IN	A	172.0.0.3",
        "hdls1.testns.svc.cluster.local.	5	IN	A	172.0.0.4",
        "hdls1.testns.svc.cluster.local.	5	IN	A	172.0.0.5",
    )),
    # AAAA
    Row("5678-abcd--2.cluster1.hdls1.testns.svc.cluster.local", dns.AAAA, NOERROR, answer=(
        "5678-abcd--2.cluster1.hdls1.testns.svc.cluster.local.	5	IN	AAAA	5678:abcd::2",
    )),
    # AAAA Endpoint
    Row("5678-abcd--1.cluster1.hdls1.testns.svc.cluster.local.", dns.AAAA, NOERROR, answer=(
        "5678-abcd--1.cluster1.hdls1.testns.svc.cluster.local.	5	IN	AAAA	5678:abcd::1",
    )),
    # An Endpoint with no port
    Row("172-0-0-20.cluster1.hdlsprtls.testns.svc.cluster.local.", dns.A, NOERROR, answer=(
        "172-0-0-20.cluster1.hdlsprtls.testns.svc.cluster.local.	5	IN	A	172.0.0.20",
    )),
    # AAAA Endpoint without specifying the clusterid
    Row("5678-abcd--1.hdls1.testns.svc.cluster.local.", dns.AAAA, NXDOMAIN, ns=(SOA,)),
    # An Endpoint ip
    Row("172-0-0-2.cluster1.hdls1.testns.svc.cluster.local.", dns.A, NOERROR, answer=(
        "172-0-0-2.cluster1.hdls1.testns.svc.cluster.local.	5	IN	A	172.0.0.2",
    )),
    # A Endpoint ip
    Row("172-0-0-3.cluster1.hdls1.testns.svc.cluster.local.", dns.A, NOERROR, answer=(
        "172-0-0-3.cluster1.hdls1.testns.svc.cluster.local.	5	IN	A	172.0.0.3",
    )),
    # An Endpoint by name
    Row("dup-name.cluster1.hdls1.testns.svc.cluster.local.", dns.A, NOERROR, answer=(
        "dup-name.cluster1.hdls1.testns.svc.cluster.local.	5	IN	A	172.0.0.4",
        "dup-name.cluster1.hdls1.testns.svc.cluster.local.	5	IN	A	172.0.0.5",
    )),
]


@table(MULTICLUSTER_SERVE_ROWS)
class MultiClusterServeDNSTests(TableTestCase):
    """handler_test.go TestMultiClusterServeDNS: cluster.local is a multicluster zone, testns exposed."""

    options = "kubernetes cluster.local {\n namespaces testns\n multicluster cluster.local\n}"
    objects = SERVE_MULTICLUSTER
    view = View(stanza(options), snapshot(objects))


# Not in CoreDNS's tables: C{ignore empty_service} in a multicluster zone
# (findMultiClusterServices counts the addresses of the import's slices).
MULTICLUSTER_EMPTY_SERVICE_ROWS = [
    Row("svcempty.testns.svc.cluster.local.", dns.A, NXDOMAIN, ns=(SOA,)),
    Row("svc1.testns.svc.cluster.local.", dns.A, NOERROR, answer=(
        "svc1.testns.svc.cluster.local.	5	IN	A	10.0.0.1",
    )),
    Row("hdls1.testns.svc.cluster.local.", dns.AAAA, NOERROR, answer=(
        "hdls1.testns.svc.cluster.local.	5	IN	AAAA	5678:abcd::1",
        "hdls1.testns.svc.cluster.local.	5	IN	AAAA	5678:abcd::2",
    )),
]


@table(MULTICLUSTER_EMPTY_SERVICE_ROWS)
class MultiClusterIgnoreEmptyServiceTests(TableTestCase):
    options = "kubernetes cluster.local {\n multicluster cluster.local\n ignore empty_service\n}"
    objects = SERVE_MULTICLUSTER
    view = View(stanza(options), snapshot(objects))


CLUSTERSET_SOA = (
    "clusterset.local.	5	IN	SOA	ns.dns.clusterset.local. hostmaster.clusterset.local. 1499347823 7200 1800 86400 5"
)

# One stanza, two zones: cluster.local from the cluster's own Services,
# clusterset.local from the ServiceImports and the clusters' slices.
CLUSTER_SET = {
    Kind.NAMESPACES: [make_namespace("default")],
    Kind.SERVICES: [
        make_service("default", "web", ["10.0.0.10"], [HTTP]),
        make_service("default", "local-only", ["10.0.0.11"], [HTTP]),
        make_service("default", "db", headless=True, ports=[PG]),
    ],
    Kind.ENDPOINT_SLICES: [make_endpoint_slice("default", "db-local", "db", [{"addresses": ["10.1.0.1"]}], [PG])],
    Kind.SERVICE_IMPORTS: [
        make_service_import("default", "web", ips=["10.100.0.10"], ports=[HTTP]),
        make_service_import("default", "db", type="Headless", ports=[PG]),
        make_service_import("default", "no-ports", ips=["10.100.0.12"]),
    ],
    Kind.MULTICLUSTER_ENDPOINT_SLICES: [
        make_multicluster_endpoint_slice("default", "db-east", "db", "east",
                                         [{"addresses": ["10.2.0.1"], "hostname": "db-0"}], [PG]),
        make_multicluster_endpoint_slice("default", "db-west", "db", "west",
                                         [{"addresses": ["10.3.0.2"]}, {"addresses": ["10.3.0.3"], "ready": False}],
                                         [PG]),
    ],
}

CLUSTER_SET_ROWS = [
    Row("web.default.svc.cluster.local.", dns.A, NOERROR, answer=(
        "web.default.svc.cluster.local.	5	IN	A	10.0.0.10",
    )),
    Row("web.default.svc.clusterset.local.", dns.A, NOERROR, answer=(
        "web.default.svc.clusterset.local.	5	IN	A	10.100.0.10",
    )),
    Row("web.default.svc.clusterset.local.", dns.AAAA, NOERROR, ns=(CLUSTERSET_SOA,)),
    Row("_http._tcp.web.default.svc.clusterset.local.", dns.SRV, NOERROR, answer=(
        "_http._tcp.web.default.svc.clusterset.local.	5	IN	SRV	0 100 80 web.default.svc.clusterset.local.",
    ), extra=(
        "web.default.svc.clusterset.local.	5	IN	A	10.100.0.10",
    )),
    # A Service that is not imported is not in the cluster set, and an import is not a Service.
    Row("local-only.default.svc.clusterset.local.", dns.A, NXDOMAIN, ns=(CLUSTERSET_SOA,)),
    Row("db.default.svc.cluster.local.", dns.A, NOERROR, answer=(
        "db.default.svc.cluster.local.	5	IN	A	10.1.0.1",
    )),
    Row("db.default.svc.clusterset.local.", dns.A, NOERROR, answer=(
        "db.default.svc.clusterset.local.	5	IN	A	10.2.0.1",
        "db.default.svc.clusterset.local.	5	IN	A	10.3.0.2",
    )),
    Row("db-0.east.db.default.svc.clusterset.local.", dns.A, NOERROR, answer=(
        "db-0.east.db.default.svc.clusterset.local.	5	IN	A	10.2.0.1",
    )),
    Row("db-0.west.db.default.svc.clusterset.local.", dns.A, NXDOMAIN, ns=(CLUSTERSET_SOA,)),
    Row("10-3-0-3.west.db.default.svc.clusterset.local.", dns.A, NXDOMAIN, ns=(CLUSTERSET_SOA,)),
    Row("db-0.db.default.svc.clusterset.local.", dns.A, NXDOMAIN, ns=(CLUSTERSET_SOA,)),
    Row("_pg._tcp.db.default.svc.clusterset.local.", dns.SRV, NOERROR, answer=(
        "_pg._tcp.db.default.svc.clusterset.local.	5	IN	SRV	0 50 5432 db-0.east.db.default.svc.clusterset.local.",
        "_pg._tcp.db.default.svc.clusterset.local.	5	IN	SRV	0 50 5432 10-3-0-2.west.db.default.svc.clusterset.local.",
    ), extra=(
        "db-0.east.db.default.svc.clusterset.local.	5	IN	A	10.2.0.1",
        "10-3-0-2.west.db.default.svc.clusterset.local.	5	IN	A	10.3.0.2",
    )),
    Row("_http._tcp.db.default.svc.clusterset.local.", dns.SRV, NXDOMAIN, ns=(CLUSTERSET_SOA,)),
    # An import without ports gets no placeholder port, unlike a Service: its ClusterSetIP name does not exist.
    Row("no-ports.default.svc.clusterset.local.", dns.A, NXDOMAIN, ns=(CLUSTERSET_SOA,)),
    Row("clusterset.local.", dns.SOA, NOERROR, answer=(CLUSTERSET_SOA,)),
    Row("missing.default.svc.clusterset.local.", dns.A, NXDOMAIN, ns=(CLUSTERSET_SOA,)),
]


CLUSTER_SET_OPTIONS = "kubernetes cluster.local clusterset.local {\n multicluster clusterset.local\n}"
CLUSTER_SET_STANZA = stanza(CLUSTER_SET_OPTIONS)


@table(CLUSTER_SET_ROWS)
class ClusterSetZoneTests(TableTestCase):
    """A stanza whose second zone is multicluster: each zone answers from its own objects."""

    options = CLUSTER_SET_OPTIONS
    objects = CLUSTER_SET
    view = View(CLUSTER_SET_STANZA, snapshot(objects))


class SerialTests(unittest.SynchronousTestCase):
    def test_multicluster_zone_serial_is_the_last_import_change(self):
        store = Store()
        store.replace(Kind.SERVICES, [KINDS[Kind.SERVICES].reduce(raw) for raw in CLUSTER_SET[Kind.SERVICES]])
        store.publish(now=1000)
        store.put(Kind.SERVICE_IMPORTS, KINDS[Kind.SERVICE_IMPORTS].reduce(CLUSTER_SET[Kind.SERVICE_IMPORTS][0]))
        view = View(CLUSTER_SET_STANZA, store.publish(now=2000))
        serials = [soa_record(view, zone.encode(), zone + ".").payload.serial
                   for zone in ("cluster.local", "clusterset.local")]
        self.assertEqual(serials, [1000, 2000])


class DaemonTests(unittest.TestCase):
    """A running daemon whose stanza syncs ServiceImports and multi-cluster slices from the test API server."""

    @defer.inlineCallbacks
    def setUp(self):
        self.api = ApiServer()
        self.api.start()
        self.addCleanup(self.api.stop)
        for raw in (raw for items in CLUSTER_SET.values() for raw in items):
            self.api.put(raw["kind"], raw)
        block = stanza_block("cluster.local clusterset.local", self.api, "multicluster clusterset.local")
        self.port = yield start_daemon_listening(self, f".:0 {{\n    bind 127.0.0.1\n{block}}}\n")

    @defer.inlineCallbacks
    def test_each_zone_answers_from_its_own_objects(self):
        local = yield query(self.port, "web.default.svc.cluster.local", "A")
        clusterset = yield query(self.port, "web.default.svc.clusterset.local", "A")
        self.assertEqual(texts(local.answer), ["web.default.svc.cluster.local. A 10.0.0.10"])
        self.assertEqual(texts(clusterset.answer), ["web.default.svc.clusterset.local. A 10.100.0.10"])

    @defer.inlineCallbacks
    def test_headless_import_endpoints_by_cluster(self):
        by_cluster = yield query(self.port, "db-0.east.db.default.svc.clusterset.local", "A")
        srv = yield query(self.port, "_pg._tcp.db.default.svc.clusterset.local", "SRV")
        self.assertEqual(texts(by_cluster.answer), ["db-0.east.db.default.svc.clusterset.local. A 10.2.0.1"])
        self.assertEqual(texts(srv.additional), ["10-3-0-2.west.db.default.svc.clusterset.local. A 10.3.0.2",
                                                 "db-0.east.db.default.svc.clusterset.local. A 10.2.0.1"])

    @defer.inlineCallbacks
    def test_nxdomain_carries_the_multicluster_zone_soa(self):
        reply = yield query(self.port, "local-only.default.svc.clusterset.local", "A")
        self.assertEqual(rcode_of(reply), "NXDOMAIN")
        self.assertEqual([rrset.name.to_text() for rrset in reply.authority], ["clusterset.local."])

    @defer.inlineCallbacks
    def test_import_changes_reach_answers(self):
        self.api.service_import("default", "web", ips=["10.100.0.99"], ports=[HTTP])
        self.api.multicluster_endpoint_slice("default", "db-north", "db", "north", [{"addresses": ["10.4.0.1"]}], [PG])
        reply = yield wait_for_answer(self.port, "web.default.svc.clusterset.local", "10.100.0.99")
        self.assertEqual(texts(reply.answer), ["web.default.svc.clusterset.local. A 10.100.0.99"])
        yield wait_for_answer(self.port, "10-4-0-1.north.db.default.svc.clusterset.local", "10.4.0.1")
