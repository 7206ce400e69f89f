"""
k8s_external through a running daemon syncing from the test API server:
CoreDNS's own test rows (C{plugin/k8s_external/setup_test.go},
C{external_test.go}, C{apex_test.go}; C{plugin/kubernetes/external_test.go}
and ns_test.go's C{TestNsAddrsExternal*} on the stanza's side), one test
per row, and ours: several stanzas feeding it in Corefile order,
fallthrough, a host name resolved through the server, the setup errors.

The rows' records are compared as L{tests.test_kubernetes_records}
compares them (every field but the SOA serial).  external_test.go writes
its SOA's rname C{hostmaster.example.com.}, which its test never compares;
the rows here have what CoreDNS's code writes, C{hostmaster.dns.example.com.}.
The cluster is the fakes' (C{svcIndexExternal}, C{epIndexExternal}) as a
real one would hold it: svc11 and svc12, LoadBalancer services, have their
addresses as LoadBalancer ingress (the fake's ExternalIPs hold both kinds).
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.names import dns
from twisted.trial import unittest

from kubernetai.apiserver.resources import make_endpoint_slice, make_namespace, make_service
from kubernetai.kubernetes.external import external_entries, external_name_server_ips
from kubernetai.kubernetes.entries import View
from tests.k8sdata import HTTP, NS_TEST, snapshot
from tests.support import FakeUpstream, build, wait_until
from tests.test_health_ready import Running
from tests.test_kubernetes_fidelity import ask_daemon, difference, start_api
from tests.test_kubernetes_records import NOERROR, NXDOMAIN, Row, expected, stanza, table
from tests.test_small_plugins import setup_error

SOA = "example.com.	5	IN	SOA	ns1.dns.example.com. hostmaster.dns.example.com. 1499347823 7200 1800 86400 5"

# external_test.go's svcIndexExternal and epIndexExternal.
CLUSTER = [
    make_namespace("testns"),
    make_service("testns", "svc1", ["10.0.0.1"], [HTTP], external_ips=["1.2.3.4"]),
    make_service("testns", "svc6", ["10.0.0.3"], [HTTP], external_ips=["1:2::5"]),
    make_service("testns", "svc11", ["10.0.0.3"], [HTTP], type="LoadBalancer", ingress=["2.3.4.5"]),
    make_service("testns", "svc12", ["10.0.0.3"], [HTTP], type="LoadBalancer", ingress=["dummy.hostname"]),
    make_service("testns", "svc-headless", ports=[HTTP], headless=True),
    make_endpoint_slice("testns", "svc-headless-slice", "svc-headless", [
        {"addresses": ["1.2.3.4"], "hostname": "endpoint-svc-0", "nodeName": "test-node",
         "targetRef": {"kind": "Pod", "name": "endpoint-svc-0", "namespace": "testns"}},
        {"addresses": ["1.2.3.5"], "hostname": "endpoint-svc-1", "nodeName": "test-node",
         "targetRef": {"kind": "Pod", "name": "endpoint-svc-1", "namespace": "testns"}},
    ], [HTTP]),
]


def corefile(url: str, external: str, stanzas: str = "") -> str:
    """A block on 127.0.0.1 with C{external} (its k8s_external lines) and one stanza of C{url}, namespace testns."""
    return (f".:0 {{\n    bind 127.0.0.1\n    {external}\n"
            f"    kubernetai cluster.local {{\n        endpoint {url}\n        namespaces testns\n    }}\n"
            f"{stanzas}}}\n")


def wait_for_row(port: int, row: Row):
    """A Deferred firing once the daemon on C{port} answers C{row}'s question as the row says."""

    @defer.inlineCallbacks
    def answered():
        got, _ = yield ask_daemon(port, row)
        return got == expected(row)

    return wait_until(answered, f"{row.qname} answered as {row.answer}")


class DaemonRows(unittest.TestCase):
    """Asks each row of the daemon of C{external} over C{CLUSTER}."""

    external = ""

    @defer.inlineCallbacks
    def check(self, row: Row):
        api = start_api(self, CLUSTER)
        port = yield Running(self, corefile(api.url, self.external)).dns_port()
        got, problems = yield ask_daemon(port, row)
        if problems or got != expected(row):
            self.fail(difference(row, got, problems))


