"""
cache: the handler against a scripted rest-of-chain on a Clock (its options
and rules: tests.test_cache_rules; through a running daemon:
tests.test_cache_daemon).
"""

from twisted.internet import defer, task
from twisted.names import dns as tdns
from twisted.trial import unittest
from zope.interface import implementer

from kubernetai.cache.config import parse_cache
from kubernetai.chain import IHandler, PluginError, Response
from kubernetai.corefile import parse_corefile
from kubernetai.plugins.cache import Cache, refresh_request
from tests.support import SOA, make_request, response, shown


@implementer(IHandler)
class Backend:
    """The rest of the chain, scripted: C{reply} is a Response or a function of the request."""

    name = "backend"
    next = None

    def __init__(self, reply) -> None:
        self.reply = reply
        self.asked = []

    def serve(self, request):
        self.asked.append((request.name, request.protocol))
        return self.reply(request) if callable(self.reply) else self.reply


def servfail(request):
    raise PluginError("forward", "no upstream answered in time")


A_30 = response("www.example.org. 30 IN A 192.0.2.1")
A_2 = response("www.example.org. 30 IN A 192.0.2.2")


class HandlerTests(unittest.SynchronousTestCase):
    """The handler on a Clock, in front of a scripted backend."""

    def cache(self, reply, text="cache 30", zones=(".",)):
        self.backend = Backend(reply)
        directive = parse_corefile(f".:53 {{\n {text}\n}}\n", "Corefile")[0].directives[0]
        self.clock = task.Clock()
        self.handler = Cache(parse_cache(directive, zones), self.clock)
        self.handler.next = self.backend
        return self.handler

    def ask(self, name="www.example.org", rdtype="A", **flags) -> Response:
        result = self.handler.serve(make_request(name, rdtype, **flags))
        return self.successResultOf(result) if isinstance(result, defer.Deferred) else result

    def test_hit_counts_down_and_expires(self):
        self.cache(A_30)
        self.assertEqual(shown(self.ask()), [("www.example.org", 30, "192.0.2.1")])
        self.clock.advance(10.5)
        hit = self.ask()
        self.assertEqual(shown(hit), [("www.example.org", 20, "192.0.2.1")])
        self.assertEqual((hit.authoritative, hit.recursion_available), (True, True))
        self.clock.advance(19.5)
        self.ask()
        self.assertEqual(len(self.backend.asked), 2)
        self.assertEqual((self.handler.requests, self.handler.hits, self.handler.misses),
                         (3, {"success": 1, "denial": 0}, 2))

    def test_kubernetes_answer_is_never_served_after_its_ttl(self):
        self.cache(response("web.default.svc.cluster.local. 5 IN A 10.0.0.10"))
        self.ask("web.default.svc.cluster.local")
        self.clock.advance(4.5)
        self.assertEqual(shown(self.ask("web.default.svc.cluster.local"))[0][1], 1)
        self.clock.advance(0.5)
        self.ask("web.default.svc.cluster.local")
        self.assertEqual(len(self.backend.asked), 2)

    def test_miss_reply_carries_the_capped_ttl_on_every_record(self):
        self.cache(response("www.example.org. 300 IN CNAME web.example.org.", "web.example.org. 7200 IN A 192.0.2.1"),
                   "cache 60")
        self.assertEqual([r.ttl for r in self.ask().answers], [60, 60])

    def test_owner_names_take_the_askers_case_and_copies_are_fresh(self):
        self.cache(response("WWW.Example.org. 30 IN CNAME Web.Example.org.", "Web.Example.org. 30 IN A 192.0.2.1"))
        self.ask("WWW.Example.org")
        first, second = self.ask("www.example.ORG"), self.ask("www.example.ORG")
        self.assertEqual([r.name.name for r in first.answers], [b"www.example.ORG", b"Web.Example.org"])
        self.assertEqual(str(first.answers[0].payload.name), "Web.Example.org")
        first.answers[1].ttl = 12345
        self.assertIsNot(first.answers[1], second.answers[1])
        self.assertEqual(self.ask("www.example.org").answers[1].ttl, 30)

    def test_keepttl(self):
        self.cache(A_30, "cache 30 {\n  keepttl\n }")
        self.ask()
        self.clock.advance(20)
        self.assertEqual(shown(self.ask())[0][1], 30)
        self.clock.advance(10)
        self.ask()
        self.assertEqual(len(self.backend.asked), 2)

    def test_what_is_not_kept(self):
        for reply, text in [(servfail, "cache 30"), (response(rcode=tdns.ESERVER), "cache 30 {\n servfail 0\n }"),
                            (response("www.example.org. 0 IN A 192.0.2.1"), "cache 30 {\n success 100 30 0\n }"),
                            (response("www.example.org. 30 IN A 192.0.2.1", truncated=True), "cache 30")]:
            self.cache(reply, text)
            for _ in range(2):
                if reply is servfail:
                    self.assertRaises(PluginError, self.ask)
                else:
                    self.ask()
            self.assertEqual(len(self.backend.asked), 2, text)
            self.assertEqual(self.handler.entries, {"success": 0, "denial": 0})

    def test_servfail_is_kept_for_its_duration(self):
        self.cache(response(rcode=tdns.ESERVER))
        self.ask()
        self.clock.advance(4.9)
        self.assertEqual(self.ask().rcode, tdns.ESERVER)
        self.assertEqual((len(self.backend.asked), self.handler.hits["denial"]), (1, 1))
        self.clock.advance(0.1)
        self.ask()
        self.assertEqual(len(self.backend.asked), 2)

    def test_servfail_does_not_shadow_a_live_positive_answer(self):
        self.cache(A_30, "cache 30 {\n  prefetch 1\n }")
        self.ask()
        self.backend.reply = response(rcode=tdns.ESERVER)
        self.clock.advance(28)
        self.ask()  # prefetches, and keeps the SERVFAIL it gets
        self.assertEqual(self.handler.entries, {"success": 1, "denial": 1})
        self.assertEqual(shown(self.ask())[0][2], "192.0.2.1")

    def test_outside_zones_and_transfers_pass_through(self):
        self.cache(A_30, "cache 30 example.org")
        for name, rdtype in [("www.example.net", "A"), ("www.example.net", "A"), ("example.org", "AXFR"),
                             ("example.org", "AXFR")]:
            self.ask(name, rdtype)
        self.assertEqual(len(self.backend.asked), 4)
        self.assertEqual(self.handler.requests, 0)

    def test_disable(self):
        denial = response(rcode=tdns.ENAME, authority=[SOA.format(ttl=60, minimum=60)])
        for text, reply, kept in [("disable denial", denial, 0), ("disable success", A_30, 0),
                                  ("disable success example.net", A_30, 1),
                                  ("disable success www.example.org", A_30, 0), ("disable success", denial, 1)]:
            self.cache(reply, f"cache 30 {{\n {text}\n }}")
            self.ask()
            self.assertEqual(sum(self.handler.entries.values()), kept, (text, reply.rcode))

    def test_prefetch(self):
        # CoreDNS's prefetch_test.go: TTL, then (seconds later, served TTL, address, backend asked).
        rows = [
            (80, [(73, 7, "192.0.2.1", True), (80, 73, "192.0.2.2", False)]),
            (5, [(1, 4, "192.0.2.1", False), (4, 1, "192.0.2.1", True), (5, 4, "192.0.2.2", False)]),
        ]
        for ttl, steps in rows:
            self.cache(response(f"www.example.org. {ttl} IN A 192.0.2.1"), "cache {\n  prefetch 1\n }")
            self.ask()
            self.backend.reply = response(f"www.example.org. {ttl} IN A 192.0.2.2")
            for at, served_ttl, address, fetched in steps:
                asked = len(self.backend.asked)
                self.clock.advance(at - self.clock.seconds())
                self.assertEqual(shown(self.ask())[0][1:], (served_ttl, address), (ttl, at))
                self.assertEqual(len(self.backend.asked) - asked, int(fetched), (ttl, at))
            self.assertEqual(self.backend.asked[1], ("www.example.org.", "tcp"), "prefetch asks over TCP")

    def test_prefetch_counts_hits_without_gaps_of_duration(self):
        self.cache(response("www.example.org. 100 IN A 192.0.2.1"), "cache {\n  prefetch 2 10s\n }")
        for at, prefetched in [(0, 0), (50, 0), (91, 0), (95, 1)]:
            self.clock.advance(at - self.clock.seconds())
            self.ask()
            self.assertEqual(self.handler.prefetches, prefetched, f"at {at}s")

    def test_one_prefetch_at_a_time(self):
        pending = defer.Deferred()
        self.cache(A_30, "cache 30 {\n  prefetch 1\n }")
        self.ask()
        self.backend.reply = lambda request: pending
        self.clock.advance(29)
        self.ask()
        self.ask()
        self.assertEqual((len(self.backend.asked), self.handler.prefetches), (2, 1))
        pending.callback(A_2)
        self.assertEqual(shown(self.ask())[0][1:], (30, "192.0.2.2"))

    def test_refresh_asks_a_tcp_twin_of_the_query(self):
        request = make_request("WWW.example.org", do=True, cd=True)
        request.zone, request.resolver, request.depth = "example.org.", object(), 1
        twin = refresh_request(request)
        self.assertEqual((twin.qname, twin.dnssec_ok, twin.message.checkingDisabled, twin.protocol, twin.zone,
                          twin.resolver, twin.depth),
                         (b"WWW.example.org", True, 1, "tcp", "example.org.", request.resolver, 1))
        self.assertIsNot(twin.message, request.message)

    def test_serve_stale_immediate(self):
        self.cache(response("www.example.org. 60 IN A 192.0.2.1"), "cache {\n  serve_stale\n }")
        self.ask()
        self.backend.reply = servfail
        self.clock.advance(60 * 60)
        self.assertEqual(shown(self.ask())[0][1:], (0, "192.0.2.1"))
        self.assertEqual((len(self.backend.asked), self.handler.served_stale), (2, 1), "refreshed behind")
        self.backend.reply = A_2
        self.assertEqual(shown(self.ask())[0][1:], (0, "192.0.2.1"), "served stale while refreshing")
        self.assertEqual(shown(self.ask())[0][1:], (30, "192.0.2.2"))
        self.clock.advance(60 * 70)
        self.ask()
        self.assertEqual(self.handler.served_stale, 2)

    def test_serve_stale_response_ttl_and_failure_recheck(self):
        self.cache(A_30, "cache {\n  serve_stale 1h immediate 30s 10s\n }")
        self.ask()
        self.backend.reply = servfail
        self.clock.advance(40)
        self.assertEqual(shown(self.ask())[0][1], 30)
        self.ask()
        self.assertEqual(len(self.backend.asked), 2, "no second try within the recheck")
        self.clock.advance(10)
        self.ask()
        self.assertEqual(len(self.backend.asked), 3)

    def test_serve_stale_verify(self):
        denial = response(rcode=tdns.ENAME, authority=[SOA.format(ttl=60, minimum=60)])
        for refresh, served in [(servfail, (tdns.OK, 0)), (response(rcode=tdns.ESERVER), (tdns.OK, 0)),
                                (A_2, (tdns.OK, 30)), (denial, (tdns.ENAME, None))]:
            self.cache(A_30, "cache {\n  serve_stale 1h verify\n }")
            self.ask()
            self.backend.reply = refresh
            self.clock.advance(100)
            reply = self.ask()
            self.assertEqual((reply.rcode, reply.answers[0].ttl if reply.answers else None), served)
            self.assertEqual(self.handler.served_stale, int(served[1] == 0))

    def test_serve_stale_verify_timeout(self):
        pending = defer.Deferred()
        self.cache(A_30, "cache {\n  serve_stale 1h verify 100ms\n }")
        self.ask()
        self.backend.reply = lambda request: pending
        self.clock.advance(100)
        served = self.handler.serve(make_request("www.example.org"))
        self.assertNoResult(served)
        self.clock.advance(0.1)
        self.assertEqual(shown(self.successResultOf(served))[0][1:], (0, "192.0.2.1"))
        pending.callback(A_2)
        self.assertEqual(shown(self.ask())[0][1:], (30, "192.0.2.2"), "the late refresh was kept")

    def test_prefer_positive_keeps_serving_the_last_good_answer(self):
        denial = response(rcode=tdns.ENAME, authority=[SOA.format(ttl=300, minimum=300)])
        for policy, expected in [("", tdns.ENAME), ("serve_stale_policy prefer_positive", tdns.OK)]:
            self.cache(A_30, f"cache {{\n  serve_stale\n  {policy}\n }}")
            self.ask()
            self.backend.reply = denial
            self.clock.advance(100)
            self.assertEqual(self.ask().rcode, tdns.OK, "stale, refreshing behind")
            self.assertEqual(self.ask().rcode, expected, policy)
