"""
Every name form of the unit tables (L{tests.test_kubernetes_records}), answered by a running
daemon from real objects a real kube-apiserver holds: ClusterIP Services with named ports,
IPv6 and dual-stack Services, headless Services with EndpointSlices of both families and
hostnames, a portless headless Service, ExternalName, pods with C{pods verified}, reverse
names, the apex, and what does not exist.  The objects are the unit tables' shapes
(L{kubernetai.apiserver.resources}) with addresses the real server accepts: ClusterIPs from
its service ranges (L{tests.e2e.controlplane.SERVICE_RANGES}).
"""

from __future__ import annotations

import dns.reversename

from kubernetai.apiserver.resources import make_endpoint_slice, make_pod, make_service
from kubernetai.kubernetes.kinds import ENDPOINT_SLICE_PAGE_SIZE
from tests.e2e.support import Daemon, E2ETestCase, rcode, records, stanza, wrong_answers

NAMESPACE = "names"
PODS = "names-pods"
HTTP = {"name": "http", "port": 80, "protocol": "TCP"}
ZONE = "cluster.local"
# More EndpointSlices than the daemon lists in one page, so that it follows the server's continue tokens.
MANY_SLICES = ENDPOINT_SLICE_PAGE_SIZE + 10


def dual_stack(service: dict) -> dict:
    """A Service asking for both families, as a user writes one."""
    service["spec"].update(ipFamilyPolicy="RequireDualStack", ipFamilies=["IPv4", "IPv6"])
    return service


def objects() -> list[tuple[str, dict]]:
    """The cluster of these tests, in the order the admin makes it."""
    return [
        ("services", make_service(NAMESPACE, "svc1", ["10.0.1.1"], [HTTP])),
        ("services", make_service(NAMESPACE, "svcempty", ["10.0.1.2"], [HTTP])),
        ("services", make_service(NAMESPACE, "svc6", ["fd00:10::a:1"], [HTTP])),
        ("services", dual_stack(make_service(NAMESPACE, "svc-dual-stack", ["10.0.1.3", "fd00:10::a:3"], [HTTP]))),
        ("services", make_service(NAMESPACE, "hdls1", headless=True, ports=[HTTP])),
        ("services", make_service(NAMESPACE, "hdlsprtls", headless=True)),
        ("services", make_service(NAMESPACE, "external", ports=[HTTP], type="ExternalName",
                                  external_name="ext.interwebs.test")),
        ("services", make_service(NAMESPACE, "external-to-service", ports=[HTTP], type="ExternalName",
                                  external_name=f"svc1.{NAMESPACE}.svc.{ZONE}")),
        ("endpointslices", make_endpoint_slice(NAMESPACE, "svc1-a", "svc1",
                                               [{"addresses": ["172.0.0.1"], "hostname": "ep1a"}], [HTTP])),
        ("endpointslices", make_endpoint_slice(NAMESPACE, "svcempty-a", "svcempty", [], [HTTP])),
        ("endpointslices", make_endpoint_slice(NAMESPACE, "hdls1-a", "hdls1", [
            {"addresses": ["172.0.0.2"]},
            {"addresses": ["172.0.0.3"]},
            {"addresses": ["172.0.0.4"], "hostname": "dup-name"},
            {"addresses": ["172.0.0.5"], "hostname": "dup-name"},
        ], [HTTP])),
        ("endpointslices", make_endpoint_slice(NAMESPACE, "hdls1-b", "hdls1", [
            {"addresses": ["5678:abcd::1"]}, {"addresses": ["5678:abcd::2"]},
        ], [HTTP], address_type="IPv6")),
        ("endpointslices", make_endpoint_slice(NAMESPACE, "hdlsprtls-a", "hdlsprtls",
                                               [{"addresses": ["172.0.0.20"]}])),
        ("pods", make_pod(PODS, "foo", "10.240.0.1")),
        ("services", make_service(NAMESPACE, "many", headless=True, ports=[HTTP])),
        *(("endpointslices", make_endpoint_slice(NAMESPACE, f"many-{n}", "many", [{"addresses": [f"172.3.0.{n}"]}],
                                                 [HTTP])) for n in range(1, MANY_SLICES + 1)),
    ]


