"""
prometheus over real HTTP: CoreDNS's metric names and labels for queries,
cache, forward and its proxies, kubernetes stanzas and reloads, read back
with prometheus_client's own parser; every series once, even with two
stanzas on one API server; and the directive's mistakes refused.
"""

import collections
import time

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import defer, task
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure
from twisted.trial import unittest
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyRequest

from kubernetai.apiserver.resources import make_endpoint_slice
from kubernetai.apiserver.server import ApiServer
from kubernetai.chain import build_server
from kubernetai.corefile import CorefileError, parse_corefile
from kubernetai.kubernetes.objects import TRIGGER_TIME_ANNOTATION
from kubernetai.metrics import Families, gauge
from kubernetai.plugins.prometheus import MetricsPage
from tests.support import FakeUpstream, query, wait_until
from tests.test_health_ready import Running, get


@defer.inlineCallbacks
def scrape(running: Running) -> dict:
    """{(metric name, sorted label items): value} of one /metrics scrape."""
    status, content_type, body = yield get(running.http_port(), "/metrics")
    assert status == 200, status
    assert content_type.startswith(b"text/plain"), content_type
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, metric: str, **labels) -> float:
    """The one sample of C{metric} whose labels include C{labels}."""
    found = [v for (n, items), v in samples.items() if n == metric and set(labels.items()) <= set(items)]
    assert len(found) == 1, (metric, labels, found)
    return found[0]


def with_stanza(testcase):
    """A fake API server with default/web, and a daemon with prometheus and one stanza on it."""
    api = ApiServer()
    api.start()
    testcase.addCleanup(api.stop)
    api.namespace("default")
    api.service("default", "web", cluster_ips=["10.0.0.1"], ports=[{"name": "http", "port": 80}])
    running = Running(testcase, f""".:0 {{
    bind 127.0.0.1
    prometheus 127.0.0.1:0
    kubernetai cluster.local {{
        endpoint {api.url}
    }}
}}
""")
    return api, running


class DNSMetricsTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_queries_counted_as_coredns_counts_them(self):
        upstream = FakeUpstream({("www.example.org.", "A"): ["192.0.2.1"]})
        running = Running(self, f""".:0 {{
    bind 127.0.0.1
    prometheus 127.0.0.1:0
    cache 30
    forward . 127.0.0.1:{upstream.start(self)}
}}
""")
        port = yield running.dns_port()
        yield query(port, "www.example.org", "A")
        yield query(port, "www.example.org", "A")
        yield query(port, "missing.example.org", "AAAA", tcp=True, want_dnssec=True)
        samples = yield scrape(running)
        server = f"dns://127.0.0.1:{port}"
        common = {"server": server, "zone": ".", "view": ""}
        self.assertEqual(value(samples, "coredns_dns_requests_total", proto="udp", family="1", type="A", **common), 2)
        self.assertEqual(value(samples, "coredns_dns_requests_total", proto="tcp", type="AAAA", **common), 1)
        self.assertEqual(value(samples, "coredns_dns_do_requests_total", **common), 1)
        self.assertEqual(value(samples, "coredns_dns_responses_total", rcode="NOERROR", plugin="", **common), 2)
        self.assertEqual(value(samples, "coredns_dns_responses_total", rcode="NXDOMAIN", **common), 1)
        self.assertEqual(value(samples, "coredns_dns_request_duration_seconds_count", **common), 3)
        self.assertEqual(value(samples, "coredns_dns_request_duration_seconds_bucket", le="+Inf", **common), 3)
        self.assertEqual(value(samples, "coredns_dns_response_size_bytes_count", proto="tcp", **common), 1)
        configured = {**common, "server": "dns://127.0.0.1:0"}
        self.assertEqual(value(samples, "coredns_plugin_enabled", name="forward", **configured), 1)
        cache = {"server": "dns://127.0.0.1:0", "zones": ".", "view": ""}
        self.assertEqual(value(samples, "coredns_cache_hits_total", type="success", **cache), 1)
        self.assertEqual(value(samples, "coredns_cache_misses_total", **cache), 2)
        self.assertEqual(value(samples, "coredns_cache_entries", type="success", **cache), 1)
        to = f"127.0.0.1:{upstream.port}"
        self.assertEqual(value(samples, "coredns_proxy_request_duration_seconds_count", proxy_name="forward", to=to,
                               rcode="NOERROR"), 1)
        self.assertEqual(value(samples, "coredns_proxy_request_duration_seconds_count", to=to, rcode="NXDOMAIN"), 1)
        self.assertEqual(value(samples, "coredns_proxy_conn_cache_misses_total", to=to, proto="tcp"), 1)
        self.assertEqual(value(samples, "coredns_forward_max_concurrent_rejects_total"), 0)
        self.assertEqual(value(samples, "coredns_reload_failed_total"), 0)
        self.assertGreater(value(samples, "process_resident_memory_bytes"), 0)

    @defer.inlineCallbacks
    def test_stanza_and_kubernetes_client_metrics(self):
        api, running = with_stanza(self)
        yield running.dns_port()
        samples = yield scrape(running)
        stanza = "#1 cluster.local."
        self.assertEqual(value(samples, "kubernetai_stanza_synced", stanza=stanza), 1)
        self.assertEqual(value(samples, "kubernetai_stanza_objects", stanza=stanza, kind="services"), 1)
        self.assertEqual(value(samples, "kubernetai_stanza_stale_seconds", stanza=stanza), 0)
        self.assertEqual(value(samples, "kubernetai_stanza_lists_total", stanza=stanza, kind="services"), 1)
        host = api.url.split("//", 1)[1]
        self.assertGreaterEqual(value(samples, "coredns_kubernetes_rest_client_requests_total", code="200",
                                      method="GET", host=host), 3)
        self.assertGreaterEqual(value(samples, "coredns_kubernetes_rest_client_request_duration_seconds_count",
                                      verb="LIST", host=host), 3)


