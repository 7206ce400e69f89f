"""
The stanza option C{external_names}: services' names answered with their
LoadBalancer ingress or external IPs, for clients that cannot reach
cluster IPs.  Its rows asked of the records (one test per row), the same
rows asked of a running daemon syncing the same cluster from the test API
server, a LoadBalancer status set while it runs, its zone transfer, and
its Corefile syntax and errors.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.names import dns
from twisted.trial import unittest

from kubernetai.apiserver.resources import make_endpoint_slice, make_namespace, make_service
from kubernetai.kubernetes.config import ExternalNames
from kubernetai.kubernetes.entries import View
from kubernetai.kubernetes.xfr import zone_transfer
from tests.k8sdata import HTTP, snapshot
from tests.test_health_ready import Running
from tests.test_k8s_external import wait_for_row
from tests.test_kubernetes_fidelity import ask_daemon, corefile, difference, served_here, start_api
from tests.test_kubernetes_records import (
    NOERROR,
    NXDOMAIN,
    SOA,
    Row,
    TableTestCase,
    expected,
    render,
    stanza,
    table,
)
from tests.test_small_plugins import setup_error

REVERSE_SOA = "in-addr.arpa.	5	IN	SOA	ns.dns.in-addr.arpa. hostmaster.in-addr.arpa. 1499347823 7200 1800 86400 5"

CLUSTER = [
    make_namespace("testns"),
    make_service("testns", "lb", ["10.0.0.1"], [HTTP], type="LoadBalancer", ingress=["192.0.2.1", "2001:db8::1"]),
    make_service("testns", "lbname", ["10.0.0.2"], [HTTP], type="LoadBalancer", ingress=["lb.example.net"]),
    make_service("testns", "both", ["10.0.0.3"], [HTTP], type="LoadBalancer", external_ips=["198.51.100.3"],
                 ingress=["192.0.2.3"]),
    make_service("testns", "ext", ["10.0.0.4"], [HTTP], external_ips=["198.51.100.4"]),
    make_service("testns", "pending", ["10.0.0.5"], [HTTP], type="LoadBalancer"),
    make_service("testns", "hdls", ports=[HTTP], headless=True),
    make_service("testns", "external", ports=[HTTP], type="ExternalName", external_name="ext.interwebs.test"),
    make_endpoint_slice("testns", "lb-slice", "lb", [{"addresses": ["172.0.0.10"], "hostname": "ep1"}], [HTTP]),
    make_endpoint_slice("testns", "hdls-slice", "hdls", [{"addresses": ["172.0.0.1"]}], [HTTP]),
]


@table([
    # A load balancer's IPs, of both families; its ports' SRV records point at the service's name.
    Row("lb.testns.svc.cluster.local.", dns.A, NOERROR, answer=("lb.testns.svc.cluster.local. 5 IN A 192.0.2.1",)),
    Row("lb.testns.svc.cluster.local.", dns.AAAA, NOERROR,
        answer=("lb.testns.svc.cluster.local. 5 IN AAAA 2001:db8::1",)),
    Row("_http._tcp.lb.testns.svc.cluster.local.", dns.SRV, NOERROR, answer=(
        "_http._tcp.lb.testns.svc.cluster.local. 5 IN SRV 0 50 80 lb.testns.svc.cluster.local.",
    ), extra=(
        "lb.testns.svc.cluster.local. 5 IN A 192.0.2.1",
        "lb.testns.svc.cluster.local. 5 IN AAAA 2001:db8::1",
    )),
    # A host name ingress: a CNAME, and the SRV's target.
    Row("lbname.testns.svc.cluster.local.", dns.A, NOERROR,
        answer=("lbname.testns.svc.cluster.local. 5 IN CNAME lb.example.net.",)),
    Row("lbname.testns.svc.cluster.local.", dns.SRV, NOERROR,
        answer=("lbname.testns.svc.cluster.local. 5 IN SRV 0 100 80 lb.example.net.",)),
    # The first source listed that has addresses wins.
    Row("both.testns.svc.cluster.local.", dns.A, NOERROR,
        answer=("both.testns.svc.cluster.local. 5 IN A 192.0.2.3",)),
    Row("ext.testns.svc.cluster.local.", dns.A, NOERROR,
        answer=("ext.testns.svc.cluster.local. 5 IN A 198.51.100.4",)),
    # None has any: fallback nxdomain (the default).
    Row("pending.testns.svc.cluster.local.", dns.A, NXDOMAIN, ns=(SOA,)),
    Row("pending.testns.svc.cluster.local.", dns.SRV, NXDOMAIN, ns=(SOA,)),
    Row("_http._tcp.pending.testns.svc.cluster.local.", dns.SRV, NXDOMAIN, ns=(SOA,)),
    # Headless, ExternalName and endpoint names answer as without the option.
    Row("hdls.testns.svc.cluster.local.", dns.A, NOERROR, answer=("hdls.testns.svc.cluster.local. 5 IN A 172.0.0.1",)),
    Row("external.testns.svc.cluster.local.", dns.CNAME, NOERROR,
        answer=("external.testns.svc.cluster.local. 5 IN CNAME ext.interwebs.test.",)),
    Row("ep1.lb.testns.svc.cluster.local.", dns.A, NOERROR,
        answer=("ep1.lb.testns.svc.cluster.local. 5 IN A 172.0.0.10",)),
    # PTR: the addresses the names answer with, and no other.
    Row("1.2.0.192.in-addr.arpa.", dns.PTR, NOERROR,
        answer=("1.2.0.192.in-addr.arpa. 5 IN PTR lb.testns.svc.cluster.local.",)),
    Row("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.", dns.PTR, NOERROR,
        answer=("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa. 5 IN PTR "
                "lb.testns.svc.cluster.local.",)),
    Row("4.100.51.198.in-addr.arpa.", dns.PTR, NOERROR,
        answer=("4.100.51.198.in-addr.arpa. 5 IN PTR ext.testns.svc.cluster.local.",)),
    Row("1.0.0.10.in-addr.arpa.", dns.PTR, NXDOMAIN, ns=(REVERSE_SOA,)),
    Row("3.100.51.198.in-addr.arpa.", dns.PTR, NXDOMAIN, ns=(REVERSE_SOA,)),
    Row("5.0.0.10.in-addr.arpa.", dns.PTR, NXDOMAIN, ns=(REVERSE_SOA,)),
    Row("1.0.0.172.in-addr.arpa.", dns.PTR, NOERROR,
        answer=("1.0.0.172.in-addr.arpa. 5 IN PTR 172-0-0-1.hdls.testns.svc.cluster.local.",)),
    # NS: this server (an endpoint of lb) by lb's name, at the addresses that name answers with.
    Row("cluster.local.", dns.NS, NOERROR, answer=("cluster.local. 5 IN NS lb.testns.svc.cluster.local.",), extra=(
        "lb.testns.svc.cluster.local. 5 IN A 192.0.2.1",
        "lb.testns.svc.cluster.local. 5 IN AAAA 2001:db8::1",
    )),
])
class LoadBalancerFirstTests(TableTestCase):
    """C{external_names loadbalancer externalips}: ingress, else external IPs, else NXDOMAIN."""

    options = ("kubernetes cluster.local in-addr.arpa ip6.arpa {\n external_names loadbalancer externalips\n}")
    objects = CLUSTER
    view = View(stanza(options), snapshot(objects), ("172.0.0.10",))


@table([
    Row("lb.testns.svc.cluster.local.", dns.A, NOERROR, answer=("lb.testns.svc.cluster.local. 5 IN A 10.0.0.1",)),
    Row("both.testns.svc.cluster.local.", dns.A, NOERROR,
        answer=("both.testns.svc.cluster.local. 5 IN A 198.51.100.3",)),
    Row("ext.testns.svc.cluster.local.", dns.A, NOERROR,
        answer=("ext.testns.svc.cluster.local. 5 IN A 198.51.100.4",)),
    Row("pending.testns.svc.cluster.local.", dns.A, NOERROR,
        answer=("pending.testns.svc.cluster.local. 5 IN A 10.0.0.5",)),
    Row("_http._tcp.pending.testns.svc.cluster.local.", dns.SRV, NOERROR, answer=(
        "_http._tcp.pending.testns.svc.cluster.local. 5 IN SRV 0 100 80 pending.testns.svc.cluster.local.",
    ), extra=("pending.testns.svc.cluster.local. 5 IN A 10.0.0.5",)),
    Row("1.0.0.10.in-addr.arpa.", dns.PTR, NOERROR,
        answer=("1.0.0.10.in-addr.arpa. 5 IN PTR lb.testns.svc.cluster.local.",)),
    Row("4.0.0.10.in-addr.arpa.", dns.PTR, NXDOMAIN, ns=(REVERSE_SOA,)),
    Row("4.100.51.198.in-addr.arpa.", dns.PTR, NOERROR,
        answer=("4.100.51.198.in-addr.arpa. 5 IN PTR ext.testns.svc.cluster.local.",)),
    Row("1.2.0.192.in-addr.arpa.", dns.PTR, NXDOMAIN, ns=(REVERSE_SOA,)),
])
class ExternalIPsOrClusterIPTests(TableTestCase):
    """C{external_names externalips fallback clusterip}: external IPs, else the cluster IP."""

    options = "kubernetes cluster.local in-addr.arpa {\n external_names externalips fallback clusterip\n}"
    objects = CLUSTER
    view = View(stanza(options), snapshot(objects))


class ThroughDaemonTests(unittest.TestCase):
    """Each table's rows asked of a daemon syncing its cluster from the test API server."""

    @defer.inlineCallbacks
    def check_table(self, pure: type):
        objects, rows = served_here(pure)
        port = yield Running(self, corefile(pure.options, start_api(self, objects).url)).dns_port()
        differences = []
        for row in rows:
            got, problems = yield ask_daemon(port, row)
            if problems or got != expected(row):
                differences.append(difference(row, got, problems))
        if differences:
            self.fail("\n".join(differences))

    def test_load_balancer_first(self):
        return self.check_table(LoadBalancerFirstTests)

    def test_external_ips_or_cluster_ip(self):
        return self.check_table(ExternalIPsOrClusterIPTests)

    @defer.inlineCallbacks
    def test_load_balancer_status_set_later(self):
        """A LoadBalancer's ingress set (as its controller does, through the status subresource) is answered."""
        api = start_api(self, CLUSTER)
        port = yield Running(self, corefile(LoadBalancerFirstTests.options, api.url)).dns_port()
        pending = Row("pending.testns.svc.cluster.local.", dns.A, NXDOMAIN, ns=(SOA,))
        got, _ = yield ask_daemon(port, pending)
        self.assertEqual(got, expected(pending))
        api.service_status("testns", "pending", ["192.0.2.5"])
        yield wait_for_row(port, Row("pending.testns.svc.cluster.local.", dns.A, NOERROR,
                                     answer=("pending.testns.svc.cluster.local. 5 IN A 192.0.2.5",)))


