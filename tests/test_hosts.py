"""
hosts: the Corefile options and CoreDNS's words for bad ones, the hosts-file
parser, and the answers through a running daemon (file and inline entries,
PTR, NODATA and SERVFAIL, fallthrough to forward, reload, k3s's stanza).
"""

import os

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from kubernetai.chain import build_server
from kubernetai.corefile import CorefileError, parse_corefile
from kubernetai.daemon import build_daemon
from kubernetai.zones import Fallthrough
from kubernetai.plugins.hosts import (
    HostsConfig,
    Loaded,
    parse_address,
    parse_directive,
    parse_hosts,
    ptr_targets,
    read_hosts,
    wildcard_of,
)
from tests.support import FakeUpstream, make_request, one_test_per_row, query, rcode_of, start_daemon, write_corefile

HOSTS_FILE = """\
# The following lines are desirable for IPv4 capable hosts
127.0.0.1       localhost localhost.domain
10.0.0.1        Example.org   # the canonical name
::FFFF:10.0.0.2 example.com
::1             localhost ip6-localhost
fdfc:a744:27b5:3b0e::1  example.org
5.6.7.8 *.apps.example.com
reload 5s
"""


# What FakeUpstream's records live: an answer with it came through forward, not from hosts.
UPSTREAM_TTL = 30


def directive_of(text, server_key=".:53"):
    """The hosts directive of a server block C{server_key} holding C{text}."""
    (block,) = parse_corefile(f"{server_key} {{\n{text}\n}}\n", "Corefile")
    return block.directives[0]


# hosts lines and the options they give.
OPTIONS = [
    ("hosts", HostsConfig("/etc/hosts", (".",))),
    ("hosts /tmp", HostsConfig("/tmp", (".",))),
    ("hosts /etc/hosts miek.nl.", HostsConfig("/etc/hosts", ("miek.nl.",))),
    ("hosts /etc/hosts miek.nl. pun.gent.", HostsConfig("/etc/hosts", ("miek.nl.", "pun.gent."))),
    ("hosts {\n fallthrough\n}", HostsConfig("/etc/hosts", (".",), fallthrough=Fallthrough())),
    ("hosts /etc/hosts miek.nl 10.0.0.9/8 {\n fallthrough\n}",
     HostsConfig("/etc/hosts", ("miek.nl.", "10.in-addr.arpa."), fallthrough=Fallthrough())),
    ("hosts {\n fallthrough example.org 10.0.0.0/8\n}",
     HostsConfig("/etc/hosts", (".",), fallthrough=Fallthrough(("example.org.", "10.in-addr.arpa.")))),
    ("hosts {\n ttl 60\n}", HostsConfig("/etc/hosts", (".",), ttl=60)),
    ("hosts {\n ttl 65535 ignored\n}", HostsConfig("/etc/hosts", (".",), ttl=65535)),
    ("hosts {\n no_reverse\n}", HostsConfig("/etc/hosts", (".",), reverse=False)),
    ("hosts {\n reload 15s\n}", HostsConfig("/etc/hosts", (".",), reload=15.0)),
    ("hosts {\n reload 1.5h\n}", HostsConfig("/etc/hosts", (".",), reload=5400.0)),
    ("hosts {\n reload 0\n}", HostsConfig("/etc/hosts", (".",), reload=0.0)),
    ("hosts {\n reload -0s\n}", HostsConfig("/etc/hosts", (".",), reload=0.0)),
    ("hosts {\n fallthrough_unsupported\n fallthrough example.org\n}",
     HostsConfig("/etc/hosts", (".",), fallthrough=Fallthrough(("example.org.",)),
                 fallthrough_unsupported=True)),
    ("hosts nonexistent example.org {\n 10.0.0.1 example.org\n ::1 a b\n fallthrough\n}",
     HostsConfig("nonexistent", ("example.org.",), inline=("10.0.0.1 example.org", "::1 a b"),
                 fallthrough=Fallthrough())),
]


