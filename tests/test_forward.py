"""
forward against real upstream servers on loopback: transports, truncation,
failover, concurrency, and the parsing of its options (lying upstreams:
tests.test_flood).
"""

import os

import dns.flags
import dns.rcode
from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from kubernetai.chain import build_server
from kubernetai.corefile import CorefileError, parse_corefile
from kubernetai.plugins.forward.config import nameservers_in, parse_forward
from kubernetai.upstream import Address as Upstream
from tests.support import (
    FakeUpstream,
    capture_logs,
    one_test_per_row,
    query,
    rcode_of,
    refusal,
    start_daemon,
    unused_port,
    wait_until,
)
from kubernetai.apiserver.tlsca import CertificateAuthority

RECORDS = {("www.example.org.", "A"): ["192.0.2.1"], ("slow.example.org.", "A"): ["192.0.2.2"]}


def forwarding(*upstream_ports, options="", extra=""):
    targets = " ".join(f"127.0.0.1:{port}" for port in upstream_ports)
    return f""".:0 {{
    bind 127.0.0.1
    errors
    forward . {targets} {{
        {options}
    }}
    {extra}
}}
"""


def addresses(reply):
    return sorted(item.address for rrset in reply.answer for item in rrset)


class TransportTests(unittest.TestCase):
    def setUp(self):
        self.upstream = FakeUpstream(dict(RECORDS))
        self.upstream_port = self.upstream.start(self)

    @defer.inlineCallbacks
    def test_udp_client_udp_upstream(self):
        port = start_daemon(self, forwarding(self.upstream_port))
        reply = yield query(port, "www.example.org", "A")
        self.assertEqual(addresses(reply), ["192.0.2.1"])
        self.assertEqual(self.upstream.queries, [("www.example.org.", "A", "udp")])

    @defer.inlineCallbacks
    def test_nxdomain_is_relayed(self):
        port = start_daemon(self, forwarding(self.upstream_port))
        reply = yield query(port, "missing.example.org", "A")
        self.assertEqual(rcode_of(reply), "NXDOMAIN")

    @defer.inlineCallbacks
    def test_tcp_client_tcp_upstream(self):
        port = start_daemon(self, forwarding(self.upstream_port))
        reply = yield query(port, "www.example.org", "A", tcp=True)
        self.assertEqual(addresses(reply), ["192.0.2.1"])
        self.assertEqual(self.upstream.queries, [("www.example.org.", "A", "tcp")])

    @defer.inlineCallbacks
    def test_truncated_udp_answer_retried_over_tcp(self):
        self.upstream.truncate_udp = True
        port = start_daemon(self, forwarding(self.upstream_port))
        reply = yield query(port, "www.example.org", "A")
        self.assertEqual(addresses(reply), ["192.0.2.1"])
        self.assertEqual([transport for _, _, transport in self.upstream.queries], ["udp", "tcp"])

    @defer.inlineCallbacks
    def test_prefer_udp_keeps_udp_for_tcp_clients(self):
        port = start_daemon(self, forwarding(self.upstream_port, options="prefer_udp"))
        yield query(port, "www.example.org", "A", tcp=True)
        self.assertEqual(self.upstream.queries, [("www.example.org.", "A", "udp")])

    @defer.inlineCallbacks
    def test_force_tcp(self):
        port = start_daemon(self, forwarding(self.upstream_port, options="force_tcp"))
        yield query(port, "www.example.org", "A")
        self.assertEqual(self.upstream.queries, [("www.example.org.", "A", "tcp")])

    @defer.inlineCallbacks
    def test_except_hands_on_to_the_next_plugin(self):
        port = start_daemon(self, forwarding(self.upstream_port, options="except internal.example", extra="whoami"))
        reply = yield query(port, "host.internal.example", "A")
        self.assertEqual(reply.additional[0].name.to_text(), "host.internal.example.")
        self.assertEqual(self.upstream.queries, [])


