"""
Wire helpers of kubernetai.message that the server's ready replies use:
finding and rewriting the TTLs of an encoded reply.
"""

import dns.flags
import dns.message
from twisted.names import dns as tdns
from twisted.trial import unittest

from kubernetai.chain import Response
from kubernetai.message import decode_query, encode_reply, record_ttl_offsets, with_ttl


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
