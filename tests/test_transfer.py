"""
Zone transfers: the C{transfer} directive parsed and refused as CoreDNS's
C{plugin/transfer/setup_test.go} has it; a stanza's zone record for record
as CoreDNS's C{plugin/kubernetes/xfr_test.go} expects it; the messages a
transfer goes out in; and end to end, a running daemon whose stanza syncs
from the test API server answering dnspython's AXFR and IXFR over TCP.
"""

from __future__ import annotations

import dataclasses

import dns.flags
import dns.message
import dns.query
import dns.rdatatype
import dns.xfr
import dns.zone
from twisted.internet import defer
from twisted.internet.threads import deferToThread
from twisted.names import dns as tdns
from twisted.trial import unittest
from zope.interface import implementer

from kubernetai.chain import IHandler, Request, Response, ServerConfig, build_server, link
from kubernetai.corefile import CorefileError, parse_corefile
from kubernetai.kubernetes.entries import View
from kubernetai.kubernetes.stanza import Stanza
from kubernetai.kubernetes.xfr import srv_weight, zone_transfer
from kubernetai.plugins.kubernetai import Kubernetai
from kubernetai.plugins.transfer import (
    ENVELOPE_BYTES, Transfer, envelopes, ixfr_serial, longest_match, parse_rule, wire_length,
)
from kubernetai.answer import ZoneTable, answer_packet
from kubernetai.apiserver.resources import make_endpoint_slice, make_namespace, make_service
from tests.k8sdata import HTTP, SERIAL, SERVE_TEST
from tests.k8sdata import snapshot as serve_snapshot
from tests.test_kubernetes_multicluster import SERVE_MULTICLUSTER
from tests.test_kubernetes_multicluster import snapshot as multicluster_snapshot
from tests.test_kubernetes_records import render, stanza
from tests.test_kubernetes_stanza import StanzaTestCase, stanza_block
from tests.support import capture_logs, one_test_per_row, query, rcode_of, send


def plan_of(text: str) -> list[str]:
    """The plan lines of the transfer directives in a Corefile's first server block."""
    config = build_server(parse_corefile(text, "Corefile")[0])
    return [line for line in config.plan if line.startswith("transfer ")]


# setup_test.go TestParse and TestSetup, and our additions (networks, several `to` lines, reverse zones).
VALID = [
    (
        """example.org {
    transfer example.net example.org {
        to 1.2.3.4 5.6.7.8:1053 [1::2]:34 [fe80::1%eth0]:53
    }
    transfer example.com example.edu {
        to * 1.2.3.4
    }
}""",
        ["transfer example.net. example.org. to 1.2.3.4 5.6.7.8 1::2 fe80::1%eth0",
         "transfer example.com. example.edu. to * 1.2.3.4"],
    ),
    (". {\n transfer {\n  to 1.2.3.4 5.6.7.8:1053 [1::2]:34\n }\n}", ["transfer . to 1.2.3.4 5.6.7.8 1::2"]),
    (
        "cluster.local 10.0.0.0/24 {\n transfer {\n  to 10.1.2.3/8\n  to 2001:db8::/32 192.0.2.7\n }\n}",
        ["transfer cluster.local. 0.0.10.in-addr.arpa. to 10.0.0.0/8 2001:db8::/32 192.0.2.7"],
    ),
    (". {\n transfer Cluster.Local dns://10.0.0.0/23 {\n  to *\n }\n}",
     ["transfer cluster.local. 0.0.10.in-addr.arpa. 1.0.10.in-addr.arpa. to *"]),
]