class ConnectionTests(unittest.TestCase):
    """DNS over TLS, and TCP connections kept for reuse until they expire."""

    @defer.inlineCallbacks
    def test_tls_upstream_verified_against_the_ca(self):
        authority = CertificateAuthority()
        upstream = FakeUpstream(dict(RECORDS))
        serving = authority.issue_server()
        tls_port = upstream.start_tls(self, serving.cert_pem + serving.key_pem)
        ca_path = self.mktemp()
        with open(ca_path, "wb") as ca:
            ca.write(authority.cert_pem)
        corefile = f""".:0 {{
    bind 127.0.0.1
    forward . tls://127.0.0.1:{tls_port} {{
        tls {ca_path}
        tls_servername localhost
    }}
}}
"""
        port = start_daemon(self, corefile)
        first = yield query(port, "www.example.org", "A")
        second = yield query(port, "www.example.org", "A")
        self.assertEqual(addresses(first), ["192.0.2.1"])
        self.assertEqual(addresses(second), ["192.0.2.1"])
        self.assertEqual([transport for _, _, transport in upstream.queries], ["tls", "tls"])
        self.assertEqual(upstream.connections, 1, "the TLS connection is reused")

    @defer.inlineCallbacks
    def test_tls_client_certificate(self):
        authority = CertificateAuthority()
        serving = authority.issue_server()
        upstream = FakeUpstream(dict(RECORDS))
        tls_port = upstream.start_tls(self, serving.cert_pem + serving.key_pem, client_ca_pem=authority.cert_pem)
        files = authority.write_client_files(os.path.abspath(self.mktemp()), "kubernetai")
        with_certificate = f".:0 {{\n bind 127.0.0.1\n forward . tls://127.0.0.1:{tls_port} {{\n" \
                           f"  tls {files.cert} {files.key} {files.ca}\n  tls_servername localhost\n }}\n}}\n"
        port = start_daemon(self, with_certificate)
        reply = yield query(port, "www.example.org", "A")
        self.assertEqual(addresses(reply), ["192.0.2.1"])
        without = with_certificate.replace(f"tls {files.cert} {files.key} {files.ca}", f"tls {files.ca}")
        without = without.replace("tls_servername localhost", "tls_servername localhost\n  read_timeout 300ms")
        port = start_daemon(self, without)
        refused = yield query(port, "www.example.org", "A")
        self.assertEqual(rcode_of(refused), "SERVFAIL")
        self.assertEqual(len(upstream.queries), 1, "the client without a certificate got nothing through")

    @defer.inlineCallbacks
    def test_tls_upstream_with_an_unknown_ca_is_refused(self):
        upstream = FakeUpstream(dict(RECORDS))
        serving = CertificateAuthority().issue_server()
        tls_port = upstream.start_tls(self, serving.cert_pem + serving.key_pem)
        other_ca = self.mktemp()
        with open(other_ca, "wb") as ca:
            ca.write(CertificateAuthority().cert_pem)
        corefile = f".:0 {{\n bind 127.0.0.1\n forward . tls://127.0.0.1:{tls_port} {{\n  tls {other_ca}\n" \
                   "  read_timeout 300ms\n }\n}\n"
        port = start_daemon(self, corefile)
        reply = yield query(port, "www.example.org", "A")
        self.assertEqual(rcode_of(reply), "SERVFAIL")
        self.assertEqual(upstream.queries, [])

    @defer.inlineCallbacks
    def test_tcp_connections_are_reused(self):
        upstream = FakeUpstream(dict(RECORDS))
        port = start_daemon(self, forwarding(upstream.start(self), options="force_tcp"))
        for _ in range(3):
            yield query(port, "www.example.org", "A")
        self.assertEqual(upstream.connections, 1)

    @defer.inlineCallbacks
    def test_expire_closes_idle_connections(self):
        upstream = FakeUpstream(dict(RECORDS))
        port = start_daemon(self, forwarding(upstream.start(self), options="force_tcp\n        expire 100ms"))
        yield query(port, "www.example.org", "A")
        yield task.deferLater(reactor, 0.3, lambda: None)
        yield query(port, "www.example.org", "A")
        self.assertEqual(upstream.connections, 2)


