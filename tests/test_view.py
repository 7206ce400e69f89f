"""
view: CoreDNS's setup rows, the server blocks its rule lets share a zone
and port, and its end-to-end tests (test/view_test.go) through a running
daemon: queries routed by type, by name, by client network, in Corefile
order, REFUSED when no block admits them.
"""

import dns.message
from twisted.internet import defer, reactor
from twisted.trial import unittest

from kubernetai.answer import ZoneTable
from kubernetai.chain import build_server
from kubernetai.corefile import CorefileError, parse_corefile
from kubernetai.daemon import build_daemon
from kubernetai.plugins.view import presentation_name
from kubernetai.server import listener_tables
from tests.support import build, make_request, one_test_per_row, query, rcode_of, refusal, send, start_daemon, write_corefile
from tests.test_daemon import free_port

# CoreDNS's TestSetup rows: (the block's view lines, expressions compiled, or the error).
SETUP = [
    ("view example {\n expr name() == 'example.com.'\n}", 1),
    ("view example {\n expr incidr(client_ip(), '10.0.0.0/24')\n}", 1),
    ("view example {\n expr name() == 'example.com.'\n expr name() == 'example2.com.'\n}", 2),
    ("view example {\n}", 0),
    ("view", "Corefile:2: plugin/view: Wrong argument count or unexpected line ending after 'view'"),
    ("view example {\n expr invalid expression\n}", "Corefile:3: plugin/view: expr 'invalid expression': "
                                                    "unknown name invalid"),
    ("view x {\n foo bar\n}", "Corefile:3: plugin/view: unknown property 'foo'"),
    ("view x {\n expr true {\n  y\n }\n}", "Corefile:4: plugin/view: unknown option 'y'"),
    ("view a { \n}\nview b {\n}", "Corefile:4: plugin/view: this plugin can only be used once per server block"),
    ("view a {\n expr name() =~ 'x'\n}", "Corefile:3: plugin/view: expr \"name() =~ 'x'\": unsupported character"),
]


def blocks(*bodies: str, key: str = "example.org:53") -> str:
    return "".join(f"{key} {{\n{body}\n whoami\n}}\n" for body in bodies)


VIEW = " view v{n} {{\n  expr type() == 'A'\n }}"

# Blocks on one zone and port: (their views, in order, or None; the error, or None when allowed).
SHARING = [
    ((True, True), None),
    ((True, False), None),
    ((False, True), None),
    ((True, False, True), None),
    ((False, False), "Corefile:5: cannot serve dns://example.org.:53 - zone already defined at Corefile:1"),
    ((True, False, False), "Corefile:11: cannot serve dns://example.org.:53 - zone already defined at Corefile:7"),
]


@one_test_per_row("setup", SETUP, lambda row: row[0].split("\n")[0])
@one_test_per_row("sharing", SHARING, lambda row: " ".join("view" if view else "plain" for view in row[0]))
class SetupTests(unittest.SynchronousTestCase):
    def check_setup(self, row):
        lines, expected = row
        text = f".:53 {{\n{lines}\n whoami\n}}\n"
        if isinstance(expected, str):
            self.assertIn(expected, refusal(text))
        else:
            config = build(text)
            self.assertEqual(config.admits is not None, True)
            self.assertEqual([line for line in config.plan if line.startswith("view ")][0].count(" and ") + 1,
                             max(expected, 1))

    def check_sharing(self, row):
        views, error = row
        text = blocks(*(VIEW.format(n=n) if view else " log" for n, view in enumerate(views)))
        if error is None:
            self.assertEqual(len(parse_corefile(text, "Corefile")), len(views))
        else:
            with self.assertRaises(CorefileError) as raised:
                parse_corefile(text, "Corefile")
            self.assertIn(error, str(raised.exception))

    def test_sharing_with_bind_is_checked_by_the_listeners(self):
        bound = " bind 127.0.0.1"
        text = blocks(bound, bound + "\n" + VIEW.format(n=1), bound + "\n" + VIEW.format(n=2))
        tables = listener_tables([build_server(block) for block in parse_corefile(text, "Corefile")])
        self.assertEqual(len(tables[("127.0.0.1", 53)].configs["example.org."]), 3)
        with self.assertRaises(CorefileError) as raised:
            listener_tables([build_server(block) for block in parse_corefile(blocks(bound, bound), "Corefile")])
        self.assertIn("zone example.org. on port 53 is served by two server blocks", str(raised.exception))

    def test_plan_names_the_view(self):
        config = build(".:53 {\n view inside {\n  expr incidr(client_ip(), '10.0.0.0/8')\n }\n whoami\n}\n")
        self.assertIn("view inside: (incidr(client_ip(), '10.0.0.0/8'))", config.plan)

    def test_names_as_coredns_shows_them(self):
        self.assertEqual(presentation_name(b"Ex.COM"), "ex.com.")
        self.assertEqual(presentation_name(b""), ".")
        self.assertEqual(presentation_name(b"a b(@\x01\xff.org"), "a\\ b\\(\\@\\001\\255.org.")


