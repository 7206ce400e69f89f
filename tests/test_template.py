"""
template through a running daemon, over real UDP: CoreDNS's rows of
C{plugin/template/setup_test.go}, C{template_test.go} and C{cname_test.go},
one test per row, with whoami after template standing for CoreDNS's
C{rcodeFallthrough} next handler (a fall through is whoami's answer), and
errors logging each failure.

Changed rather than skipped:
  - setup_test.go's C{var} and C{expr} rows: kubernetai refuses both
    options by name, the rows CoreDNS builds as well as those it refuses.
  - RcodeServFail asks IN A: CoreDNS's row asks class and type 0, which
    kubernetai's server REFUSES before any plugin.
  - mdMatch: there is no metadata plugin, so C{.Meta "bar"} is empty and the
    additional record's owner C{.example.} is no name: SERVFAIL, logged.
  - NonRR rows: the logged error is ours, not miekg/dns's C{not a TTL}.
  - TestMultiSection: the server block serves the root, and the first two
    templates name C{test.}, their zone (CoreDNS's test gives the handler
    names outside the block's zone).
  - cname_test.go: the CNAME's target is resolved through the daemon, here
    by forward; TestTruncatedCNAME's truncated lookup has no port, forward
    asking again over TCP what came truncated over UDP.
"""

from __future__ import annotations

from typing import NamedTuple

import dns.edns
import dns.rdatatype
from twisted.internet import defer
from twisted.trial import unittest

from tests.support import FakeUpstream, capture_logs, query, rcode_of, send, start_daemon
from tests.test_health_ready import Running
from tests.test_kubernetes_records import table
from tests.test_prometheus import scrape, value
from tests.test_small_plugins import SetupTable, block, records, setup_rows

IP_REGEX = '"(^|[.])ip-10-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]$"'
IP_ANSWER = '"{{ .Name }} 60 IN A 10.{{ .Group.b }}.{{ .Group.c }}.{{ .Group.d }}"'
SOA = '"invalid. 60 {{ .Class }} SOA ns.invalid. hostmaster.invalid. (1 60 60 60 60)"'
NOT_SUPPORTED = "is not supported by kubernetai"


def refused(line: int, message: str) -> str:
    return f"Corefile:{line}: plugin/template: {message}"


