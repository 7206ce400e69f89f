"""
acl through a running daemon, over real UDP and TCP: CoreDNS's
C{plugin/acl/setup_test.go} and C{acl_test.go} rows, one test per row, and
kept replies that must not reach a client another decision applies to.

A test can send only from loopback addresses, so the rows' addresses are
moved there, each keeping its place inside or outside the row's networks:
IPv4 C{192.x.y.z} becomes C{127.x.y.z} and C{10.1.0.2} becomes
C{127.1.0.2}; IPv6 rows are sent from C{::1}, their networks holding the
source written with C{::} where CoreDNS's has C{2001:db8:abcd:12::} or the
source itself (C{::1}, C{::2} for the address next to it).  The next plugin
is whoami (NOERROR).  A dropped query is told by the reply the same socket
gets next: the one to a question acl lets through, sent right after it.

Not ported: acl_test.go "Fine-Grained 2 ALLOWED" asks a name outside the
server block's zones, which no plugin of that block sees (REFUSED before
the chain); "Blacklist Address%ifname" is the row before it with AAAA, from
C{::1} (no zone index on loopback).
"""

from __future__ import annotations

import socket
from typing import NamedTuple

import dns.edns
import dns.message
import dns.query
import dns.rcode
from twisted.internet import defer
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from kubernetai.chain import build_server
from kubernetai.corefile import CorefileError, parse_corefile
from tests.support import start_daemon, start_daemon_service
from tests.test_kubernetes_records import table

EDE = dns.edns.OptionType.EDE
PROBE = "probe.example.net."


def corefile(acl: str, host: str = "127.0.0.1", plugins: str = "whoami") -> str:
    """A block for example.org and example.net on port 0 of C{host} with C{acl}, then C{plugins}."""
    return f"example.org:0 example.net:0 {{\n    bind {host}\n    {acl}\n    {plugins}\n}}\n"


def exchange(port: int, server: str, source: str, name: str, rdtype: str, then_probe: bool = False):
    """Ask C{name} C{rdtype} (with EDNS) from C{source} over UDP; a Deferred firing with the reply, or, with
    C{then_probe}, with whichever reply comes first after a question for L{PROBE} is sent right behind it."""

    def ask():
        family = socket.AF_INET6 if ":" in server else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.settimeout(5)
            sock.bind((source, 0))
            message = dns.message.make_query(name, rdtype, use_edns=0, payload=1232)
            sock.sendto(message.to_wire(), (server, port))
            if then_probe:
                sock.sendto(dns.message.make_query(PROBE, "TXT").to_wire(), (server, port))
            return dns.message.from_wire(sock.recv(65535), ignore_trailing=True)

    return deferToThread(ask)


def outcome(reply) -> tuple[str, list[int]]:
    """A reply's rcode and the info codes of its Extended DNS Errors."""
    return dns.rcode.to_text(reply.rcode()), [option.code for option in reply.options if option.otype == EDE]


class AclRow(NamedTuple):
    qname: str
    qtype: str
    acl: str  # the acl directives, one a line
    source: str
    rcode: str | None  # None: dropped
    ede: tuple[int, ...] = ()


BLOCKED, FILTERED = 15, 17
A, AAAA = "A", "AAAA"


