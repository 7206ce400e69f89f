"""
rewrite's edns0, ttl, rcode and cname rules: CoreDNS's rows (rewrite_test,
ttl_test, rcode_test, cname_target_test, edns0_test), one test per row,
through a running daemon that forwards to an upstream which records the
options of every query it gets and answers from zone-file lines.
"""

import socket

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
from twisted.internet import defer
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from kubernetai.plugins.rewrite.edns0 import go_uint
from tests.support import FakeUpstream, one_test_per_row, query, rcode_of, refusal, start_daemon


class ZoneUpstream(FakeUpstream):
    """An upstream answering from zone-file lines ({(name, type): [line]}, TTLs and all) with the rcode
    C{rcodes} gives the name (else NOERROR, or NXDOMAIN without lines), recording the EDNS options of
    every query (None: no OPT record) and setting TC on the names in C{truncated}."""

    def __init__(self, lines) -> None:
        super().__init__()
        self.lines = lines
        self.options: list = []
        self.truncated: set[str] = set()

    def reply_to(self, packet: bytes, transport: str) -> bytes:
        asked = dns.message.from_wire(packet)
        self.options.append(None if asked.opt is None else options_of(asked))
        question = asked.question[0]
        name, qtype = question.name.to_text().lower(), dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, qtype, transport))
        reply = dns.message.make_response(asked)
        reply.flags |= dns.flags.RA
        for line in self.lines.get((name, qtype), ()):
            owner, ttl, rdclass, rdtype, rdata = line.split(None, 4)
            reply.answer.append(dns.rrset.from_text(owner, int(ttl), rdclass, rdtype, rdata))
        if name in self.rcodes:
            reply.set_rcode(self.rcodes[name])
        elif not reply.answer:
            reply.set_rcode(dns.rcode.NXDOMAIN)
        if name in self.truncated:
            reply.flags |= dns.flags.TC
        return reply.to_wire(max_size=65535)


def options_of(message) -> list[tuple[int, bytes]]:
    return [(int(option.otype), option.to_wire()) for option in message.options]


def answer_lines(reply) -> list[str]:
    return [f"{rrset.name} {rrset.ttl} {dns.rdatatype.to_text(rrset.rdtype)} {item.to_text()}"
            for rrset in reply.answer for item in rrset]


class DaemonCase(unittest.TestCase):
    """A daemon with the rewrite lines of a row, forwarding to a ZoneUpstream."""

    def daemon(self, lines, records, host="127.0.0.1") -> int:
        self.upstream = ZoneUpstream(records)
        port = self.upstream.start(self)
        body = "\n".join(f" {line}" for line in lines)
        return start_daemon(self, f".:0 {{\n bind {host}\n{body}\n forward . 127.0.0.1:{port}\n}}\n")