class HealthTests(unittest.TestCase):
    """max_fails and health_check: a failing upstream is probed, skipped while down, used again once up."""

    @defer.inlineCallbacks
    def test_down_upstream_skipped_then_back(self):
        first_port = unused_port()
        second = FakeUpstream(dict(RECORDS))
        options = "policy sequential\n        max_fails 1\n        health_check 1s"
        port = start_daemon(self, forwarding(first_port, second.start(self), options=options))
        reply = yield query(port, "www.example.org", "A")
        self.assertEqual(addresses(reply), ["192.0.2.1"])
        yield task.deferLater(reactor, 1.3, lambda: None)
        first = FakeUpstream(dict(RECORDS))
        first.start(self, first_port)
        yield query(port, "www.example.org", "A")
        self.assertEqual([q for q in first.queries if q[0] == "www.example.org."], [], "skipped while down")
        yield wait_until(lambda: (".", "NS", "udp") in first.queries, "a health probe to reach it")
        yield query(port, "www.example.org", "A")
        self.assertEqual([q for q in first.queries if q[0] == "www.example.org."], [("www.example.org.", "A", "udp")])
        self.assertNotIn((".", "NS", "udp"), second.queries, "a healthy upstream is not probed")

    @defer.inlineCallbacks
    def test_health_check_probes_the_domain_asked_for(self):
        probed_port = unused_port()
        alive = FakeUpstream(dict(RECORDS))
        options = "policy sequential\n        health_check 100ms no_rec domain probe.example.net"
        port = start_daemon(self, forwarding(probed_port, alive.start(self), options=options))
        yield query(port, "www.example.org", "A")
        probed = FakeUpstream()
        probed.start(self, probed_port)
        yield wait_until(lambda: probed.queries, "a probe")
        self.assertEqual(probed.queries[0], ("probe.example.net.", "NS", "udp"))
        self.assertFalse(probed.flags[0] & dns.flags.RD, "no_rec: the probe does not ask for recursion")

    @defer.inlineCallbacks
    def test_failfast_when_all_are_down(self):
        closed_port = unused_port()
        options = "max_fails 1\n        health_check 100ms\n        failfast_all_unhealthy_upstreams"
        logs = capture_logs(self)
        port = start_daemon(self, forwarding(closed_port, options=options))
        yield query(port, "www.example.org", "A")
        yield task.deferLater(reactor, 0.5, lambda: None)
        reply = yield query(port, "www.example.org", "A")
        self.assertEqual(rcode_of(reply), "SERVFAIL")
        self.assertTrue(any("www.example.org. A: no healthy upstream" in line for line in logs), logs)


class PolicyTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_round_robin_takes_turns(self):
        upstreams = [FakeUpstream(dict(RECORDS)) for _ in range(3)]
        ports = [upstream.start(self) for upstream in upstreams]
        port = start_daemon(self, forwarding(*ports, options="policy round_robin"))
        for _ in range(6):
            yield query(port, "www.example.org", "A")
        self.assertEqual([len(upstream.queries) for upstream in upstreams], [2, 2, 2])

    @defer.inlineCallbacks
    def test_sequential_always_asks_the_first(self):
        upstreams = [FakeUpstream(dict(RECORDS)) for _ in range(2)]
        port = start_daemon(self, forwarding(*[u.start(self) for u in upstreams], options="policy sequential"))
        for _ in range(4):
            yield query(port, "www.example.org", "A")
        self.assertEqual([len(upstream.queries) for upstream in upstreams], [4, 0])


class RcodeTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_failover_tries_the_next_upstream(self):
        failing, good = FakeUpstream(dict(RECORDS)), FakeUpstream(dict(RECORDS))
        failing.rcodes["www.example.org."] = dns.rcode.SERVFAIL
        options = "policy sequential\n        failover SERVFAIL"
        port = start_daemon(self, forwarding(failing.start(self), good.start(self), options=options))
        reply = yield query(port, "www.example.org", "A")
        self.assertEqual(addresses(reply), ["192.0.2.1"])

    @defer.inlineCallbacks
    def test_next_hands_on_to_the_next_forward(self):
        first, second = FakeUpstream(), FakeUpstream({("only.example.org.", "A"): ["192.0.2.9"]})
        corefile = f""".:0 {{
    bind 127.0.0.1
    forward . 127.0.0.1:{first.start(self)} {{
        next NXDOMAIN
    }}
    forward . 127.0.0.1:{second.start(self)}
}}
"""
        port = start_daemon(self, corefile)
        reply = yield query(port, "only.example.org", "A")
        self.assertEqual(addresses(reply), ["192.0.2.9"])
        self.assertEqual(len(first.queries), 1)

    @defer.inlineCallbacks
    def test_prefer_udp_retries_truncated_answers_over_tcp(self):
        upstream = FakeUpstream(dict(RECORDS))
        upstream.truncate_udp = True
        port = start_daemon(self, forwarding(upstream.start(self), options="prefer_udp"))
        reply = yield query(port, "www.example.org", "A", tcp=True)
        self.assertEqual(addresses(reply), ["192.0.2.1"])
        self.assertEqual([transport for _, _, transport in upstream.queries], ["udp", "tcp"])