# acl_test.go TestACLServeDNS, in its order (its names in the comments)
@table([
    # Blacklist 1 BLOCKED / ALLOWED
    AclRow("www.example.org.", A, "acl example.org {\n block type A net 127.168.0.0/16\n}", "127.168.0.2",
           "REFUSED", (BLOCKED,)),
    AclRow("www.example.org.", A, "acl example.org {\n block type A net 127.168.0.0/16\n}", "127.167.0.2", "NOERROR"),
    # Blacklist 2 BLOCKED
    AclRow("www.example.org.", AAAA, "acl example.org {\n block type * net 127.168.0.0/16\n}", "127.168.0.2",
           "REFUSED", (BLOCKED,)),
    # Blacklist 3 BLOCKED / ALLOWED
    AclRow("www.example.org.", A, "acl example.org {\n block type A\n}", "127.1.0.2", "REFUSED", (BLOCKED,)),
    AclRow("www.example.org.", AAAA, "acl example.org {\n block type A\n}", "127.1.0.2", "NOERROR"),
    # Blacklist 4 Single IP BLOCKED / ALLOWED
    AclRow("www.example.org.", A, "acl example.org {\n block type A net 127.168.1.2\n}", "127.168.1.2",
           "REFUSED", (BLOCKED,)),
    AclRow("www.example.org.", A, "acl example.org {\n block type A net 127.168.1.2\n}", "127.168.1.3", "NOERROR"),
    # Filter 1 FILTERED / ALLOWED
    AclRow("www.example.org.", A, "acl example.org {\n filter type A net 127.168.0.0/16\n}", "127.168.0.2",
           "NOERROR", (FILTERED,)),
    AclRow("www.example.org.", A, "acl example.org {\n filter type A net 127.168.0.0/16\n}", "127.167.0.2",
           "NOERROR"),
    # Whitelist 1 ALLOWED / REFUSED
    AclRow("www.example.org.", A, "acl example.org {\n allow net 127.168.0.0/16\n block\n}", "127.168.0.2",
           "NOERROR"),
    AclRow("www.example.org.", A, "acl example.org {\n allow type * net 127.168.0.0/16\n block\n}", "127.1.0.2",
           "REFUSED", (BLOCKED,)),
    # Drop 1 DROPPED
    AclRow("www.example.org.", A, "acl example.org {\n drop net 127.168.0.0/16\n}", "127.168.0.2", None),
    # Subnet-Order 1 REFUSED, 2 DROPPED
    AclRow("www.example.org.", A, "acl example.org {\n block net 127.168.1.0/24\n drop net 127.168.0.0/16\n}",
           "127.168.1.2", "REFUSED", (BLOCKED,)),
    AclRow("www.example.org.", A, "acl example.org {\n drop net 127.168.0.0/16\n block net 127.168.1.0/24\n}",
           "127.168.1.1", None),
    # Drop-Type 1 DROPPED, 2 ALLOWED
    AclRow("www.example.org.", A, "acl example.org {\n drop type A\n allow net 127.168.0.0/16\n}", "127.168.1.1",
           None),
    AclRow("www.example.org.", AAAA, "acl example.org {\n drop type A\n allow net 127.168.0.0/16\n}",
           "127.168.1.1", "NOERROR"),
    # Fine-Grained 1 REFUSED / ALLOWED
    AclRow("a.example.org.", A, "acl a.example.org {\n block type * net 127.168.1.0/24\n}", "127.168.1.2",
           "REFUSED", (BLOCKED,)),
    AclRow("www.example.org.", A, "acl a.example.org {\n block net 127.168.1.0/24\n}", "127.168.1.2", "NOERROR"),
    # Fine-Grained 2 REFUSED
    AclRow("a.example.org.", A, "acl example.org {\n block net 127.168.1.0/24\n}", "127.168.1.2",
           "REFUSED", (BLOCKED,)),
    # Fine-Grained 3 REFUSED / ALLOWED
    AclRow("b.example.org.", A, "acl a.example.org {\n block net 127.168.1.0/24\n}\n"
           "acl b.example.org {\n block type * net 127.168.2.0/24\n}", "127.168.2.2", "REFUSED", (BLOCKED,)),
    AclRow("b.example.org.", A, "acl a.example.org {\n block net 127.168.1.0/24\n}\n"
           "acl b.example.org {\n block net 127.168.2.0/24\n}", "127.168.1.2", "NOERROR"),
    # Blacklist 1 BLOCKED / ALLOWED IPv6
    AclRow("www.example.org.", A, "acl example.org {\n block type A net ::0/64\n}", "::1", "REFUSED", (BLOCKED,)),
    AclRow("www.example.org.", A, "acl example.org {\n block type A net 2001:db8:abcd:0012::0/64\n}", "::1",
           "NOERROR"),
    # Blacklist 2 BLOCKED IPv6
    AclRow("www.example.org.", A, "acl example.org {\n block type A\n}", "::1", "REFUSED", (BLOCKED,)),
    # Blacklist 3 Single IP BLOCKED / ALLOWED IPv6
    AclRow("www.example.org.", A, "acl example.org {\n block type A net ::1\n}", "::1", "REFUSED", (BLOCKED,)),
    AclRow("www.example.org.", A, "acl example.org {\n block type A net ::2\n}", "::1", "NOERROR"),
    # Fine-Grained 1 REFUSED / ALLOWED IPv6
    AclRow("a.example.org.", A, "acl a.example.org {\n block type * net ::0/64\n}", "::1", "REFUSED", (BLOCKED,)),
    AclRow("www.example.org.", A, "acl a.example.org {\n block net ::0/64\n}", "::1", "NOERROR"),
    # Blacklist Address%ifname
    AclRow("www.example.org.", AAAA, "acl example.org {\n block type AAAA net ::1\n}", "::1", "REFUSED",
           (BLOCKED,)),
    # Drop 1 DROPPED IPV6
    AclRow("www.example.org.", AAAA, "acl example.org {\n drop net ::1\n}", "::1", None),
    # Subnet-Order 1 REFUSED, 2 DROPPED IPv6
    AclRow("www.example.org.", AAAA, "acl example.org {\n block net ::/66\n drop net ::0/64\n}", "::1",
           "REFUSED", (BLOCKED,)),
    AclRow("www.example.org.", AAAA, "acl example.org {\n drop net ::0/64\n block net ::/66\n}", "::1", None),
    # Drop-Type 1 DROPPED, 2 ALLOWED IPv6
    AclRow("www.example.org.", A, "acl example.org {\n drop type A\n allow net ::/64\n}", "::1", None),
    AclRow("www.example.org.", AAAA, "acl example.org {\n drop type A\n allow net ::/64\n}", "::1", "NOERROR"),
])
class AclTests(unittest.TestCase):
    @defer.inlineCallbacks
    def check(self, row: AclRow):
        server = "::1" if ":" in row.source else "127.0.0.1"
        port = start_daemon(self, corefile(row.acl, server))
        reply = yield exchange(port, server, row.source, row.qname, row.qtype, then_probe=row.rcode is None)
        if row.rcode is None:
            self.assertEqual(reply.question[0].name.to_text(), PROBE)
        else:
            self.assertEqual(outcome(reply), (row.rcode, list(row.ede)))
            self.assertEqual(reply.question[0].name.to_text(), row.qname)