# (Corefile, line, message): every error setup gives.
INVALID = [
    (". {\n transfer\n}", 2, "'to' is required"),
    (". {\n transfer example.net example.org {\n }\n}", 2, "'to' is required"),
    (". {\n transfer {\n  to\n }\n}", 3, "expected at least 1 argument(s), got 0"),
    (". {\n transfer {\n  invalid option\n }\n}", 3, "unknown property 'invalid': expected to"),
    (". {\n transfer {\n  to 1.2.3.4\n  source 192.0.2.53\n }\n}", 4,
     "source is not supported: it only sets where NOTIFY comes from, and kubernetai sends none"),
    (". {\n transfer example.com {\n  to example.com 1.2.3.4\n }\n}", 3,
     "invalid address 'example.com': expected an IP address (optionally with a port), a network such as "
     "10.0.0.0/8, or *"),
    (". {\n transfer {\n  to 10.0.0.0/33\n }\n}", 3, "invalid address '10.0.0.0/33'"),
    (". {\n transfer {\n  to 1.2.3.4:domain\n }\n}", 3, "invalid address '1.2.3.4:domain'"),
    (". {\n transfer {\n  to 1.2.3.4:65536\n }\n}", 3, "invalid address '1.2.3.4:65536'"),
    (". {\n transfer {\n  to [1::2]\n }\n}", 3, "invalid address '[1::2]'"),
    (". {\n transfer {\n  to * {\n   now\n  }\n }\n}", 4, "unknown option 'now'"),
    (". {\n transfer tls://example.org {\n  to *\n }\n}", 2, "unsupported scheme tls://"),
]


@one_test_per_row("valid", VALID, lambda row: row[1][0])
@one_test_per_row("invalid", INVALID, lambda row: row[2])
class ParseTests(unittest.SynchronousTestCase):
    def check_valid(self, row):
        text, plan = row
        self.assertEqual(plan_of(text), plan, text)

    def check_invalid(self, row):
        text, line, message = row
        with self.assertRaises(CorefileError, msg=text) as raised:
            plan_of(text)
        self.assertIn(f"Corefile:{line}: plugin/transfer: {message}", str(raised.exception))

    def test_allowed_clients(self):
        (block,) = parse_corefile(". {\n transfer {\n  to 192.0.2.1:53 10.0.0.0/8 fd00::/64\n }\n}", "Corefile")
        rule = parse_rule(block.directives[0], ["."])
        allowed = ["192.0.2.1", "10.255.0.1", "fd00::1"]
        refused = ["192.0.2.2", "11.0.0.1", "fd01::1", "::1"]
        self.assertEqual([host for host in allowed + refused if rule.allows(host)], allowed)
        (anyone,) = parse_corefile(". {\n transfer {\n  to *\n }\n}", "Corefile")
        self.assertTrue(parse_rule(anyone.directives[0], ["."]).allows("2001:db8::1"))

    def test_most_specific_zone_decides(self):
        (block,) = parse_corefile(
            ". {\n transfer {\n  to *\n }\n transfer cluster.local {\n  to 10.0.0.1\n }\n"
            " transfer cluster.local {\n  to 10.0.0.2\n }\n}", "Corefile")
        everything, first, second = (parse_rule(directive, ["."]) for directive in block.directives)
        self.assertIs(longest_match([everything, first, second], "cluster.local."), first)
        self.assertIs(longest_match([everything, first, second], "svc.cluster.local."), first)
        self.assertIs(longest_match([first, everything], "example.org."), everything)
        self.assertIsNone(longest_match([first], "example.org."))


