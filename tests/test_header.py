"""
header through a running daemon, between a client and forward's upstream:
CoreDNS's C{plugin/header/setup_test.go} and C{header_test.go} rows, one
test per row, each asked twice (the second time perhaps from the server's
kept replies).
"""

from __future__ import annotations

from typing import NamedTuple

import dns.flags
from twisted.internet import defer
from twisted.trial import unittest

from tests.support import FakeUpstream, start_daemon
from tests.test_kubernetes_records import table
from tests.test_small_plugins import SetupTable, ask_twice, block, setup_rows


# header/setup_test.go TestSetupHeader
@table(setup_rows(
    (("header {", "}"), "Corefile:3: plugin/header: expected a block of query or response rules"),
    (("header {", "foo", "}"), "Corefile:4: plugin/header: invalid selector=foo should be query or response"),
    (("header {", "response set", "}"),
     "Corefile:4: plugin/header: invalid length for flags, at least one should be provided"),
    (("header {", "query foo", "}"),
     "Corefile:4: plugin/header: invalid length for flags, at least one should be provided"),
    (("header {", "query foo rd", "}"), "Corefile:4: plugin/header: unknown flag action=foo, should be set or clear"),
    (("header {", "query set rd", "}"), None),
    (("header {", "response set aa", "}"), None),
    (("header {", "response set ra aa", "query clear rd", "}"), None),
    (("header {", "response set ad", "}"),
     "Corefile:4: plugin/header: unknown/unsupported flag=ad: expected aa, ra or rd"),
))
class HeaderSetupTests(SetupTable):
    pass


class HeaderRow(NamedTuple):
    qname: str  # the rule
    qtype: int
    query_flags: int  # the client's
    upstream_flags: int  # what forward's upstream was asked with
    reply_flags: int


QR, AA, RD, RA = dns.flags.QR, dns.flags.AA, dns.flags.RD, dns.flags.RA


# header_test.go TestHeaderResponseRules, then TestHeaderQueryRules (the upstream answers with RA set)
@table([
    HeaderRow("response set ra", 1, 0, 0, QR | RA),
    HeaderRow("response clear ra", 1, RD, RD, QR | RD),
    HeaderRow("response set rd", 1, 0, 0, QR | RD | RA),
    HeaderRow("response set aa", 1, RD, RD, QR | AA | RD | RA),
    HeaderRow("query set ra", 1, 0, RA, QR | RA),
    HeaderRow("query set rd", 1, 0, RD, QR | RD | RA),
    HeaderRow("query clear rd", 1, RD, 0, QR | RA),
    HeaderRow("query set aa", 1, RD, AA | RD, QR | RD | RA),
])
class HeaderTests(unittest.TestCase):
    """Each rule between a client and forward's upstream: the flags the upstream sees and the client gets."""

    def setUp(self):
        self.upstream = FakeUpstream({("example.org.", "A"): ["192.0.2.1"]})
        self.upstream_port = self.upstream.start(self)

    @defer.inlineCallbacks
    def check(self, row: HeaderRow):
        port = start_daemon(self, block("header {", row.qname, "}", f"forward . 127.0.0.1:{self.upstream_port}"))
        first, second = yield ask_twice(self, port, "example.org", "A", flags=row.query_flags)
        self.assertEqual(self.upstream.flags[0], row.upstream_flags)
        self.assertEqual(second.flags, row.reply_flags)
        self.assertEqual(len(second.answer), 1)

    @defer.inlineCallbacks
    def test_cached_reply_asked_again(self):
        port = start_daemon(self, block("cache", "header {", "response set aa", "response clear ra", "}",
                                        f"forward . 127.0.0.1:{self.upstream_port}"))
        first, second = yield ask_twice(self, port, "example.org", "A")
        self.assertEqual((second.flags, len(self.upstream.flags)), (QR | AA | RD, 1))
