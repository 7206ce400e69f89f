"""
The decoder of upstream replies (kubernetai.upstreamreply) against Twisted's:
for replies of every shape forward relays, and seeded mutations of them, the
very same message field by field, or an error where Twisted has one.
"""

import random

import dns.edns
import dns.message
import dns.rcode
import dns.rrset
from twisted.names import dns as tdns
from twisted.trial import unittest

from kubernetai.upstreamreply import decode_common_reply, decode_reply
from tests import test_message_decode as common_queries

SOA = "example.org. 300 IN SOA ns.example.org. hostmaster.example.org. 2026120301 7200 3600 1209600 60"


def reply(name: str, qtype: str, answers=(), authority=(), rcode=dns.rcode.NOERROR, edns=False, flags=0) -> bytes:
    """An upstream's reply to C{name} C{qtype}, records as zone-file lines, names compressed as upstreams do."""
    query = dns.message.make_query(name, qtype, use_edns=0 if edns else None, payload=1232,
                                   options=[dns.edns.GenericOption(10, b"\x01" * 8)] if edns else [])
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    response.flags |= flags
    for section, lines in ((response.answer, answers), (response.authority, authority)):
        for line in lines:
            owner, ttl, rdclass, rdtype, rdata = line.split(None, 4)
            section.append(dns.rrset.from_text(owner, int(ttl), rdclass, rdtype, rdata))
    return response.to_wire()


def common_replies() -> list[bytes]:
    """Replies of the types the decoder reads itself, with and without EDNS and flags."""
    replies = []
    for edns in (False, True):
        for flags in (0, dns.flags.AA | dns.flags.RA, dns.flags.TC | dns.flags.AD | dns.flags.CD):
            replies += [
                reply("www.Example.org.", "A", ["www.Example.org. 30 IN A 192.0.2.1",
                                                "www.Example.org. 30 IN A 192.0.2.2"], edns=edns, flags=flags),
                reply("www.example.org.", "AAAA", ["www.example.org. 3600 IN AAAA 2001:db8::1"], edns=edns,
                      flags=flags),
                reply("alias.example.org.", "A", ["alias.example.org. 60 IN CNAME www.example.net.",
                                                  "www.example.net. 60 IN CNAME web.example.org.",
                                                  "web.example.org. 20 IN A 192.0.2.7"], edns=edns, flags=flags),
                reply("missing.example.org.", "A", authority=[SOA], rcode=dns.rcode.NXDOMAIN, edns=edns,
                      flags=flags),
                reply("www.example.org.", "TXT", authority=[SOA], edns=edns, flags=flags),
                reply("broken.example.org.", "A", rcode=dns.rcode.SERVFAIL, edns=edns, flags=flags),
            ]
    return replies


def other_replies() -> list[bytes]:
    """Replies with a record type the decoder leaves to Twisted."""
    return [reply("example.org.", "MX", ["example.org. 300 IN MX 10 mail.example.org."]),
            reply("www.example.org.", "TXT", ['www.example.org. 300 IN TXT "v=spf1 -all"']),
            reply("_dns._udp.example.org.", "SRV", ["_dns._udp.example.org. 30 IN SRV 0 0 53 ns.example.org."])]


def twisted_decode(packet: bytes) -> tdns.Message:
    message = tdns.Message()
    message.fromStr(packet)
    return message


class DecodeReplyTests(unittest.SynchronousTestCase):
    def assertSameAsTwisted(self, packets: list[bytes]) -> int:
        """Every packet decodes as Twisted decodes it, or fails where Twisted fails; how many the
        decoder read itself."""
        read = 0
        for packet in packets:
            read += decode_common_reply(packet) is not None
            try:
                expected = twisted_decode(packet)
            except Exception:
                self.assertRaises(Exception, decode_reply, packet)
                continue
            decoded = decode_reply(packet)
            self.assertEqual(common_queries.fields(decoded), common_queries.fields(expected), packet)
            self.assertEqual(decoded.toStr(), expected.toStr(), packet)
        return read

    def test_common_replies_are_read_straight_from_the_bytes(self):
        packets = common_replies()
        self.assertEqual(self.assertSameAsTwisted(packets), len(packets))

    def test_other_types_are_left_to_twisted(self):
        packets = other_replies()
        self.assertEqual(self.assertSameAsTwisted(packets), 0)

    def test_mutations(self):
        packets = common_queries.mutations(common_replies() + other_replies(), random.Random(1203))
        self.assertGreater(self.assertSameAsTwisted(packets), 500)

    def test_a_pointer_loop_is_left_to_twisted(self):
        packet = reply("www.example.org.", "A", ["www.example.org. 30 IN A 192.0.2.1"])
        looped = packet[:12] + b"\xc0\x0c" + packet[packet.index(b"\x00\x01\x00\x01", 12):]
        self.assertIsNone(decode_common_reply(looped))
        self.assertRaises(Exception, decode_reply, looped)