def viewed(zone: str, name: str, expression: str | None, record: str) -> str:
    """A server block on port 0 with an optional view and one hosts entry."""
    view = "" if expression is None else f" view {name} {{\n  expr {expression}\n }}\n"
    return f"{zone}:0 {{\n bind 127.0.0.1\n{view} hosts {{\n  {record}\n }}\n}}\n"


# CoreDNS's TestView and TestViewServerBlockOrdering Corefile, blocks on one port.
COREFILE = "".join([
    viewed("split-type", "test-view-a", "type() == 'A'", "1.2.3.4 test.split-type"),
    viewed("split-type", "test-view-aaaa", "type() == 'AAAA'", "1:2:3::4 test.split-type"),
    viewed("split-name", "test-view-1", "name() matches '^one\\\\..*\\\\.split-name\\\\.$'",
           "1.1.1.1 one.test.split-name one.test.test.test.split-name"),
    viewed("split-name", "test-view-2", "name() matches '^two\\\\..*\\\\.split-name\\\\.$'",
           "2.2.2.2 two.test.split-name two.test.test.test.split-name"),
    viewed("split-name", "default", None, "3.3.3.3 default.test.split-name"),
    viewed("metadata", "test-view-meta2", "metadata('view/name') == 'test-view-meta2'", "2.2.2.2 test.metadata"),
    viewed("metadata", "default", None, "3.3.3.3 test.metadata"),
    viewed("order-test", "v-a", "type() == 'A'", "1.2.3.4 test.order-test"),
    viewed("order-test", "v-aaaa", "type() == 'AAAA'", "1:2:3::4 test.order-test"),
    viewed("order-test", "default", None, "5.6.7.8 test.order-test"),
    viewed("order-test2", "default", None, "5.6.7.8 test.order-test2"),
    viewed("order-test2", "v-a", "type() == 'A'", "1.2.3.4 test.order-test2"),
    viewed("order-test3", "v-a", "type() == 'A'", "1.2.3.4 test.order-test3"),
    viewed("order-test3", "default", None, "5.6.7.8 test.order-test3"),
    viewed("order-test3", "v-aaaa", "type() == 'AAAA'", "1:2:3::4 test.order-test3"),
    viewed("order-test4", "v-a", "type() == 'A'", "1.2.3.4 test.order-test4"),
    viewed("order-test4", "v-aaaa", "type() == 'AAAA'", "1:2:3::4 test.order-test4"),
    viewed("client", "inside", "incidr(client_ip(), '127.0.0.0/24')", "1.1.1.1 test.client"),
    viewed("client", "outside", "incidr(client_ip(), '192.168.0.0/16')", "2.2.2.2 test.client"),
    viewed("client", "default", None, "3.3.3.3 test.client"),
    viewed("tcp.example", "tcp-only", "proto() == 'tcp'", "4.4.4.4 test.tcp.example"),
    viewed("example", "default", None, "5.5.5.5 test.tcp.example"),
    "bind:0 {\n bind 127.0.0.1\n view low-ids {\n  expr id() < 100\n }\n chaos low\n}\n",
    "bind:0 {\n bind 127.0.0.1\n chaos high\n}\n",
])

# (test name, name, type, over TCP, rcode, answers).
ROUTES = [
    ("split-type A", "test.split-type.", "A", False, "NOERROR", ["1.2.3.4"]),
    ("split-type AAAA", "test.split-type.", "AAAA", False, "NOERROR", ["1:2:3::4"]),
    ("split-name one.test.test.test", "one.test.test.test.split-name.", "A", False, "NOERROR", ["1.1.1.1"]),
    ("split-name one.test", "one.test.split-name.", "A", False, "NOERROR", ["1.1.1.1"]),
    ("split-name two.test.test.test", "two.test.test.test.split-name.", "A", False, "NOERROR", ["2.2.2.2"]),
    ("split-name two.test", "two.test.split-name.", "A", False, "NOERROR", ["2.2.2.2"]),
    ("split-name default", "default.test.split-name.", "A", False, "NOERROR", ["3.3.3.3"]),
    ("metadata is empty without the metadata plugin", "test.metadata.", "A", False, "NOERROR", ["3.3.3.3"]),
    ("A routed to v-a", "test.order-test.", "A", False, "NOERROR", ["1.2.3.4"]),
    ("AAAA routed to v-aaaa", "test.order-test.", "AAAA", False, "NOERROR", ["1:2:3::4"]),
    ("MX falls through to catch-all", "test.order-test.", "MX", False, "NOERROR", []),
    ("A hits unfiltered", "test.order-test2.", "A", False, "NOERROR", ["5.6.7.8"]),
    ("A routed to v-a (middle)", "test.order-test3.", "A", False, "NOERROR", ["1.2.3.4"]),
    ("AAAA hits unfiltered (shadowed view)", "test.order-test3.", "AAAA", False, "NOERROR", []),
    ("A routed to v-a (no catch-all)", "test.order-test4.", "A", False, "NOERROR", ["1.2.3.4"]),
    ("MX refused without catch-all", "test.order-test4.", "MX", False, "REFUSED", []),
    ("client network", "test.client.", "A", False, "NOERROR", ["1.1.1.1"]),
    ("tcp view", "test.tcp.example.", "A", True, "NOERROR", ["4.4.4.4"]),
    ("udp falls back to the shorter zone", "test.tcp.example.", "A", False, "NOERROR", ["5.5.5.5"]),
]


