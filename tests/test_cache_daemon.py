"""
cache end to end, through a running daemon, with the cache's clock swapped
for a Clock, against a fake upstream and a test Kubernetes API server.
"""

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from kubernetai.cache.rules import entry_key
from kubernetai.daemon import build_daemon
from kubernetai.plugins.cache import Cache
from kubernetai.apiserver.server import ApiServer
from tests.support import (
    FakeUpstream,
    SOA_RDATA,
    make_request,
    query,
    rcode_of,
    same_shard_keys,
    send_raw_udp,
    shown,
    unused_port,
    wait_until,
    write_corefile,
)

class ScriptedUpstream(FakeUpstream):
    """A FakeUpstream whose TTL is settable, whose denials carry an SOA, that can answer SERVFAIL, and that notes DO."""

    def __init__(self, records, ttl=30, soa_ttl=60) -> None:
        super().__init__(records)
        self.ttl, self.soa_ttl = ttl, soa_ttl
        self.servfail: set[str] = set()
        self.dnssec_ok: list[bool] = []

    def reply_to(self, packet: bytes, transport: str):
        message = dns.message.from_wire(packet)
        question = message.question[0]
        name, rdtype = question.name.to_text().lower(), dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rdtype, transport))
        self.dnssec_ok.append(bool(message.ednsflags & dns.flags.DO))
        if self.silent:
            return None
        reply = dns.message.make_response(message)
        reply.flags |= dns.flags.RA
        answers = self.records.get((name, rdtype))
        if name in self.servfail:
            reply.set_rcode(dns.rcode.SERVFAIL)
        elif answers:
            reply.answer.append(dns.rrset.from_text_list(question.name, self.ttl, "IN", rdtype, answers))
        else:
            if not any(known == name for known, _ in self.records):
                reply.set_rcode(dns.rcode.NXDOMAIN)
            reply.authority.append(dns.rrset.from_text("example.org.", self.soa_ttl, "IN", "SOA",
                                                       SOA_RDATA.format(minimum=300)))
        return reply.to_wire(max_size=65535)


def start_cached(testcase, text: str):
    """Start the daemon of Corefile C{text} with its cache on a Clock; fires with (DNS port, cache, clock)."""
    daemon = build_daemon(write_corefile(testcase, text))
    (cache,) = [handler for config in daemon.configs for handler in config.handlers if isinstance(handler, Cache)]
    cache.clock = clock = task.Clock()
    root = daemon.service(reactor)
    root.startService()
    testcase.addCleanup(root.stopService)
    dns_service = testcase.dns_service = root.getServiceNamed("dns")
    return dns_service.listening.addCallback(lambda _: (dns_service.addresses()[0][2], cache, clock))


def addresses(reply):
    return [(rrset.name.to_text(), rrset.ttl, item.to_text()) for rrset in reply.answer for item in rrset]


