"""
Names a machine outside the cluster can reach, from a real kube-apiserver: the stanza option
C{external_names} and the C{k8s_external} plugin, answered by a running daemon from
LoadBalancer Services whose ingress the admin sets through the status subresource (as a
load-balancer controller does), Services with spec.externalIPs, and a LoadBalancer still
pending, which gets its address while the daemon runs.
"""

from __future__ import annotations

from kubernetai.apiserver.resources import make_service
from tests.e2e.support import Daemon, E2ETestCase, eventually, rcode, records, stanza, wrong_answers

NAMESPACE = "external"
HTTP = {"name": "http", "port": 80, "protocol": "TCP"}
CHANGE_SEEN_WITHIN = 5.0


def name(text: str, zone: str = "svc.cluster.local") -> str:
    """A name of the tests' namespace: C{lb} is C{lb.external.svc.cluster.local.}."""
    return f"{text}.{NAMESPACE}.{zone}."


def outside(text: str) -> str:
    """The k8s_external name of a service of the tests' namespace, under C{example.com}."""
    return name(text, "example.com")


# (question, type, rcode, answer records as NAME TYPE DATA)
ROWS = [
    (name("lb"), "A", "NOERROR", [f"{name('lb')} A 192.0.2.1"]),
    (name("lb"), "AAAA", "NOERROR", []),
    ("_http._tcp." + name("lb"), "SRV", "NOERROR", [f"_http._tcp.{name('lb')} SRV 0 100 80 {name('lb')}"]),
    (name("lbname"), "A", "NOERROR", [f"{name('lbname')} CNAME lb.example.net."]),
    (name("ext"), "A", "NOERROR", [f"{name('ext')} A 198.51.100.4"]),
    (name("pending"), "A", "NXDOMAIN", []),
    ("1.2.0.192.in-addr.arpa.", "PTR", "NOERROR", [f"1.2.0.192.in-addr.arpa. PTR {name('lb')}"]),
    ("4.100.51.198.in-addr.arpa.", "PTR", "NOERROR", [f"4.100.51.198.in-addr.arpa. PTR {name('ext')}"]),
    (outside("lb"), "A", "NOERROR", [f"{outside('lb')} A 192.0.2.1"]),
    ("_http._tcp." + outside("lb"), "SRV", "NOERROR", [f"_http._tcp.{outside('lb')} SRV 0 100 80 {outside('lb')}"]),
    (outside("lbname"), "A", "NOERROR", [f"{outside('lbname')} CNAME lb.example.net."]),
    (outside("ext"), "A", "NOERROR", [f"{outside('ext')} A 198.51.100.4"]),
    (outside("pending"), "A", "NXDOMAIN", []),
    (outside("nothing"), "A", "NXDOMAIN", []),
    ("example.com.", "NS", "NOERROR", ["example.com. NS ns1.dns.example.com."]),
    ("ns1.dns.example.com.", "A", "NOERROR", ["ns1.dns.example.com. A 127.0.0.1"]),
]


class ExternalNamesTests(E2ETestCase):
    """One daemon: a stanza with C{external_names loadbalancer externalips} and C{k8s_external example.com}."""

    def make_objects(self) -> None:
        self.admin.namespace(NAMESPACE)
        self.admin.service(make_service(NAMESPACE, "lb", ["10.0.2.1"], [HTTP], type="LoadBalancer"))
        self.admin.service(make_service(NAMESPACE, "lbname", ["10.0.2.2"], [HTTP], type="LoadBalancer"))
        self.admin.service(make_service(NAMESPACE, "ext", ["10.0.2.4"], [HTTP], external_ips=["198.51.100.4"]))
        self.admin.service(make_service(NAMESPACE, "pending", ["10.0.2.5"], [HTTP], type="LoadBalancer"))
        self.admin.load_balancer(NAMESPACE, "lb", ["192.0.2.1"])
        self.admin.load_balancer(NAMESPACE, "lbname", ["lb.example.net"])

    def setUp(self) -> None:
        super().setUp()
        self.daemon = Daemon(self, "    k8s_external example.com\n" + stanza(
            "cluster.local in-addr.arpa", self.identities.token, "external_names loadbalancer externalips"))
        self.daemon.wait_ready()

    def check(self, tcp: bool) -> None:
        self.assertEqual(wrong_answers(self.daemon, ROWS, tcp), [])

    def test_names_over_udp(self):
        self.check(tcp=False)

    def test_names_over_tcp(self):
        self.check(tcp=True)

    def test_load_balancer_ready_later(self):
        """A LoadBalancer made and given its ingress while the daemon runs answers both names."""
        self.admin.service(make_service(NAMESPACE, "later", ["10.0.2.6"], [HTTP], type="LoadBalancer"))
        eventually(lambda: rcode(self.daemon.ask(name("later"))) == "NXDOMAIN", CHANGE_SEEN_WITHIN,
                   "a LoadBalancer without ingress NXDOMAIN")
        self.admin.load_balancer(NAMESPACE, "later", ["192.0.2.5"])
        for question in (name("later"), outside("later")):
            eventually(lambda: records(self.daemon.ask(question)) == [f"{question} A 192.0.2.5"],
                       CHANGE_SEEN_WITHIN, f"{question} answered with its new ingress")
