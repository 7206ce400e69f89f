"""
The DNS server end to end: real UDP and TCP sockets on 127.0.0.1, real wire
messages, routing by zone, EDNS0 sizes and truncation, and bad packets.
"""

import socket
import struct

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
from twisted.internet import defer
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from kubernetai.message import split_stream
from kubernetai.server import UDP_RECEIVE_BUFFER
from tests.support import FakeUpstream, query, rcode_of, send, send_raw_udp, start_daemon, start_daemon_service

WHOAMI = """\
whoami.example:0 {
    bind 127.0.0.1
    whoami
}
"""


class WhoamiTests(unittest.TestCase):
    """whoami answers over both transports with the client's address."""

    @defer.inlineCallbacks
    def test_udp(self):
        port = start_daemon(self, WHOAMI)
        reply = yield query(port, "whoami.example", "A")
        self.assertEqual(rcode_of(reply), "NOERROR")
        self.assertTrue(reply.flags & dns.flags.AA)
        self.assertEqual(reply.answer, [])
        address = reply.find_rrset(reply.additional, dns.name.from_text("whoami.example."), 1, dns.rdatatype.A)
        self.assertEqual([r.address for r in address], ["127.0.0.1"])
        srv = reply.find_rrset(reply.additional, dns.name.from_text("_udp.whoami.example."), 1, dns.rdatatype.SRV)
        self.assertGreater(list(srv)[0].port, 0)

    @defer.inlineCallbacks
    def test_tcp(self):
        port = start_daemon(self, WHOAMI)
        reply = yield query(port, "whoami.example", "A", tcp=True)
        self.assertEqual(rcode_of(reply), "NOERROR")
        names = sorted(rrset.name.to_text() for rrset in reply.additional)
        self.assertEqual(names, ["_tcp.whoami.example.", "whoami.example."])

    @defer.inlineCallbacks
    def test_answers_about_the_client_are_never_replayed(self):
        port = start_daemon(self, WHOAMI)
        packet = dns.message.make_query("whoami.example", "A").to_wire()
        replies = []
        for _ in range(2):
            reply = yield send_raw_udp(port, packet)
            replies.append(dns.message.from_wire(reply))
        ports = [list(r.find_rrset(r.additional, dns.name.from_text("_udp.whoami.example."), 1, dns.rdatatype.SRV))[0].port
                 for r in replies]
        self.assertNotEqual(ports[0], ports[1], "each query came from its own socket, and is told so")

    @defer.inlineCallbacks
    def test_question_case_is_echoed(self):
        port = start_daemon(self, WHOAMI)
        reply = yield query(port, "WhoAmI.Example", "A")
        self.assertEqual(reply.question[0].name.to_text(), "WhoAmI.Example.")
        self.assertEqual(reply.additional[0].name.to_text(), "WhoAmI.Example.")


ROUTING = """\
example:0 {
    bind 127.0.0.1
    whoami
}
.:0 {
    bind 127.0.0.1
    forward . 127.0.0.1:%d
}
"""


class PipelineTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_pipelined_tcp_queries_all_answered(self):
        port = start_daemon(self, WHOAMI)
        queries = [dns.message.make_query(f"q{index}.whoami.example", "A") for index in range(3)]
        stream = b"".join(len(wire).to_bytes(2, "big") + wire for wire in (q.to_wire() for q in queries))

        def exchange():
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(stream[:7])
                sock.sendall(stream[7:])
                received = b""
                while len(split_stream(received)[0]) < 3:
                    received += sock.recv(65535)
                return received

        received = yield deferToThread(exchange)
        replies, rest = split_stream(received)
        self.assertEqual(rest, b"")
        ids = sorted(dns.message.from_wire(reply).id for reply in replies)
        self.assertEqual(ids, sorted(q.id for q in queries))


class RoutingTests(unittest.TestCase):
    """Several blocks on one port: the most specific zone answers; no zone at all is REFUSED."""

    def setUp(self):
        self.upstream = FakeUpstream({("www.example.org.", "A"): ["192.0.2.7"], ("ds.example.", "DS"): []})
        upstream_port = self.upstream.start(self)
        self.port = start_daemon(self, ROUTING % upstream_port)

    @defer.inlineCallbacks
    def test_most_specific_zone_wins(self):
        inside = yield query(self.port, "a.b.example", "A")
        outside = yield query(self.port, "www.example.org", "A")
        self.assertEqual(inside.additional[0].name.to_text(), "a.b.example.")
        self.assertEqual([r.address for r in outside.answer[0]], ["192.0.2.7"])
        self.assertEqual(self.upstream.queries, [("www.example.org.", "A", "udp")])

    @defer.inlineCallbacks
    def test_ds_goes_to_the_parent_zone(self):
        yield query(self.port, "example", "DS")
        self.assertEqual(self.upstream.queries, [("example.", "DS", "udp")])


class RefusedTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_zone_no_block_serves(self):
        port = start_daemon(self, WHOAMI)
        reply = yield query(port, "www.example.org", "A")
        self.assertEqual(rcode_of(reply), "REFUSED")

    @defer.inlineCallbacks
    def test_class_other_than_in(self):
        port = start_daemon(self, WHOAMI)
        reply = yield query(port, "whoami.example", "TXT", rdclass="CH")
        self.assertEqual(rcode_of(reply), "REFUSED")


class EDNSTests(unittest.TestCase):
    """Replies fit the client's buffer: 512 without EDNS, its advertised size with it."""

    def setUp(self):
        addresses = [f"10.0.{i // 250}.{i % 250 + 1}" for i in range(100)]
        self.upstream = FakeUpstream({("big.example.org.", "A"): addresses})
        self.port = start_daemon(self, ROUTING % self.upstream.start(self))

    @defer.inlineCallbacks
    def test_udp_without_edns_is_cut_to_512(self):
        message = dns.message.make_query("big.example.org", "A", use_edns=False)
        reply = yield send(self.port, message)
        self.assertTrue(reply.flags & dns.flags.TC)
        self.assertLessEqual(len(reply.to_wire()), 512)
        self.assertLess(len(reply.answer[0]) if reply.answer else 0, 100)

    @defer.inlineCallbacks
    def test_udp_with_edns_uses_the_advertised_size(self):
        message = dns.message.make_query("big.example.org", "A", use_edns=0, payload=4096)
        reply = yield send(self.port, message)
        self.assertFalse(reply.flags & dns.flags.TC)
        self.assertEqual(len(reply.answer[0]), 100)
        self.assertEqual(reply.edns, 0)
        self.assertEqual(reply.payload, 4096)

    @defer.inlineCallbacks
    def test_small_edns_buffer_truncates(self):
        message = dns.message.make_query("big.example.org", "A", use_edns=0, payload=1000)
        reply = yield send(self.port, message)
        self.assertTrue(reply.flags & dns.flags.TC)
        self.assertLessEqual(len(reply.to_wire()), 1000)
        self.assertEqual(reply.edns, 0, "the OPT record survives truncation")

    @defer.inlineCallbacks
    def test_tcp_gets_everything(self):
        reply = yield query(self.port, "big.example.org", "A", tcp=True, use_edns=False)
        self.assertFalse(reply.flags & dns.flags.TC)
        self.assertEqual(len(reply.answer[0]), 100)

    @defer.inlineCallbacks
    def test_dnssec_ok_bit_is_echoed(self):
        message = dns.message.make_query("big.example.org", "A", want_dnssec=True, payload=4096)
        reply = yield send(self.port, message)
        self.assertTrue(reply.ednsflags & dns.flags.DO)

    @defer.inlineCallbacks
    def test_edns_version_1_is_badvers(self):
        message = dns.message.make_query("big.example.org", "A", use_edns=1)
        reply = yield send(self.port, message)
        self.assertEqual(reply.rcode(), dns.rcode.BADVERS)
        self.assertEqual(self.upstream.queries, [])


def header(query_id=0x1234, flags=0x0100, qd=1, an=0, ns=0, ar=0) -> bytes:
    return struct.pack("!HHHHHH", query_id, flags, qd, an, ns, ar)


QUESTION = b"\x06whoami\x07example\x00\x00\x01\x00\x01"