# xfr_test.go expectedZone, its serial (3 in CoreDNS's fake) the snapshot's.
EXPECTED_ZONE = f"""
cluster.local.	5	IN	SOA	ns.dns.cluster.local. hostmaster.cluster.local. {SERIAL} 7200 1800 86400 5
cluster.local.	5	IN	NS	ns.dns.cluster.local.
ns.dns.cluster.local.	5	IN	A	10.0.0.10
external.testns.svc.cluster.local.	5	IN	CNAME	ext.interwebs.test.
external-to-service.testns.svc.cluster.local.	5	IN	CNAME	svc1.testns.svc.cluster.local.
hdls1.testns.svc.cluster.local.	5	IN	A	172.0.0.2
172-0-0-2.hdls1.testns.svc.cluster.local.	5	IN	A	172.0.0.2
_http._tcp.hdls1.testns.svc.cluster.local.	5	IN	SRV	0 16 80 172-0-0-2.hdls1.testns.svc.cluster.local.
hdls1.testns.svc.cluster.local.	5	IN	A	172.0.0.3
172-0-0-3.hdls1.testns.svc.cluster.local.	5	IN	A	172.0.0.3
_http._tcp.hdls1.testns.svc.cluster.local.	5	IN	SRV	0 16 80 172-0-0-3.hdls1.testns.svc.cluster.local.
hdls1.testns.svc.cluster.local.	5	IN	A	172.0.0.4
dup-name.hdls1.testns.svc.cluster.local.	5	IN	A	172.0.0.4
_http._tcp.hdls1.testns.svc.cluster.local.	5	IN	SRV	0 16 80 dup-name.hdls1.testns.svc.cluster.local.
hdls1.testns.svc.cluster.local.	5	IN	A	172.0.0.5
dup-name.hdls1.testns.svc.cluster.local.	5	IN	A	172.0.0.5
_http._tcp.hdls1.testns.svc.cluster.local.	5	IN	SRV	0 16 80 dup-name.hdls1.testns.svc.cluster.local.
hdls1.testns.svc.cluster.local.	5	IN	AAAA	5678:abcd::1
5678-abcd--1.hdls1.testns.svc.cluster.local.	5	IN	AAAA	5678:abcd::1
_http._tcp.hdls1.testns.svc.cluster.local.	5	IN	SRV	0 16 80 5678-abcd--1.hdls1.testns.svc.cluster.local.
hdls1.testns.svc.cluster.local.	5	IN	AAAA	5678:abcd::2
5678-abcd--2.hdls1.testns.svc.cluster.local.	5	IN	AAAA	5678:abcd::2
_http._tcp.hdls1.testns.svc.cluster.local.	5	IN	SRV	0 16 80 5678-abcd--2.hdls1.testns.svc.cluster.local.
hdlsprtls.testns.svc.cluster.local.	5	IN	A	172.0.0.20
172-0-0-20.hdlsprtls.testns.svc.cluster.local.	5	IN	A	172.0.0.20
kubedns.kube-system.svc.cluster.local.	5	IN	A	10.0.0.10
kubedns.kube-system.svc.cluster.local.	5	IN	SRV	0 100 53 kubedns.kube-system.svc.cluster.local.
_dns._udp.kubedns.kube-system.svc.cluster.local.	5	IN	SRV	0 100 53 kubedns.kube-system.svc.cluster.local.
svc-dual-stack.testns.svc.cluster.local.	5	IN	A	10.0.0.3
svc-dual-stack.testns.svc.cluster.local.	5	IN	AAAA	10::3
svc-dual-stack.testns.svc.cluster.local.	5	IN	SRV	0 100 80 svc-dual-stack.testns.svc.cluster.local.
_http._tcp.svc-dual-stack.testns.svc.cluster.local.	5	IN	SRV	0 100 80 svc-dual-stack.testns.svc.cluster.local.
svc1.testns.svc.cluster.local.	5	IN	A	10.0.0.1
svc1.testns.svc.cluster.local.	5	IN	SRV	0 100 80 svc1.testns.svc.cluster.local.
_http._tcp.svc1.testns.svc.cluster.local.	5	IN	SRV	0 100 80 svc1.testns.svc.cluster.local.
svc6.testns.svc.cluster.local.	5	IN	AAAA	1234:abcd::1
svc6.testns.svc.cluster.local.	5	IN	SRV	0 100 80 svc6.testns.svc.cluster.local.
_http._tcp.svc6.testns.svc.cluster.local.	5	IN	SRV	0 100 80 svc6.testns.svc.cluster.local.
svcempty.testns.svc.cluster.local.	5	IN	A	10.0.0.1
svcempty.testns.svc.cluster.local.	5	IN	SRV	0 100 80 svcempty.testns.svc.cluster.local.
_http._tcp.svcempty.testns.svc.cluster.local.	5	IN	SRV	0 100 80 svcempty.testns.svc.cluster.local.
cluster.local.	5	IN	SOA	ns.dns.cluster.local. hostmaster.cluster.local. {SERIAL} 7200 1800 86400 5
"""