class FailureTests(unittest.TestCase):
    """Dead and slow upstreams (lying ones: tests.test_flood)."""

    @defer.inlineCallbacks
    def test_dead_upstream_fails_over_to_the_next(self):
        dead, alive = FakeUpstream(), FakeUpstream(dict(RECORDS))
        dead.silent = True
        port = start_daemon(self, forwarding(dead.start(self), alive.start(self), options="policy sequential"))
        reply = yield query(port, "www.example.org", "A")
        self.assertEqual(addresses(reply), ["192.0.2.1"])
        self.assertEqual([q for q in dead.queries if q[0] == "www.example.org."], [("www.example.org.", "A", "udp")])

    @defer.inlineCallbacks
    def test_closed_port_is_a_refusal_not_a_timeout(self):
        closed_port = unused_port()
        logs = capture_logs(self)
        port = start_daemon(self, forwarding(closed_port))
        reply = yield query(port, "www.example.org", "A")
        self.assertEqual(rcode_of(reply), "SERVFAIL")
        logged = [line for line in logs if "www.example.org." in line]
        self.assertEqual(len(logged), 1, logs)
        self.assertIn(f"2 www.example.org. A: read udp 127.0.0.1:{closed_port}: connection refused", logged[0])

    @defer.inlineCallbacks
    def test_all_dead_is_servfail_not_a_hang(self):
        dead = FakeUpstream()
        dead.silent = True
        logs = capture_logs(self)
        port = start_daemon(self, forwarding(dead.start(self), options="read_timeout 300ms"))
        reply = yield query(port, "www.example.org", "A")
        self.assertEqual(rcode_of(reply), "SERVFAIL")
        self.assertEqual(len([q for q in dead.queries if q[0] == "www.example.org."]), 3,
                         "three attempts per upstream, as CoreDNS makes")
        self.assertTrue(any("www.example.org. A: read udp" in line and "i/o timeout" in line
                            for line in logs), logs)

    @defer.inlineCallbacks
    def test_slow_upstream_does_not_stall_other_queries(self):
        slow, fast = FakeUpstream(dict(RECORDS)), FakeUpstream(dict(RECORDS))
        slow.delay = 1.0
        corefile = f""".:0 {{
    bind 127.0.0.1
    forward . 127.0.0.1:{slow.start(self)}
}}
fast.example.org:0 {{
    bind 127.0.0.1
    forward . 127.0.0.1:{fast.start(self)}
}}
"""
        port = start_daemon(self, corefile)
        finished = []
        slow_query = query(port, "slow.example.org", "A").addCallback(lambda _: finished.append("slow"))
        yield task.deferLater(reactor, 0.1, lambda: None)
        yield query(port, "www.fast.example.org", "A").addCallback(lambda _: finished.append("fast"))
        yield slow_query
        self.assertEqual(finished, ["fast", "slow"])

    @defer.inlineCallbacks
    def test_an_upstream_no_query_can_be_sent_to_is_tried_as_often_as_allowed(self):
        # The kernel refuses a datagram to the broadcast address at once (no SO_BROADCAST): each of the
        # 500 failures leads to the next attempt, never inside the one before (no recursion).
        logs = capture_logs(self)
        port = start_daemon(self, ".:0 {\n    bind 127.0.0.1\n    errors\n    forward . 255.255.255.255:53 {\n"
                                  "        max_connect_attempts 500\n    }\n}\n")
        reply = yield query(port, "www.example.org", "A")
        self.assertEqual(rcode_of(reply), "SERVFAIL")
        logged = [line for line in logs if "www.example.org." in line]
        self.assertEqual(len(logged), 1, logs)
        self.assertIn("www.example.org. A: write udp 255.255.255.255:53: Permission denied", logged[0])

    @defer.inlineCallbacks
    def test_max_concurrent_refuses_past_the_limit(self):
        slow = FakeUpstream(dict(RECORDS))
        slow.delay = 0.5
        port = start_daemon(self, forwarding(slow.start(self), options="max_concurrent 1"))
        first = query(port, "slow.example.org", "A")
        yield task.deferLater(reactor, 0.1, lambda: None)
        second = yield query(port, "www.example.org", "A")
        first = yield first
        self.assertEqual(rcode_of(second), "REFUSED")
        self.assertEqual(addresses(first), ["192.0.2.2"])


def server_block(line):
    return parse_corefile(".:53 {\n    " + line + "\n}\n", "Corefile")[0]


def forward_directive(line):
    return server_block(line).directives[0]