class MalformedTests(unittest.TestCase):
    """Bad packets get FORMERR or NOTIMP, or are dropped; the server keeps answering."""

    def setUp(self):
        self.port = start_daemon(self, WHOAMI)

    @defer.inlineCallbacks
    def assertReplyRcode(self, packet, rcode):
        reply = yield send_raw_udp(self.port, packet)
        self.assertIsNotNone(reply, "expected a reply")
        self.assertEqual(reply[:2], packet[:2], "the reply keeps the query ID")
        self.assertEqual(reply[3] & 0x0F, rcode)
        self.assertTrue(reply[2] & 0x80, "QR is set")
        still_serving = yield query(self.port, "whoami.example", "A")
        self.assertEqual(rcode_of(still_serving), "NOERROR")

    @defer.inlineCallbacks
    def assertDropped(self, packet):
        reply = yield send_raw_udp(self.port, packet, timeout=0.3)
        self.assertIsNone(reply)
        still_serving = yield query(self.port, "whoami.example", "A")
        self.assertEqual(rcode_of(still_serving), "NOERROR")

    def test_short_header_dropped(self):
        return self.assertDropped(b"\x12\x34\x01")

    def test_response_dropped(self):
        return self.assertDropped(header(flags=0x8100) + QUESTION)

    def test_truncated_question_formerr(self):
        return self.assertReplyRcode(header() + QUESTION[:9], dns.rcode.FORMERR)

    def test_two_questions_formerr(self):
        return self.assertReplyRcode(header(qd=2) + QUESTION + QUESTION, dns.rcode.FORMERR)

    def test_no_question_formerr(self):
        return self.assertReplyRcode(header(qd=0), dns.rcode.FORMERR)

    def test_lying_answer_count_formerr(self):
        return self.assertReplyRcode(header(an=1) + QUESTION, dns.rcode.FORMERR)

    def test_compression_loop_formerr(self):
        looping_name = b"\xc0\x0c"
        return self.assertReplyRcode(header() + looping_name + b"\x00\x01\x00\x01", dns.rcode.FORMERR)

    def test_two_opt_records_formerr(self):
        opt = b"\x00\x00\x29\x10\x00\x00\x00\x00\x00\x00\x00"
        return self.assertReplyRcode(header(ar=2) + QUESTION + opt + opt, dns.rcode.FORMERR)

    def test_opt_option_longer_than_its_record_formerr(self):
        """Found by tests.fuzz.packet (tests/fuzz/regressions/packet/opt-option-longer-than-its-record)."""
        option_of_12_octets_in_8 = b"\x00\x0a\x00\x0c" + b"\x00" * 4
        opt = b"\x00\x00\x29\x10\x00\x00\x00\x00\x00\x00\x08" + option_of_12_octets_in_8
        return self.assertReplyRcode(header(ar=1) + QUESTION + opt, dns.rcode.FORMERR)

    def test_label_over_63_octets_formerr(self):
        return self.assertReplyRcode(header() + b"\x50" + b"a" * 80 + b"\x00\x00\x01\x00\x01", dns.rcode.FORMERR)

    def test_name_over_255_octets_formerr(self):
        long_name = (b"\x3f" + b"a" * 63) * 4 + b"\x00"
        return self.assertReplyRcode(header() + long_name + b"\x00\x01\x00\x01", dns.rcode.FORMERR)

    def test_name_of_255_octets_answered(self):
        longest = (b"\x3f" + b"a" * 63) * 3 + b"\x3d" + b"a" * 61 + b"\x00"
        self.assertEqual(len(longest), 255)
        return self.assertReplyRcode(header() + longest + b"\x00\x01\x00\x01", dns.rcode.REFUSED)

    def test_update_opcode_notimp(self):
        return self.assertReplyRcode(header(flags=0x2800) + QUESTION, dns.rcode.NOTIMP)

    def test_trailing_garbage_is_tolerated(self):
        return self.assertReplyRcode(header() + QUESTION + b"\xff\xff\xff", dns.rcode.NOERROR)

    @defer.inlineCallbacks
    def test_garbage_over_tcp(self):
        def exchange():
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                packet = header(qd=5) + b"\x01"
                sock.sendall(len(packet).to_bytes(2, "big") + packet)
                return sock.recv(4096)

        reply = yield deferToThread(exchange)
        self.assertEqual(reply[:2], b"\x00\x0c", "length prefix of a header-only reply")
        self.assertEqual(reply[5] & 0x0F, dns.rcode.FORMERR)


class TCPLimitTests(unittest.TestCase):
    """Idle and half-sent TCP connections are cut off; past the cap, new ones are closed at once."""

    def setUp(self):
        dns_service = start_daemon_service(self, WHOAMI).getServiceNamed("dns")
        (self.port,) = {port for _, _, port in dns_service.addresses()}
        self.factories = [port.factory for port in dns_service.ports if hasattr(port, "factory")]
        for factory in self.factories:
            factory.idle_timeout = 0.3

    def connect_and_wait(self, first_bytes: bytes):
        def exchange():
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
                sock.sendall(first_bytes)
                return sock.recv(4096)

        return deferToThread(exchange)

    @defer.inlineCallbacks
    def test_idle_connection_closed(self):
        received = yield self.connect_and_wait(b"")
        self.assertEqual(received, b"", "closed by the server, not by the test's 5 s timeout")

    @defer.inlineCallbacks
    def test_half_sent_message_cut_off(self):
        received = yield self.connect_and_wait(b"\x00\x40" + header())
        self.assertEqual(received, b"")

    @defer.inlineCallbacks
    def test_connections_past_the_cap_are_closed(self):
        for factory in self.factories:
            factory.max_connections = 1
            factory.idle_timeout = 5

        def exchange():
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as first:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as second:
                    refused = second.recv(4096)
                wire = dns.message.make_query("whoami.example", "A").to_wire()
                first.sendall(len(wire).to_bytes(2, "big") + wire)
                return refused, first.recv(4096)

        refused, answered = yield deferToThread(exchange)
        self.assertEqual(refused, b"")
        self.assertGreater(len(answered), 12)


class ReceiveBufferTests(unittest.TestCase):
    def test_udp_sockets_ask_for_a_large_receive_queue(self):
        """As large as the host allows (net.core.rmem_max), up to UDP_RECEIVE_BUFFER; the kernel doubles it."""
        root = start_daemon_service(self, WHOAMI)
        (udp,) = [port for port in root.getServiceNamed("dns").ports if port.getHost().type == "UDP"]
        with open("/proc/sys/net/core/rmem_max") as rmem_max:
            allowed = min(UDP_RECEIVE_BUFFER, int(rmem_max.read()))
        with socket.fromfd(udp.fileno(), socket.AF_INET, socket.SOCK_DGRAM) as sock:
            self.assertEqual(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF), 2 * allowed)