# xfr_test.go expectedMultiClusterZone, but with each endpoint named by its cluster
# (172-0-0-2.cluster1.hdls1...), as the zone answers it: xfr.go leaves "cluster1." out.
EXPECTED_MULTICLUSTER_ZONE = f"""
clusterset.local.	5	IN	SOA	ns.dns.clusterset.local. hostmaster.clusterset.local. {SERIAL} 7200 1800 86400 5
clusterset.local.	5	IN	NS	ns.dns.clusterset.local.
ns.dns.clusterset.local.	5	IN	A	10.0.0.10
hdls1.testns.svc.clusterset.local.	5	IN	A	172.0.0.2
172-0-0-2.cluster1.hdls1.testns.svc.clusterset.local.	5	IN	A	172.0.0.2
_http._tcp.hdls1.testns.svc.clusterset.local.	5	IN	SRV	0 16 80 172-0-0-2.cluster1.hdls1.testns.svc.clusterset.local.
hdls1.testns.svc.clusterset.local.	5	IN	A	172.0.0.3
172-0-0-3.cluster1.hdls1.testns.svc.clusterset.local.	5	IN	A	172.0.0.3
_http._tcp.hdls1.testns.svc.clusterset.local.	5	IN	SRV	0 16 80 172-0-0-3.cluster1.hdls1.testns.svc.clusterset.local.
hdls1.testns.svc.clusterset.local.	5	IN	A	172.0.0.4
dup-name.cluster1.hdls1.testns.svc.clusterset.local.	5	IN	A	172.0.0.4
_http._tcp.hdls1.testns.svc.clusterset.local.	5	IN	SRV	0 16 80 dup-name.cluster1.hdls1.testns.svc.clusterset.local.
hdls1.testns.svc.clusterset.local.	5	IN	A	172.0.0.5
dup-name.cluster1.hdls1.testns.svc.clusterset.local.	5	IN	A	172.0.0.5
_http._tcp.hdls1.testns.svc.clusterset.local.	5	IN	SRV	0 16 80 dup-name.cluster1.hdls1.testns.svc.clusterset.local.
hdls1.testns.svc.clusterset.local.	5	IN	AAAA	5678:abcd::1
5678-abcd--1.cluster1.hdls1.testns.svc.clusterset.local.	5	IN	AAAA	5678:abcd::1
_http._tcp.hdls1.testns.svc.clusterset.local.	5	IN	SRV	0 16 80 5678-abcd--1.cluster1.hdls1.testns.svc.clusterset.local.
hdls1.testns.svc.clusterset.local.	5	IN	AAAA	5678:abcd::2
5678-abcd--2.cluster1.hdls1.testns.svc.clusterset.local.	5	IN	AAAA	5678:abcd::2
_http._tcp.hdls1.testns.svc.clusterset.local.	5	IN	SRV	0 16 80 5678-abcd--2.cluster1.hdls1.testns.svc.clusterset.local.
hdlsprtls.testns.svc.clusterset.local.	5	IN	A	172.0.0.20
172-0-0-20.cluster1.hdlsprtls.testns.svc.clusterset.local.	5	IN	A	172.0.0.20
kubedns.kube-system.svc.clusterset.local.	5	IN	A	10.0.0.10
kubedns.kube-system.svc.clusterset.local.	5	IN	SRV	0 100 53 kubedns.kube-system.svc.clusterset.local.
_dns._udp.kubedns.kube-system.svc.clusterset.local.	5	IN	SRV	0 100 53 kubedns.kube-system.svc.clusterset.local.
svc-dual-stack.testns.svc.clusterset.local.	5	IN	A	10.0.0.3
svc-dual-stack.testns.svc.clusterset.local.	5	IN	AAAA	10::3
svc-dual-stack.testns.svc.clusterset.local.	5	IN	SRV	0 100 80 svc-dual-stack.testns.svc.clusterset.local.
_http._tcp.svc-dual-stack.testns.svc.clusterset.local.	5	IN	SRV	0 100 80 svc-dual-stack.testns.svc.clusterset.local.
svc1.testns.svc.clusterset.local.	5	IN	A	10.0.0.1
svc1.testns.svc.clusterset.local.	5	IN	SRV	0 100 80 svc1.testns.svc.clusterset.local.
_http._tcp.svc1.testns.svc.clusterset.local.	5	IN	SRV	0 100 80 svc1.testns.svc.clusterset.local.
svc6.testns.svc.clusterset.local.	5	IN	AAAA	1234:abcd::1
svc6.testns.svc.clusterset.local.	5	IN	SRV	0 100 80 svc6.testns.svc.clusterset.local.
_http._tcp.svc6.testns.svc.clusterset.local.	5	IN	SRV	0 100 80 svc6.testns.svc.clusterset.local.
svcempty.testns.svc.clusterset.local.	5	IN	A	10.0.0.1
svcempty.testns.svc.clusterset.local.	5	IN	SRV	0 100 80 svcempty.testns.svc.clusterset.local.
_http._tcp.svcempty.testns.svc.clusterset.local.	5	IN	SRV	0 100 80 svcempty.testns.svc.clusterset.local.
clusterset.local.	5	IN	SOA	ns.dns.clusterset.local. hostmaster.clusterset.local. {SERIAL} 7200 1800 86400 5
"""