# CoreDNS's TestNewRule rows (rewrite_test.go): the arguments after "rewrite", and whether they are refused.
# Left out: its two rows with bytes that are not UTF-8, which kubernetai's Corefile reader refuses first.
NEW_RULE = [
    ("", True), ("foo", True), ("name", True), ("name a.com", True), ("name a.com b.com c.com", True),
    ("name a.com b.com", False), ("name exact a.com b.com", False), ("name prefix a.com b.com", False),
    ("name suffix a.com b.com", False), ("name substring a.com b.com", False),
    ("name regex ([a])\\.com new-{1}.com", False), ("name regex ([a]\\.com new-{1}.com", True),
    ("name regex (dns)\\.(core)\\.(rocks) {2}.{1}.{3} answer name (core)\\.(dns)\\.(rocks) {2}.{1}.{3}", False),
    ("name regex (adns)\\.(core)\\.(rocks) {2}.{1}.{3} answer name (core)\\.(adns)\\.(rocks) {2}.{1}.{3} "
     "too.long way.too.long", True),
    ("name regex (bdns)\\.(core)\\.(rocks) {2}.{1}.{3} NoAnswer name (core)\\.(bdns)\\.(rocks) {2}.{1}.{3}", True),
    ("name regex (cdns)\\.(core)\\.(rocks) {2}.{1}.{3} answer ttl (core)\\.(cdns)\\.(rocks) {2}.{1}.{3}", True),
    ("name substring fcore.dns.rocks dns.fcore.rocks answer name (fcore)\\.(dns)\\.(rocks) {2}.{1}.{3}", False),
    ("name substring a.com b.com c.com", True),
    ("type", True), ("type a", True), ("type any a a", True), ("type any a", False), ("type XY WV", True),
    ("type ANY WV", True), ("class", True), ("class IN", True), ("class ch in in", True), ("class ch in", False),
    ("class XY WV", True), ("class IN WV", True),
    ("edns0", True), ("edns0 unknown-rule-type set", True), ("edns0 unknown-rule-type unset", True),
    ("edns0 local", True), ("edns0 local set", True), ("edns0 local set 0xffee", True),
    ("edns0 local set invalid-uint abcdefg", True), ("edns0 local set 65518 abcdefg", False),
    ("edns0 local set 0xffee abcdefg", False), ("edns0 local set 0xffee abcdefg revert", False),
    ("edns0 local append 0xffee abcdefg", False), ("edns0 local append 0xffee abcdefg revert", False),
    ("edns0 local replace 0xffee abcdefg", False), ("edns0 local replace 0xffee abcdefg revert", False),
    ("edns0 local unset 0xffee", False), ("edns0 local unset 0xffee abcdefg", True),
    ("edns0 local unset 0xffee revert", True), ("edns0 local foo 0xffee abcdefg", True),
    ("edns0 local set 0xffee 0xabcdefg", True), ("edns0 nsid set junk", True), ("edns0 nsid set", False),
    ("edns0 nsid set revert", False), ("edns0 nsid append", False), ("edns0 nsid append revert", False),
    ("edns0 nsid replace", False), ("edns0 nsid replace revert", False), ("edns0 nsid unset", False),
    ("edns0 nsid unset revert", True), ("edns0 nsid foo", True),
    ("edns0 local set invalid-uint {qname}", True), ("edns0 local set 0xffee {dummy}", True),
    *[(f"edns0 local {action} 0xffee {variable}", False)
      for action in ("set", "append", "replace")
      for variable in ("{qname}", "{qtype}", "{client_ip}", "{client_port}", "{protocol}", "{server_ip}",
                       "{server_port}", "{server_port} revert")],
    ("edns0 local append 0xffee {dummy}", True), ("edns0 local replace 0xffee {dummy}", True),
    ("edns0 subnet set -1 56", True), ("edns0 subnet set 24 -56", True), ("edns0 subnet set 33 56", True),
    ("edns0 subnet set 24 129", True), ("edns0 subnet set 24 56", False), ("edns0 subnet set 24 56 revert", False),
    ("edns0 subnet append 24 56", False), ("edns0 subnet append 24 56 72", True),
    ("edns0 subnet append 24 56 revert", False), ("edns0 subnet replace 24 56", False),
    ("edns0 subnet replace 24 56 revert", False), ("edns0 subnet unset", False),
    ("edns0 subnet unset 24 56", True), ("edns0 subnet unset revert", True),
    ("unknown-action name a.com b.com", True), ("stop name a.com b.com", False),
    ("continue name a.com b.com", False), ("unknown-action type any a", True), ("stop type any a", False),
    ("continue type any a", False), ("unknown-action class ch in", True), ("stop class ch in", False),
    ("continue class ch in", False), ("unknown-action edns0 local set 0xffee abcedef", True),
    ("stop edns0 local set 0xffee abcdefg", False), ("unknown-action edns0 nsid set", True),
    ("stop edns0 nsid set", False), ("continue edns0 nsid set", False),
    ("unknown-action edns0 local set 0xffee {qname}", True),
    *[(f"{mode} edns0 local set 0xffee {variable}", False)
      for mode in ("stop", "continue")
      for variable in ("{qname}", "{qtype}", "{client_ip}", "{client_port}", "{protocol}", "{server_ip}",
                       "{server_port}")],
    ("unknown-action edns0 subnet set 24 64", True),
    *[(f"{mode} edns0 subnet {action}", False)
      for mode in ("stop", "continue") for action in ("set 24 56", "append 24 56", "replace 24 56", "unset")],
    # TestNewTTLRule (ttl_test.go).
    *[(f"{mode} ttl {args}", refused) for mode in ("stop", "continue") for args, refused in [
        ("srv1.coredns.rocks 10", False), ("exact srv1.coredns.rocks 15", False), ("prefix coredns.rocks 20", False),
        ("suffix srv1 25", False), ("substring coredns 30", False), ("regex (srv1)\\.(coredns)\\.(rocks) 35", False),
        ("srv1.coredns.rocks 12345678901234567890", True), ("srv1.coredns.rocks coredns.rocks", True),
        ("srv1.coredns.rocks #1", True), ("range.coredns.rocks 1-2", False), ("ceil.coredns.rocks -2", False),
        ("floor.coredns.rocks 1-", False), ("range.coredns.rocks 2-2", False), ("invalid.coredns.rocks -", True),
        ("invalid.coredns.rocks 2-1", True), ("invalid.coredns.rocks 5-10-20", True)]],
    # TestNewRCodeRule (rcode_test.go).
    *[(f"{mode} rcode {args}", refused) for mode, args, refused in [
        ("stop", "numeric.rcode.coredns.rocks 2 0", False), ("stop", "too.few.rcode.coredns.rocks 2", True),
        ("stop", "exact too.many.rcode.coredns.rocks 2 1 0", True),
        ("stop", "exact match.string.rcode.coredns.rocks SERVFAIL NOERROR", False),
        ("continue", "regex (regex)\\.rcode\\.(coredns)\\.(rocks) FORMERR NOERROR", False),
        ("stop", "invalid.rcode.coredns.rocks random nothing", True)]],
    # TestCNameTargetRewrite's rules and TestNewCNAMERuleNormalization (cname_target_test.go).
    ("continue cname exact def.example.com xyz.example.com", False),
    ("continue cname prefix chat.openai.com bard.google.com", False), ("continue cname suffix uvw. xyz.", False),
    ("continue cname substring efgh zzzz.www", False),
    ("continue cname regex (.*)\\.web\\.(.*)\\.site\\. {1}.webapp.{2}.org.", False),
    ("stop cname exact newyork.foo.com vpce-123.amazonaws.com", False), ("cname a", True),
    ("cname fuzzy a b", True), ("cname regex ( b", True),
]

