# -*- test-case-name: tests.test_kubernetes_records -*-
"""
The clusters behind CoreDNS's kubernetes plugin tests, as the API server
would serve them, and the snapshots our index makes of them.

CoreDNS's tests answer from hand-made fakes of its controller
(C{plugin/kubernetes/*_test.go}: C{APIConnServeTest}, C{APIConnReverseTest},
C{APIConnTest}, C{APIConnZonalTest}); each is written out here as the
Services, EndpointSlices, Pods and Namespaces a real cluster would hold for
the same answers.  Where the fake is not shaped like a cluster, the
comment beside the object says what was changed.
"""

from __future__ import annotations

from kubernetai.kubernetes.index import Snapshot, Store
from kubernetai.kubernetes.kinds import Kind
from kubernetai.kubernetes.objects import reduce_endpoint_slice, reduce_namespace, reduce_pod, reduce_service
from kubernetai.apiserver.resources import make_endpoint_slice, make_namespace, make_pod, make_service

# The SOA serial of every snapshot here (CoreDNS's tables carry assorted serials, never compared).
SERIAL = 1499347823

HTTP = {"name": "http", "port": 80, "protocol": "TCP"}
DNS_UDP = {"name": "dns", "port": 53, "protocol": "UDP"}

_KINDS = {
    "Service": (Kind.SERVICES, reduce_service),
    "EndpointSlice": (Kind.ENDPOINT_SLICES, reduce_endpoint_slice),
    "Pod": (Kind.PODS, reduce_pod),
    "Namespace": (Kind.NAMESPACES, reduce_namespace),
}


def snapshot(objects) -> Snapshot:
    """The snapshot a stanza answers from once it has listed C{objects} (API JSON dicts)."""
    store = Store()
    for raw in objects:
        kind, reduce = _KINDS[raw["kind"]]
        store.put(kind, reduce(raw))
    return store.publish(now=SERIAL)


# handler_test.go, APIConnServeTest: the cluster of TestServeDNS and of the
# pod, empty-service, case and apex tests.  Its GetNamespaceByName finds
# every namespace but "pod-nons" and "nsnoexist".
SERVE_TEST = [
    make_service("kube-system", "kubedns", ["10.0.0.10"], [DNS_UDP]),
    make_service("testns", "svc1", ["10.0.0.1"], [HTTP]),
    make_service("testns", "svcempty", ["10.0.0.1"], [HTTP]),
    make_service("testns", "svc6", ["1234:abcd::1"], [HTTP]),
    make_service("testns", "hdls1", headless=True),
    make_service("testns", "external", ports=[HTTP], type="ExternalName", external_name="ext.interwebs.test"),
    make_service(
        "testns", "external-to-service", ports=[HTTP], type="ExternalName",
        external_name="svc1.testns.svc.cluster.local.",
    ),
    make_service("testns", "hdlsprtls", headless=True),
    make_service("unexposedns", "svc1", ["10.0.0.2"], [HTTP]),
    make_service("testns", "svc-dual-stack", ["10.0.0.3", "10::3"], [HTTP]),
    make_endpoint_slice("kube-system", "kubedns", "kubedns", [{"addresses": ["172.0.0.100"]}], [DNS_UDP]),
    make_endpoint_slice("testns", "svc1-slice1", "svc1", [{"addresses": ["172.0.0.1"], "hostname": "ep1a"}], [HTTP]),
    make_endpoint_slice("testns", "svcempty-slice1", "svcempty", [], [HTTP]),
    # The fake holds hdls1's IPv4 and IPv6 addresses in one object; a
    # cluster has one EndpointSlice per address family.
    make_endpoint_slice(
        "testns", "hdls1-slice1", "hdls1",
        [
            {"addresses": ["172.0.0.2"]},
            {"addresses": ["172.0.0.3"]},
            {"addresses": ["172.0.0.4"], "hostname": "dup-name"},
            {"addresses": ["172.0.0.5"], "hostname": "dup-name"},
        ],
        [HTTP],
    ),
    make_endpoint_slice(
        "testns", "hdls1-slice2", "hdls1",
        [{"addresses": ["5678:abcd::1"]}, {"addresses": ["5678:abcd::2"]}],
        [HTTP], address_type="IPv6",
    ),
    # The fake's {Port: -1} is CoreDNS's own mark for a slice without ports.
    make_endpoint_slice("testns", "hdlsprtls-slice1", "hdlsprtls", [{"addresses": ["172.0.0.20"]}]),
    make_pod("podns", "foo", "10.240.0.1", labels={"app.kubernetes.io/name": "foo", "bar": "baz"}),
    *(make_namespace(name) for name in ("kube-system", "testns", "unexposedns", "podns", "svcns")),
]


# reverse_test.go, APIConnReverseTest.  The fake has no Service behind the
# svc2 slice (its SvcIndex answers for svc1 only); a cluster has one, and
# our index keeps only the endpoints of services that exist.  Headless, so
# it adds no address of its own.
REVERSE_TEST = [
    make_service("testns", "svc1", ["192.168.1.100"], [HTTP]),
    make_service("testns", "svc2", headless=True),
    make_endpoint_slice(
        "testns", "svc1-slice1", "svc1",
        [{"addresses": ["10.0.0.100"], "hostname": "ep1a"}, {"addresses": ["10.0.0.99"], "hostname": "double-ep"}],
        [HTTP],
    ),
    make_endpoint_slice(
        "testns", "svc1-slice2", "svc1",
        [
            {"addresses": ["1234:abcd::1"], "hostname": "ep1b"},
            {"addresses": ["fd00:77:30::a"], "hostname": "ip6svc1ex"},
            {"addresses": ["fd00:77:30::2:9ba6"], "hostname": "ip6svc1in"},
        ],
        [HTTP], address_type="IPv6",
    ),
    # The same endpoint in a second slice of svc1 (EndpointSlice skew).
    make_endpoint_slice("testns", "svc1-ccccc", "svc1", [{"addresses": ["10.0.0.100"], "hostname": "ep1a"}], [HTTP]),
    make_endpoint_slice(
        "testns", "svc2-slice1", "svc2", [{"addresses": ["10.0.0.99"], "hostname": "double-ep"}], [HTTP]
    ),
    make_namespace("testns"),
]


# ns_test.go, APIConnTest: three services whose endpoint is this server, 10.244.0.20.
NS_TEST = [
    make_service("kube-system", "dns-service", ["10.0.0.111"]),
    make_service("kube-system", "hdls-dns-service", headless=True),
    make_service("kube-system", "dns6-service", ["10::111"]),
    *(
        make_endpoint_slice("kube-system", f"{service}-slice1", service, [{"addresses": ["10.244.0.20"]}])
        for service in ("dns-service", "hdls-dns-service", "dns6-service")
    ),
]


# zonal_test.go, APIConnZonalTest: a headless service spread over two
# topology zones, and a ClusterIP one.
ZONAL_TEST = [
    make_service("testns", "hdls", headless=True),
    make_service("testns", "clstr", ["10.0.0.10"], [HTTP]),
    make_endpoint_slice(
        "testns", "hdls-slice", "hdls",
        [
            {"addresses": ["172.0.0.1"], "zone": "us-west-2a"},
            {"addresses": ["172.0.0.2"], "zone": "us-west-2b"},
            {"addresses": ["172.0.0.3"], "zone": "us-west-2b"},
        ],
        [HTTP],
    ),
    make_namespace("testns"),
]