# external_test.go: tests
@table([
    # PTR reverse lookup
    Row("4.3.2.1.in-addr.arpa.", dns.PTR, NOERROR, answer=("4.3.2.1.in-addr.arpa. 5 IN PTR svc1.testns.example.com.",)),
    # Bad PTR reverse lookup using existing service name
    Row("svc1.testns.example.com.", dns.PTR, NOERROR, ns=(SOA,)),
    # Bad PTR reverse lookup using non-existing service name
    Row("not-existing.testns.example.com.", dns.PTR, NXDOMAIN, ns=(SOA,)),
    # A Service
    Row("svc1.testns.example.com.", dns.A, NOERROR, answer=("svc1.testns.example.com.	5	IN	A	1.2.3.4",)),
    Row("svc1.testns.example.com.", dns.SRV, NOERROR,
        answer=("svc1.testns.example.com.	5	IN	SRV	0 100 80 svc1.testns.example.com.",),
        extra=("svc1.testns.example.com.  5       IN      A       1.2.3.4",)),
    # SRV Service Not udp/tcp
    Row("*._not-udp-or-tcp.svc1.testns.example.com.", dns.SRV, NXDOMAIN, ns=(SOA,)),
    # SRV Service
    Row("_http._tcp.svc1.testns.example.com.", dns.SRV, NOERROR,
        answer=("_http._tcp.svc1.testns.example.com.	5	IN	SRV	0 100 80 svc1.testns.example.com.",),
        extra=("svc1.testns.example.com.	5	IN	A	1.2.3.4",)),
    # AAAA Service (with an existing A record, but no AAAA record)
    Row("svc1.testns.example.com.", dns.AAAA, NOERROR, ns=(SOA,)),
    # AAAA Service (non-existing service)
    Row("svc0.testns.example.com.", dns.AAAA, NXDOMAIN, ns=(SOA,)),
    # A Service (non-existing service)
    Row("svc0.testns.example.com.", dns.A, NXDOMAIN, ns=(SOA,)),
    # A Service (non-existing namespace)
    Row("svc0.svc-nons.example.com.", dns.A, NXDOMAIN, ns=(SOA,)),
    # AAAA Service
    Row("svc6.testns.example.com.", dns.AAAA, NOERROR, answer=("svc6.testns.example.com.	5	IN	AAAA	1:2::5",)),
    # SRV
    Row("_http._tcp.svc6.testns.example.com.", dns.SRV, NOERROR,
        answer=("_http._tcp.svc6.testns.example.com.	5	IN	SRV	0 100 80 svc6.testns.example.com.",),
        extra=("svc6.testns.example.com.	5	IN	AAAA	1:2::5",)),
    # SRV
    Row("svc6.testns.example.com.", dns.SRV, NOERROR,
        answer=("svc6.testns.example.com.	5	IN	SRV	0 100 80 svc6.testns.example.com.",),
        extra=("svc6.testns.example.com.	5	IN	AAAA	1:2::5",)),
    Row("testns.example.com.", dns.A, NOERROR, ns=(SOA,)),
    Row("testns.example.com.", dns.SOA, NOERROR, ns=(SOA,)),
    # svc11
    Row("svc11.testns.example.com.", dns.A, NOERROR, answer=("svc11.testns.example.com.	5	IN	A	2.3.4.5",)),
    Row("_http._tcp.svc11.testns.example.com.", dns.SRV, NOERROR,
        answer=("_http._tcp.svc11.testns.example.com.	5	IN	SRV	0 100 80 svc11.testns.example.com.",),
        extra=("svc11.testns.example.com.	5	IN	A	2.3.4.5",)),
    Row("svc11.testns.example.com.", dns.SRV, NOERROR,
        answer=("svc11.testns.example.com.	5	IN	SRV	0 100 80 svc11.testns.example.com.",),
        extra=("svc11.testns.example.com.	5	IN	A	2.3.4.5",)),
    # svc12
    Row("svc12.testns.example.com.", dns.A, NOERROR, answer=("svc12.testns.example.com.	5	IN	CNAME	dummy.hostname.",)),
    Row("_http._tcp.svc12.testns.example.com.", dns.SRV, NOERROR,
        answer=("_http._tcp.svc12.testns.example.com.	5	IN	SRV	0 100 80 dummy.hostname.",)),
    Row("svc12.testns.example.com.", dns.SRV, NOERROR,
        answer=("svc12.testns.example.com.	5	IN	SRV	0 100 80 dummy.hostname.",)),
    # headless service
    Row("svc-headless.testns.example.com.", dns.A, NOERROR, answer=(
        "svc-headless.testns.example.com.	5	IN	A	1.2.3.4",
        "svc-headless.testns.example.com.	5	IN	A	1.2.3.5",
    )),
    Row("svc-headless.testns.example.com.", dns.SRV, NOERROR, answer=(
        "svc-headless.testns.example.com.	5	IN	SRV	0	50	80	endpoint-svc-0.svc-headless.testns.example.com.",
        "svc-headless.testns.example.com.	5	IN	SRV	0	50	80	endpoint-svc-1.svc-headless.testns.example.com.",
    ), extra=(
        "endpoint-svc-0.svc-headless.testns.example.com.	5	IN	A	1.2.3.4",
        "endpoint-svc-1.svc-headless.testns.example.com.	5	IN	A	1.2.3.5",
    )),
    Row("_http._tcp.svc-headless.testns.example.com.", dns.SRV, NOERROR, answer=(
        "_http._tcp.svc-headless.testns.example.com.	5	IN	SRV	0	50	80	endpoint-svc-0.svc-headless.testns.example.com.",
        "_http._tcp.svc-headless.testns.example.com.	5	IN	SRV	0	50	80	endpoint-svc-1.svc-headless.testns.example.com.",
    ), extra=(
        "endpoint-svc-0.svc-headless.testns.example.com.	5	IN	A	1.2.3.4",
        "endpoint-svc-1.svc-headless.testns.example.com.	5	IN	A	1.2.3.5",
    )),
    Row("endpoint-svc-0.svc-headless.testns.example.com.", dns.SRV, NOERROR, answer=(
        "endpoint-svc-0.svc-headless.testns.example.com.	5	IN	SRV	0	100	80	"
        "endpoint-svc-0.svc-headless.testns.example.com.",
    ), extra=("endpoint-svc-0.svc-headless.testns.example.com.	5	IN	A	1.2.3.4",)),
    Row("endpoint-svc-1.svc-headless.testns.example.com.", dns.SRV, NOERROR, answer=(
        "endpoint-svc-1.svc-headless.testns.example.com.	5	IN	SRV	0	100	80	"
        "endpoint-svc-1.svc-headless.testns.example.com.",
    ), extra=("endpoint-svc-1.svc-headless.testns.example.com.	5	IN	A	1.2.3.5",)),
    Row("endpoint-svc-0.svc-headless.testns.example.com.", dns.A, NOERROR, answer=(
        "endpoint-svc-0.svc-headless.testns.example.com.	5	IN	A	1.2.3.4",
    )),
    Row("endpoint-svc-1.svc-headless.testns.example.com.", dns.A, NOERROR, answer=(
        "endpoint-svc-1.svc-headless.testns.example.com.	5	IN	A	1.2.3.5",
    )),
])
class ExternalTests(DaemonRows):
    external = "k8s_external example.com in-addr.arpa {\n        headless\n    }"