@one_test_per_row("options", OPTIONS, lambda row: row[0])
class ParseTests(unittest.SynchronousTestCase):
    """Each option as CoreDNS reads it (setup_test.go's rows and more)."""

    def check_options(self, row):
        text, expected = row
        self.assertEqual(parse_directive(directive_of(text), {".": None}), expected, text)

    def test_server_block_zones(self):
        """Without ZONES, the block's."""
        parsed = parse_directive(directive_of("hosts", "example.org example.net"),
                                 {"example.org.": None, "example.net.": None})
        self.assertEqual(parsed.zones, ("example.org.", "example.net."))

    def test_errors(self):
        not_a_directory = self.mktemp()
        open(not_a_directory, "w").close()
        rows = [
            ("hosts\n hosts", 3, "this plugin can only be used once per server block"),
            ("hosts {\n ttl\n}", 3, "ttl needs a time in second"),
            ("hosts {\n ttl sixty\n}", 3, "ttl needs a number of second"),
            ("hosts {\n ttl 6_0\n}", 3, "ttl needs a number of second"),
            ("hosts {\n ttl 0\n}", 3, "ttl provided is invalid"),
            ("hosts {\n ttl 65536\n}", 3, "ttl provided is invalid"),
            ("hosts {\n reload\n}", 3, "reload needs a duration (zero seconds to disable)"),
            ("hosts {\n reload 5s 10s\n}", 3, "reload needs a duration (zero seconds to disable)"),
            ("hosts {\n reload 5\n}", 3, "invalid duration for reload '5'"),
            ("hosts {\n reload -5s\n}", 3, "invalid negative duration for reload '-5s'"),
            ("hosts {\n fallthrough\n 10.0.0.1 example.org\n}", 4, "unknown property '10.0.0.1'"),
            ("hosts {\n fallthrough_unsupported\n}", 3, "fallthrough_unsupported requires fallthrough"),
            ("hosts {\n fallthrough\n fallthrough_unsupported example.org\n}", 4,
             "Wrong argument count or unexpected line ending after 'example.org'"),
            ("hosts {\n no_reverse please\n}", 3, "unexpected argument 'please': expected at most 0"),
            ("hosts {\n ttl 60 {\n  x\n }\n}", 4, "unknown option 'x'"),
            (f"hosts {not_a_directory}/hosts", 2,
             f"unable to access hosts file '{not_a_directory}/hosts': stat {not_a_directory}/hosts: "
             "not a directory"),
            # Found by tests.fuzz.corefile (tests/fuzz/regressions/corefile/hosts-file-path-with-a-nul).
            ("hosts /a\0b", 2, "unable to access hosts file '/a\0b': stat /a\0b: invalid argument"),
        ]
        for text, line, message in rows:
            with self.assertRaises(CorefileError, msg=text) as raised:
                build_server(parse_corefile(f".:53 {{\n {text}\n}}\n", "Corefile")[0])
            self.assertIn(f"Corefile:{line}: plugin/hosts: {message}", str(raised.exception), text)

    def test_plan(self):
        path = write_corefile(self, ".:53 {\n hosts /etc/hosts example.org {\n  ttl 60\n  fallthrough\n }\n}\n")
        self.assertIn("    hosts /etc/hosts example.org. ttl 60 reload every 5s fallthrough .",
                      build_daemon(path).plan().splitlines())


# name, IP version, the addresses HOSTS_FILE (and aa.apps.example.com) gives.
LOOKUPS = [
    ("example.org.", 4, ("10.0.0.1",)),
    ("example.org.", 6, ("fdfc:a744:27b5:3b0e::1",)),
    ("aa.apps.example.com.", 4, ("1.2.3.4",)),
    ("other.apps.example.com.", 4, ("5.6.7.8",)),
    ("apps.example.com.", 4, ()),
    ("deep.other.apps.example.com.", 4, ()),
    ("missing.org.", 4, ()),
]


# reverse name, the names HOSTS_FILE gives it.
PTR_TARGETS = [
    ("1.0.0.127.in-addr.arpa.", ("localhost.", "localhost.domain.")),
    ("2.0.0.10.in-addr.arpa.", ("example.com.",)),
    # ::ffff:10.0.0.2, keyed as 10.0.0.2 (Go's net.IP.String).
    ("2.0.0.0.0.0.a.0.f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.", ("example.com.",)),
    ("8.7.6.5.in-addr.arpa.", ()),
    ("0.10.in-addr.arpa.", ()),
    ("example.org.", ()),
]


# address text, the address it stands for (None: not one).
ADDRESSES = [
    ("10.0.0.1", "10.0.0.1"),
    ("::FFFF:10.0.0.2", "10.0.0.2"),
    ("fe80::1%eth0", "fe80::1"),
    ("010.0.0.1", None),
    ("example.org", None),
]


# name, the wildcard that covers it.
WILDCARDS = [("a.example.com.", "*.example.com."), ("*.example.com.", "*.example.com."), ("com.", None), (".", None)]