# What kubernetai says, CoreDNS's words: (the arguments after "rewrite", the error).
ERRORS = [
    ("edns0 local set zz abc", 'strconv.ParseUint: parsing "zz": invalid syntax'),
    ("edns0 local set 0x10000 abc", 'strconv.ParseUint: parsing "0x10000": value out of range'),
    ("edns0 local set 0xffee 0xabcdefg", "encoding/hex: invalid byte: U+0067 'g'"),
    ("edns0 local set 0xffee 0xabc", "encoding/hex: odd length hex string"),
    ("edns0 local set 0xffee {dummy}", 'unsupported variable name "{dummy}"'),
    ("edns0 local foo 0xffee abc", 'invalid action: "foo"'),
    ("edns0 bogus set", 'invalid rule type "bogus"'),
    ("edns0 subnet set 33 56", "invalid IPv4 bit mask length 33"),
    ("edns0 subnet set 24 129", "invalid IPv6 bit mask length 129"),
    ("edns0 nsid set junk", "EDNS0 NSID rules can accept no more than one arg"),
    ("edns0 local unset 0xffee revert", "local unset action requires exactly two arguments"),
    ("ttl a", "too few (1) arguments for a ttl rule"),
    ("ttl a 2-1", "invalid TTL '2-1' for a ttl rule"),
    ("ttl fuzzy a 5", "ttl rule supports only exact, prefix, suffix, substring, and regex name matching"),
    ("ttl regex " + "a" * 10001 + " 300", "regex pattern too long in a ttl rule: 10001 > 10000"),
    ("ttl regex ( 300", "invalid regex pattern in a ttl rule: ("),
    ("rcode a 2", "too few (2) arguments for a rcode rule"),
    ("rcode a random 0", "invalid matching RCODE 'random' for a rcode rule"),
    ("rcode a 0 24", "invalid replacement RCODE '24' for a rcode rule"),
    ("rcode regex " + "a" * 10001 + " 2 0", "regex pattern too long in a rcode rule: 10001 > 10000"),
    ("cname a", "too few (1) arguments for a cname rule"),
    ("cname fuzzy a b", "unknown cname rewrite type: fuzzy"),
    ("cname regex " + "a" * 10001 + " b", "regex pattern too long in a cname rule: 10001 > 10000"),
]

# Go's strconv.ParseUint(text, 0, 16): (text, value or None for an error).
UINTS = [("65518", 65518), ("0xffee", 0xFFEE), ("0XFFEE", 0xFFEE), ("010", 8), ("0o17", 15), ("0b101", 5),
         ("1_000", 1000), ("0", 0), ("-1", None), ("+1", None), ("65536", None), ("0x", None), ("08", None),
         ("1__0", None), ("", None)]


@one_test_per_row("new_rule", NEW_RULE, lambda row: row[0] or "nothing")
@one_test_per_row("errors", ERRORS, lambda row: row[0][:40])
@one_test_per_row("uints", UINTS, lambda row: row[0] or "empty")
class ParseTests(unittest.SynchronousTestCase):
    def check_new_rule(self, row):
        args, refused = row
        text = f".:53 {{\n rewrite {args}\n whoami\n}}\n"
        if refused:
            self.assertIn("Corefile:2: plugin/rewrite: ", refusal(text))
        else:
            self.assertNotIn("rewrite", _error_of(text))

    def check_errors(self, row):
        args, message = row
        self.assertIn(f"Corefile:2: plugin/rewrite: {message}", refusal(f".:53 {{\n rewrite {args}\n}}\n"))

    def check_uints(self, row):
        text, value = row
        if value is None:
            self.assertRaises(ValueError, go_uint, text, 16)
        else:
            self.assertEqual(go_uint(text, 16), value)


def _error_of(text: str) -> str:
    try:
        refusal(text)
    except AssertionError:
        return ""
    return refusal(text)


