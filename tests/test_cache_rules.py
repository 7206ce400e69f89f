"""
cache, with no reactor: its Corefile options as CoreDNS's setup.go reads
them, and the pure rules (what is kept, under which key, for how long) and
tables.
"""

import gc
import tracemalloc

from twisted.names import dns as tdns
from twisted.trial import unittest

from kubernetai.cache.entries import SHARDS, SWEEP_SECONDS, Table
from kubernetai.cache.rules import (
    DELEGATION,
    META,
    NODATA,
    NOERROR,
    NXDOMAIN,
    OTHER_ERROR,
    SERVER_ERROR,
    answers_question,
    cache_type,
    cacheable,
    compute_ttl,
    entry_duration,
    entry_key,
    has_expired_signature,
    minimal_ttl,
)
from kubernetai.corefile import CorefileError
from tests.support import SOA, build, cached, make_request, one_test_per_row, response, same_shard_keys


EXPIRED_RRSIG = ("miek.nl. 1800 IN RRSIG MX 8 2 1800 20160521031301 20160421031301 12051 miek.nl. "
                 "lAaEzB5teQLLKyDenatmyhca7blLRg9DoGNrhe3NReBZN5C5/pMQk8Jcu25hv2fW23/SLm5IC2zaDpp2Fzgm6Jf7e90/"
                 "yLcwQPuE7JjS55WMF+HELEh7Z6AEb+Iq4BWmNhUz6gPxD4d9eRMs7EAzk13o1NYi5/JhfL6IlaYyqkc=")


def parsed(lines="", args=""):
    """The CacheConfig of C{cache ARGS { LINES }} in a block for C{.}."""
    block = " {\n" + lines + "\n }" if lines else ""
    return build(f".:53 {{\n cache {args}{block}\n}}\n").handlers[0].config


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