@one_test_per_row("lookup", LOOKUPS, lambda row: f"{row[0]} {row[1]}")
@one_test_per_row("ptr_targets", PTR_TARGETS, lambda row: row[0])
@one_test_per_row("addresses", ADDRESSES, lambda row: row[0])
@one_test_per_row("wildcard_of", WILDCARDS, lambda row: row[0])
class HostsFileTests(unittest.SynchronousTestCase):
    """The hosts file as CoreDNS's hostsfile.go reads it."""

    def test_entries(self):
        hosts = parse_hosts(HOSTS_FILE, (".",), reverse=True)
        self.assertEqual(dict(hosts.names4), {
            "localhost.": ("127.0.0.1",),
            "localhost.domain.": ("127.0.0.1",),
            "example.org.": ("10.0.0.1",),
            "example.com.": ("10.0.0.2",),
        })
        self.assertEqual(dict(hosts.names6), {
            "localhost.": ("::1",),
            "ip6-localhost.": ("::1",),
            "example.org.": ("fdfc:a744:27b5:3b0e::1",),
        })
        self.assertEqual(dict(hosts.wild4), {"*.apps.example.com.": ("5.6.7.8",)})
        self.assertEqual(hosts.addresses["127.0.0.1"], ("localhost.", "localhost.domain."))
        self.assertEqual(hosts.addresses["10.0.0.2"], ("example.com.",))
        self.assertNotIn("5.6.7.8", hosts.addresses)

    def test_zones_and_reverse(self):
        hosts = parse_hosts(HOSTS_FILE, ("example.org.",), reverse=False)
        self.assertEqual(dict(hosts.names4), {"example.org.": ("10.0.0.1",)})
        self.assertEqual(dict(hosts.addresses), {})

    def check_lookup(self, row):
        name, version, expected = row
        hosts = parse_hosts(HOSTS_FILE + "1.2.3.4 aa.apps.example.com\n", (".",), reverse=True)
        self.assertEqual(hosts.lookup(name, version), expected, name)

    def check_ptr_targets(self, row):
        name, expected = row
        hosts = parse_hosts(HOSTS_FILE, (".",), reverse=True)
        self.assertEqual(ptr_targets(hosts, name), expected, name)

    def check_addresses(self, row):
        text, expected = row
        address = parse_address(text)
        self.assertEqual(None if address is None else str(address), expected, text)

    def check_wildcard_of(self, row):
        name, expected = row
        self.assertEqual(wildcard_of(name), expected, name)

    def test_read_only_when_changed(self):
        """An unchanged or unreadable file keeps the table object, so answers built from it stay valid."""
        path = self.mktemp()
        with open(path, "w") as hosts_file:
            hosts_file.write("10.0.0.1 a.example\n")
        first = read_hosts(path, Loaded(), (".",), True)
        self.assertEqual(first.hosts.lookup("a.example.", 4), ("10.0.0.1",))
        self.assertIs(read_hosts(path, first, (".",), True), first)
        with open(path, "w") as hosts_file:
            hosts_file.write("10.0.0.22 a.example\n")
        second = read_hosts(path, first, (".",), True)
        self.assertEqual(second.hosts.lookup("a.example.", 4), ("10.0.0.22",))
        os.remove(path)
        self.assertIs(read_hosts(path, second, (".",), True), second)


def records(reply):
    """The answer section as (name, ttl, type, rdata) texts."""
    return sorted((rrset.name.to_text(), rrset.ttl, rrset.rdtype.name, rdata.to_text())
                  for rrset in reply.answer for rdata in rrset)


class KeptAnswerTests(unittest.SynchronousTestCase):
    """An answer from hosts may be sent again while the file read is the one it came from."""

    def test_an_address_answer_holds_until_the_file_is_read_anew(self):
        config = build_server(parse_corefile(".:53 {\n hosts {\n  10.0.0.1 www.example.org\n }\n}\n",
                                             "Corefile")[0])
        (hosts,) = config.handlers
        response = hosts.serve(make_request("www.example.org", "A"))
        before = response.valid_while()
        hosts.loaded = Loaded()
        self.assertEqual((before, response.valid_while()), (True, False))