# apex_test.go: testsApex (the name server is the daemon's own address: no endpoint of the cluster is ours)
@table([
    Row("example.com.", dns.SOA, NOERROR, answer=(SOA,)),
    Row("example.com.", dns.NS, NOERROR, answer=("example.com.	5	IN	NS	ns1.dns.example.com.",),
        extra=("ns1.dns.example.com.	5	IN	A	127.0.0.1",)),
    Row("example.com.", dns.SRV, NOERROR, ns=(SOA,)),
    Row("dns.example.com.", dns.SRV, NOERROR, ns=(SOA,)),
    Row("dns.example.com.", dns.NS, NOERROR, ns=(SOA,)),
    Row("ns1.dns.example.com.", dns.SRV, NOERROR, ns=(SOA,)),
    Row("ns1.dns.example.com.", dns.NS, NOERROR, ns=(SOA,)),
    Row("ns1.dns.example.com.", dns.AAAA, NOERROR, ns=(SOA,)),
    Row("ns1.dns.example.com.", dns.A, NOERROR, answer=("ns1.dns.example.com.	5	IN	A	127.0.0.1",)),
    # ours: another name under the apex's subdomain, the apex renamed, the TTL changed
    Row("ns2.dns.example.com.", dns.A, NXDOMAIN, ns=(SOA,)),
])
class ApexTests(DaemonRows):
    external = "k8s_external example.com {\n        headless\n    }"


