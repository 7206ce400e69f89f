"""
errors, log and whoami through a running daemon: what they log and answer,
and how their Corefile options are parsed and refused.
"""

import io
import re

from twisted.internet import defer, task
from twisted.logger import ILogObserver, LogLevel
from twisted.names import dns as tdns
from twisted.trial import unittest

from kubernetai.chain import build_server
from kubernetai.corefile import CorefileError, parse_corefile
from kubernetai.logs import CoreDNSLogObserver, observer
from tests.support import FakeUpstream, build, capture_logs, make_request, query, start_daemon

COMMON_LOG = re.compile(
    r'^127\.0\.0\.1:\d+ - (\d+) "A IN www\.example\.org\. (udp|tcp) \d+ (true|false) (\d+)" '
    r"(NOERROR|NXDOMAIN|SERVFAIL) ([a-z,]+) (\d+) (\d+(\.\d+)?(e-\d+)?)s$"
)


class LogTests(unittest.TestCase):
    def setUp(self):
        self.upstream = FakeUpstream({("www.example.org.", "A"): ["192.0.2.1"]})
        self.upstream_port = self.upstream.start(self)
        self.logs = capture_logs(self)

    def daemon(self, log_line):
        return start_daemon(self, f""".:0 {{
    bind 127.0.0.1
    {log_line}
    forward . 127.0.0.1:{self.upstream_port}
}}
""")

    def query_lines(self):
        return [line for line in self.logs if "example" in line and "plugin" not in line]

    @defer.inlineCallbacks
    def test_common_log_format(self):
        port = self.daemon("log")
        reply = yield query(port, "www.example.org", "A", use_edns=0, payload=1232)
        (line,) = self.query_lines()
        match = COMMON_LOG.match(line)
        self.assertIsNotNone(match, line)
        query_id, proto, do, bufsize, rcode, flags, rsize = match.groups()[:7]
        self.assertEqual((int(query_id), proto, do, bufsize, rcode), (reply.id, "udp", "false", "1232", "NOERROR"))
        self.assertEqual(flags, "qr,rd,ra")
        self.assertEqual(int(rsize), len(reply.to_wire()))

    @defer.inlineCallbacks
    def test_class_filter(self):
        port = self.daemon("log {\n        class denial\n    }")
        yield query(port, "www.example.org", "A")
        yield query(port, "nothing.example.org", "A")
        lines = self.query_lines()
        self.assertEqual(len(lines), 1, lines)
        self.assertIn('"A IN nothing.example.org. udp', lines[0])
        self.assertIn("NXDOMAIN", lines[0])

    @defer.inlineCallbacks
    def test_names_and_custom_format(self):
        port = self.daemon('log nothing.example.org "{name} {type} {rcode} {>opcode} {/nope}"')
        yield query(port, "www.example.org", "A")
        yield query(port, "nothing.example.org", "A", tcp=True)
        self.assertEqual(self.query_lines(), ["nothing.example.org. A NXDOMAIN QUERY -"])

    def test_bad_class(self):
        text = ".:53 {\n log {\n  class sometimes\n }\n}\n"
        with self.assertRaises(CorefileError) as raised:
            build_server(parse_corefile(text, "Corefile")[0])
        self.assertIn("Corefile:3: plugin/log: invalid class 'sometimes'", str(raised.exception))


class ConsolidationClockTests(unittest.SynchronousTestCase):
    """errors' consolidation on a clock the test moves: one line per period, exactly at its end."""

    def test_one_line_at_the_end_of_the_period(self):
        config = build('.:53 {\n errors {\n  consolidate 1s "no next plugin" warning\n }\n}\n')
        errors = config.chain
        errors.reactor = clock = task.Clock()
        logs = capture_logs(self)
        rcodes = [errors.serve(make_request(name)).rcode for name in ("a.example", "b.example", "c.example")]
        clock.advance(0.999)
        before = [line for line in logs if "no next plugin" in line]
        clock.advance(0.001)
        after = [line for line in logs if "no next plugin" in line]
        self.assertEqual((rcodes, before, after),
                         ([tdns.ESERVER] * 3, [], ["3 errors like 'no next plugin' occurred in last 1s"]))