# setup_test.go TestSetup, TestSetupParse, TestSetupParseVar, TestSetupParseExpr, TestSetupParseLargeRegex
@table(setup_rows(
    (("template ANY ANY {", "rcode", "}"), refused(4, "expected at least 1 argument(s), got 0")),
    (("template ANY ANY {", "rcode NXDOMAIN", "}"), None),
    (("template",), refused(3, "expected at least 2 argument(s), got 0")),
    (("template X",), refused(3, "expected at least 2 argument(s), got 1")),
    (("template ANY",), refused(3, "expected at least 2 argument(s), got 1")),
    (("template ANY X",), refused(3, "invalid RR type X")),
    (("template ANY ANY .* {", "notavailable", "}"), refused(4, "unknown option 'notavailable': expected match, "
                                                                 "answer, additional, authority, rcode, ederror, "
                                                                 "fallthrough, upstream, var or expr")),
    (("template ANY ANY {", "answer", "}"), refused(4, "expected at least 1 argument(s), got 0")),
    (("template ANY ANY {", "additional", "}"), refused(4, "expected at least 1 argument(s), got 0")),
    (("template ANY ANY {", "rcode", "}"), refused(4, "expected at least 1 argument(s), got 0")),
    (("template ANY ANY {", "rcode UNDEFINED", "}"), refused(4, "unknown rcode UNDEFINED")),
    (("template ANY ANY {", 'answer "{{"', "}"),
     refused(4, "could not compile template: template: answer:1: unclosed action")),
    (("template ANY ANY {", 'additional "{{"', "}"),
     refused(4, "could not compile template: template: additional:1: unclosed action")),
    (("template ANY ANY {", 'authority "{{"', "}"),
     refused(4, "could not compile template: template: authority:1: unclosed action")),
    (("template ANY ANY {", 'answer "{{ notAFunction }}"', "}"),
     refused(4, 'could not compile template: template: answer:1: function "notAFunction" not defined')),
    (("template ANY ANY {", 'answer "{{ parseInt }}"', 'additional "{{ parseInt }}"', 'authority "{{ parseInt }}"',
      "}"), None),
    (("template ANY ANY (?P<x>",), None),
    (("template ANY ANY {", "", "}"), None),
    (("template ANY A example.com {",
      "match ip-(?P<a>[0-9]*)-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]com",
      'answer "{{ .Name }} A {{ .Group.a }}.{{ .Group.b }}.{{ .Group.c }}.{{ .Grup.d }}."', "fallthrough", "}"),
     None),
    (("template ANY AAAA example.com {",
      "match ip-(?P<a>[0-9]*)-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]com",
      'authority "example.com 60 IN SOA ns.example.com hostmaster.example.com (1 60 60 60 60)"', "fallthrough", "}"),
     None),
    (("template IN ANY example.com {", 'match "[.](example[.]com[.]dc1[.]example[.]com[.])$"', "rcode NXDOMAIN",
      'authority "{{ index .Match 1 }} 60 IN SOA ns.{{ index .Match 1 }} hostmaster.example.com (1 60 60 60 60)"',
      "fallthrough example.com", "}"), None),
    (("template IN A example {", "match ^ip-10-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]$",
      f"answer {IP_ANSWER}", "}", "template IN MX example. {",
      "match ^ip-10-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]$",
      'answer "{{ .Name }} 60 IN MX 10 {{ .Name }}"', f"additional {IP_ANSWER}", "}"), None),
    (("template IN A example {", "match ^ip0a(?P<b>[a-f0-9]{2})(?P<c>[a-f0-9]{2})(?P<d>[a-f0-9]{2})[.]example[.]$",
      'answer "{{ .Name }} 3600 IN A 10.{{ parseInt .Group.b 16 8 }}.{{ parseInt .Group.c 16 8 }}.'
      '{{ parseInt .Group.d 16 8 }}"', "}"), None),
    (("template IN MX example {", "match ^ip-10-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]$",
      'answer "{{ .Name }} 60 IN MX 10 {{ .Name }}"', f"additional {IP_ANSWER}",
      'authority  "example. 60 IN NS ns0.example."', 'authority  "example. 60 IN NS ns1.example."',
      'additional "ns0.example. 60 IN A 203.0.113.8"', 'additional "ns1.example. 60 IN A 198.51.100.8"', "}"), None),
    (("template ANY ANY invalid {", "rcode NXDOMAIN", f"authority {SOA}", 'ederror 21 "Blocked according to RFC2606"',
      "}"), None),
    (("template ANY ANY invalid {", "rcode NXDOMAIN", f"authority {SOA}",
      'ederror invalid "Blocked according to RFC2606"', "}"),
     refused(6, "error parsing extended DNS error code invalid: expected 0 to 65535")),
    (("template ANY ANY invalid {", "rcode NXDOMAIN", f"authority {SOA}", "ederror too many arguments", "}"),
     refused(6, "unexpected argument 'arguments': expected at most 2")),
    *[(("template ANY ANY example. {", first, *rest, "}"),
       refused(4, f"'{first.split()[0]}' (the expr language) {NOT_SUPPORTED}"))
      for first, *rest in (
          ("var a 1",), ("var a 1", "var b a + 1"), ("var a group('a')",), ("var",), ("var a",), ("var 1a 1",),
          ("var a-b 1",), ("var name 1",), ("var group 1",), ("var len 1",), ("var true 1",), ("var let 1",),
          ("var a 1 +",), ("var a invalid expression",), ("var a b + 1", "var b 1"), ("var a undefined",),
          ("var a 1", "var a 2"), ("expr name() == 'a.example.'",), ("expr incidr(client_ip(), '10.0.0.0/8')",),
          ("expr 1",), ("expr",), ("expr name() ==",), ("expr invalid expression",), ("expr undefined == 1",))],
    (("template ANY A example.com {", "match " + "a" * 10001, "}"),
     refused(4, "regex pattern too long: 10001 > 10000")),
    # Ours: what Go reads otherwise than Python, and what the interpreter does not run, refused at start-up.
    (("template ANY ANY {", "match [[:alpha:]]", "}"),
     refused(4, "could not parse regex: [[:alpha:]], POSIX character classes ([[:name:]]) are not supported by "
                "kubernetai")),
    (("template ANY ANY {", "match (a+)+b", "}"),
     refused(4, "could not parse regex: (a+)+b, a repeated group holds a repeat or '|': Python's backtracking could "
                "take exponential time on one name (Go's RE2 does not backtrack): not supported by kubernetai")),
    (("template ANY ANY {", "match (?=a)", "}"), refused(4, "could not parse regex: (?=a), invalid or unsupported "
                                                            "Perl syntax: (?=a")),
    (("template ANY ANY {", 'answer "{{ with .Name }}x{{ end }}"', "}"),
     refused(4, f"could not compile template: template: answer:1: {{{{with}}}} {NOT_SUPPORTED}")),
    (("template ANY ANY {", 'answer "{{ printf \\"%s\\" .Name }}"', "}"),
     refused(4, f'could not compile template: template: answer:1: function "printf" {NOT_SUPPORTED}')),
    (("template ANY ANY {", 'answer "{{ .Var.x }} A 1.2.3.4"', "}"),
     refused(4, f"could not compile template: .Var.x (variables of 'var') {NOT_SUPPORTED}")),
    (("template ANY ANY {", 'answer "{{ .Message.Answer }} A 1.2.3.4"', "}"),
     refused(4, f"could not compile template: .Message.Answer (field Answer) {NOT_SUPPORTED}")),
    (("template ANY ANY {", "rcode BADVERS", "}"), refused(4, f"rcode BADVERS {NOT_SUPPORTED} (it needs EDNS)")),
    (("template ANY ANY {", "match a {", "b", "}", "}"), refused(5, "unknown option 'b'")),
))
class TemplateSetupTests(SetupTable):
    pass