TTL_RULES = ["stop ttl srv1.coredns.rocks 1", "stop ttl exact srv15.coredns.rocks 15", "stop ttl prefix srv30 30",
             "stop ttl suffix 45.coredns.rocks 45", "stop ttl substring rv50 50",
             "stop ttl regex (srv10)\\.(coredns)\\.(rocks) 10", "stop ttl regex (srv20)\\.(coredns)\\.(rocks) 20",
             "stop ttl range.example.com. 30-300", "stop ttl ceil.example.com. -11",
             "stop ttl floor.example.com. 5-"]

# doTTLTests's rows: (name, type, the upstream's answer, the TTL every answer record has).
TTLS = [
    ("srv1.coredns.rocks.", "A", ["srv1.coredns.rocks. 5 IN A 10.0.0.1"], 1),
    ("srv15.coredns.rocks.", "A", ["srv15.coredns.rocks. 5 IN A 10.0.0.15"], 15),
    ("srv30.coredns.rocks.", "A", ["srv30.coredns.rocks. 5 IN A 10.0.0.30"], 30),
    ("srv45.coredns.rocks.", "A", ["srv45.coredns.rocks. 5 IN A 10.0.0.45"], 45),
    ("srv50.coredns.rocks.", "A", ["srv50.coredns.rocks. 5 IN A 10.0.0.50"], 50),
    ("srv10.coredns.rocks.", "A", ["srv10.coredns.rocks. 5 IN A 10.0.0.10"], 10),
    ("xmpp.coredns.rocks.", "SRV", ["xmpp.coredns.rocks. 5 IN SRV 0 100 100 srvxmpp.coredns.rocks."], 5),
    ("srv15.coredns.rocks.", "HINFO", ['srv15.coredns.rocks. 5 IN HINFO INTEL-64 "RHEL 7.5"'], 15),
    ("srv20.coredns.rocks.", "A", ["srv20.coredns.rocks. 5 IN A 10.0.0.22", "srv20.coredns.rocks. 5 IN A 10.0.0.23"],
     20),
    ("range.example.com.", "A", ["range.example.com. 5 IN A 10.0.0.1"], 30),
    ("range.example.com.", "A", ["range.example.com. 55 IN A 10.0.0.1"], 55),
    ("range.example.com.", "A", ["range.example.com. 500 IN A 10.0.0.1"], 300),
    ("ceil.example.com.", "A", ["ceil.example.com. 5 IN A 10.0.0.1"], 5),
    ("ceil.example.com.", "A", ["ceil.example.com. 15 IN A 10.0.0.1"], 11),
    ("floor.example.com.", "A", ["floor.example.com. 0 IN A 10.0.0.1"], 5),
    ("floor.example.com.", "A", ["floor.example.com. 30 IN A 10.0.0.1"], 30),
]


@one_test_per_row("ttl", TTLS, lambda row: f"{row[0]} {row[1]} {row[3]}")
class TtlTests(DaemonCase):
    @defer.inlineCallbacks
    def check_ttl(self, row):
        name, rdtype, lines, ttl = row
        port = self.daemon([f"rewrite {rule}" for rule in TTL_RULES], {(name, rdtype): lines})
        reply = yield query(port, name, rdtype)
        self.assertEqual(rcode_of(reply), "NOERROR")
        self.assertEqual({rrset.ttl for rrset in reply.answer}, {ttl})
        self.assertEqual(sum(len(rrset) for rrset in reply.answer), len(lines))


# (rule, the upstream's rcode for the name, the rcode the client gets): TestRCodeRewrite, the empty-reply rows
# of TestRCodeRewriteEmptyResponse, and names the rules leave alone.
RCODES = [
    ("rcode exact srv1.coredns.rocks SERVFAIL FORMERR", "srv1.coredns.rocks.", dns.rcode.SERVFAIL, "FORMERR"),
    *[(f"{mode} rcode exact srv1.coredns.rocks {name} NOERROR", "srv1.coredns.rocks.", code, "NOERROR")
      for mode in ("stop", "continue")
      for name, code in [("FORMERR", dns.rcode.FORMERR), ("SERVFAIL", dns.rcode.SERVFAIL),
                         ("REFUSED", dns.rcode.REFUSED), ("NOTIMP", dns.rcode.NOTIMP)]],
    ("rcode regex (.*)\\.coredns\\.rocks SERVFAIL NOERROR", "a.coredns.rocks.", dns.rcode.SERVFAIL, "NOERROR"),
    ("rcode regex (.*)\\.coredns\\.rocks 2 0", "a.coredns.rocks.", dns.rcode.SERVFAIL, "NOERROR"),
    ("rcode regex (.*)\\.coredns\\.rocks 2 0", "a.coredns.rock.", dns.rcode.SERVFAIL, "SERVFAIL"),
    ("rcode suffix coredns.rocks NXDOMAIN REFUSED", "x.coredns.rocks.", dns.rcode.NXDOMAIN, "REFUSED"),
    ("rcode suffix coredns.rocks NXDOMAIN REFUSED", "x.coredns.rocks.", dns.rcode.SERVFAIL, "SERVFAIL"),
]