class ErrorsTests(unittest.TestCase):
    def setUp(self):
        self.logs = capture_logs(self)
        closed = FakeUpstream()
        closed.silent = True
        self.upstream_port = closed.start(self)

    @defer.inlineCallbacks
    def test_consolidate_show_first(self):
        port = start_daemon(self, """.:0 {
    bind 127.0.0.1
    errors {
        consolidate 1s "no next plugin" show_first
    }
}
""")
        yield query(port, "a.example", "A")
        yield query(port, "b.example", "A")
        first = [line for line in self.logs if "no next plugin" in line]
        self.assertEqual(first, ["2 a.example. A: no next plugin found"])

    def test_bad_options(self):
        bad = [
            ("errors {\n  consolidate 1s\n }", "Corefile:3: plugin/errors: expected at least 2 argument(s)"),
            ("errors {\n  consolidate soon x\n }", "Corefile:3: plugin/errors: invalid duration 'soon'"),
            ("errors {\n  consolidate 1s ( \n }", "Corefile:3: plugin/errors: invalid regular expression"),
            ("errors {\n  consolidate 1s (a|aa)*b \n }", "Corefile:3: plugin/errors: invalid regular expression "
             "'(a|aa)*b': a repeated group holds"),
            ("errors {\n  consolidate 1s x loud\n }", "Corefile:3: plugin/errors: unknown parameter 'loud'"),
            ("errors {\n  quiet\n }", "Corefile:3: plugin/errors: unknown option 'quiet'"),
            ("errors now", "Corefile:2: plugin/errors: unexpected argument 'now'"),
        ]
        for line, message in bad:
            with self.assertRaises(CorefileError, msg=line) as raised:
                build_server(parse_corefile(".:53 {\n " + line + "\n}\n", "Corefile")[0])
            self.assertIn(message, str(raised.exception), line)


class CoreDNSLogFormatTests(unittest.SynchronousTestCase):
    """twistd --logger kubernetai.logs.observer writes lines as CoreDNS does."""

    def lines(self, *events):
        stream = io.StringIO()
        observer = CoreDNSLogObserver(stream)
        for event in events:
            observer(event)
        return stream.getvalue().splitlines()

    def test_levels_and_plugin_prefixes(self):
        events = [
            {"log_level": LogLevel.error, "log_namespace": "kubernetai.plugins.errors",
             "log_format": "{line}", "line": "2 example.org. A: read udp 10.0.0.1:53: i/o timeout"},
            {"log_level": LogLevel.info, "log_namespace": "kubernetai.plugins.log",
             "log_format": "{line}", "line": '127.0.0.1:5 - 1 "A IN a. udp 20 false 512" NOERROR qr 20 0.1s'},
            {"log_level": LogLevel.error, "log_namespace": "kubernetai.plugins.rewrite.response",
             "log_format": "upstream lookup failed: {cause}", "cause": "timeout"},
            {"log_level": LogLevel.warn, "log_namespace": "kubernetai.kubernetes.watch", "log_format": "down"},
            {"log_level": LogLevel.debug, "log_namespace": "kubernetai.server", "log_format": "hidden"},
        ]
        self.assertEqual(self.lines(*events), [
            "[ERROR] plugin/errors: 2 example.org. A: read udp 10.0.0.1:53: i/o timeout",
            '[INFO] 127.0.0.1:5 - 1 "A IN a. udp 20 false 512" NOERROR qr 20 0.1s',
            "[ERROR] plugin/rewrite: upstream lookup failed: timeout",
            "[WARNING] down",
        ])

    def test_observer_factory_for_twistd(self):
        self.assertTrue(ILogObserver.providedBy(observer()))