class AclSetupRow(NamedTuple):
    qname: str  # CoreDNS's name for the row
    qtype: int
    lines: str
    error: str | None


def acl_setup_error(lines: str) -> str | None:
    try:
        build_server(parse_corefile(corefile("acl example.org {\n" + lines + "\n}"), "Corefile")[0])
    except CorefileError as err:
        return str(err)
    return None


def error_at_line_4(message: str) -> str:
    return "Corefile:4: plugin/acl: " + message


# setup_test.go TestSetup
@table([
    AclSetupRow("Blacklist 1", 0, "block type A net 192.168.0.0/16", None),
    AclSetupRow("Blacklist 2", 0, "block type * net 192.168.0.0/16", None),
    AclSetupRow("Blacklist 3", 0, "block type A net *", None),
    AclSetupRow("Blacklist 4", 0, "allow type * net 192.168.1.0/24\nblock type * net 192.168.0.0/16", None),
    AclSetupRow("Filter 1", 0, "filter type A net 192.168.0.0/16", None),
    AclSetupRow("Whitelist 1", 0, "allow type * net 192.168.0.0/16\nblock type * net *", None),
    AclSetupRow("Drop 1", 0, "drop type * net 192.168.0.0/16", None),
    AclSetupRow("fine-grained 1", 0, "block type * net 192.168.1.0/24", None),
    AclSetupRow("fine-grained 2", 0, "block type * net 192.168.1.0/24\nblock type * net 192.168.2.0/24", None),
    AclSetupRow("Multiple Networks 1", 0, "block type * net 192.168.1.0/24 192.168.3.0/24", None),
    AclSetupRow("Multiple Qtypes 1", 0, "block type TXT ANY CNAME net 192.168.3.0/24", None),
    AclSetupRow("Missing argument 1", 0, "block A net 192.168.0.0/16",
                error_at_line_4("unexpected token 'A'; expect 'type | net'")),
    AclSetupRow("Missing argument 2", 0, "block type net 192.168.0.0/16",
                error_at_line_4("no token specified in 'type' section")),
    AclSetupRow("Illegal argument 1", 0, "block type ABC net 192.168.0.0/16",
                error_at_line_4("unexpected token 'ABC'; expect legal QTYPE")),
    AclSetupRow("Illegal argument 2", 0, "blck type A net 192.168.0.0/16",
                error_at_line_4("unexpected token 'blck'; expect 'allow', 'block', 'filter' or 'drop'")),
    AclSetupRow("Illegal argument 3", 0, "block type A net 192.168.0/16",
                error_at_line_4("illegal CIDR notation '192.168.0/16'")),
    AclSetupRow("Illegal argument 4", 0, "block type A net 192.168.0.0/33",
                error_at_line_4("illegal CIDR notation '192.168.0.0/33'")),
    AclSetupRow("Blacklist 1 IPv6", 0, "block type A net 2001:0db8:85a3:0000:0000:8a2e:0370:7334", None),
    AclSetupRow("Blacklist 2 IPv6", 0, "block type * net 2001:db8:85a3::8a2e:370:7334", None),
    AclSetupRow("Blacklist 3 IPv6", 0, "block type A", None),
    AclSetupRow("Blacklist 4 IPv6", 0, "allow net 2001:db8:abcd:0012::0/64\nblock net 2001:db8:abcd:0012::0/48", None),
    AclSetupRow("Filter 1 IPv6", 0, "filter type A net 2001:0db8:85a3:0000:0000:8a2e:0370:7334", None),
    AclSetupRow("Whitelist 1 IPv6", 0, "allow net 2001:db8:abcd:0012::0/64\nblock", None),
    AclSetupRow("Drop 1 IPv6", 0, "drop net 2001:db8:abcd:0012::0/64", None),
    AclSetupRow("fine-grained 1 IPv6", 0, "block net 2001:db8:abcd:0012::0/64", None),
    AclSetupRow("fine-grained 2 IPv6", 0, "block net 2001:db8:abcd:0012::0/64\nblock net 2001:db8:abcd:0013::0/64",
                None),
    AclSetupRow("Multiple Networks 1 IPv6", 0, "block net 2001:db8:abcd:0012::0/64 2001:db8:85a3::8a2e:370:7334/64",
                None),
    AclSetupRow("Illegal argument 1 IPv6", 0, "block type A net 2001::85a3::8a2e:370:7334",
                error_at_line_4("illegal CIDR notation '2001::85a3::8a2e:370:7334'")),
    AclSetupRow("Illegal argument 2 IPv6", 0, "block type A net 2001:db8:85a3:::8a2e:370:7334",
                error_at_line_4("illegal CIDR notation '2001:db8:85a3:::8a2e:370:7334'")),
])
class AclSetupTests(unittest.SynchronousTestCase):
    def check(self, row: AclSetupRow):
        self.assertEqual(acl_setup_error(row.lines), row.error)


