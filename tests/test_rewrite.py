"""
rewrite: the Corefile syntax and CoreDNS's errors, the rules applied to a
question in order (stop and continue), the answer mapped back, and end to
end a daemon forwarding rewritten queries to a scripted upstream.
"""

import dns.message
import dns.rdataclass
import dns.rdatatype
from twisted.internet import defer
from twisted.names import dns as tdns
from twisted.trial import unittest

from kubernetai.chain import PluginError, Response
from kubernetai.corefile import CorefileError
from kubernetai.plugins.rewrite import Question, is_domain_name, revert, rewrite_question
from tests.support import FakeUpstream, build, query, rcode_of, start_daemon


def rules_of(*lines: str):
    body = "\n".join(f" {line}" for line in lines)
    return build(f".:53 {{\n{body}\n whoami\n}}\n").handlers[0].rules


def rewritten(lines, name, qtype=tdns.A, qclass=tdns.IN):
    """The question after C{lines}' rules, and the answer rules' count (None: no rule matched)."""
    question = Question(name, qtype, qclass)
    answer_rules = rewrite_question(rules_of(*lines), question)
    return (question.name, question.qtype, question.qclass), None if answer_rules is None else len(answer_rules)


def reply_lines(section) -> list[str]:
    """A reply section as zone-file lines without TTLs."""
    return [f"{rrset.name} {dns.rdatatype.to_text(rrset.rdtype)} {item.to_text()}" for rrset in section
            for item in rrset]


class ParseTests(unittest.SynchronousTestCase):
    def test_good(self):
        for line in [
            "rewrite name a.com b.com",
            "rewrite stop name regex foo bar answer name bar foo",
            "rewrite continue name suffix .a.com .b.com answer auto",
            "rewrite name prefix foo bar answer auto answer value (.*)\\.b\\. {1}.a.",
            "rewrite name regex (.*)\\.a\\.com {1}.b.com answer name (.*)\\.b\\.com {1}.a.com value x y",
            "rewrite stop {\n  name regex (.*)\\.a\\.com {1}.b.com\n  answer name (.*)\\.b\\.com {1}.a.com\n }",
            "rewrite type ANY hinfo",
            "rewrite continue class in ch",
            "rewrite stop type A aaaa",
        ]:
            self.assertEqual(len(rules_of(line)), 1, line)

    def test_errors_as_coredns_words_them(self):
        for line, message in [
            ("rewrite", "no rule type specified for rewrite"),
            ("rewrite name", "too few arguments for a name rule"),
            ("rewrite stop", "stop rule must begin with a rule type"),
            ("rewrite continue", "continue rule must begin with a rule type"),
            ("rewrite answer name a b", "response rewrites must begin with a name rule"),
            ("rewrite foo a b", 'invalid rule type "foo"'),
            ("rewrite stop foo a b", 'invalid rule type "stop"'),
            ("rewrite type A", "type rules must have exactly two arguments"),
            ("rewrite class IN CH HS", "class rules must have exactly two arguments"),
            ("rewrite type A BOGUS", 'invalid type "BOGUS"'),
            ("rewrite class in xx", 'invalid class "XX"'),
            ("rewrite name fuzzy a b", "name rule supports only exact, prefix, suffix, substring, and regex name "
                                       "matching, received: fuzzy"),
            ("rewrite stop name regex [bad[ bar answer name bar foo", "invalid regex matching pattern: [bad["),
            ("rewrite name regex (a+)+b x", "invalid regex matching pattern: (a+)+b: a repeated group holds a repeat"),
            ("rewrite name regex a {1}", "the rewrite regex pattern ({1}) uses more subexpressions than its "
                                         "corresponding matching regex pattern (a)"),
            ("rewrite name regex a b answer", "invalid arguments for regex rule"),
            ("rewrite name regex a b extra stuff", "exceeded the number of arguments for a non-answer rule "
                                                   "argument for regex rule"),
            ("rewrite name regex a b answer auto answer", "type missing for answer rule for regex rule"),
            ("rewrite name regex a b answer bogus x y", 'invalid type "bogus" for answer rule for regex rule'),
            ("rewrite name regex a b answer name x", "name answer rule for regex rule: 2 arguments required"),
            ("rewrite name regex a b answer value ( x", "value answer rule for regex rule: invalid regex "
                                                        "matching pattern: ("),
            ("rewrite name regex (a) b answer auto answer name x y", "auto name answer rule cannot be combined "
                                                                     "with explicit name anwer rules"),
            ("rewrite name regex a c answer name " + "x" * 10001 + " y",
             "name answer rule for regex rule: regex pattern too long: 10001 > 10000"),
        ]:
            with self.assertRaises(CorefileError, msg=line) as raised:
                build(f".:53 {{\n {line}\n}}\n")
            self.assertIn(f"Corefile:2: plugin/rewrite: {message}", str(raised.exception), line)

    def test_plan_line_per_rule(self):
        config = build(".:53 {\n rewrite name a.com b.com\n rewrite continue type ANY HINFO\n whoami\n}\n")
        self.assertIn("rewrite stop name a.com b.com", config.plan)
        self.assertIn("rewrite continue type ANY HINFO", config.plan)