class HandlerRow(NamedTuple):
    qname: str
    qtype: int
    template: tuple[str, ...]  # the template directive's lines
    rcode: str  # "fallthrough": whoami answered
    answer: tuple[str, ...] = ()
    authority: tuple[str, ...] = ()
    additional: tuple[str, ...] = ()
    logged: str | None = None  # what errors logs of the failure


A, MX, ANY = dns.rdatatype.A, dns.rdatatype.MX, dns.rdatatype.ANY
IP_TEMPLATE = ("template ANY ANY {", f"match {IP_REGEX}", f"answer {IP_ANSWER}", "fallthrough", "}")


def any_any(*lines: str) -> tuple[str, ...]:
    return ("template ANY ANY {", *lines, "fallthrough", "}")


# template_test.go TestHandler
@table([
    HandlerRow("test.invalid.", A, any_any("rcode SERVFAIL"), "SERVFAIL"),
    HandlerRow("test.invalid.", A, IP_TEMPLATE, "fallthrough"),
    HandlerRow("test.example.", ANY, any_any('match "[.]example[.]$"',
                                             'answer "{{ .Name }} 60 IN TXT \\"{{ index .Match 2 }}\\""'),
               "SERVFAIL", logged='template: answer:1:26: executing "answer" at <index .Match 2>: error calling '
                                  'index: index out of range: 2'),
    HandlerRow("test.example.", ANY, any_any('match "[.]example[.]$"', 'answer "{{ .Name }}"'), "SERVFAIL",
               logged="no record type in 'test.example.'"),
    HandlerRow("test.example.", ANY, any_any('match "[.]example[.]$"', 'additional "{{ .Name }}"'), "SERVFAIL",
               logged="no record type in 'test.example.'"),
    HandlerRow("test.example.", ANY, any_any('match "[.]example[.]$"', 'authority "{{ .Name }}"'), "SERVFAIL",
               logged="no record type in 'test.example.'"),
    HandlerRow("test.example.", A, ("template IN A {", 'answer "{{ .Name }} 60 IN A {{ .Remote }}"', "fallthrough",
                                    "}"), "NOERROR", answer=("test.example. 60 IN A 127.0.0.1",)),
    HandlerRow("ip-10-95-12-8.example.", A, IP_TEMPLATE, "NOERROR",
               answer=("ip-10-95-12-8.example. 60 IN A 10.95.12.8",)),
    HandlerRow("ip0a5f0c09.example.", A, any_any(
        'match "^ip0a(?P<b>[a-f0-9]{2})(?P<c>[a-f0-9]{2})(?P<d>[a-f0-9]{2})[.]example[.]$"',
        'answer "{{ .Name }} 60 IN A 10.{{ parseInt .Group.b 16 8 }}.{{ parseInt .Group.c 16 8 }}.'
        '{{ parseInt .Group.d 16 8 }}"'), "NOERROR", answer=("ip0a5f0c09.example. 60 IN A 10.95.12.9",)),
    HandlerRow("test.example.", ANY, any_any('match "[.]example[.]$"',
                                             'answer "{{ .Name }} 60 IN TXT \\"{{ parseInt \\"gg\\" 16 8 }}\\""'),
               "SERVFAIL", logged='template: answer:1:26: executing "answer" at <parseInt "gg" 16 8>: error calling '
                                  'parseInt: strconv.ParseUint: parsing "gg": invalid syntax'),
    HandlerRow("ip-10-95-12-8.example.", MX, any_any(f"match {IP_REGEX}", 'answer "{{ .Name }} 60 MX 10 {{ .Name }}"',
                                                     f"additional {IP_ANSWER}"), "NOERROR",
               answer=("ip-10-95-12-8.example. 60 IN MX 10 ip-10-95-12-8.example.",),
               additional=("ip-10-95-12-8.example. 60 IN A 10.95.12.8",)),
    HandlerRow("ip-10-95-12-8.example.", A, any_any(f"match {IP_REGEX}", f"answer {IP_ANSWER}",
                                                    'additional "ns0.example. IN A 203.0.113.8"',
                                                    'authority "example. IN NS ns0.example.com."'), "NOERROR",
               answer=("ip-10-95-12-8.example. 60 IN A 10.95.12.8",),
               authority=("example. 3600 IN NS ns0.example.com.",),
               additional=("ns0.example. 3600 IN A 203.0.113.8",)),
    HandlerRow("test.invalid.", MX, any_any('match "[.]invalid[.]$"', "rcode NXDOMAIN",
                                            'answer "invalid. 60 {{ .Class }} SOA a.invalid. b.invalid. '
                                            '(1 60 60 60 60)"'), "NXDOMAIN",
               answer=("invalid. 60 IN SOA a.invalid. b.invalid. 1 60 60 60 60",)),
    HandlerRow("example.net.", A, any_any('match "example[.]net[.]"',
                                          'answer "example.net 60 IN CNAME target.example.com"'), "NOERROR",
               answer=("example.net. 60 IN CNAME target.example.com.",)),
    HandlerRow("ip-10-95-12-8.example.", A, any_any(
        f"match {IP_REGEX}", 'answer "{{ .Meta \\"foo\\" }}-{{ .Name }} 60 IN A 10.{{ .Group.b }}.{{ .Group.c }}.'
                             '{{ .Group.d }}"', 'additional "{{ .Meta \\"bar\\" }}.example. IN A 203.0.113.8"',
        'authority "example. IN NS {{ .Meta \\"bar\\" }}.example.com."'), "SERVFAIL", logged="bad name '.example.'"),
    HandlerRow("ip-10-95-12-8.example.", A, any_any(
        f"match {IP_REGEX}", 'answer "{{ .Meta \\"foofoo\\" }}{{ .Name }} 60 IN A 10.{{ .Group.b }}.{{ .Group.c }}.'
                             '{{ .Group.d }}"'), "NOERROR", answer=("ip-10-95-12-8.example. 60 IN A 10.95.12.8",)),
    HandlerRow("test.invalid.", A, any_any("rcode NXDOMAIN", f"authority {SOA}", 'ederror 21 "Blocked due to RFC2606"'),
               "NXDOMAIN", authority=("invalid. 60 IN SOA ns.invalid. hostmaster.invalid. 1 60 60 60 60",)),
])
class TemplateHandlerTests(unittest.TestCase):
    """Each row's template in a block with errors, then whoami; its question asked over UDP and TCP with EDNS."""

    @defer.inlineCallbacks
    def check(self, row: HandlerRow):
        logs = capture_logs(self)
        port = start_daemon(self, block("errors", *row.template))
        udp = yield query(port, row.qname, row.qtype, use_edns=0)
        reply = yield query(port, row.qname, row.qtype, tcp=True, use_edns=0)
        if row.rcode == "fallthrough":
            self.assertEqual((rcode_of(reply), reply.answer), ("NOERROR", []))
            self.assertIn(dns.rdatatype.SRV, [rrset.rdtype for rrset in reply.additional], "whoami answered")
            return
        self.assertEqual(reply.to_text().split("\n", 1)[1], udp.to_text().split("\n", 1)[1], "UDP and TCP alike")
        self.assertEqual(rcode_of(reply), row.rcode)
        self.assertEqual(records(reply.answer), list(row.answer))
        self.assertEqual(records(reply.authority), list(row.authority))
        self.assertEqual(records(reply.additional), list(row.additional))
        if row.rcode == "NOERROR" or row.rcode == "NXDOMAIN":
            self.assertTrue(reply.flags & dns.flags.AA)
        if row.logged is not None:
            self.assertTrue([line for line in logs if row.logged in line], logs)

    @defer.inlineCallbacks
    def test_extended_error(self):
        """The EDNS error row: Extended DNS Error 21 with its text, in the reply to a query with EDNS."""
        port = start_daemon(self, block(*self.rows[-1].template))
        reply = yield query(port, "test.invalid.", "A", use_edns=0)
        (option,) = [option for option in reply.options if option.otype == dns.edns.OptionType.EDE]
        self.assertEqual((option.code, option.text), (21, "Blocked due to RFC2606"))