@one_test_per_row("rcode", RCODES, lambda row: f"{row[0]} {row[3]}")
class RcodeTests(DaemonCase):
    @defer.inlineCallbacks
    def check_rcode(self, row):
        rule, name, upstream_rcode, expected = row
        port = self.daemon([f"rewrite {rule}"], {})
        self.upstream.rcodes[name] = upstream_rcode
        reply = yield query(port, name, "A")
        self.assertEqual(rcode_of(reply), expected)

    @defer.inlineCallbacks
    def test_reply_with_records(self):
        """TestRCodeRewrite: a SERVFAIL that carries a record becomes FORMERR, the record kept."""
        port = self.daemon(["rewrite rcode exact srv1.coredns.rocks SERVFAIL FORMERR"],
                           {("srv1.coredns.rocks.", "A"): ["srv1.coredns.rocks. 5 IN A 10.0.0.1"]})
        self.upstream.rcodes["srv1.coredns.rocks."] = dns.rcode.SERVFAIL
        reply = yield query(port, "srv1.coredns.rocks.", "A")
        self.assertEqual((rcode_of(reply), answer_lines(reply)), ("FORMERR", ["srv1.coredns.rocks. 5 A 10.0.0.1"]))

    @defer.inlineCallbacks
    def test_failure_of_the_chain_gets_the_rule(self):
        """A query the rest of the chain fails to answer (here: nothing after rewrite) gets the rcode rules too."""
        port = start_daemon(self, ".:0 {\n bind 127.0.0.1\n rewrite rcode srv1.coredns.rocks SERVFAIL NOERROR\n}\n")
        reply = yield query(port, "srv1.coredns.rocks.", "A")
        self.assertEqual(rcode_of(reply), "NOERROR")
        reply = yield query(port, "srv2.coredns.rocks.", "A")
        self.assertEqual(rcode_of(reply), "SERVFAIL")


CNAME_RULES = ["continue cname exact def.example.com xyz.example.com",
               "continue cname prefix chat.openai.com bard.google.com", "continue cname suffix uvw. xyz.",
               "continue cname substring efgh zzzz.www",
               "continue cname regex (.*)\\.web\\.(.*)\\.site\\. {1}.webapp.{2}.org.",
               "continue cname exact music.truncated.spotify.com. music.truncated.spotify.com.",
               "continue cname suffix prod. staging."]

# MockedUpstream's answers to the rewritten targets.
CNAME_TARGETS = {
    ("xyz.example.com.", "A"): ["xyz.example.com. 3600 IN A 3.4.5.6"],
    ("xyz.example.com.", "AAAA"): ["xyz.example.com. 3600 IN AAAA 3a01:7e00::f03c:91ff:fe79:234c"],
    ("bard.google.com.cdn.cloudflare.net.", "A"): ["bard.google.com.cdn.cloudflare.net. 1800 IN A 9.7.2.1"],
    ("www.hosting.xyz.", "A"): ["www.hosting.xyz. 500 IN A 20.30.40.50"],
    ("abcd.zzzz.www.pqrst.", "A"): ["abcd.zzzz.www.pqrst. 120 IN A 101.20.5.1",
                                    "abcd.zzzz.www.pqrst. 120 IN A 101.20.5.2"],
    ("orders.webapp.eu.org.", "A"): ["orders.webapp.eu.org. 120 IN A 20.0.0.9"],
    ("music.truncated.spotify.com.", "A"): ["music.truncated.spotify.com. 120 IN A 10.1.0.9"],
    ("intermediate-2.staging.", "A"): ["intermediate-2.staging. 200 IN CNAME final.staging.net.",
                                       "final.staging.net. 120 IN A 5.6.7.8"],
}