def lines(zone_text: str) -> list[str]:
    """Zone-file lines with single tabs between fields."""
    return ["\t".join(line.split()) for line in zone_text.strip().splitlines()]


def rendered(records) -> list[str]:
    return lines("\n".join(render(record) for record in records))


# xfr_test.go: New([]string{"cluster.local."}), Namespaces testns and kube-system, localIPs 10.0.0.10.
SERVE_VIEW = View(stanza("kubernetes cluster.local {\n namespaces testns kube-system\n}"),
                  serve_snapshot(SERVE_TEST), ("10.0.0.10",))


class ZoneTransferTests(unittest.SynchronousTestCase):
    """xfr_test.go, against the cluster of handler_test.go's APIConnServeTest (L{tests.k8sdata})."""

    def test_axfr(self):
        self.assertEqual(rendered(zone_transfer(SERVE_VIEW, "cluster.local.")), lines(EXPECTED_ZONE))

    def test_multicluster_axfr(self):
        config = stanza("kubernetes cluster.local clusterset.local {\n multicluster clusterset.local\n"
                        " namespaces testns kube-system\n}")
        view = View(config, multicluster_snapshot(SERVE_MULTICLUSTER), ("10.0.0.10",))
        self.assertEqual(rendered(zone_transfer(view, "clusterset.local.")), lines(EXPECTED_MULTICLUSTER_ZONE))

    def test_ixfr_from_an_older_serial_is_the_whole_zone(self):
        self.assertEqual(rendered(zone_transfer(SERVE_VIEW, "cluster.local.", 1)), lines(EXPECTED_ZONE))

    def test_ixfr_at_the_current_serial_is_the_soa_alone(self):
        (soa,) = zone_transfer(SERVE_VIEW, "cluster.local.", SERIAL)
        self.assertEqual(rendered([soa]), lines(EXPECTED_ZONE)[:1])

    def test_dual_stack_server_has_one_ns_and_both_addresses(self):
        view = dataclasses.replace(SERVE_VIEW, local_ips=("10.0.0.10", "fd00::10"))
        self.assertEqual(rendered(zone_transfer(view, "cluster.local.")[1:4]), lines("""
cluster.local.	5	IN	NS	ns.dns.cluster.local.
ns.dns.cluster.local.	5	IN	A	10.0.0.10
ns.dns.cluster.local.	5	IN	AAAA	fd00::10
"""))

    def test_what_xfr_go_sends_that_the_zone_does_not_answer(self):
        """A portless ClusterIP service has no SRV (xfr.go: port 65535); an ExternalName IP no CNAME."""
        objects = [
            make_namespace("testns"),
            make_service("testns", "portless", ["10.0.0.7"]),
            make_service("testns", "ip", type="ExternalName", external_name="192.0.2.1"),
        ]
        view = View(stanza("kubernetes cluster.local"), serve_snapshot(objects))
        self.assertEqual(rendered(zone_transfer(view, "cluster.local.")[1:-1]), lines("""
portless.testns.svc.cluster.local.	5	IN	A	10.0.0.7
"""))

    def test_endpoint_pod_names_and_ttl(self):
        objects = [
            make_namespace("testns"),
            make_service("testns", "db", headless=True),
            make_endpoint_slice("testns", "db-1", "db", [
                {"addresses": ["10.1.0.1"], "targetRef": {"kind": "Pod", "name": "db-7f9c"}},
            ], [HTTP]),
        ]
        view = View(stanza("kubernetes cluster.local {\n endpoint_pod_names\n ttl 30\n}"), serve_snapshot(objects))
        self.assertEqual(rendered(zone_transfer(view, "cluster.local.")[1:-1]), lines("""
db.testns.svc.cluster.local.	30	IN	A	10.1.0.1
db-7f9c.db.testns.svc.cluster.local.	30	IN	A	10.1.0.1
_http._tcp.db.testns.svc.cluster.local.	30	IN	SRV	0 100 80 db-7f9c.db.testns.svc.cluster.local.
"""))

    def test_srv_weight(self):
        self.assertEqual([srv_weight(count) for count in (1, 2, 3, 6, 7, 100, 101)], [100, 50, 33, 16, 14, 1, 1])