MULTISECTION = (
    "template IN A test. {", "rcode REFUSED", "}",
    "template IN TXT test. {", 'match "$^"', "rcode SERVFAIL", "fallthrough", "}",
    "template CH TXT coredns.invalid {", 'answer "{{ .Name }} 60 CH TXT \\"test\\""', "}",
    "template IN A example {", "match ^ip-10-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]$",
    f"answer {IP_ANSWER}", "fallthrough", "}",
    "template IN MX example {", "match ^ip-10-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]$",
    'answer "{{ .Name }} 60 IN MX 10 {{ .Name }}"', f"additional {IP_ANSWER}", "}",
)


class MultiSectionRow(NamedTuple):
    qname: str
    qtype: int
    qclass: str
    rcode: str  # "fallthrough": whoami answered
    answer: tuple[str, ...] = ()


# template_test.go TestMultiSection
@table([
    MultiSectionRow("some.test.", A, "IN", "REFUSED"),
    MultiSectionRow("some.test.", dns.rdatatype.TXT, "IN", "fallthrough"),
    MultiSectionRow("coredns.invalid.", dns.rdatatype.TXT, "CH", "NOERROR", ('coredns.invalid. 60 CH TXT "test"',)),
    MultiSectionRow("ip-10-11-12-13.example.", A, "IN", "NOERROR", ("ip-10-11-12-13.example. 60 IN A 10.11.12.13",)),
    MultiSectionRow("ip-10-11-12-13.example.", MX, "IN", "NOERROR",
                    ("ip-10-11-12-13.example. 60 IN MX 10 ip-10-11-12-13.example.",)),
    MultiSectionRow("something.example.", A, "IN", "fallthrough"),
    MultiSectionRow("something.example.", MX, "IN", "SERVFAIL"),
])
class MultiSectionTests(unittest.TestCase):
    """One block of five templates: each question goes to the one of its zone, class and type."""

    @defer.inlineCallbacks
    def check(self, row: MultiSectionRow):
        port = start_daemon(self, block(*MULTISECTION))
        reply = yield send(port, dns.message.make_query(row.qname, row.qtype, row.qclass))
        if row.rcode == "fallthrough":
            self.assertEqual((rcode_of(reply), reply.answer), ("NOERROR", []))
            self.assertIn(dns.rdatatype.SRV, [rrset.rdtype for rrset in reply.additional], "whoami answered")
            return
        self.assertEqual((rcode_of(reply), records(reply.answer)), (row.rcode, list(row.answer)))