# doTestCNameTargetTests's rows: (name, type, the first answer, the answer the client gets, TC).
CNAMES = [
    ("abc.example.com.", "A",
     ["abc.example.com. 5 IN CNAME def.example.com.", "def.example.com. 5 IN A 1.2.3.4"],
     ["abc.example.com. 5 CNAME xyz.example.com.", "xyz.example.com. 3600 A 3.4.5.6"], False),
    ("abc.example.com.", "AAAA",
     ["abc.example.com. 5 IN CNAME def.example.com.", "def.example.com. 5 IN AAAA 2a01:7e00::f03c:91ff:fe79:234c"],
     ["abc.example.com. 5 CNAME xyz.example.com.", "xyz.example.com. 3600 AAAA 3a01:7e00::f03c:91ff:fe79:234c"],
     False),
    ("chat.openai.com.", "A",
     ["chat.openai.com. 20 IN CNAME chat.openai.com.cdn.cloudflare.net.",
      "chat.openai.com.cdn.cloudflare.net. 30 IN A 23.2.1.2", "chat.openai.com.cdn.cloudflare.net. 30 IN A 24.6.0.8"],
     ["chat.openai.com. 20 CNAME bard.google.com.cdn.cloudflare.net.",
      "bard.google.com.cdn.cloudflare.net. 1800 A 9.7.2.1"], False),
    ("coredns.io.", "A",
     ["coredns.io. 100 IN CNAME www.hosting.uvw.", "www.hosting.uvw. 200 IN A 7.2.3.4"],
     ["coredns.io. 100 CNAME www.hosting.xyz.", "www.hosting.xyz. 500 A 20.30.40.50"], False),
    ("core.dns.rocks.", "A",
     ["core.dns.rocks. 200 IN CNAME abcd.efgh.pqrst.", "abcd.efgh.pqrst. 100 IN A 200.30.45.67"],
     ["core.dns.rocks. 200 CNAME abcd.zzzz.www.pqrst.", "abcd.zzzz.www.pqrst. 120 A 101.20.5.1",
      "abcd.zzzz.www.pqrst. 120 A 101.20.5.2"], False),
    ("order.service.eu.", "A",
     ["order.service.eu. 200 IN CNAME orders.web.eu.site.", "orders.web.eu.site. 50 IN A 10.10.15.1"],
     ["order.service.eu. 200 CNAME orders.webapp.eu.org.", "orders.webapp.eu.org. 120 A 20.0.0.9"], False),
    ("music.spotify.com.", "A",
     ["music.spotify.com. 200 IN CNAME music.truncated.spotify.com."],
     ["music.spotify.com. 200 CNAME music.truncated.spotify.com.",
      "music.truncated.spotify.com. 120 A 10.1.0.9"], True),
    ("cname-chain.org.", "A",
     ["cname-chain.org. 200 IN CNAME intermediate-1.com.", "intermediate-1.com. 200 IN CNAME intermediate-2.prod.",
      "intermediate-2.prod. 200 IN CNAME final.prod.net.", "final.prod.net. 120 IN A 1.2.3.4"],
     ["cname-chain.org. 200 CNAME intermediate-1.com.", "intermediate-1.com. 200 CNAME intermediate-2.staging.",
      "intermediate-2.staging. 200 CNAME final.staging.net.", "final.staging.net. 120 A 5.6.7.8"], False),
]


@one_test_per_row("cname", CNAMES, lambda row: f"{row[0]} {row[1]}")
class CnameTests(DaemonCase):
    @defer.inlineCallbacks
    def check_cname(self, row):
        name, rdtype, first, expected, truncated = row
        port = self.daemon([f"rewrite {rule}" for rule in CNAME_RULES], {**CNAME_TARGETS, (name, rdtype): first})
        self.upstream.truncated.add("music.truncated.spotify.com.")
        reply = yield query(port, name, rdtype)
        self.assertEqual(rcode_of(reply), "NOERROR")
        self.assertEqual(answer_lines(reply), expected)
        self.assertEqual(bool(reply.flags & dns.flags.TC), truncated)

    @defer.inlineCallbacks
    def test_failed_lookup_keeps_the_answer(self):
        """TestCNAMETargetRewrite_upstreamFailurePaths: the new target's lookup fails, the CNAME stays."""
        port = self.daemon(["rewrite cname exact bad.target. good.target."],
                           {("bad.test.", "A"): ["bad.test. 60 IN CNAME bad.target."]})
        self.upstream.rcodes["good.target."] = dns.rcode.SERVFAIL
        reply = yield query(port, "bad.test.", "A")
        self.assertEqual(answer_lines(reply), ["bad.test. 60 CNAME good.target."])


L, N, S = 0xFFEE, 3, 8


def local(data: bytes, code: int = L) -> tuple[int, bytes]:
    return code, data


def subnet(family: int, bits: int, address: bytes) -> tuple[int, bytes]:
    return S, bytes([0, family, bits, 0]) + address


NSID = (N, b"")
LOOPBACK_24 = subnet(1, 24, bytes([127, 0, 0]))