class RuleTests(unittest.SynchronousTestCase):
    """The question after the rules, and how many answer rules map the reply back (CoreDNS's name_test)."""

    def test_name_kinds(self):
        for line, asked, expected in [
            ("rewrite name a.com b.com", "A.com.", ("b.com.", 2)),
            ("rewrite name a.com b.com", "x.a.com.", ("x.a.com.", None)),
            ("rewrite name exact a.com b.com answer value x y", "a.com.", ("b.com.", 3)),
            ("rewrite name prefix foo bar", "foo.example.com.", ("bar.example.com.", 0)),
            ("rewrite name prefix foo bar answer auto", "foo.example.com.", ("bar.example.com.", 2)),
            ("rewrite name prefix foo bar", "coredns.foo.", ("coredns.foo.", None)),
            ("rewrite name suffix .schmoogle.com. .google.com.", "www.schmoogle.com.", ("www.google.com.", 0)),
            ("rewrite name suffix .schmoogle.com. .google.com. answer auto", "www.schmoogle.com.",
             ("www.google.com.", 2)),
            ("rewrite name substring service.us-west-1.example.org service.us-west-1.consul",
             "ftp.service.us-west-1.example.org.", ("ftp.service.us-west-1.consul.", 0)),
            ("rewrite name regex (.*)-(us-west-1)\\.example\\.org {1}.service.{2}.consul",
             "ftp-us-west-1.example.org.", ("ftp.service.us-west-1.consul.", 0)),
            ("rewrite name regex (.*)-(us-west-1)\\.example\\.org {1}.service.{2}.consul", "ftp.example.org.",
             ("ftp.example.org.", None)),
        ]:
            (name, _, _), count = rewritten([line], asked)
            self.assertEqual((name, count), expected, line)

    def test_stop_is_the_default_and_ends_the_rules(self):
        lines = ["rewrite name a.com b.com", "rewrite name b.com c.com"]
        self.assertEqual(rewritten(lines, "a.com.")[0][0], "b.com.")
        self.assertEqual(rewritten(["rewrite stop type A AAAA", "rewrite name a.com b.com"], "a.com."),
                         (("a.com.", tdns.AAAA, tdns.IN), 0))

    def test_continue_lets_later_rules_match_the_rewritten_question(self):
        lines = ["rewrite continue name a.com b.com", "rewrite continue name b.com c.com",
                 "rewrite type A AAAA", "rewrite class IN CH"]
        self.assertEqual(rewritten(lines, "a.com."), (("c.com.", tdns.AAAA, tdns.IN), 4))
        self.assertEqual(rewritten(lines, "x.com.", tdns.MX), (("x.com.", tdns.MX, tdns.CH), 0))
        self.assertEqual(rewritten(lines, "x.com.", tdns.MX, tdns.HS), (("x.com.", tdns.MX, tdns.HS), None))
        self.assertEqual(rewritten(["rewrite continue type MX A", "rewrite class IN CH"], "x.com.", tdns.MX),
                         (("x.com.", tdns.A, tdns.CH), 0))

    def test_answers_reverted_last_rule_first(self):
        lines = ["rewrite continue name a.com b.com", "rewrite name b.com c.com"]
        question = Question("a.com.", tdns.A, tdns.IN)
        answer_rules = rewrite_question(rules_of(*lines), question)
        response = Response(answers=[
            tdns.RRHeader(b"c.com", tdns.CNAME, payload=tdns.Record_CNAME(b"www.c.com")),
            tdns.RRHeader(b"www.c.com", tdns.A, payload=tdns.Record_A("10.0.0.1")),
        ], valid_while=lambda: True)
        reverted = revert(response, answer_rules)
        self.assertEqual([(str(record.name), str(getattr(record.payload, "name", ""))) for record in reverted.answers],
                         [("a.com", "www.a.com"), ("www.a.com", "")])
        self.assertEqual(str(response.answers[0].name), "c.com")

    def test_invalid_name_after_rewrite_is_servfail(self):
        self.assertFalse(is_domain_name("a..b."))
        self.assertFalse(is_domain_name("x" * 64 + "."))
        self.assertTrue(is_domain_name("."))
        with self.assertRaises(PluginError) as raised:
            rewritten(["rewrite name regex (.*)\\.a\\.com {1}..b.com"], "x.a.com.")
        self.assertEqual(str(raised.exception), "invalid name after rewrite: x..b.com.")
        self.assertEqual(raised.exception.rcode, tdns.ESERVER)