@one_test_per_row("routes", ROUTES, lambda row: row[0])
class EndToEndTests(unittest.TestCase):
    """One daemon, every block on its one port, as CoreDNS's test/view_test.go."""

    port = None

    def setUp(self):
        self.port = start_daemon(self, COREFILE)

    @defer.inlineCallbacks
    def check_routes(self, row):
        _, name, rdtype, tcp, rcode, answers = row
        reply = yield query(self.port, name, rdtype, tcp=tcp)
        self.assertEqual(rcode_of(reply), rcode)
        self.assertEqual([item.to_text() for rrset in reply.answer for item in rrset], answers)

    @defer.inlineCallbacks
    def test_reply_is_chosen_anew_for_each_query(self):
        """A view's answer is never sent again from the replies kept for repeated UDP queries (which
        are kept by the query's bytes less its ID)."""
        for query_id, expected in [(5, '"low"'), (500, '"high"'), (5, '"low"'), (500, '"high"')]:
            message = dns.message.make_query("version.bind.", "TXT", "CH")
            message.id = query_id
            reply = yield send(self.port, message)
            self.assertEqual([item.to_text() for rrset in reply.answer for item in rrset], [expected])


class ReloadTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_view_added_by_a_reload_is_never_replayed(self):
        """A listener kept across a reload learns that its blocks now have views: no reply is kept."""
        port = free_port()
        plain = f"bind:{port} {{\n bind 127.0.0.1\n chaos high\n}}\n"
        path = write_corefile(self, plain)
        root = build_daemon(path).service(reactor)
        root.startService()
        self.addCleanup(root.stopService)
        yield root.dns.listening
        with open(path, "w") as corefile:
            corefile.write(f"bind:{port} {{\n bind 127.0.0.1\n view low-ids {{\n  expr id() < 100\n }}\n"
                           f" chaos low\n}}\n" + plain)
        self.assertTrue((yield root.reload()))
        for query_id, expected in [(5, '"low"'), (500, '"high"'), (5, '"low"')]:
            message = dns.message.make_query("version.bind.", "TXT", "CH")
            message.id = query_id
            reply = yield send(port, message)
            self.assertEqual([item.to_text() for rrset in reply.answer for item in rrset], [expected])


class RouteTests(unittest.SynchronousTestCase):
    """ZoneTable.route as CoreDNS's server chooses a block (core/dnsserver/server.go)."""

    def table(self, parent=True):
        blocks = parse_corefile(blocks_of_views(parent), "Corefile")
        table = ZoneTable()
        for block in blocks:
            config = build_server(block)
            table.add(config.zones[0].zone, config)
        return table

    def routed(self, name, rdtype, parent=True):
        zone, config = self.table(parent).route(make_request(name, rdtype))
        return zone, config.block.line

    def test_first_admitting_block_of_the_longest_zone(self):
        self.assertEqual(self.routed("a.b.example.org.", "A"), ("b.example.org.", 1))
        self.assertEqual(self.routed("a.b.example.org.", "AAAA"), ("b.example.org.", 7))

    def test_no_admitting_block_falls_to_a_shorter_zone(self):
        self.assertEqual(self.routed("a.b.example.org.", "MX"), ("example.org.", 13))

    def test_ds_takes_the_last_admitting_block_of_the_least_specific_zone(self):
        self.assertEqual(self.routed("a.b.example.org.", "DS"), ("example.org.", 13))
        self.assertEqual(self.routed("b.example.org.", "DS"), ("example.org.", 13))
        self.assertEqual(self.routed("a.b.example.org.", "DS", parent=False), ("b.example.org.", 7))


def blocks_of_views(parent: bool) -> str:
    """Two blocks with views on b.example.org (lines 1 and 7), and one without on example.org (line 13)."""
    a_or_ds = " view a {\n  expr type() in ['A', 'DS']\n }"
    aaaa = " view aaaa {\n  expr type() in ['AAAA', 'DS']\n }"
    return blocks(a_or_ds, aaaa, key="b.example.org:53") + (blocks(" log", key="example.org:53") if parent else "")