class DaemonTests(unittest.TestCase):
    """Through a running daemon, forwarding to a scripted upstream."""

    def setUp(self):
        self.upstream = ScriptedUpstream({("www.example.org.", "A"): ["192.0.2.1"],
                                          ("www.example.org.", "TXT"): ['"x"']})
        # Closed in a test: a port no client of the test can be given meanwhile.
        self.upstream_port = self.upstream.start(self, unused_port())

    @defer.inlineCallbacks
    def start(self, cache_line="cache 30", block=""):
        body = f" {{\n        {block}\n    }}" if block else ""
        self.port, self.cache, self.clock = yield start_cached(self, f""".:0 {{
    bind 127.0.0.1
    {cache_line}{body}
    forward . 127.0.0.1:{self.upstream_port}
}}
""")

    @defer.inlineCallbacks
    def test_hit_counts_down_and_keeps_the_question_case(self):
        yield self.start()
        first = yield query(self.port, "WWW.Example.ORG", "A")
        self.clock.advance(10)
        second = yield query(self.port, "www.example.org", "A")
        self.assertEqual(addresses(first), [("WWW.Example.ORG.", 30, "192.0.2.1")])
        self.assertEqual(addresses(second), [("www.example.org.", 20, "192.0.2.1")])
        self.assertEqual(len(self.upstream.queries), 1)
        self.assertTrue(second.flags & dns.flags.AA and not first.flags & dns.flags.AA, "CoreDNS sets AA on hits")

    @defer.inlineCallbacks
    def test_resent_hits_count_down_until_expiry(self):
        """The server sends a hit again from its ready reply, TTLs rewritten as they tick, never past expiry."""
        yield self.start()
        yield query(self.port, "www.example.org", "A")
        self.clock.advance(0.5)
        kept = yield query(self.port, "www.example.org", "A")
        (table,) = self.dns_service.tables.values()
        (ready,) = table.ready_replies.values()
        served = []
        for elapsed in (10, 19.4, 0.05):
            self.clock.advance(elapsed)
            reply = yield query(self.port, "www.example.org", "A")
            served.append(addresses(reply)[0][1])
        self.assertEqual((addresses(kept)[0][1], served), (30, [20, 1, 1]))
        self.assertEqual(list(table.ready_replies.values()), [ready], "the three were sent again, not answered anew")
        self.assertEqual((self.cache.requests, self.cache.hits["success"]), (5, 4), "each resent hit is counted")
        self.clock.advance(0.05)
        expired = yield query(self.port, "www.example.org", "A")
        self.assertEqual((addresses(expired)[0][1], len(self.upstream.queries)), (30, 2))

    @defer.inlineCallbacks
    def test_a_resent_hit_is_the_chains_reply_byte_for_byte(self):
        """Answers, denials with their SOA, EDNS and DO: what the server sends again is what the chain gives then."""
        yield self.start("cache")
        (table,) = self.dns_service.tables.values()
        packets = [dns.message.make_query(name, "A", use_edns=0, payload=1232, want_dnssec=True).to_wire()
                   for name in ("WWW.example.org", "missing.Example.org")]
        for packet in packets:
            yield send_raw_udp(self.port, packet)
            yield send_raw_udp(self.port, packet)
        for elapsed in (3.5, 10, 16.4):
            self.clock.advance(elapsed)
            kept = list(table.ready_replies.values())
            resent = []
            for packet in packets:
                resent.append((yield send_raw_udp(self.port, packet)))
            self.assertEqual(list(table.ready_replies.values()), kept, "both were sent again")
            table.ready_replies.clear()
            for packet, again in zip(packets, resent):
                answered = yield send_raw_udp(self.port, packet)
                self.assertEqual(again[2:], answered[2:])
        self.assertEqual((len(kept), len(self.upstream.queries)), (2, 2))

    @defer.inlineCallbacks
    def test_nxdomain_lives_as_long_as_its_soa(self):
        yield self.start("cache")
        first = yield query(self.port, "missing.example.org", "A")
        self.clock.advance(59)
        second = yield query(self.port, "missing.example.org", "A")
        self.assertEqual((rcode_of(second), second.authority[0].ttl, len(self.upstream.queries)), ("NXDOMAIN", 1, 1))
        self.assertEqual(first.authority[0].ttl, 60)
        self.clock.advance(1)
        yield query(self.port, "missing.example.org", "A")
        self.assertEqual(len(self.upstream.queries), 2)

    @defer.inlineCallbacks
    def test_nodata_and_servfail_are_kept_apart_from_answers(self):
        yield self.start()
        self.upstream.servfail.add("broken.example.org.")
        for _ in range(2):
            nodata = yield query(self.port, "www.example.org", "AAAA")
            broken = yield query(self.port, "broken.example.org", "A")
            yield query(self.port, "www.example.org", "A")
        self.assertEqual((rcode_of(nodata), nodata.answer, rcode_of(broken)), ("NOERROR", [], "SERVFAIL"))
        self.assertEqual((len(self.upstream.queries), self.cache.entries), (3, {"success": 1, "denial": 2}))
        self.clock.advance(5)
        yield query(self.port, "broken.example.org", "A")
        self.assertEqual(len(self.upstream.queries), 4, "SERVFAIL is kept 5s")

    @defer.inlineCallbacks
    def test_do_bit_keys_apart(self):
        yield self.start()
        for _ in range(2):
            yield query(self.port, "www.example.org", "A", want_dnssec=True)
            yield query(self.port, "www.example.org", "A")
        self.assertEqual(self.upstream.dnssec_ok, [True, False])

    @defer.inlineCallbacks
    def test_capacity_evicts(self):
        keys = same_shard_keys(5)
        for name, *_ in keys:
            self.upstream.records[(name, "A")] = ["192.0.2.7"]
        yield self.start(block="success 1024")
        for name, *_ in keys:
            yield query(self.port, name, "A")
        self.assertEqual((self.cache.entries["success"], self.cache.evictions["success"]), (4, 1))
        for name, *_ in keys:
            yield query(self.port, name, "A")
        self.assertGreater(len(self.upstream.queries), 5)

    @defer.inlineCallbacks
    def test_prefetch_refreshes_a_popular_entry(self):
        yield self.start(block="prefetch 1")
        yield query(self.port, "www.example.org", "A")
        self.upstream.records[("www.example.org.", "A")] = ["192.0.2.2"]
        self.clock.advance(28)
        served = yield query(self.port, "www.example.org", "A")
        self.assertEqual(addresses(served), [("www.example.org.", 2, "192.0.2.1")])
        yield wait_until(lambda: not self.cache.success.get(entry_key(make_request("www.example.org"))).refreshing,
                         "the prefetch")
        refreshed = yield query(self.port, "www.example.org", "A")
        self.assertEqual(addresses(refreshed), [("www.example.org.", 30, "192.0.2.2")])
        self.assertEqual((self.upstream.queries[1][2], self.cache.prefetches), ("tcp", 1))

    @defer.inlineCallbacks
    def test_serve_stale_while_the_upstream_is_dead(self):
        yield self.start(block="serve_stale 1h verify")
        yield query(self.port, "www.example.org", "A")
        yield self.upstream.transport.stopListening()
        self.clock.advance(31)
        stale = yield query(self.port, "www.example.org", "A")
        self.assertEqual(addresses(stale), [("www.example.org.", 0, "192.0.2.1")])
        self.assertEqual(self.cache.served_stale, 1)

    @defer.inlineCallbacks
    def test_serve_stale_immediate_refreshes_behind(self):
        yield self.start(block="serve_stale")
        yield query(self.port, "www.example.org", "A")
        self.upstream.records[("www.example.org.", "A")] = ["192.0.2.2"]
        self.clock.advance(31)
        stale = yield query(self.port, "www.example.org", "A")
        self.assertEqual(addresses(stale), [("www.example.org.", 0, "192.0.2.1")])
        yield wait_until(lambda: len(self.upstream.queries) == 2, "the refresh")
        yield wait_until(lambda: not self.cache.success.get(entry_key(make_request("www.example.org"))).refreshing,
                         "the refresh to be kept")
        fresh = yield query(self.port, "www.example.org", "A")
        self.assertEqual(addresses(fresh), [("www.example.org.", 30, "192.0.2.2")])

    @defer.inlineCallbacks
    def test_disable_success_and_denial(self):
        yield self.start(block="disable success\n        disable denial example.org")
        for _ in range(2):
            yield query(self.port, "www.example.org", "A")
            yield query(self.port, "missing.example.org", "A")
        self.assertEqual(len(self.upstream.queries), 4)

    @defer.inlineCallbacks
    def test_keepttl(self):
        yield self.start(block="keepttl")
        yield query(self.port, "www.example.org", "A")
        self.clock.advance(20)
        reply = yield query(self.port, "www.example.org", "A")
        self.assertEqual((addresses(reply)[0][1], len(self.upstream.queries)), (30, 1))

    @defer.inlineCallbacks
    def test_only_its_zones(self):
        self.upstream.records[("www.example.net.", "A")] = ["192.0.2.9"]
        yield self.start("cache 30 example.org")
        for _ in range(2):
            yield query(self.port, "www.example.org", "A")
            yield query(self.port, "www.example.net", "A")
        self.assertEqual([name for name, _, _ in self.upstream.queries],
                         ["www.example.org.", "www.example.net.", "www.example.net."])