# (rules, the client's options (None: no OPT), what the upstream gets, what the client gets back):
# TestRewriteEDNS0Local, TestEdns0MultiRule, TestRewriteEDNS0Revert, TestRewriteEDNS0Unset, the two
# ScrubWriter tests of edns0_test.go; the client is 127.0.0.1 (CoreDNS's test writer is 10.240.0.1).
EDNS = [
    (["local set 0xffee 0xabcdef"], None, [local(b"\xab\xcd\xef")], None),
    (["local append 0xffee abcdefghijklmnop"], None, [local(b"abcdefghijklmnop")], None),
    (["local replace 0xffee abcdefghijklmnop"], None, [], None),
    (["nsid set"], None, [NSID], None),
    (["nsid append"], None, [NSID], None),
    (["nsid replace"], None, [], None),
    (["local set 0xffee 0xabcdef"], [], [local(b"\xab\xcd\xef")], [local(b"\xab\xcd\xef")]),
    (["nsid set"], [], [NSID], [NSID]),
    # TestEdns0MultiRule.
    (["local replace 0xffee abcdef", "local set 0xffee fedcba"], None, [local(b"fedcba")], None),
    (["local replace 0xffee abcdef", "local set 0xffee fedcba"], [local(b"foobar")], [local(b"abcdef")],
     [local(b"abcdef")]),
    (["local replace 0xffee abcdef revert", "local set 0xffee fedcba revert"], [], [local(b"fedcba")], []),
    (["local replace 0xffee abcdef revert", "local set 0xffee fedcba revert"], [local(b"foobar")],
     [local(b"abcdef")], [local(b"foobar")]),
    (["local replace 0xffee {qname}", "local set 0xffee {qtype}"], [], [local(b"\x00\x01")], [local(b"\x00\x01")]),
    (["local replace 0xffee {qname}", "local set 0xffee {qtype}"], [local(b"foobar")], [local(b"example.com.")],
     [local(b"example.com.")]),
    (["local replace 0xffee {qname} revert", "local set 0xffee {qtype} revert"], [], [local(b"\x00\x01")], []),
    (["local replace 0xffee {qname} revert", "local set 0xffee {qtype} revert"], [local(b"foobar")],
     [local(b"example.com.")], [local(b"foobar")]),
    (["nsid replace", "nsid set"], [], [NSID], [NSID]),
    (["nsid replace", "nsid set"], [local(b"foobar")], [local(b"foobar"), NSID], [NSID]),
    (["nsid replace", "nsid set"], [NSID], [NSID], [NSID]),
    (["nsid replace revert", "nsid set revert"], [], [NSID], []),
    (["nsid replace revert", "nsid set revert"], [local(b"foobar")], [local(b"foobar"), NSID], []),
    (["nsid replace revert", "nsid set revert"], [NSID], [NSID], [NSID]),
    (["subnet replace 32 56", "subnet set 0 56"], [], [subnet(1, 0, b"")], []),
    (["subnet replace 32 56", "subnet set 0 56"], [subnet(1, 0, b"")], [subnet(1, 32, bytes([127, 0, 0, 1]))],
     []),
    (["subnet replace 32 56 revert", "subnet set 0 56 revert"], [], [subnet(1, 0, b"")], []),
    (["subnet replace 32 56 revert", "subnet set 0 56 revert"], [subnet(1, 0, b"")],
     [subnet(1, 32, bytes([127, 0, 0, 1]))], []),
    # TestRewriteEDNS0Subnet (IPv4).
    (["subnet set 24 56"], [], [LOOPBACK_24], []),
    (["subnet set 32 56"], [], [subnet(1, 32, bytes([127, 0, 0, 1]))], []),
    (["subnet set 0 56"], [], [subnet(1, 0, b"")], []),
    # TestRewriteEDNS0Revert.
    (["local set 0xffee 0xabcdef revert"], [], [local(b"\xab\xcd\xef")], []),
    (["local append 0xffee abcdefghijklmnop revert"], [], [local(b"abcdefghijklmnop")], []),
    (["local replace 0xffee abcdefghijklmnop revert"], [], [], []),
    (["nsid set revert"], [], [NSID], []),
    (["nsid append revert"], [], [NSID], []),
    (["nsid replace"], [], [], []),
    (["local set 0xffee 0xabcd revert"], [local(b"\xab\xcd\xef", 0xFFED)],
     [local(b"\xab\xcd\xef", 0xFFED), local(b"\xab\xcd")], []),
    (["local replace 0xffee abcdefghijklmnop"], [local(b"\xab\xcd\xef", 0xFFEF)], [local(b"\xab\xcd\xef", 0xFFEF)],
     []),
    # TestRewriteEDNS0Unset.
    (["local unset 0xffee"], None, [], None),
    (["local unset 0xffee"], [local(b"\xab\xcd\xef")], [], []),
    (["local unset 0xffed"], [local(b"\xab\xcd\xef")], [local(b"\xab\xcd\xef")], []),
    (["nsid unset"], [NSID], [], []),
    (["nsid unset"], None, [], None),
    (["subnet unset"], [subnet(1, 0, b"")], [], []),
    (["subnet unset"], None, [], None),
    (["nsid unset"], [local(b"foobar"), NSID], [local(b"foobar")], []),
    (["local unset 0xffee"], [local(b"foobar"), NSID], [NSID], []),
    (["subnet unset"], [local(b"foobar"), NSID], [local(b"foobar"), NSID], []),
    # edns0_test.go: a set with revert leaks nothing; a client's own option is given back as it was.
    (["local set 0xffee 0xabcdef revert"], [], [local(b"\xab\xcd\xef")], []),
    (["local set 0xffee 0xabcdef revert"], [local(b"\x11\x11\x11")], [local(b"\xab\xcd\xef")],
     [local(b"\x11\x11\x11")]),
    # miekg/dns reads NSID as its own type: a local rule for code 3 appends, never replaces.
    (["local set 3 abc"], [NSID], [NSID, (N, b"abc")], [NSID, (N, b"abc")]),
]