def reverse(address: str) -> str:
    """The reverse name of an address: C{1.1.0.10.in-addr.arpa.}, nibbles under C{ip6.arpa.}."""
    return dns.reversename.from_address(address).to_text()


def name(text: str) -> str:
    """A name of the tests' namespace in the zone: C{svc1} is C{svc1.names.svc.cluster.local.}."""
    return f"{text}.{NAMESPACE}.svc.{ZONE}."


# (question, type, rcode, answer records as NAME TYPE DATA): CoreDNS's rows over this cluster.
ROWS = [
    (name("svc1"), "A", "NOERROR", [f"{name('svc1')} A 10.0.1.1"]),
    (name("svcempty"), "A", "NOERROR", [f"{name('svcempty')} A 10.0.1.2"]),
    (name("svc1"), "SRV", "NOERROR", [f"{name('svc1')} SRV 0 100 80 {name('svc1')}"]),
    ("_http._tcp." + name("svc1"), "SRV", "NOERROR", [f"_http._tcp.{name('svc1')} SRV 0 100 80 {name('svc1')}"]),
    ("_http._tcp." + name("svcempty"), "SRV", "NOERROR",
     [f"_http._tcp.{name('svcempty')} SRV 0 100 80 {name('svcempty')}"]),
    ("_https._tcp." + name("svc1"), "SRV", "NXDOMAIN", []),
    (name("svc1"), "AAAA", "NOERROR", []),
    (name("svc1"), "TXT", "NOERROR", []),
    (name("svc0"), "A", "NXDOMAIN", []),
    (f"svc0.svc-nons.svc.{ZONE}.", "A", "NXDOMAIN", []),
    (name("svc6"), "AAAA", "NOERROR", [f"{name('svc6')} AAAA fd00:10::a:1"]),
    ("_http._tcp." + name("svc6"), "SRV", "NOERROR", [f"_http._tcp.{name('svc6')} SRV 0 100 80 {name('svc6')}"]),
    (name("svc-dual-stack"), "A", "NOERROR", [f"{name('svc-dual-stack')} A 10.0.1.3"]),
    (name("svc-dual-stack"), "AAAA", "NOERROR", [f"{name('svc-dual-stack')} AAAA fd00:10::a:3"]),
    (name("svc-dual-stack"), "SRV", "NOERROR", [f"{name('svc-dual-stack')} SRV 0 50 80 {name('svc-dual-stack')}"]),
    (name("hdls1"), "A", "NOERROR", [f"{name('hdls1')} A 172.0.0.{n}" for n in (2, 3, 4, 5)]),
    (name("hdls1"), "AAAA", "NOERROR", [f"{name('hdls1')} AAAA 5678:abcd::{n}" for n in (1, 2)]),
    ("_http._tcp." + name("hdls1"), "SRV", "NOERROR", sorted(
        f"_http._tcp.{name('hdls1')} SRV 0 16 80 {target}.{name('hdls1')}"
        for target in ("172-0-0-2", "172-0-0-3", "5678-abcd--1", "5678-abcd--2", "dup-name"))),
    ("dup-name." + name("hdls1"), "A", "NOERROR", [f"dup-name.{name('hdls1')} A 172.0.0.{n}" for n in (4, 5)]),
    ("172-0-0-2." + name("hdls1"), "A", "NOERROR", [f"172-0-0-2.{name('hdls1')} A 172.0.0.2"]),
    ("5678-abcd--2." + name("hdls1"), "AAAA", "NOERROR", [f"5678-abcd--2.{name('hdls1')} AAAA 5678:abcd::2"]),
    ("bogusendpoint." + name("hdls1"), "A", "NXDOMAIN", []),
    ("ep1a." + name("svc1"), "A", "NOERROR", [f"ep1a.{name('svc1')} A 172.0.0.1"]),
    (name("hdlsprtls"), "A", "NOERROR", [f"{name('hdlsprtls')} A 172.0.0.20"]),
    ("172-0-0-20." + name("hdlsprtls"), "A", "NOERROR", [f"172-0-0-20.{name('hdlsprtls')} A 172.0.0.20"]),
    (name("external"), "CNAME", "NOERROR", [f"{name('external')} CNAME ext.interwebs.test."]),
    ("endpoint." + name("external"), "CNAME", "NXDOMAIN", []),
    (name("external-to-service"), "A", "NOERROR", sorted([
        f"{name('external-to-service')} CNAME {name('svc1')}", f"{name('svc1')} A 10.0.1.1"])),
    (f"10-240-0-1.{PODS}.pod.{ZONE}.", "A", "NOERROR", [f"10-240-0-1.{PODS}.pod.{ZONE}. A 10.240.0.1"]),
    (f"10-240-0-2.{PODS}.pod.{ZONE}.", "A", "NXDOMAIN", []),
    (f"172-0-0-2.{PODS}.pod.{ZONE}.", "A", "NXDOMAIN", []),
    ("1.1.0.10.in-addr.arpa.", "PTR", "NOERROR", [f"1.1.0.10.in-addr.arpa. PTR {name('svc1')}"]),
    ("1.0.0.172.in-addr.arpa.", "PTR", "NOERROR", [f"1.0.0.172.in-addr.arpa. PTR ep1a.{name('svc1')}"]),
    (reverse("fd00:10::a:1"), "PTR", "NOERROR", [f"{reverse('fd00:10::a:1')} PTR {name('svc6')}"]),
    ("99.1.0.10.in-addr.arpa.", "PTR", "NXDOMAIN", []),
    (f"dns-version.{ZONE}.", "TXT", "NOERROR", [f'dns-version.{ZONE}. TXT "1.1.0"']),
    (f"svc.{ZONE}.", "A", "NOERROR", []),
    (f"{NAMESPACE}.svc.{ZONE}.", "A", "NOERROR", []),
    (f"foo.svc.{ZONE}.", "NS", "NXDOMAIN", []),
    (f"{ZONE}.", "SOA", "NOERROR", None),
    ("SvC1.NaMeS.SvC.cLuStEr.LoCaL.", "A", "NOERROR", ["SvC1.NaMeS.SvC.cLuStEr.LoCaL. A 10.0.1.1"]),
]


