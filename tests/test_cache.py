"""
cache: its Corefile options as CoreDNS's setup.go reads them; the pure rules
(what is kept, under which key, for how long); the handler against a
scripted rest-of-chain on a Clock; and end to end through a running daemon,
with the cache's clock swapped for a Clock, against a fake upstream and a
test Kubernetes API server.
"""

import gc
import tracemalloc

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
from twisted.internet import defer, reactor, task
from twisted.names import dns as tdns
from twisted.trial import unittest
from zope.interface import implementer

from kubernetai.cache.config import parse_cache
from kubernetai.cache.entries import SHARDS, SWEEP_SECONDS, Entry, Table
from kubernetai.cache.rules import (
    DELEGATION, META, NODATA, NOERROR, NXDOMAIN, OTHER_ERROR, SERVER_ERROR, answers_question, cache_type, cacheable,
    compute_ttl, entry_duration, entry_key, has_expired_signature, minimal_ttl,
)
from kubernetai.chain import IHandler, PluginError, Response
from kubernetai.corefile import CorefileError, parse_corefile
from kubernetai.daemon import build_daemon
from kubernetai.message import decode_query
from kubernetai.plugins.cache import Cache, refresh_request
from kubernetai.apiserver.server import ApiServer
from tests.support import (
    FakeUpstream,
    build,
    one_test_per_row,
    query,
    rcode_of,
    send_raw_udp,
    wait_until,
    write_corefile,
)

SOA_RDATA = "ns.example.org. hostmaster.example.org. 1 7200 3600 1209600 {minimum}"
SOA = "example.org. {ttl} IN SOA " + SOA_RDATA
EXPIRED_RRSIG = ("miek.nl. 1800 IN RRSIG MX 8 2 1800 20160521031301 20160421031301 12051 miek.nl. "
                 "lAaEzB5teQLLKyDenatmyhca7blLRg9DoGNrhe3NReBZN5C5/pMQk8Jcu25hv2fW23/SLm5IC2zaDpp2Fzgm6Jf7e90/"
                 "yLcwQPuE7JjS55WMF+HELEh7Z6AEb+Iq4BWmNhUz6gPxD4d9eRMs7EAzk13o1NYi5/JhfL6IlaYyqkc=")


def parsed(lines="", args=""):
    """The CacheConfig of C{cache ARGS { LINES }} in a block for C{.}."""
    block = " {\n" + lines + "\n }" if lines else ""
    return build(f".:53 {{\n cache {args}{block}\n}}\n").handlers[0].config


def rr(text: str) -> tdns.RRHeader:
    """A record from a zone-file line, as twisted.names decodes it off the wire."""
    name, ttl, rdclass, rdtype, rdata = text.split(None, 4)
    message = dns.message.Message()
    message.answer.append(dns.rrset.from_text(name, int(ttl), rdclass, rdtype, rdata))
    decoded = tdns.Message()
    decoded.fromStr(message.to_wire())
    return decoded.answers[0]


def response(*answers, rcode=tdns.OK, authority=(), additional=(), truncated=False) -> Response:
    return Response(rcode=rcode, answers=[rr(line) for line in answers], authority=[rr(line) for line in authority],
                    additional=[rr(line) for line in additional], recursion_available=True, truncated=truncated)


def make_request(name, rdtype="A", do=False, cd=False):
    """The Request the server makes of a client's query."""
    message = dns.message.make_query(name, rdtype, want_dnssec=do)
    if cd:
        message.flags |= dns.flags.CD
    return decode_query(message.to_wire(), ("127.0.0.1", 5353), "udp")


def shown(reply: Response):
    """A Response's answer as (owner, TTL, rdata) lines."""
    return [(r.name.name.decode(), r.ttl, r.payload.dottedQuad() if r.type == tdns.A else str(r.payload.name))
            for r in reply.answers]