class HostsDaemonTests(unittest.TestCase):
    """Answers through a running daemon, as hosts_test.go's rows check them."""

    def setUp(self):
        self.upstream = FakeUpstream({("upstream.example.net.", "A"): ["192.0.2.1"],
                                      ("example.org.", "TXT"): ['"from upstream"'],
                                      ("9.0.0.10.in-addr.arpa.", "PTR"): ["upstream.example.net."]})
        self.upstream_port = self.upstream.start(self)
        self.hosts_path = self.mktemp()
        with open(self.hosts_path, "w") as hosts_file:
            hosts_file.write(HOSTS_FILE)

    def daemon(self, options="", args=""):
        return start_daemon(self, f""".:0 {{
    bind 127.0.0.1
    hosts {self.hosts_path} {args} {{
        10.0.0.3 inline.example.org
        10.0.0.4 example.org
        {options}
    }}
}}
""")

    def daemon_with_upstream(self, options, args=""):
        return start_daemon(self, f""".:0 {{
    bind 127.0.0.1
    hosts {self.hosts_path} {args} {{
        {options}
    }}
    forward . 127.0.0.1:{self.upstream_port}
}}
""")

    @defer.inlineCallbacks
    def assert_answers(self, port, rows):
        for name, qtype, rcode, expected in rows:
            reply = yield query(port, name, qtype)
            self.assertEqual((rcode_of(reply), records(reply)), (rcode, sorted(expected)), (name, qtype))
            if rcode == "NOERROR" and not any(ttl == UPSTREAM_TTL for _, ttl, _, _ in expected):
                self.assertTrue(reply.flags & 0x0400, f"{name} {qtype}: not authoritative")
                self.assertEqual(reply.authority, [], (name, qtype))

    def test_answers(self):
        port = self.daemon()
        return self.assert_answers(port, [
            ("example.org", "A", "NOERROR", [("example.org.", 3600, "A", "10.0.0.1"),
                                             ("example.org.", 3600, "A", "10.0.0.4")]),
            ("EXAMPLE.Org", "A", "NOERROR", [("EXAMPLE.Org.", 3600, "A", "10.0.0.1"),
                                             ("EXAMPLE.Org.", 3600, "A", "10.0.0.4")]),
            ("example.com", "A", "NOERROR", [("example.com.", 3600, "A", "10.0.0.2")]),
            ("inline.example.org", "A", "NOERROR", [("inline.example.org.", 3600, "A", "10.0.0.3")]),
            ("localhost", "AAAA", "NOERROR", [("localhost.", 3600, "AAAA", "::1")]),
            ("example.org", "AAAA", "NOERROR", [("example.org.", 3600, "AAAA", "fdfc:a744:27b5:3b0e::1")]),
            ("x.apps.example.com", "A", "NOERROR", [("x.apps.example.com.", 3600, "A", "5.6.7.8")]),
            ("1.0.0.10.in-addr.arpa", "PTR", "NOERROR", [("1.0.0.10.in-addr.arpa.", 3600, "PTR", "example.org.")]),
            ("3.0.0.10.in-addr.arpa", "PTR", "NOERROR",
             [("3.0.0.10.in-addr.arpa.", 3600, "PTR", "inline.example.org.")]),
            ("1.0.0.127.in-addr.arpa", "PTR", "NOERROR", [("1.0.0.127.in-addr.arpa.", 3600, "PTR", "localhost."),
                                                           ("1.0.0.127.in-addr.arpa.", 3600, "PTR",
                                                            "localhost.domain.")]),
            ("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa", "PTR", "NOERROR",
             [("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.", 3600, "PTR",
               "localhost."),
              ("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.", 3600, "PTR",
               "ip6-localhost.")]),
            # NODATA: the name is there, not with this type.
            ("example.com", "AAAA", "NOERROR", []),
            ("example.org", "MX", "NOERROR", []),
            # A name we lack: SERVFAIL (CoreDNS has no SOA to deny it with); a PTR miss goes on, to nothing.
            ("missing.example.org", "A", "SERVFAIL", []),
            ("missing.example.org", "MX", "SERVFAIL", []),
            ("apps.example.com", "A", "SERVFAIL", []),
            ("9.0.0.10.in-addr.arpa", "PTR", "SERVFAIL", []),
        ])

    def test_ttl_and_no_reverse(self):
        port = self.daemon("ttl 60\n        no_reverse")
        return self.assert_answers(port, [
            ("example.com", "A", "NOERROR", [("example.com.", 60, "A", "10.0.0.2")]),
            ("1.0.0.10.in-addr.arpa", "PTR", "SERVFAIL", []),
        ])

    def test_zones(self):
        """Names outside ZONES are neither read nor answered; PTR questions are answered in any zone."""
        port = start_daemon(self, f""".:0 {{
    bind 127.0.0.1
    hosts {self.hosts_path} example.org
    forward . 127.0.0.1:{self.upstream_port}
}}
""")
        return self.assert_answers(port, [
            ("example.org", "A", "NOERROR", [("example.org.", 3600, "A", "10.0.0.1")]),
            ("1.0.0.10.in-addr.arpa", "PTR", "NOERROR", [("1.0.0.10.in-addr.arpa.", 3600, "PTR", "example.org.")]),
            ("upstream.example.net", "A", "NOERROR", [("upstream.example.net.", 30, "A", "192.0.2.1")]),
            ("2.0.0.10.in-addr.arpa", "PTR", "NXDOMAIN", []),
        ])

    def test_fallthrough(self):
        port = self.daemon_with_upstream("fallthrough")
        return self.assert_answers(port, [
            ("example.org", "A", "NOERROR", [("example.org.", 3600, "A", "10.0.0.1")]),
            ("upstream.example.net", "A", "NOERROR", [("upstream.example.net.", 30, "A", "192.0.2.1")]),
            ("9.0.0.10.in-addr.arpa", "PTR", "NOERROR",
             [("9.0.0.10.in-addr.arpa.", 30, "PTR", "upstream.example.net.")]),
            # NODATA never falls through.
            ("example.org", "TXT", "NOERROR", []),
        ])

    def test_fallthrough_zones(self):
        port = self.daemon_with_upstream("fallthrough example.com")
        return self.assert_answers(port, [
            ("upstream.example.com", "A", "NXDOMAIN", []),
            ("upstream.example.net", "A", "SERVFAIL", []),
        ])

    def test_fallthrough_unsupported(self):
        port = self.daemon_with_upstream("fallthrough\n        fallthrough_unsupported")
        return self.assert_answers(port, [
            ("example.org", "TXT", "NOERROR", [("example.org.", 30, "TXT", '"from upstream"')]),
            ("example.org", "A", "NOERROR", [("example.org.", 3600, "A", "10.0.0.1")]),
        ])

    @defer.inlineCallbacks
    def test_reload(self):
        """A changed file is read again within a few reload intervals; the fast path then answers anew."""
        port = self.daemon("reload 50ms")
        reply = yield query(port, "example.com", "A")
        self.assertEqual(records(reply), [("example.com.", 3600, "A", "10.0.0.2")])
        with open(self.hosts_path, "w") as hosts_file:
            hosts_file.write("10.0.0.20 example.com new.example.com\n")
        for _ in range(100):
            reply = yield query(port, "new.example.com", "A")
            if rcode_of(reply) == "NOERROR":
                break
            yield task.deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(records(reply), [("new.example.com.", 3600, "A", "10.0.0.20")])
        reply = yield query(port, "example.com", "A")
        self.assertEqual(records(reply), [("example.com.", 3600, "A", "10.0.0.20")])
        reply = yield query(port, "inline.example.org", "A")
        self.assertEqual(records(reply), [("inline.example.org.", 3600, "A", "10.0.0.3")])

    @defer.inlineCallbacks
    def test_k3s(self):
        """k3s's Corefile stanza: NodeHosts, ttl 60, reload 15s, the rest upstream."""
        with open(self.hosts_path, "w") as hosts_file:
            hosts_file.write("172.18.0.2 k3d-server-0\n172.18.0.3 k3d-agent-0\n")
        port = start_daemon(self, f""".:0 {{
    bind 127.0.0.1
    errors
    hosts {self.hosts_path} {{
      ttl 60
      reload 15s
      fallthrough
    }}
    forward . 127.0.0.1:{self.upstream_port}
    cache 30
}}
""")
        # cache 30 caps hosts' ttl 60 at 30, as CoreDNS's cache does.
        yield self.assert_answers(port, [
            ("k3d-server-0", "A", "NOERROR", [("k3d-server-0.", 30, "A", "172.18.0.2")]),
            ("2.0.18.172.in-addr.arpa", "PTR", "NOERROR",
             [("2.0.18.172.in-addr.arpa.", 30, "PTR", "k3d-server-0.")]),
            ("k3d-agent-0", "AAAA", "NOERROR", []),
            ("upstream.example.net", "A", "NOERROR", [("upstream.example.net.", 30, "A", "192.0.2.1")]),
        ])