class NameFormTests(E2ETestCase):
    """One daemon, one stanza (C{pods verified}, reverse zones) through the ServiceAccount token."""

    def make_objects(self) -> None:
        for namespace in (NAMESPACE, PODS):
            self.admin.namespace(namespace)
        for kind, obj in objects():
            getattr(self.admin, {"services": "service", "endpointslices": "endpoint_slice", "pods": "pod"}[kind])(obj)

    def setUp(self) -> None:
        super().setUp()
        self.daemon = Daemon(self, stanza(f"{ZONE} in-addr.arpa ip6.arpa", self.identities.token, "pods verified"))
        self.daemon.wait_ready()

    def check(self, tcp: bool) -> None:
        self.assertEqual(wrong_answers(self.daemon, ROWS, tcp), [])

    def test_every_name_form_over_udp(self):
        self.check(tcp=False)

    def test_every_name_form_over_tcp(self):
        self.check(tcp=True)

    def test_slices_listed_in_pages(self):
        reply = self.daemon.ask(name("many"), "A", tcp=True)
        self.assertEqual(records(reply), sorted(f"{name('many')} A 172.3.0.{n}" for n in range(1, MANY_SLICES + 1)))

    def test_apex_answers_authoritatively(self):
        reply = self.daemon.ask(f"{ZONE}.", "SOA")
        self.assertEqual(rcode(reply), "NOERROR")
        (soa,) = records(reply)
        self.assertTrue(soa.startswith(f"{ZONE}. SOA ns.dns.{ZONE}. hostmaster.{ZONE}. "), soa)
        missing = self.daemon.ask(name("svc0"), "A")
        self.assertEqual([line.split()[1] for line in records(missing, "authority")], ["SOA"])