class TransferTests(unittest.SynchronousTestCase):
    def test_zone_transfer_has_what_names_answer(self):
        """A secondary gets the names as they answer: ingress addresses, a CNAME, no name for pending."""
        records = [render(each) for each in zone_transfer(LoadBalancerFirstTests.view, "cluster.local.")]
        lines = [" ".join(line.split()) for line in records]
        self.assertIn("lb.testns.svc.cluster.local. 5 IN A 192.0.2.1", lines)
        self.assertIn("lbname.testns.svc.cluster.local. 5 IN CNAME lb.example.net.", lines)
        self.assertIn("_http._tcp.lbname.testns.svc.cluster.local. 5 IN SRV 0 100 80 lb.example.net.", lines)
        self.assertFalse([line for line in lines if "10.0.0." in line or line.startswith("pending.")], lines)


def external_names(line: str):
    return stanza(f"kubernetes cluster.local {{\n {line}\n}}").external_names


class SyntaxTests(unittest.SynchronousTestCase):
    def test_off_by_default(self):
        self.assertIsNone(stanza("kubernetes cluster.local").external_names)

    def test_sources_in_order_fallback_nxdomain(self):
        self.assertEqual(external_names("external_names externalips loadbalancer"),
                         ExternalNames(("externalips", "loadbalancer"), "nxdomain"))

    def test_fallback_clusterip(self):
        self.assertEqual(external_names("external_names loadbalancer fallback clusterip"),
                         ExternalNames(("loadbalancer",), "clusterip"))

    def refused(self, line: str) -> str:
        return setup_error(f".:53 {{\n    kubernetai cluster.local {{\n        endpoint http://127.0.0.1:1\n"
                           f"        {line}\n    }}\n}}\n")

    def test_no_source(self):
        self.assertEqual(self.refused("external_names"),
                         "Corefile:4: plugin/kubernetai: expected at least 1 argument(s), got 0")

    def test_only_fallback(self):
        self.assertEqual(self.refused("external_names fallback nxdomain"),
                         "Corefile:4: plugin/kubernetai: external_names needs a source: loadbalancer or externalips")

    def test_unknown_source(self):
        self.assertEqual(self.refused("external_names nodeports"),
                         "Corefile:4: plugin/kubernetai: unknown external_names source 'nodeports': "
                         "expected loadbalancer or externalips")

    def test_source_twice(self):
        self.assertEqual(self.refused("external_names loadbalancer loadbalancer"),
                         "Corefile:4: plugin/kubernetai: external_names names a source twice: "
                         "loadbalancer loadbalancer")

    def test_bad_fallback(self):
        self.assertEqual(self.refused("external_names loadbalancer fallback none"),
                         "Corefile:4: plugin/kubernetai: fallback takes one of clusterip, nxdomain: none")

    def test_fallback_without_value(self):
        self.assertEqual(self.refused("external_names loadbalancer fallback"),
                         "Corefile:4: plugin/kubernetai: fallback takes one of clusterip, nxdomain: nothing given")