# cache ARGS { LINES } that parse, and the options they give.
CACHES = [
    # (args, block lines, {attribute: expected})
    ("", "", {"zones": (".",), "success": (10000, 3600, 5), "denial": (10000, 1800, 5), "prefetch": 0,
              "servfail_ttl": 5.0, "stale_up_to": 0.0, "keepttl": False}),
    ("example.nl", "success 10", {"zones": ("example.nl.",), "success": (10, 3600, 5)}),
    ("example.nl", "success 10 1800 30", {"success": (10, 1800, 30)}),
    ("", "success 10\n denial 10 15", {"success": (10, 3600, 5), "denial": (10, 15, 5)}),
    ("", "denial 10 15 2", {"denial": (10, 15, 2)}),
    ("25 example.nl", "success 10\n denial 10 15", {"success": (10, 25, 5), "denial": (10, 15, 5)}),
    ("25", "", {"success": (10000, 25, 5), "denial": (10000, 25, 5)}),
    ("aaa example.nl", "", {"zones": ("aaa.", "example.nl.")}),
    ("dns://Example.ORG:53 10.0.0.0/23", "", {"zones": ("example.org.", "0.0.10.in-addr.arpa.",
                                                       "1.0.10.in-addr.arpa.")}),
    ("", "prefetch 10", {"prefetch": 10, "prefetch_window": 60.0, "prefetch_percentage": 10}),
    ("", "prefetch 2 10m 20%", {"prefetch": 2, "prefetch_window": 600.0, "prefetch_percentage": 20}),
    ("", "serve_stale", {"stale_up_to": 3600.0, "verify_stale": False, "verify_timeout": 0.0, "stale_ttl": 0}),
    ("", "serve_stale 20m", {"stale_up_to": 1200.0}),
    ("", "serve_stale 1h20m", {"stale_up_to": 4800.0}),
    ("", "serve_stale 0", {"stale_up_to": 0.0}),
    ("", "serve_stale 0 VERIFY", {"stale_up_to": 0.0, "verify_stale": True}),
    ("", "serve_stale 0 immediate", {"verify_stale": False}),
    ("", "serve_stale 1h immediate 30s", {"stale_ttl": 30, "stale_recheck": 0.0}),
    ("", "serve_stale 1h immediate 30s 30s", {"stale_ttl": 30, "stale_recheck": 30.0}),
    ("", "serve_stale 1h immediate 4294967295s", {"stale_ttl": 4294967295}),
    ("", "serve_stale 1h verify 100ms", {"verify_stale": True, "verify_timeout": 0.1, "stale_ttl": 0}),
    ("", "serve_stale 1h verify 100ms 30s 250ms", {"verify_timeout": 0.1, "stale_ttl": 30,
                                                   "stale_recheck": 0.25}),
    ("", "serve_stale 1h verify 0 1m", {"verify_timeout": 0.0, "stale_ttl": 60}),
    ("", "serve_stale 1h verify 0 0 5m", {"stale_recheck": 300.0}),
    ("", "serve_stale\n serve_stale_policy prefer_positive", {"prefer_positive": True}),
    ("", "serve_stale_policy PREFER_POSITIVE\n serve_stale", {"prefer_positive": True}),
    ("", "servfail 1s", {"servfail_ttl": 1.0}),
    ("", "servfail 5m", {"servfail_ttl": 300.0}),
    ("", "servfail 0", {"servfail_ttl": 0.0}),
    ("", "disable denial example.com Example.org", {"denial_disabled": ("example.com.", "example.org."),
                                                    "success_disabled": ()}),
    ("", "disable success", {"success_disabled": (".",), "denial_disabled": ()}),
    ("", "keepttl", {"keepttl": True}),
]