class CNAMETests(unittest.TestCase):
    """cname_test.go: a templated CNAME to an A question is followed through the daemon (here to forward)."""

    def setUp(self):
        self.upstream = FakeUpstream({("test.up.", "A"): ["1.2.3.4"]})
        self.corefile = block("template IN A test {", 'match "^cname\\.test\\.$"',
                              'answer "cname.test. 600 IN CNAME test.up"', "}",
                              f"forward . 127.0.0.1:{self.upstream.start(self)}")

    @defer.inlineCallbacks
    def test_followed(self):
        port = start_daemon(self, self.corefile)
        reply = yield query(port, "cname.test.", "A")
        self.assertEqual(records(reply.answer), ["cname.test. 600 IN CNAME test.up.", "test.up. 30 IN A 1.2.3.4"])
        self.assertFalse(reply.flags & dns.flags.TC)


class MetricsTests(unittest.TestCase):
    """coredns_template_* as CoreDNS labels them: matches, template failures, record failures."""

    @defer.inlineCallbacks
    def test_counted(self):
        running = Running(self, ".:0 {\n    bind 127.0.0.1\n    prometheus 127.0.0.1:0\n" + "".join(
            f"    {line}\n" for line in (
                "template IN A example {", f"match {IP_REGEX}", f"answer {IP_ANSWER}", "fallthrough", "}",
                "template IN TXT example {", 'answer "{{ index .Match 1 }}"', "}",
                "template IN MX example {", 'answer "{{ .Name }} MX x"', "}",
            )) + "    whoami\n}\n")
        port = yield running.dns_port()
        # The same question twice: each reply built anew and counted, none sent again from kept replies.
        for name, rdtype in (("ip-10-1-2-3.example.", "A"), ("ip-10-1-2-3.example.", "A"), ("x.example.", "TXT"),
                             ("x.example.", "MX"), ("other.example.", "A")):
            yield query(port, name, rdtype)
        samples = yield scrape(running)
        common = {"server": "dns://127.0.0.1:0", "zone": "example.", "view": "", "class": "IN"}
        self.assertEqual(value(samples, "coredns_template_matches_total", type="A", **common), 2)
        self.assertEqual(value(samples, "coredns_template_matches_total", type="TXT", **common), 1)
        self.assertEqual(value(samples, "coredns_template_template_failures_total", type="TXT", section="answer",
                               template="{{index .Match 1}}", **common), 1)
        self.assertEqual(value(samples, "coredns_template_rr_failures_total", type="MX", section="answer",
                               template="{{.Name}} MX x", **common), 1)


