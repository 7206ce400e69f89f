"""
Name parsing checked against CoreDNS's: the rows of C{plugin/kubernetes/parse_test.go}
asked of L{kubernetai.kubernetes.names.parse_name}, each request written as
CoreDNS's C{recordRequest.String()} writes it
(C{port.protocol.endpoint.cluster.service.namespace.podOrSvc}).
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from kubernetai.kubernetes.names import InvalidName, NameRequest, parse_name

ZONE = "inter.webs.tests."

# TestParseRequest: (query, multicluster, zonal) -> (recordRequest.String(), topology zone)
VALID = [
    # valid SRV request
    (("_http._tcp.webs.mynamespace.svc.inter.webs.tests.", False, False), ("http.tcp...webs.mynamespace.svc", "")),
    # A request of endpoint
    (("1-2-3-4.webs.mynamespace.svc.inter.webs.tests.", False, False), ("..1-2-3-4..webs.mynamespace.svc", "")),
    # bare zone
    (("inter.webs.tests.", False, False), ("......", "")),
    # bare svc type
    (("svc.inter.webs.tests.", False, False), ("......", "")),
    # bare pod type
    (("pod.inter.webs.tests.", False, False), ("......", "")),
    # SRV request with empty segments
    (("..webs.mynamespace.svc.inter.webs.tests.", False, False), ("....webs.mynamespace.svc", "")),
    # A multicluster request with a clusterid
    (
        ("1-2-3-4.cluster1.webs.mynamespace.svc.inter.webs.tests.", True, False),
        ("..1-2-3-4.cluster1.webs.mynamespace.svc", ""),
    ),
    # zone-scoped names, both directives
    (
        ("us-west-2a.pin._zone.webs.mynamespace.svc.inter.webs.tests.", False, True),
        ("....webs.mynamespace.svc", "us-west-2a"),
    ),
    (
        ("us-west-2a.prefer._zone.webs.mynamespace.svc.inter.webs.tests.", False, True),
        ("....webs.mynamespace.svc", "us-west-2a"),
    ),
    # zone label values may contain dots; the value spans every label left of the directive
    (
        ("corp.example.com.pin._zone.webs.mynamespace.svc.inter.webs.tests.", False, True),
        ("....webs.mynamespace.svc", "corp.example.com"),
    ),
    # two-labels-left with an underscore still reads as port/protocol
    (
        ("us-west-2a._zone.webs.mynamespace.svc.inter.webs.tests.", False, True),
        ("us-west-2a.zone...webs.mynamespace.svc", ""),
    ),
]

# TestParseInvalidRequest: (query, multicluster, zonal)
INVALID = [
    # Request must be for pod or svc subdomain.
    ("webs.mynamespace.pood.inter.webs.test.", False, False),
    # Too long (lower case, as the plugin passes names).
    ("too.long.for.what.i.am.trying.to.pod.inter.webs.tests.", False, False),
    # Zonal shape without the zonal option.
    ("us-west-2a.pin._zone.webs.mynamespace.svc.inter.webs.tests.", False, False),
    # Zonal shapes refused even with the option: wrong subtree, unknown directive, multicluster zone.
    ("us-west-2a.pin._zone.webs.mynamespace.pod.inter.webs.tests.", False, True),
    ("us-west-2a.florp._zone.webs.mynamespace.svc.inter.webs.tests.", False, True),
    ("us-west-2a.pin._zone.webs.mynamespace.svc.inter.webs.tests.", True, True),
]


def record_request(request: NameRequest) -> str:
    """A request as CoreDNS's recordRequest.String() writes it."""
    return ".".join([
        request.port, request.protocol, request.endpoint, request.cluster,
        request.service, request.namespace, request.pod_or_svc,
    ])


def parse(name: str, multicluster: bool, zonal: bool) -> tuple[str, str]:
    """The request C{name} stands for, and its topology zone."""
    request = parse_name(name, ZONE, multicluster, zonal)
    return record_request(request), request.topology_zone


def refused(name: str, multicluster: bool, zonal: bool) -> bool:
    try:
        parse_name(name, ZONE, multicluster, zonal)
    except InvalidName:
        return True
    return False


class ParseNameTests(SynchronousTestCase):
    def test_parse_request(self):
        """Each name is the request CoreDNS's parseRequest makes of it."""
        self.assertEqual([(args, parse(*args)) for args, _ in VALID], VALID)

    def test_parse_invalid_request(self):
        """Each name is one CoreDNS's parseRequest refuses (NXDOMAIN)."""
        self.assertEqual([args for args in INVALID if not refused(*args)], [])