@table([
    Row("example.com.", dns.SOA, NOERROR, answer=(
        "example.com.	30	IN	SOA	ns1.testdns.example.com. hostmaster.testdns.example.com. 1 7200 1800 86400 30",)),
    Row("ns1.testdns.example.com.", dns.A, NOERROR, answer=("ns1.testdns.example.com.	30	IN	A	127.0.0.1",)),
    Row("ns1.dns.example.com.", dns.A, NXDOMAIN, ns=(
        "example.com.	30	IN	SOA	ns1.testdns.example.com. hostmaster.testdns.example.com. 1 7200 1800 86400 30",)),
    # A and PTR records take k8s_external's TTL; SRV the stanza's (5), as in CoreDNS.
    Row("svc1.testns.example.com.", dns.SRV, NOERROR,
        answer=("svc1.testns.example.com.	5	IN	SRV	0 100 80 svc1.testns.example.com.",),
        extra=("svc1.testns.example.com.	30	IN	A	1.2.3.4",)),
    # headless off: a headless service without external IPs has none
    Row("svc-headless.testns.example.com.", dns.A, NXDOMAIN, ns=(
        "example.com.	30	IN	SOA	ns1.testdns.example.com. hostmaster.testdns.example.com. 1 7200 1800 86400 30",)),
])
class ApexAndTtlTests(DaemonRows):
    external = "k8s_external example.com {\n        apex testdns\n        ttl 30\n    }"


# plugin/kubernetes/external_test.go: extCases, the stanza's side, with headless (zones example.org, example.com)
@table([
    Row("svc1.testns.example.org.", dns.A, NOERROR, answer=("svc1.testns.example.org.:1.2.3.4:80",)),
    Row("svc6.testns.example.org.", dns.A, NOERROR, answer=("svc6.testns.example.org.:1:2::5:80",)),
    Row("_http._tcp.svc1.testns.example.com.", dns.A, NOERROR, answer=("svc1.testns.example.com.:1.2.3.4:80",)),
    Row("svc0.testns.example.com.", dns.A, NXDOMAIN),
    Row("svc0.svc-nons.example.com.", dns.A, NXDOMAIN),
    Row("svc-headless.testns.example.com.", dns.A, NOERROR, answer=(
        "endpoint-svc-0.svc-headless.testns.example.com.:1.2.3.4:80",
        "endpoint-svc-1.svc-headless.testns.example.com.:1.2.3.5:80",
    )),
    Row("endpoint-svc-0.svc-headless.testns.example.com.", dns.A, NOERROR, answer=(
        "endpoint-svc-0.svc-headless.testns.example.com.:1.2.3.4:80",
    )),
    Row("endpoint-1.svc-nons.testns.example.com.", dns.A, NXDOMAIN),
])
class StanzaExternalTests(unittest.SynchronousTestCase):
    """The entries a stanza gives k8s_external (the Key of each msg.Service, as the owner here)."""

    view = View(stanza("kubernetes cluster.local {\n namespaces testns\n}"), snapshot(CLUSTER))

    def check(self, row: Row):
        zone = "example.org." if row.qname.endswith("example.org.") else "example.com."
        found, rcode = external_entries(self.view, row.qname, zone, row.qtype, headless=True)
        self.assertEqual((rcode, [f"{entry.owner}:{entry.host}:{entry.port}" for entry in found]),
                         (row.rcode, list(row.answer)))