class EnvelopeTests(unittest.SynchronousTestCase):
    """The messages a transfer goes out in, as transfer.go batches them."""

    def records(self, count: int) -> list[tdns.RRHeader]:
        return [tdns.RRHeader(f"host-{index}.svc.cluster.local", tdns.A, tdns.IN, 5, tdns.Record_A("10.0.0.1"))
                for index in range(count)]

    def test_batches_stay_under_the_limit_in_order(self):
        records = self.records(5000)
        batches = envelopes(records)
        self.assertGreater(len(batches), 1)
        self.assertEqual([record for batch in batches for record in batch], records)
        for batch in batches:
            self.assertLessEqual(sum(wire_length(record) for record in batch), ENVELOPE_BYTES)
        for batch, following in zip(batches, batches[1:]):
            self.assertGreater(sum(wire_length(record) for record in batch) + wire_length(following[0]),
                               ENVELOPE_BYTES, "a batch is flushed only when the next record would not fit")

    def test_small_zone_is_one_message(self):
        records = self.records(3)
        self.assertEqual(envelopes(records), [records])

    def test_ixfr_serial(self):
        message = tdns.Message()
        message.addQuery(b"cluster.local", tdns.IXFR)
        self.assertIsNone(ixfr_serial(message))
        message.authority.append(tdns.RRHeader(b"cluster.local", tdns.SOA, payload=tdns.Record_SOA(serial=42)))
        self.assertEqual(ixfr_serial(message), 42)
        message.authority.append(message.authority[0])
        self.assertIsNone(ixfr_serial(message))


@implementer(IHandler)
class Fixed:
    """A plugin that answers every query with the same response."""

    name = "fixed"
    next = None

    def __init__(self, response: Response) -> None:
        self.response = response

    def serve(self, request):
        return self.response


class ServerTests(unittest.SynchronousTestCase):
    """How the server writes a transfer's messages: one after another over TCP, never over UDP."""

    def answer(self, response: Response, transport: str):
        (block,) = parse_corefile(".:53 {\n}\n", "Corefile")
        config = ServerConfig(block=block, zones=block.addresses, handlers=[Fixed(response)])
        link(config.handlers)
        table = ZoneTable()
        table.add(".", config)
        question = dns.message.make_query("cluster.local.", "AXFR", use_edns=0)
        return question, answer_packet(table, question.to_wire(), ("127.0.0.1", 5353), transport)

    def test_tcp_writes_every_message_with_the_id_and_question(self):
        records = [tdns.RRHeader(f"host-{index}.cluster.local", tdns.A, tdns.IN, 5, tdns.Record_A("10.0.0.1"))
                   for index in range(5000)]
        question, replies = self.answer(Response(messages=envelopes(records), authoritative=True), "tcp")
        self.assertGreater(len(replies), 1)
        messages = [dns.message.from_wire(reply) for reply in replies]
        for reply, message in zip(replies, messages):
            self.assertLessEqual(len(reply), 65535)
            self.assertEqual((message.id, message.question), (question.id, question.question))
            self.assertTrue(message.flags & dns.flags.AA)
            self.assertFalse(message.flags & dns.flags.TC)
        self.assertEqual(sum(len(rrset) for message in messages for rrset in message.answer), 5000)

    def test_udp_is_refused(self):
        records = [tdns.RRHeader(b"cluster.local", tdns.A, tdns.IN, 5, tdns.Record_A("10.0.0.1"))]
        _, reply = self.answer(Response(messages=[records]), "udp")
        message = dns.message.from_wire(reply)
        self.assertEqual((rcode_of(message), message.answer), ("REFUSED", []))


class UnsyncedCluster:
    """A stanza's cluster that has not listed everything yet."""

    synced = False
    snapshot = serve_snapshot([])
    url = "https://192.0.2.1:6443"