class TwoStanzasOnOneApiServerTests(unittest.TestCase):
    """The README's second example on one API server: two stanzas for the same zone, the first
    for one namespace and falling through to the second."""

    @defer.inlineCallbacks
    def test_every_series_once(self):
        api = ApiServer()
        api.start()
        self.addCleanup(api.stop)
        for namespace in ("default", "other"):
            api.namespace(namespace)
            api.service(namespace, "web", cluster_ips=["10.0.0.1"], ports=[{"name": "http", "port": 80}])
        stanza = "    kubernetai cluster.local {{\n        endpoint {url}\n{extra}    }}\n"
        running = Running(self, ".:0 {\n    bind 127.0.0.1\n    prometheus 127.0.0.1:0\n"
                                + stanza.format(url=api.url, extra="        namespaces default\n        fallthrough\n")
                                + stanza.format(url=api.url, extra="") + "}\n")
        port = yield running.dns_port()
        changed = make_endpoint_slice("default", "web-1", "web", endpoints=[{"addresses": ["10.1.0.1"]}])
        changed["metadata"]["annotations"] = {
            TRIGGER_TIME_ANNOTATION: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        api.put("endpointslices", changed)
        yield wait_until(lambda: all(stanza.cluster.snapshot.endpoints_of("default", "web")
                                     for stanza in running.daemon.shared.stanzas), "both stanzas to see the slice")
        yield query(port, "web.other.svc.cluster.local", "A")
        _, _, body = yield get(running.http_port(), "/metrics")
        families = list(text_string_to_metric_families(body.decode()))
        series = collections.Counter((sample.name, tuple(sorted(sample.labels.items())))
                                     for family in families for sample in family.samples)
        self.assertEqual([each for each, count in series.items() if count > 1], [])
        self.assertEqual([name for name, count in collections.Counter(f.name for f in families).items() if count > 1],
                         [])
        samples = yield scrape(running)
        self.assertEqual(value(samples, "kubernetai_stanza_objects", stanza="#1 cluster.local.", kind="services"), 1)
        self.assertEqual(value(samples, "kubernetai_stanza_objects", stanza="#2 cluster.local.", kind="services"), 2)
        self.assertEqual(value(samples, "coredns_kubernetes_dns_programming_duration_seconds_count",
                               service_kind="cluster_ip"), 2, "both stanzas' observations, in one series")
        host = api.url.split("//", 1)[1]
        lists = sum(stanza.cluster.limits.requests.values[("200", "GET")]
                    for stanza in running.daemon.shared.stanzas)
        self.assertEqual(value(samples, "coredns_kubernetes_rest_client_requests_total", code="200", host=host),
                         lists, "both stanzas' requests, in one series")


class FastPathCountTests(unittest.TestCase):
    """Replies sent again from the server's ready replies are counted as every other."""

    @defer.inlineCallbacks
    def test_repeated_queries_counted_exactly(self):
        api, running = with_stanza(self)
        port = yield running.dns_port()
        for _ in range(5):
            yield query(port, "web.default.svc.cluster.local", "A")
        (table,) = running.dns.tables.values()
        self.assertEqual(len(table.ready_replies), 1, "the repeated query was answered from its ready reply")
        samples = yield scrape(running)
        common = {"server": f"dns://127.0.0.1:{port}", "zone": ".", "view": ""}
        self.assertEqual(value(samples, "coredns_dns_requests_total", proto="udp", family="1", type="A", **common), 5)
        self.assertEqual(value(samples, "coredns_dns_responses_total", rcode="NOERROR", **common), 5)
        self.assertEqual(value(samples, "coredns_dns_request_duration_seconds_count", **common), 5)
        self.assertEqual(value(samples, "coredns_dns_response_size_bytes_count", proto="udp", **common), 5)


class SlicedPageTests(unittest.SynchronousTestCase):
    """/metrics is rendered on the reactor a slice at a time (at least a family), queries answered between
    slices; with no time to spare, one family a turn."""

    def setUp(self):
        self.families = Families([gauge(f"coredns_slice_{n}", "A family.", ("n",), [((str(n),), n)]) for n in range(3)])
        self.clock = task.Clock()
        self.request = DummyRequest([b"metrics"])
        self.rendered = MetricsPage(self.families, self.clock, slice_seconds=0).render_GET(self.request)

    def turn(self):
        """One turn of the reactor: the calls due now, not those they schedule (as Clock.advance would)."""
        due, self.clock.calls = self.clock.calls, []
        for call in due:
            call.func(*call.args, **call.kw)

    def test_one_family_a_turn(self):
        finished = [self.request.finished]
        for _ in range(3):
            self.turn()
            finished.append(self.request.finished)
        self.assertEqual((self.rendered, finished), (NOT_DONE_YET, [0, 0, 0, 1]))
        self.assertEqual(b"".join(self.request.written), generate_latest(self.families))

    def test_client_gone(self):
        self.request.processingFailed(Failure(ConnectionDone()))
        self.clock.advance(0)
        self.assertEqual((self.request.written, self.clock.getDelayedCalls()), ([], []))


class ParseTests(unittest.SynchronousTestCase):
    def test_errors(self):
        rows = [
            ("prometheus localhost", "Corefile:2: plugin/prometheus: address localhost: missing port in address"),
            ("prometheus :9153 :9154", "Corefile:2: plugin/prometheus: unexpected argument ':9154'"),
            ("prometheus :abc", "Corefile:2: plugin/prometheus: address :abc: invalid port 'abc'"),
            ("prometheus\n prometheus", "Corefile:3: plugin/prometheus: this plugin can only be used once per server block"),
        ]
        for line, message in rows:
            with self.assertRaises(CorefileError) as raised:
                build_server(parse_corefile(".:53 {\n " + line + "\n}\n", "Corefile")[0])
            self.assertIn(message, str(raised.exception), line)
