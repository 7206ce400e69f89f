"""
Wire helpers of kubernetai.message that the server's ready replies use:
finding and rewriting the TTLs of an encoded reply; and splitting a TCP
stream into messages, refusing lengths no message can have.
"""

import dns.flags
import dns.message
from twisted.names import dns as tdns
from twisted.trial import unittest

from kubernetai.chain import Response
from kubernetai.message import (
    StreamError, decode_query, encode_reply, frame, record_ttl_offsets, split_stream, with_ttl,
)


class TTLRewriteTests(unittest.SynchronousTestCase):
    def reply(self, want_dnssec: bool):
        asked = dns.message.make_query("Web.Example.org", "A", want_dnssec=want_dnssec, payload=1232)
        request = decode_query(asked.to_wire(), ("127.0.0.1", 5300), "udp")
        response = Response(
            answers=[tdns.RRHeader(b"web.example.org", tdns.A, ttl=30, payload=tdns.Record_A(f"192.0.2.{i}", 30))
                     for i in (1, 2)],
            authority=[tdns.RRHeader(b"example.org", tdns.NS, ttl=30, payload=tdns.Record_NS(b"ns.example.org", 30))],
            additional=[tdns.RRHeader(b"ns.example.org", tdns.A, ttl=30, payload=tdns.Record_A("192.0.2.53", 30))],
        )
        return encode_reply(request, response)

    def test_every_ttl_but_the_opt_records_is_rewritten(self):
        for want_dnssec in (False, True):
            reply = self.reply(want_dnssec)
            offsets = record_ttl_offsets(reply)
            rewritten = dns.message.from_wire(with_ttl(reply, offsets, 7))
            ttls = [rrset.ttl for section in (rewritten.answer, rewritten.authority, rewritten.additional)
                    for rrset in section]
            self.assertEqual((len(offsets), ttls), (4, [7, 7, 7]))
            self.assertEqual((bool(rewritten.ednsflags & dns.flags.DO), rewritten.payload), (want_dnssec, 1232))
            self.assertEqual(rewritten.question[0].name.to_text(), "Web.Example.org.")

    def test_nothing_else_changes(self):
        reply = self.reply(True)
        rewritten = with_ttl(reply, record_ttl_offsets(reply), 30)
        self.assertEqual(rewritten, reply)


class StreamTests(unittest.SynchronousTestCase):
    HEADER_ONLY = bytes(12)

    def test_whole_messages_then_the_rest(self):
        second = frame(self.HEADER_ONLY + b"more")
        stream = frame(self.HEADER_ONLY) + second
        self.assertEqual(split_stream(stream), ([self.HEADER_ONLY, self.HEADER_ONLY + b"more"], b""))
        self.assertEqual(split_stream(stream[:-1]), ([self.HEADER_ONLY], second[:-1]))
        self.assertEqual(split_stream(b"\x00"), ([], b"\x00"))

    def test_lengths_no_message_can_have(self):
        for prefix in (b"\x00\x00", b"\x00\x0b", b"\x10\x01"):
            self.assertRaises(StreamError, split_stream, frame(self.HEADER_ONLY) + prefix, 4096)
        self.assertEqual(split_stream(b"\x10\x00", 4096), ([], b"\x10\x00"))