HOSTS = "hosts {\n        192.0.2.1 www.example.org\n    }"


class KeptReplyTests(unittest.TestCase):
    """A reply the server may send again never reaches a client acl decides otherwise for."""

    @defer.inlineCallbacks
    def daemon(self, acl: str):
        """The daemon's DNS service and port, once it listens."""
        dns_service = start_daemon_service(self, corefile(acl, plugins=HOSTS)).getServiceNamed("dns")
        yield dns_service.listening
        return dns_service, dns_service.addresses()[0][2]

    @defer.inlineCallbacks
    def test_decision_by_network_is_asked_anew(self):
        dns_service, port = yield self.daemon("acl {\n block net 127.168.0.0/16\n}")
        for source in ("127.0.0.1", "127.0.0.1", "127.168.0.2", "127.0.0.2"):
            reply = yield exchange(port, "127.0.0.1", source, "www.example.org.", A)
            expected = ("REFUSED", [BLOCKED]) if source.startswith("127.168.") else ("NOERROR", [])
            self.assertEqual((source, outcome(reply)), (source, expected))
        self.assertEqual(sum(table.kept_replies() for table in dns_service.tables.values()), 0)

    @defer.inlineCallbacks
    def test_decision_for_every_client_is_kept(self):
        dns_service, port = yield self.daemon("acl {\n block type AAAA\n}")
        for source in ("127.0.0.1", "127.168.0.2"):
            for qtype, expected in ((A, ("NOERROR", [])), (AAAA, ("REFUSED", [BLOCKED]))):
                reply = yield exchange(port, "127.0.0.1", source, "www.example.org.", qtype)
                self.assertEqual((source, qtype, outcome(reply)), (source, qtype, expected))
        self.assertEqual(sum(table.kept_replies() for table in dns_service.tables.values()), 2)

    @defer.inlineCallbacks
    def test_tcp(self):
        port = start_daemon(self, corefile("acl {\n block net 127.0.0.0/8\n}"))
        reply = yield deferToThread(dns.query.tcp, dns.message.make_query("www.example.org", A, use_edns=0),
                                    "127.0.0.1", timeout=5, port=port)
        self.assertEqual(outcome(reply), ("REFUSED", [BLOCKED]))