class NameServerTests(unittest.SynchronousTestCase):
    """ns_test.go's TestNsAddrsExternal*: this server's addresses for k8s_external's name servers."""

    def addresses(self, objects, headless: bool):
        return external_name_server_ips(View(stanza("kubernetes cluster.local"), snapshot(objects), ("10.244.0.20",)),
                                        headless)

    def test_external_headless(self):
        """Only the headless service's endpoint, ours, when its services have no external IP."""
        self.assertEqual(self.addresses(NS_TEST, headless=True), ["10.244.0.20"])

    def test_external(self):
        """No address until a service of ours has an external IP."""
        self.assertEqual(self.addresses(NS_TEST, headless=False), [])
        with_ip = [make_service("kube-system", "dns-service", ["10.0.0.111"], external_ips=["1.2.3.4"])] + NS_TEST[1:]
        self.assertEqual(self.addresses(with_ip, headless=False), ["1.2.3.4"])

    def test_no_endpoint_of_ours(self):
        """None: the plugin then takes the server's own addresses."""
        self.assertIsNone(self.addresses(CLUSTER, headless=True))


def parsed(text: str):
    """The k8s_external handler of a block holding C{text} and a stanza."""
    config = build(f".:53 {{\n{text}\nkubernetai cluster.local {{\n endpoint http://127.0.0.1:1\n}}\n}}\n")
    return next(handler for handler in config.handlers if handler.name == "k8s_external")


# setup_test.go: (input, zone, apex, headless, fallthrough zones or None)
@table([
    Row("k8s_external", 0, 0, answer=(".", "dns", "False", "None")),
    Row("k8s_external example.org", 0, 0, answer=("example.org.", "dns", "False", "None")),
    Row("k8s_external example.org {\n apex testdns\n}", 0, 0, answer=("example.org.", "testdns", "False", "None")),
    Row("k8s_external example.org {\n headless\n}", 0, 0, answer=("example.org.", "dns", "True", "None")),
    Row("k8s_external example.org {\n fallthrough\n}", 0, 0, answer=("example.org.", "dns", "False", "()")),
    Row("k8s_external example.org {\n fallthrough ip6.arpa inaddr.arpa foo.com\n}", 0, 0,
        answer=("example.org.", "dns", "False", "('ip6.arpa.', 'inaddr.arpa.', 'foo.com.')")),
])
class SetupTests(unittest.SynchronousTestCase):
    def check(self, row: Row):
        external = parsed(row.qname)
        fallthrough = None if external.fallthrough is None else external.fallthrough.zones
        self.assertEqual((external.zones[0], external.apex, str(external.headless), str(fallthrough)), row.answer)


class SetupErrorTests(unittest.SynchronousTestCase):
    """Mistakes stop start-up at their line."""

    def refused(self, *lines: str) -> str:
        body = "".join(f"    {line}\n" for line in lines)
        return setup_error(f".:53 {{\n{body}    kubernetai cluster.local {{\n        endpoint http://127.0.0.1:1\n"
                           f"    }}\n}}\n")

    def test_without_stanza(self):
        self.assertEqual(setup_error(".:53 {\n    k8s_external example.org\n}\n"),
                         "Corefile:2: plugin/k8s_external: kubernetes plugin not loaded: add a kubernetes or "
                         "kubernetai stanza to this server block")

    def test_ttl_out_of_range(self):
        self.assertEqual(self.refused("k8s_external example.org {", "ttl 3601", "}"),
                         "Corefile:3: plugin/k8s_external: ttl must be in range [0, 3600]: 3601")

    def test_ttl_not_a_number(self):
        self.assertEqual(self.refused("k8s_external example.org {", "ttl five", "}"),
                         "Corefile:3: plugin/k8s_external: invalid number 'five': expected an integer")

    def test_apex_without_name(self):
        self.assertEqual(self.refused("k8s_external example.org {", "apex", "}"),
                         "Corefile:3: plugin/k8s_external: expected at least 1 argument(s), got 0")

    def test_apex_not_a_label(self):
        self.assertEqual(self.refused("k8s_external example.org {", "apex dns.example", "}"),
                         "Corefile:3: plugin/k8s_external: apex must be one DNS label (letters, digits, '-', '_'): "
                         "'dns.example'")

    def test_unknown_property(self):
        self.assertEqual(self.refused("k8s_external example.org {", "headles", "}"),
                         "Corefile:3: plugin/k8s_external: unknown property 'headles': did you mean 'headless'?")

    def test_twice(self):
        self.assertEqual(self.refused("k8s_external example.org", "k8s_external example.net"),
                         "Corefile:3: plugin/k8s_external: this plugin can only be used once per server block")