# cache ARGS { LINES } refused, and what the error says.
REFUSED = [
    # (args, block lines, message after "Corefile:LINE: plugin/cache: ")
    ("", "success\n denial 10 15", "expected at least 1 argument(s), got 0"),
    ("", "success 15\n denial aaa", "invalid number 'aaa': expected an integer"),
    ("", "positive 15", "unknown option 'positive'"),
    ("0 example.nl", "", "cache TTL can not be zero or negative: 0"),
    ("-1 example.nl", "", "cache TTL can not be zero or negative: -1"),
    ("", "success 10 0", "cache TTL can not be zero or negative: 0"),
    ("", "denial 10 60 -1", "cache min TTL can not be negative: -1"),
    ("", "success 10 60 5 1", "unexpected argument '1': expected at most 3"),
    ("", "prefetch", "expected at least 1 argument(s), got 0"),
    ("", "prefetch -1", "prefetch amount should be positive: -1"),
    ("", "prefetch 0 blurp", "invalid duration 'blurp'"),
    ("", "prefetch 1 1m 20", "last character of percentage should be `%`, but is: '0'"),
    ("", "prefetch 1 1m 5%", "percentage should fall in range [10, 90]: 5"),
    ("", "prefetch 1 1m 91%", "percentage should fall in range [10, 90]: 91"),
    ("", "prefetch 1 1m 10% more", "unexpected argument 'more': expected at most 3"),
    ("", "serve_stale 20", "invalid duration '20'"),
    ("", "serve_stale -20m", "invalid negative duration for serve_stale"),
    ("", "serve_stale aa", "invalid duration 'aa'"),
    ("", "serve_stale 1m nono", "invalid value for serve_stale refresh mode: nono"),
    ("", "serve_stale 1h immediate 100ms", "serve_stale response TTL must be a whole number of seconds"),
    ("", "serve_stale 1h immediate 4294967296s", "serve_stale response TTL exceeds the DNS TTL range"),
    ("", "serve_stale 1h immediate -1s", "invalid negative response TTL for serve_stale"),
    ("", "serve_stale 1h immediate garbage", "invalid serve_stale response TTL: invalid duration 'garbage'"),
    ("", "serve_stale 1h immediate 30s 30s extra", "unexpected argument 'extra'"),
    ("", "serve_stale 1h immediate 30s 5m1s", "serve_stale failure recheck cannot exceed 5 minutes"),
    ("", "serve_stale 1h immediate 30s -1s", "invalid negative failure recheck for serve_stale"),
    ("", "serve_stale 1h verify -1ms", "invalid negative timeout for serve_stale verify"),
    ("", "serve_stale 1h verify garbage", "invalid serve_stale verify timeout: invalid duration 'garbage'"),
    ("", "serve_stale 1h verify 100ms 500ms", "serve_stale response TTL must be a whole number of seconds"),
    ("", "serve_stale 1h verify 100ms 30s 30s extra", "unexpected argument 'extra': expected at most 5"),
    ("", "serve_stale_policy prefer_positive", "serve_stale_policy requires serve_stale"),
    ("", "serve_stale\n serve_stale_policy", "expected at least 1 argument(s), got 0"),
    ("", "serve_stale\n serve_stale_policy invalid", "invalid serve_stale_policy: invalid"),
    ("", "serve_stale\n serve_stale_policy prefer_positive\n serve_stale_policy prefer_positive",
     "serve_stale_policy can only be specified once"),
    ("", "servfail", "expected at least 1 argument(s), got 0"),
    ("", "servfail 6m", "caching SERVFAIL responses over 5 minutes is not permitted"),
    ("", "servfail 20", "invalid duration '20'"),
    ("", "servfail -1s", "invalid negative ttl for servfail"),
    ("", "servfail 1m invalid", "unexpected argument 'invalid': expected at most 1"),
    ("", "disable", "expected at least 1 argument(s), got 0"),
    ("", "disable invalid example.com", 'cache type for disable must be "success" or "denial"'),
    ("", "keepttl arg1", "unexpected argument 'arg1': expected at most 0"),
    ("10.0.0.0/33", "", "invalid CIDR '10.0.0.0/33'"),
]


@one_test_per_row("good", CACHES, lambda row: f"{row[0]} {row[1]}")
@one_test_per_row("bad", REFUSED, lambda row: row[2])
class ParseTests(unittest.SynchronousTestCase):
    def check_good(self, row):
        args, lines, expected = row
        config = parsed(lines, args)
        for attribute, value in expected.items():
            got = getattr(config, attribute)
            if attribute in ("success", "denial"):
                got = (got.capacity, got.max_ttl, got.min_ttl)
            self.assertEqual(got, value, f"cache {args} {{ {lines} }}: {attribute}")

    def check_bad(self, row):
        args, lines, message = row
        with self.assertRaises(CorefileError, msg=f"cache {args} {{ {lines} }}") as raised:
            parsed(lines, args)
        self.assertIn(f": plugin/cache: {message}", str(raised.exception))

    def test_error_names_the_line_of_the_option(self):
        with self.assertRaises(CorefileError) as raised:
            build(".:53 {\n cache {\n  success 10\n  servfail 6m\n }\n}\n")
        self.assertTrue(str(raised.exception).startswith("Corefile:4: plugin/cache: caching SERVFAIL"))

    def test_once_per_server_block(self):
        with self.assertRaises(CorefileError) as raised:
            build(".:53 {\n cache\n cache\n}\n")
        self.assertIn("Corefile:3: plugin/cache: this plugin can only be used once per server block",
                      str(raised.exception))

    def test_zones_default_to_the_server_block(self):
        config = build("example.org:53 10.0.0.0/24:53 {\n cache\n}\n").handlers[0].config
        self.assertEqual(config.zones, ("example.org.", "0.0.10.in-addr.arpa."))

    def test_runs_after_log_before_forward(self):
        config = build(".:53 {\n forward . 127.0.0.1\n cache 30\n log\n}\n")
        self.assertEqual([handler.name for handler in config.handlers], ["log", "cache", "forward"])