class TemplateDataTests(unittest.TestCase):
    """Ours: what templates see of the query: its name as miekg/dns prints it (lower case; .Question.Name keeps
    the case), the message's header and question, the class, type, zone and regex matched."""

    @defer.inlineCallbacks
    def test_escaped_name(self):
        port = start_daemon(self, block("template IN TXT example {",
                                        'answer "{{ .Name }} 60 IN TXT \\"{{ .Question.Name }}\\""', "}"))
        reply = yield query(port, "A\\ b\\(.Example.", "TXT")
        self.assertEqual(records(reply.answer), ['a\\032b\\(.example. 60 IN TXT "A b(.Example."'])

    @defer.inlineCallbacks
    def test_message_and_question(self):
        port = start_daemon(self, block(
            "template ANY ANY example {",
            'answer "{{ .Name }} 60 IN TXT \\"{{ .Message.RecursionDesired }} {{ range .Message.Question }}'
            '{{ .Qtype }}/{{ .Qclass }}{{ end }} {{ .Class }} {{ .Type }} {{ .Zone }} {{ .Regex }}\\""', "}"))
        reply = yield query(port, "x.example.", "TXT")
        self.assertEqual(records(reply.answer), ['x.example. 60 IN TXT "true 16/1 IN TXT example. .*"'])