class HandlerTests(unittest.SynchronousTestCase):
    def serve(self, stanzas, qtype=tdns.AXFR, name=b"cluster.local"):
        (block,) = parse_corefile(". {\n transfer {\n  to *\n }\n}", "Corefile")
        handler = Transfer([parse_rule(block.directives[0], ["."])], [Kubernetai(stanzas)], reactor=None)
        handler.next = Fixed(Response(rcode=tdns.ENAME))
        message = tdns.Message()
        message.addQuery(name, qtype)
        return handler.serve(Request(message.toStr(), message, ("127.0.0.1", 5353), "tcp"))

    def test_an_unsynced_stanza_is_servfail_not_an_empty_zone(self):
        unsynced = Stanza("kubernetes", stanza("kubernetes cluster.local"), UnsyncedCluster(), ())
        self.assertEqual(self.serve([unsynced]).rcode, tdns.ESERVER)

    def test_other_queries_go_on(self):
        unsynced = Stanza("kubernetes", stanza("kubernetes cluster.local"), UnsyncedCluster(), ())
        self.assertEqual(self.serve([unsynced], qtype=tdns.A).rcode, tdns.ENAME)


def cluster(api) -> None:
    api.namespace("default")
    api.service("default", "web", cluster_ips=["10.0.0.10"], ports=[{"name": "http", "port": 80}])
    api.service("default", "db", headless=True, ports=[{"name": "pg", "port": 5432}])
    api.endpoint_slice("default", "db-1", "db", ports=[{"name": "pg", "port": 5432}], endpoints=[
        {"addresses": ["10.1.0.1"], "hostname": "db-0"},
        {"addresses": ["10.1.0.2"]},
        {"addresses": ["10.1.0.3"], "ready": False},
    ])
    api.service("default", "ext", type="ExternalName", external_name="www.example.org")


def second_cluster(api) -> None:
    api.namespace("default")
    api.service("default", "west-only", cluster_ips=["10.9.0.1"], ports=[{"name": "http", "port": 80}])


# The zone of cluster(), without its SOA, as dnspython holds it after the transfer.
CLUSTER_ZONE = sorted([
    "cluster.local. NS ns.dns.cluster.local.",
    "ns.dns.cluster.local. A 127.0.0.1",
    "db.default.svc.cluster.local. A 10.1.0.1",
    "db.default.svc.cluster.local. A 10.1.0.2",
    "db-0.db.default.svc.cluster.local. A 10.1.0.1",
    "10-1-0-2.db.default.svc.cluster.local. A 10.1.0.2",
    "_pg._tcp.db.default.svc.cluster.local. SRV 0 50 5432 db-0.db.default.svc.cluster.local.",
    "_pg._tcp.db.default.svc.cluster.local. SRV 0 50 5432 10-1-0-2.db.default.svc.cluster.local.",
    "ext.default.svc.cluster.local. CNAME www.example.org.",
    "web.default.svc.cluster.local. A 10.0.0.10",
    "web.default.svc.cluster.local. SRV 0 100 80 web.default.svc.cluster.local.",
    "_http._tcp.web.default.svc.cluster.local. SRV 0 100 80 web.default.svc.cluster.local.",
])


def received_zone(port: int, serial: int | None = None):
    """A Deferred firing with the zone dnspython builds from the daemon's transfer of cluster.local.

    With C{serial}, an IXFR from that version; else an AXFR.
    """

    def transfer():
        zone = dns.zone.Zone("cluster.local.", relativize=False)
        query_message, _ = dns.xfr.make_query(zone, serial=serial)
        dns.query.inbound_xfr("127.0.0.1", zone, query=query_message, port=port, timeout=5, lifetime=30)
        return zone

    return deferToThread(transfer)


def transfer_messages(port: int, rdtype: str = "AXFR", serial: int = 0):
    """A Deferred firing with the messages of the daemon's transfer of cluster.local, as dnspython reads them."""
    return deferToThread(lambda: list(dns.query.xfr("127.0.0.1", "cluster.local.", rdtype=rdtype, serial=serial,
                                                    port=port, timeout=5, lifetime=30, relativize=False)))


def contents(zone) -> tuple[str, list[str]]:
    """A received zone's SOA owner, and its other records as sorted lines."""
    records = sorted(f"{name} {dns.rdatatype.to_text(rdata.rdtype)} {rdata.to_text()}"
                     for name, _, rdata in zone.iterate_rdatas() if rdata.rdtype != dns.rdatatype.SOA)
    return zone.get_soa().mname.to_text(), records