class RuleTests(unittest.SynchronousTestCase):
    def test_compute_ttl(self):
        for message_ttl, min_ttl, max_ttl, expected in [(1800, 300, 3600, 1800), (299, 300, 3600, 300),
                                                         (299, 0, 3600, 299), (3601, 300, 3600, 3600)]:
            self.assertEqual(compute_ttl(message_ttl, min_ttl, max_ttl), expected)

    def test_minimal_ttl(self):
        mixed = response("a.example.org. 300 IN CNAME b.example.org.", "b.example.org. 30 IN A 192.0.2.1",
                         additional=["ns.example.org. 20 IN A 192.0.2.53"])
        denial = response(rcode=tdns.ENAME, authority=[SOA.format(ttl=60, minimum=300)])
        self.assertEqual(minimal_ttl(mixed, NOERROR, 3600), 20)
        self.assertEqual(minimal_ttl(mixed, NOERROR, 10), 10)
        self.assertEqual(minimal_ttl(denial, NXDOMAIN, 1800), 60, "the SOA record's TTL, not its MINIMUM")
        self.assertEqual(minimal_ttl(response(), NOERROR, 3600), 5, "no records: the fail-safe 5s")
        self.assertEqual(minimal_ttl(mixed, DELEGATION, 3600), 5)

    def test_entry_duration(self):
        defaults, capped = parsed(), parsed(args="30")
        rows = [
            (defaults, NOERROR, response("a.example.org. 7200 IN A 192.0.2.1"), 3600),
            (defaults, NOERROR, response("a.example.org. 2 IN A 192.0.2.1"), 5),
            (capped, NOERROR, response("a.example.org. 300 IN A 192.0.2.1"), 30),
            (defaults, NXDOMAIN, response(rcode=tdns.ENAME, authority=[SOA.format(ttl=3600, minimum=60)]), 1800),
            (defaults, NODATA, response(authority=[SOA.format(ttl=60, minimum=3600)]), 60),
            (defaults, SERVER_ERROR, response(rcode=tdns.ESERVER), 5),
            (parsed("servfail 0"), SERVER_ERROR, response(rcode=tdns.ESERVER), 0),
            (parsed("success 100 3600 0"), NOERROR, response("a.example.org. 0 IN A 192.0.2.1"), 0),
            (parsed("denial 100 3600 600"), NXDOMAIN, response(rcode=tdns.ENAME, authority=[SOA.format(
                ttl=60, minimum=60)]), 600),
        ]
        for config, kind, reply, expected in rows:
            self.assertEqual(entry_duration(kind, reply, config), expected, (kind, reply))

    def test_what_is_kept(self):
        soa = [SOA.format(ttl=3600, minimum=3600)]
        rows = [
            ("mIEK.nL.", "MX", False, response("miek.nl. 3601 IN MX 1 aspmx.l.google.com."), NOERROR, True),
            ("miek.nl.", "MX", False, response("miek.nl. 1800 IN MX 1 mx.miek.nl.", truncated=True), NOERROR, False),
            ("example.org.", "A", False, response(rcode=tdns.ENAME, authority=soa), NXDOMAIN, True),
            ("1.1.168.192.in-addr.arpa.", "PTR", False, response(rcode=tdns.ENAME), NXDOMAIN, False),
            ("example.org.", "A", False, response(authority=soa), NODATA, True),
            ("example.org.", "A", False, response(rcode=tdns.ESERVER), SERVER_ERROR, True),
            ("example.org.", "A", False, response(rcode=tdns.ENOTIMP), SERVER_ERROR, True),
            ("example.org.", "A", False, response(rcode=tdns.EREFUSED), OTHER_ERROR, False),
            ("example.org.", "A", False, response("example.org. 60 IN A 192.0.2.1", rcode=tdns.ENAME),
             OTHER_ERROR, False),
            ("miek.nl.", "MX", True, response("miek.nl. 3600 IN MX 1 mx.miek.nl.", EXPIRED_RRSIG), OTHER_ERROR, False),
            ("miek.nl.", "MX", False, response("miek.nl. 3600 IN MX 1 mx.miek.nl.", EXPIRED_RRSIG), NOERROR, True),
            ("example.org.", "A", False, response(authority=["example.org. 60 IN NS ns.example.org."]),
             DELEGATION, True),
            ("example.org.", "AXFR", False, response("example.org. 60 IN A 192.0.2.1"), META, False),
            ("alias.example.org.", "A", False, response("alias.example.org. 3600 IN CNAME t1.example.net.",
                                                        "t1.example.net. 3600 IN CNAME t2.example.net."),
             NOERROR, False),
            ("alias.example.org.", "A", False, response("alias.example.org. 3600 IN CNAME t.example.net.",
                                                        "t.example.net. 3600 IN AAAA ::1"), NOERROR, False),
            ("alias.example.org.", "A", False, response("alias.example.org. 3600 IN CNAME t.example.net.",
                                                        "unrelated.example.net. 3600 IN A 192.0.2.1"), NOERROR, False),
            ("alias.example.org.", "A", False, response("alias.example.org. 3600 IN CNAME t.example.net.",
                                                        authority=soa), NODATA, True),
            ("alias.example.org.", "MX", False, response("alias.example.org. 3600 IN CNAME t.example.net.",
                                                         "T.example.net. 3600 IN MX 10 mail.example.net."),
             NOERROR, True),
            ("alias.example.org.", "ANY", False, response("alias.example.org. 3600 IN CNAME t.example.net."),
             NOERROR, True),
            ("whoami.example.", "A", False, response(additional=["whoami.example. 0 IN A 192.0.2.9"]), NOERROR, True),
        ]
        for name, rdtype, do, reply, kind, kept in rows:
            request = make_request(name, rdtype, do=do)
            got = cache_type(request, reply, now=1500000000)
            self.assertEqual((got, cacheable(got, request, reply)), (kind, kept), (name, rdtype, reply))

    def test_answers_question_follows_one_cname_chain(self):
        request = make_request("a.example.org.")
        rows = [
            (["a.example.org. 60 IN CNAME b.example.org.", "b.example.org. 60 IN A 192.0.2.1"], True),
            (["a.example.org. 60 IN CNAME b.example.org.", "a.example.org. 60 IN CNAME c.example.org.",
              "b.example.org. 60 IN A 192.0.2.1"], False),
            (["a.example.org. 60 IN CNAME b.example.org.", "b.example.org. 60 IN CNAME a.example.org."], False),
            (["a.example.org. 60 IN CNAME b.example.org.", "A.example.org. 60 IN CNAME B.example.org.",
              "b.example.org. 60 IN A 192.0.2.1"], True),
        ]
        for answers, expected in rows:
            self.assertEqual(answers_question(request, response(*answers)), expected, answers)
        cname = response("a.example.org. 60 IN CNAME b.example.org.")
        self.assertTrue(answers_question(make_request("a.example.org.", "CNAME"), cname))

    def test_expired_signature(self):
        reply = response(EXPIRED_RRSIG)
        self.assertTrue(has_expired_signature(reply, now=1500000000))
        self.assertFalse(has_expired_signature(reply, now=1462000000))

    def test_key_folds_case_and_keeps_do_and_cd_apart(self):
        keys = {entry_key(make_request(name, do=do, cd=cd))
                for name in ("www.example.org", "WWW.Example.ORG") for do in (False, True) for cd in (False, True)}
        self.assertEqual(len(keys), 4)
        self.assertNotEqual(entry_key(make_request("a.example.")), entry_key(make_request("a.example.", "AAAA")))

    def test_table_is_256_shards_of_a_share_each(self):
        self.assertEqual([Table(capacity).shard_size for capacity in (10, 1024, 2048, 10000)], [4, 4, 8, 39])
        table = Table(1024)
        keys = same_shard_keys(5)
        evicted = [table.add(key, cached(1)) for key in keys]
        self.assertEqual((evicted, len(table)), ([0] * 4 + [1], 4))
        self.assertIsNotNone(table.get(keys[-1]))
        self.assertEqual(table.add(keys[-1], cached(1)), 0, "replacing a held key evicts nothing")

    def test_table_shard_holds_its_share_of_the_bytes(self):
        small, large = cached(1), cached(100)
        table = Table(10000, max_bytes=SHARDS * large.footprint())
        keys = same_shard_keys(4)
        self.assertEqual([table.add(key, small) for key in keys[:3]], [0, 0, 0])
        self.assertEqual(table.add(keys[3], large), 3, "the small ones made room for the large one")
        self.assertEqual((len(table), table.bytes()), (1, large.footprint()))
        table.remove(keys[3])
        self.assertEqual((len(table), table.bytes()), (0, 0))

    def test_entry_footprint_is_what_a_table_holds_for_it_or_up_to_twice(self):
        for records in (1, 10, 100):
            table = Table(10000)
            gc.collect()
            tracemalloc.start()
            for number in range(200):
                table.add((f"headless-{number}.ns-001.svc.cluster.local.", 1, 1, False, False), cached(records, number))
            gc.collect()
            held = tracemalloc.get_traced_memory()[0] / len(table)
            tracemalloc.stop()  # before any assertion: a failed one must not leave it tracing the suite
            footprint = cached(records).footprint()
            self.assertTrue(held <= footprint <= 2 * held, (records, held, footprint))

    def test_table_bytes_bound_holds_the_memory(self):
        limit = 16 * 2**20
        table = Table(10000, max_bytes=limit)
        gc.collect()
        tracemalloc.start()
        self.addCleanup(tracemalloc.stop)
        for number in range(1000):
            table.add(("headless-%d.example." % number, 1, 1, False, False), cached(100, number))
        gc.collect()
        self.assertLess(tracemalloc.get_traced_memory()[0], limit)

    def test_expired_entries_are_dropped_a_shard_at_a_time(self):
        table = Table(10000)
        keys = [("name-%d.example." % number, 1, 1, False, False) for number in range(2000)]
        for number, key in enumerate(keys):
            table.add(key, cached(1, stored=0.0, ttl=30 if number % 2 else 300))
        for tick in range(SHARDS):
            table.drop_useless(40.0 + tick * SWEEP_SECONDS / SHARDS, stale_up_to=0)
        self.assertEqual(len(table), 1000, "the entries of 30 s went, those of 300 s stay")
        self.assertEqual(table.bytes(), 1000 * cached(1).footprint())

    def test_entries_served_stale_are_kept_for_the_window(self):
        table = Table(10000)
        key = ("stale.example.", 1, 1, False, False)
        table.add(key, cached(1, stored=0.0, ttl=30))
        table.drop_useless(100.0, stale_up_to=3600)
        self.assertIsNotNone(table.get(key), "within serve_stale's hour")
        table.next_sweep, table.swept = 0.0, Table.shard_of(key)
        table.drop_useless(3700.0, stale_up_to=3600)
        self.assertIsNone(table.get(key))


def cached(records: int, number: int = 0, stored: float = 0.0, ttl: int = 30) -> Entry:
    """A cache entry of C{records} A records, as a headless service's answer holds them."""
    owner = f"headless-{number}.ns-001.svc.cluster.local".encode()
    answers = tuple(tdns.RRHeader(owner, tdns.A, tdns.IN, ttl, tdns.Record_A(f"10.128.{number % 256}.{index % 256}", ttl),
                                  auth=True) for index in range(records))
    return Entry(tdns.OK, (answers, (), ()), False, stored, ttl)


def same_shard_keys(count, rdtype="A"):
    """Keys of C{count} names C{hostN.example.org.} that fall in one shard."""
    shards = {}
    for number in range(100000):
        key = entry_key(make_request(f"host{number}.example.org", rdtype))
        shards.setdefault(Table.shard_of(key), []).append(key)
        if len(shards[Table.shard_of(key)]) == count:
            return shards[Table.shard_of(key)]
    raise AssertionError("no shard filled")


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
        self.upstream_port = self.upstream.start(self)

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