def edns_label(row) -> str:
    rules, sent, _, _ = row
    return f"{' + '.join(rules)} from {'none' if sent is None else len(sent)}"


@one_test_per_row("edns", EDNS, edns_label)
class Edns0Tests(DaemonCase):
    @defer.inlineCallbacks
    def check_edns(self, row):
        rules, sent, upstream_gets, client_gets = row
        port = self.daemon([f"rewrite stop edns0 {rule}" for rule in rules],
                           {("example.com.", "A"): ["example.com. 30 IN A 127.0.0.1"]})
        options = None if sent is None else [dns.edns.GenericOption(code, data) for code, data in sent]
        message = dns.message.make_query("example.com.", "A", use_edns=None if sent is None else 0,
                                         options=options)
        reply = yield deferToThread(dns.query.udp, message, "127.0.0.1", timeout=5, port=port)
        self.assertEqual(rcode_of(reply), "NOERROR")
        self.assertEqual(self.upstream.options, [upstream_gets])
        self.assertEqual(None if reply.opt is None else options_of(reply), client_gets)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# TestRewriteEDNS0LocalVariable: (variable, the data the upstream gets; a function of (client port, server port)).
# kubernetai has no metadata plugin: a metadata label is never set, and the rule does not match.
VARIABLES = [
    ("{qname}", lambda client, server: b"example.com."),
    ("{qtype}", lambda client, server: b"\x00\x01"),
    ("{client_ip}", lambda client, server: bytes([127, 0, 0, 1])),
    ("{client_port}", lambda client, server: client.to_bytes(2, "big")),
    ("{protocol}", lambda client, server: b"udp"),
    ("{server_port}", lambda client, server: server.to_bytes(2, "big")),
    ("{server_ip}", lambda client, server: bytes([127, 0, 0, 1])),
    ("{test/label}", None),
    ("{test/empty}", None),
]


@one_test_per_row("variable", VARIABLES, lambda row: row[0])
class VariableTests(DaemonCase):
    @defer.inlineCallbacks
    def check_variable(self, row):
        variable, data = row
        port = self.daemon([f"rewrite edns0 local set 0xffee {variable}"],
                           {("example.com.", "A"): ["example.com. 30 IN A 127.0.0.1"]})
        client_port = free_udp_port()
        message = dns.message.make_query("example.com.", "A")
        yield deferToThread(dns.query.udp, message, "127.0.0.1", timeout=5, port=port, source="127.0.0.1",
                            source_port=client_port)
        expected = None if data is None else [local(data(client_port, port))]
        self.assertEqual(self.upstream.options, [expected])


# TestRewriteEDNS0Subnet (IPv6), the client ::1 (CoreDNS's test writer is fe80::42:ff:feca:4c65).
SUBNETS6 = [
    ("24 56", subnet(2, 56, bytes(7))),
    ("24 128", subnet(2, 128, bytes(15) + b"\x01")),
    ("24 0", subnet(2, 0, b"")),
]


@one_test_per_row("subnet6", SUBNETS6, lambda row: row[0])
class Subnet6Tests(DaemonCase):
    @defer.inlineCallbacks
    def check_subnet6(self, row):
        bits, expected = row
        try:
            port = self.daemon([f"rewrite edns0 subnet set {bits}"],
                               {("example.com.", "A"): ["example.com. 30 IN A 127.0.0.1"]}, host="::1")
        except Exception as error:
            raise unittest.SkipTest(f"no IPv6 loopback: {error}") from None
        message = dns.message.make_query("example.com.", "A")
        yield deferToThread(dns.query.udp, message, "::1", timeout=5, port=port)
        self.assertEqual(self.upstream.options, [[expected]])


class LocalAnswerTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_readme_example(self):
        """The README's example: whoami's reply carries the option the rule set on the query."""
        port = start_daemon(self, ".:0 {\n bind 127.0.0.1\n rewrite edns0 local set 0xffee 0x61626364\n whoami\n}\n")
        reply = yield query(port, "example.org.", "A", use_edns=0)
        self.assertEqual(options_of(reply), [local(b"abcd")])
        reply = yield query(port, "example.org.", "A")
        self.assertIsNone(reply.opt)