class DaemonTests(StanzaTestCase):
    """A running daemon with a stanza synced from the test API server."""

    def start_with(self, transfer: str, stanzas: str | None = None):
        stanzas = stanzas or stanza_block("cluster.local", self.start_api(cluster))
        return self.start(f"    transfer cluster.local {{\n        {transfer}\n    }}\n" + stanzas)

    @defer.inlineCallbacks
    def test_whole_zone_to_an_allowed_client(self):
        logs = capture_logs(self)
        port = yield self.start_with("to 127.0.0.1")
        zone = yield received_zone(port)
        self.assertEqual(contents(zone), ("ns.dns.cluster.local.", CLUSTER_ZONE))
        serial = zone.get_soa().serial
        self.assertIn(f"Outgoing transfer of 14 records of zone cluster.local. to 127.0.0.1 for {serial} SOA serial",
                      logs)

    @defer.inlineCallbacks
    def test_messages_carry_the_id_the_question_and_the_soa_at_both_ends(self):
        port = yield self.start_with("to *")
        messages = yield transfer_messages(port)
        self.assertEqual(len({message.id for message in messages}), 1)
        first, last = messages[0].answer[0], messages[-1].answer[-1]
        self.assertEqual((first.rdtype, last.rdtype), (dns.rdatatype.SOA, dns.rdatatype.SOA))
        for message in messages:
            self.assertEqual([question.to_text() for question in message.question], ["cluster.local. IN AXFR"])
            self.assertTrue(message.flags & dns.flags.AA)

    @defer.inlineCallbacks
    def test_ixfr_from_an_older_serial_is_answered_as_axfr(self):
        port = yield self.start_with("to 127.0.0.0/8")
        zone = yield received_zone(port, serial=1)
        self.assertEqual(contents(zone)[1], CLUSTER_ZONE)

    @defer.inlineCallbacks
    def test_ixfr_at_the_current_serial_gets_the_soa_alone(self):
        port = yield self.start_with("to *")
        soa = yield query(port, "cluster.local", "SOA", tcp=True)
        serial = soa.answer[0][0].serial
        (message,) = yield transfer_messages(port, "IXFR", serial)
        self.assertEqual([(rrset.rdtype, rrset[0].serial) for rrset in message.answer], [(dns.rdatatype.SOA, serial)])

    @defer.inlineCallbacks
    def test_ixfr_without_a_soa_is_servfail(self):
        port = yield self.start_with("to *")
        reply = yield query(port, "cluster.local", "IXFR", tcp=True)
        self.assertEqual(rcode_of(reply), "SERVFAIL")

    @defer.inlineCallbacks
    def test_client_not_listed_is_refused(self):
        port = yield self.start_with("to 192.0.2.1")
        reply = yield query(port, "cluster.local", "AXFR", tcp=True)
        self.assertEqual((rcode_of(reply), reply.answer), ("REFUSED", []))

    @defer.inlineCallbacks
    def test_udp_is_refused(self):
        port = yield self.start_with("to *")
        axfr = yield query(port, "cluster.local", "AXFR")
        ixfr = yield send(port, dns.message.make_query("cluster.local", "IXFR"))
        self.assertEqual([rcode_of(axfr), rcode_of(ixfr)], ["REFUSED", "REFUSED"])

    @defer.inlineCallbacks
    def test_a_name_below_the_zone_is_refused_by_the_stanza(self):
        port = yield self.start_with("to *")
        reply = yield query(port, "svc.cluster.local", "AXFR", tcp=True)
        self.assertEqual(rcode_of(reply), "REFUSED")

    @defer.inlineCallbacks
    def test_a_zone_no_stanza_serves_goes_on_to_the_end_of_the_chain(self):
        port = yield self.start("    transfer {\n        to *\n    }\n"
                                + stanza_block("cluster.local", self.start_api(cluster)))
        reply = yield query(port, "example.org", "AXFR", tcp=True)
        self.assertEqual(rcode_of(reply), "SERVFAIL")

    @defer.inlineCallbacks
    def test_first_of_two_stanzas_sharing_the_zone_answers(self):
        stanzas = (stanza_block("cluster.local", self.start_api(cluster), "fallthrough")
                   + stanza_block("cluster.local", self.start_api(second_cluster)))
        port = yield self.start_with("to *", stanzas)
        zone = yield received_zone(port)
        self.assertEqual(contents(zone)[1], CLUSTER_ZONE)
        west = yield query(port, "west-only.default.svc.cluster.local", "A")
        self.assertEqual(rcode_of(west), "NOERROR", "the second stanza serves queries, not the transfer")