class EndToEndTests(unittest.TestCase):
    """A daemon with rewrite rules forwarding to an upstream that knows only the rewritten names."""

    def daemon(self, *lines: str) -> int:
        self.upstream = ClassRecordingUpstream({
            ("b.example.org.", "A"): ["10.0.0.2"],
            ("www.b.example.org.", "A"): ["10.0.0.3"],
            ("ftp.service.us-west-1.consul.", "A"): ["10.10.10.10"],
            ("x.c.example.org.", "AAAA"): ["fd00::1"],
            ("a.example.org.", "MX"): ["10 mail.b.example.org."],
            ("srv.b.example.org.", "SRV"): ["0 0 53 host.b.example.org."],
        })
        port = self.upstream.start(self)
        body = "\n".join(f" {line}" for line in lines)
        return start_daemon(self, f".:0 {{\n bind 127.0.0.1\n{body}\n forward . 127.0.0.1:{port}\n}}\n")

    def check(self, reply, name, rdtype, answers):
        self.assertEqual(rcode_of(reply), "NOERROR")
        self.assertEqual([(str(q.name), dns.rdatatype.to_text(q.rdtype), dns.rdataclass.to_text(q.rdclass))
                          for q in reply.question], [(name, rdtype, "IN")])
        self.assertEqual(reply_lines(reply.answer), answers)

    @defer.inlineCallbacks
    def test_exact_answers_always_mapped_back(self):
        port = self.daemon("rewrite name A.example.org b.example.org")
        reply = yield query(port, "a.Example.ORG", "A")
        self.check(reply, "a.Example.ORG.", "A", ["a.example.org. A 10.0.0.2"])
        self.assertEqual(self.upstream.queries[-1][:2], ("b.example.org.", "A"))
        reply = yield query(port, "other.example.org", "A")
        self.assertEqual(rcode_of(reply), "NXDOMAIN")
        self.assertEqual(self.upstream.queries[-1][:2], ("other.example.org.", "A"))

    @defer.inlineCallbacks
    def test_suffix_with_and_without_answer_auto(self):
        port = self.daemon("rewrite name suffix .a.example.org .b.example.org answer auto")
        reply = yield query(port, "www.a.example.org", "A")
        self.check(reply, "www.a.example.org.", "A", ["www.a.example.org. A 10.0.0.3"])
        port = self.daemon("rewrite name suffix .a.example.org .b.example.org")
        reply = yield query(port, "www.a.example.org", "A")
        self.check(reply, "www.a.example.org.", "A", ["www.b.example.org. A 10.0.0.3"])

    @defer.inlineCallbacks
    def test_prefix_and_substring_answer_auto(self):
        port = self.daemon("rewrite continue name prefix www bla answer auto",
                           "rewrite name substring .a. .b. answer auto")
        self.upstream.records[("bla.b.example.org.", "A")] = ["10.0.0.4"]
        reply = yield query(port, "www.b.example.org", "A")
        self.check(reply, "www.b.example.org.", "A", ["www.b.example.org. A 10.0.0.4"])
        reply = yield query(port, "www.a.example.org", "A")
        self.check(reply, "www.a.example.org.", "A", ["www.a.example.org. A 10.0.0.4"])
        reply = yield query(port, "x.a.example.org", "A")
        self.assertEqual(rcode_of(reply), "NXDOMAIN")
        self.assertEqual(self.upstream.queries[-1][:2], ("x.b.example.org.", "A"))

    @defer.inlineCallbacks
    def test_regex_with_answer_name(self):
        port = self.daemon("rewrite stop {\n  name regex (.*)-(us-west-1)\\.coredns\\.rocks {1}.service.{2}.consul"
                           "\n  answer name (.*)\\.service\\.(us-west-1)\\.consul {1}-{2}.coredns.rocks\n }")
        reply = yield query(port, "ftp-us-west-1.coredns.rocks", "A")
        self.check(reply, "ftp-us-west-1.coredns.rocks.", "A", ["ftp-us-west-1.coredns.rocks. A 10.10.10.10"])

    @defer.inlineCallbacks
    def test_answer_value(self):
        port = self.daemon("rewrite name exact srv.a.example.org srv.b.example.org "
                           "answer value (.*)\\.b\\.example\\.org\\. {1}.a.example.org.")
        reply = yield query(port, "srv.a.example.org", "SRV")
        self.check(reply, "srv.a.example.org.", "SRV", ["srv.a.example.org. SRV 0 0 53 host.a.example.org."])

    @defer.inlineCallbacks
    def test_type_rewrite(self):
        port = self.daemon("rewrite continue name x.a.example.org x.c.example.org", "rewrite type A AAAA")
        reply = yield query(port, "x.a.example.org", "A")
        self.check(reply, "x.a.example.org.", "A", ["x.a.example.org. AAAA fd00::1"])
        self.assertEqual(self.upstream.queries[-1][:2], ("x.c.example.org.", "AAAA"))

    @defer.inlineCallbacks
    def test_class_rewrite(self):
        port = self.daemon("rewrite class IN CH")
        reply = yield query(port, "b.example.org", "A")
        self.check(reply, "b.example.org.", "A", ["b.example.org. A 10.0.0.2"])
        self.assertEqual(self.upstream.classes[-1], "CH")

    @defer.inlineCallbacks
    def test_rewritten_reply_is_not_replayed_for_another_question(self):
        port = self.daemon("rewrite name a.example.org b.example.org")
        for name in ["a.example.org", "a.example.org", "b.example.org", "a.example.org"]:
            reply = yield query(port, name, "A")
            self.check(reply, f"{name}.", "A", [f"{name}. A 10.0.0.2"])
        self.assertEqual(len(self.upstream.queries), 4)

    @defer.inlineCallbacks
    def test_invalid_rewritten_name_is_servfail(self):
        port = self.daemon("rewrite name regex (.*)\\.a\\.example\\.org {1}..b.example.org")
        reply = yield query(port, "x.a.example.org", "A")
        self.assertEqual(rcode_of(reply), "SERVFAIL")
        self.assertEqual([str(q.name) for q in reply.question], ["x.a.example.org."])


class ClassRecordingUpstream(FakeUpstream):
    """A FakeUpstream that also notes the class of every question."""

    def __init__(self, records) -> None:
        super().__init__(records)
        self.classes: list[str] = []

    def reply_to(self, packet: bytes, transport: str):
        self.classes.append(dns.rdataclass.to_text(dns.message.from_wire(packet).question[0].rdclass))
        return super().reply_to(packet, transport)