# forward lines that parse: the zone and upstreams they give.
FORWARDS = [
    ("forward . 1.1.1.1", ".", [Upstream("1.1.1.1", 53)]),
    ("forward example.ORG 10.0.0.1:5353 dns://10.0.0.2", "example.org.",
     [Upstream("10.0.0.1", 5353), Upstream("10.0.0.2", 53)]),
    ("forward . [2001:db8::1]:5300 2001:db8::2", ".", [Upstream("2001:db8::1", 5300), Upstream("2001:db8::2", 53)]),
    ("forward . 1.1.1.1 1.1.1.1", ".", [Upstream("1.1.1.1", 53)]),
    ("forward . tls://9.9.9.9 tls://[2620:fe::fe]:8853", ".",
     [Upstream("9.9.9.9", 853, "tls"), Upstream("2620:fe::fe", 8853, "tls")]),
]


# forward lines refused, and what the error says.
REFUSED = [
    ("forward .", "Corefile:2: plugin/forward: expected at least 2 argument(s), got 1"),
    ("forward . not-an-address", "not an IP address or file: 'not-an-address'"),
    ("forward . https://1.1.1.1", "'https' is not supported as a destination protocol in forward"),
    ("forward . 1.1.1.1:99999", "invalid port"),
    ("forward . 1.1.1.1 {\n policy fastest\n}", "Corefile:3: plugin/forward: unknown policy 'fastest'"),
    ("forward . 1.1.1.1 {\n bogus\n}", "Corefile:3: plugin/forward: unknown property 'bogus'"),
    ("forward . 1.1.1.1 {\n max_concurrent lots\n}", "invalid number 'lots'"),
    ("forward . 1.1.1.1 {\n expire soon\n}", "invalid duration 'soon'"),
    ("forward . 1.1.1.1 {\n next BOGUS\n}", "BOGUS is not a valid rcode"),
    ("forward . 1.1.1.1 {\n failover NOERROR\n}", "NoError cannot be used in failover"),
    ("forward . 1.1.1.1 {\n health_check 1s sometimes\n}", "health_check: unknown option sometimes"),
    ("forward . 1.1.1.1 {\n read_timeout 0s\n}", "read_timeout must be positive"),
    ("forward . 1.1.1.1 {\n expire 10s\n max_age 5s\n}", "max_age (5.0s) must not be less than expire"),
    ("forward . 1.1.1.1 {\n tls /nonexistent.pem\n}", "tls: cannot read /nonexistent.pem"),
    ("forward . 1.1.1.1 {\n resolver 1.1.1.1\n}", "option 'resolver' is not supported by kubernetai"),
    # Found by tests.fuzz.corefile (tests/fuzz/regressions/corefile/forward-tls-servername-no-hostname).
    ("forward . tls://192.0.2.1 {\n tls_servername dns,example\n}",
     "Corefile:2: plugin/forward: tls: cannot use the certificates or the server name: Codepoint U+002C"),
]


@one_test_per_row("good", FORWARDS, lambda row: row[0])
@one_test_per_row("bad", REFUSED, lambda row: row[1])
class ParseTests(unittest.SynchronousTestCase):
    def check_good(self, row):
        line, zone, upstreams = row
        forward = parse_forward(forward_directive(line))
        self.assertEqual((forward.zone, list(forward.upstreams)), (zone, upstreams), line)

    def check_bad(self, row):
        line, message = row
        self.assertIn(message, refusal(f".:53 {{\n {line}\n}}\n"))

    def test_tls_files_that_hold_no_certificate(self):
        not_pem = self.mktemp()
        with open(not_pem, "w") as text:
            text.write("no certificate here\n")
        for files in (not_pem, f"{not_pem} {not_pem}", f"{not_pem} {not_pem} {not_pem}"):
            with self.assertRaises(CorefileError, msg=files) as raised:
                build_server(server_block(f"forward . tls://192.0.2.1 {{\n tls {files}\n}}"))
            self.assertIn("Corefile:2: plugin/forward: tls: cannot use the certificates", str(raised.exception))

    def test_options(self):
        forward = parse_forward(forward_directive(
            "forward . 1.1.1.1 {\n except a.example B.example\n policy round_robin\n max_concurrent 10\n}"
        ))
        self.assertEqual(forward.excepted, ("a.example.", "b.example."))
        self.assertEqual(forward.policy, "round_robin")
        self.assertEqual(forward.max_concurrent, 10)

    def test_resolv_conf(self):
        path = self.mktemp()
        with open(path, "w") as resolv_conf:
            resolv_conf.write("# comment\nsearch example.org\nnameserver 192.0.2.53\nnameserver fe80::1%eth0\n")
        self.assertEqual(nameservers_in(path), [Upstream("192.0.2.53", 53), Upstream("fe80::1", 53)])
        forward = parse_forward(forward_directive(f"forward . {path}"))
        self.assertEqual(forward.upstreams, (Upstream("192.0.2.53", 53), Upstream("fe80::1", 53)))
