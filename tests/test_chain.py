"""
The plugin chain: run order fixed by code, not by the Corefile; directives
refused by name and line; what happens at the end of the chain; copies of a
Response.
"""

from dataclasses import asdict, replace

from twisted.internet import defer
from twisted.names import dns
from twisted.trial import unittest

from kubernetai.chain import EndOfChain, Response
from kubernetai.corefile import CorefileError
from tests.support import (
    FakeUpstream,
    build,
    capture_logs,
    one_test_per_row,
    query,
    rcode_of,
    refusal,
    start_daemon,
    start_daemon_listening,
)


class OrderTests(unittest.SynchronousTestCase):
    def test_run_order_comes_from_the_code(self):
        config = build(".:53 {\n forward . 127.0.0.1\n whoami\n log\n errors\n bind 127.0.0.1\n}\n")
        self.assertEqual([handler.name for handler in config.handlers], ["errors", "log", "forward", "whoami"])
        self.assertEqual(config.bind_hosts, ["127.0.0.1"])

    def test_handlers_are_linked_and_end_in_end_of_chain(self):
        config = build(".:53 {\n errors\n whoami\n}\n")
        errors, whoami = config.handlers
        self.assertIs(errors.next, whoami)
        self.assertIsInstance(whoami.next, EndOfChain)

    def test_stanzas_keep_corefile_order(self):
        endpoint = "{\n  endpoint http://127.0.0.1:1\n }"
        config = build(f".:53 {{\n kubernetai b.local {endpoint}\n kubernetes a.local {endpoint}\n"
                       f" kubernetai c.local {endpoint}\n}}\n")
        (group,) = config.handlers
        self.assertEqual([stanza.config.zones for stanza in group.stanzas],
                         [("b.local.",), ("a.local.",), ("c.local.",)])

    def test_stanza_zones_default_to_the_server_block(self):
        config = build("cluster.local:53 10.0.0.0/24:53 {\n kubernetai {\n  endpoint http://127.0.0.1:1\n }\n}\n")
        self.assertEqual(config.handlers[0].stanzas[0].config.zones, ("cluster.local.", "0.0.10.in-addr.arpa."))

    def test_stanza_without_a_cluster_to_reach_is_refused(self):
        with self.assertRaises(CorefileError) as raised:
            build(".:53 {\n kubernetai cluster.local\n}\n")
        self.assertIn("Corefile:2: plugin/kubernetai: cannot configure the connection to the API server: "
                      "no 'endpoint' or 'kubeconfig' in this stanza", str(raised.exception))


# Corefiles refused, and what the error says: file, line, plugin and mistake.
REFUSED = [
    (".:53 {\n whoami\n bogus_plugin on\n}\n", "Corefile:3: unknown directive 'bogus_plugin'"),
    (".:53 {\n dnssec\n}\n", "Corefile:2: plugin 'dnssec' is not supported by kubernetai"),
    (".:53 {\n errors\n errors\n}\n", "Corefile:3: plugin/errors: this plugin can only be used once per server block"),
    (".:53 {\n whoami extra\n}\n", "Corefile:2: plugin/whoami: unexpected argument 'extra': expected at most 0"),
    (".:53 {\n whoami {\n  option\n }\n}\n", "Corefile:3: plugin/whoami: unknown option 'option'"),
    (".:53 {\n bind example.org\n}\n", "Corefile:2: plugin/bind: invalid address 'example.org'"),
    (".:53 {\n bind\n}\n", "Corefile:2: plugin/bind: expected at least 1 argument(s), got 0"),
    (".:53 {\n kubernetai 10.0.0.0/33\n}\n", "Corefile:2: plugin/kubernetai: invalid zone '10.0.0.0/33'"),
    (".:53 {\n kubernetai cluster.local {\n  endpoints http://x\n }\n}\n",
     "Corefile:3: plugin/kubernetai: unknown property 'endpoints': did you mean 'endpoint'?"),
    (".:53 {\n forwrd . 127.0.0.1\n}\n", "Corefile:2: unknown directive 'forwrd': did you mean 'forward'?"),
    (".:53 {\n kubernetai cluster.local {\n  endpoint http://x\n  fallthru\n }\n}\n",
     "Corefile:4: plugin/kubernetai: unknown property 'fallthru': did you mean 'fallthrough'?"),
    (".:53 {\n health {\n  lamduck 5s\n }\n}\n",
     "Corefile:3: plugin/health: unknown property 'lamduck': did you mean 'lameduck'?"),
    (".:53 {\n errors {\n  verbose\n }\n}\n",
     "Corefile:3: plugin/errors: unknown option 'verbose': expected stacktrace or consolidate"),
    (".:53 {\n cache {\n  sucess 100\n }\n}\n",
     "Corefile:3: plugin/cache: unknown option 'sucess': did you mean 'success'?"),
]


@one_test_per_row("refused", REFUSED, lambda row: row[1].partition(": ")[2])
class RefusalTests(unittest.SynchronousTestCase):
    def check_refused(self, row):
        text, message = row
        self.assertIn(message, refusal(text))


class ResponseTests(unittest.SynchronousTestCase):
    def test_but_copies_as_replace_does(self):
        original = Response(rcode=dns.ENAME, authority=[dns.RRHeader(b"example.org", dns.SOA)], authoritative=True,
                            valid_while=lambda: True, edns_options=((10, b"x"),))
        copy = original.but(answers=[dns.RRHeader(b"www.example.org")], valid_while=None)
        self.assertEqual(asdict(copy), asdict(replace(original, answers=copy.answers, valid_while=None)))
        self.assertEqual((original.answers, original.valid_while is not None), ([], True), "the original unchanged")
        self.assertIs(type(copy), Response)


class EndOfChainTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_nothing_answers_is_servfail_and_logged(self):
        logs = capture_logs(self)
        port = start_daemon(self, ".:0 {\n bind 127.0.0.1\n errors\n log\n}\n")
        reply = yield query(port, "www.example.org", "A")
        self.assertEqual(rcode_of(reply), "SERVFAIL")
        self.assertTrue(any("www.example.org. A: no next plugin found" in line for line in logs), logs)


class UnsyncedStanzaTests(unittest.TestCase):
    """A stanza whose API server cannot be reached: its zones get SERVFAIL, other names go on."""

    @defer.inlineCallbacks
    def test_in_zone_servfail_out_of_zone_forwarded(self):
        upstream = FakeUpstream({("www.example.org.", "A"): ["192.0.2.1"]})
        port = yield start_daemon_listening(self, f""".:0 {{
    bind 127.0.0.1
    kubernetai cluster.local {{
        endpoint http://127.0.0.1:1
        startup_timeout 100ms
    }}
    forward . 127.0.0.1:{upstream.start(self)}
}}
""")
        in_zone = yield query(port, "kubernetes.default.svc.cluster.local", "A")
        outside = yield query(port, "www.example.org", "A")
        self.assertEqual(rcode_of(in_zone), "SERVFAIL")
        self.assertEqual(rcode_of(outside), "NOERROR")
        self.assertEqual(upstream.queries, [("www.example.org.", "A", "udp")])