class StanzasTests(unittest.TestCase):
    """Ours: every stanza of the block feeds k8s_external, in Corefile order; fallthrough; host names resolved."""

    @defer.inlineCallbacks
    def daemon(self, external: str, second_cluster=(), rest: str = ""):
        first = start_api(self, CLUSTER)
        second = start_api(self, second_cluster)
        stanzas = (f"    kubernetai west.local {{\n        endpoint {second.url}\n    }}\n" + rest)
        port = yield Running(self, corefile(first.url, external, stanzas)).dns_port()
        return port, second

    @defer.inlineCallbacks
    def ask(self, port, row: Row):
        got, problems = yield ask_daemon(port, row)
        if problems or got != expected(row):
            self.fail(difference(row, got, problems))

    @defer.inlineCallbacks
    def test_second_stanza_answers_what_the_first_lacks(self):
        west = [make_namespace("testns"), make_namespace("west"),
                make_service("west", "web", ["10.1.0.1"], [HTTP], type="LoadBalancer", ingress=["5.6.7.8"]),
                make_service("testns", "svc1", ["10.1.0.2"], [HTTP], external_ips=["9.9.9.9"])]
        port, _ = yield self.daemon("k8s_external example.com", west)
        yield self.ask(port, Row("web.west.example.com.", dns.A, NOERROR,
                                 answer=("web.west.example.com. 5 IN A 5.6.7.8",)))
        # Both hold testns/svc1: the first stanza's answers.
        yield self.ask(port, Row("svc1.testns.example.com.", dns.A, NOERROR,
                                 answer=("svc1.testns.example.com. 5 IN A 1.2.3.4",)))

    @defer.inlineCallbacks
    def test_status_change_is_seen(self):
        west = [make_namespace("west"), make_service("west", "web", ["10.1.0.1"], [HTTP], type="LoadBalancer")]
        port, second = yield self.daemon("k8s_external example.com", west)
        row = Row("web.west.example.com.", dns.A, NXDOMAIN, ns=(SOA,))
        yield self.ask(port, row)
        second.service_status("west", "web", ["5.6.7.8"])
        yield wait_for_row(port, Row("web.west.example.com.", dns.A, NOERROR,
                                     answer=("web.west.example.com. 5 IN A 5.6.7.8",)))

    @defer.inlineCallbacks
    def test_fallthrough(self):
        upstream = FakeUpstream({("missing.testns.example.com.", "A"): ["192.0.2.1"]})
        upstream_port = upstream.start(self)
        port, _ = yield self.daemon("k8s_external example.com {\n        fallthrough\n    }",
                                    rest=f"    forward . 127.0.0.1:{upstream_port}\n")
        yield self.ask(port, Row("missing.testns.example.com.", dns.A, NOERROR,
                                 answer=("missing.testns.example.com. 30 IN A 192.0.2.1",)))

    @defer.inlineCallbacks
    def test_host_name_resolved_through_the_server(self):
        upstream = FakeUpstream({("dummy.hostname.", "A"): ["192.0.2.7"]})
        upstream_port = upstream.start(self)
        port, _ = yield self.daemon("k8s_external example.com", rest=f"    forward . 127.0.0.1:{upstream_port}\n")
        yield self.ask(port, Row("svc12.testns.example.com.", dns.A, NOERROR, answer=(
            "svc12.testns.example.com. 5 IN CNAME dummy.hostname.",
            "dummy.hostname. 30 IN A 192.0.2.7",
        )))