class KubernetesTests(unittest.TestCase):
    @defer.inlineCallbacks
    def start(self):
        """An API server with service default/web at 10.0.0.10, and a daemon with a cache in front of
        its stanza; (api, DNS port, cache, clock)."""
        api = ApiServer()
        api.start()
        self.addCleanup(api.stop)
        api.namespace("default")
        api.service("default", "web", cluster_ips=["10.0.0.10"], ports=[{"name": "http", "port": 80}])
        port, cache, clock = yield start_cached(self, f""".:0 {{
    bind 127.0.0.1
    cache 30
    kubernetai cluster.local {{
        endpoint {api.url}
    }}
}}
""")
        return api, port, cache, clock

    def move_web(self, api, cache):
        """Give web the cluster IP 10.0.0.99; fires once the stanza behind the cache answers it."""
        api.service("default", "web", cluster_ips=["10.0.0.99"], ports=[{"name": "http", "port": 80}])
        name = "web.default.svc.cluster.local"
        return wait_until(lambda: shown(cache.next.serve(make_request(name)))[0][2] == "10.0.0.99", "the watch")

    @defer.inlineCallbacks
    def test_a_changed_service_is_seen_one_ttl_later(self):
        api, port, cache, clock = yield self.start()
        name = "web.default.svc.cluster.local"
        first = yield query(port, name, "A")
        yield self.move_web(api, cache)
        clock.advance(4.5)
        cached = yield query(port, name, "A")
        clock.advance(0.5)
        fresh = yield query(port, name, "A")
        self.assertEqual([addresses(reply) for reply in (first, cached, fresh)], [
            [(name + ".", 5, "10.0.0.10")], [(name + ".", 1, "10.0.0.10")], [(name + ".", 5, "10.0.0.99")],
        ])

    @defer.inlineCallbacks
    def test_an_unchanged_answer_is_renewed_at_expiry_and_counted_as_a_miss(self):
        """At expiry, the server sends the kept reply again with fresh TTLs while the index is unchanged,
        counted as the miss that re-asking the stanza would be; a change ends that."""
        api, port, cache, clock = yield self.start()
        name = "web.default.svc.cluster.local"
        yield query(port, name, "A")
        yield query(port, name, "A")
        (table,) = self.dns_service.tables.values()
        (ready,) = table.ready_replies.values()
        served = []
        for elapsed in (4.9, 0.1, 2, 3):
            clock.advance(elapsed)
            reply = yield query(port, name, "A")
            served.append(addresses(reply)[0][1:])
        self.assertEqual(served, [(1, "10.0.0.10"), (5, "10.0.0.10"), (3, "10.0.0.10"), (5, "10.0.0.10")])
        self.assertEqual(list(table.ready_replies.values()), [ready], "every one was sent again")
        self.assertEqual((cache.requests, cache.misses, cache.hits["success"]), (6, 3, 3))
        yield self.move_web(api, cache)
        clock.advance(4)
        cached = yield query(port, name, "A")
        clock.advance(1)
        fresh = yield query(port, name, "A")
        self.assertEqual([addresses(cached)[0][1:], addresses(fresh)[0][1:]], [(1, "10.0.0.10"), (5, "10.0.0.99")])
