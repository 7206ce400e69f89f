"""
kubernetai.message.encode_reply writes the records answers carry itself: its
bytes against Twisted's encoder (dns.Message.toStr) for the same message,
record types of every kind, names sharing suffixes in several cases (name
compression keeps the exact bytes), EDNS, and a reply cut to the client's
buffer.
"""

import dns.message
from twisted.names import dns as tdns
from twisted.trial import unittest

from kubernetai.chain import Response
from kubernetai.message import decode_query, encode_reply


def record(owner: bytes, payload, ttl: int = 30) -> tdns.RRHeader:
    return tdns.RRHeader(owner, payload.TYPE, tdns.IN, ttl, payload, auth=True)


EVERY_KIND = [
    record(b"web.Example.org", tdns.Record_A("192.0.2.1")),
    record(b"web.example.org", tdns.Record_AAAA("2001:db8::1")),
    record(b"alias.example.org", tdns.Record_CNAME(b"web.Example.org")),
    record(b"example.org", tdns.Record_NS(b"ns.dns.example.org")),
    record(b"1.2.0.192.in-addr.arpa", tdns.Record_PTR(b"web.example.org")),
    record(b"sub.example.org", tdns.Record_DNAME(b"example.net")),
    record(b"_http._tcp.web.example.org", tdns.Record_SRV(0, 100, 80, b"web.example.org")),
    record(b"web.example.org", tdns.Record_TXT(b"v=1", b"", b"x" * 255)),
    record(b"web.example.org", tdns.Record_SPF(b"v=spf1 -all")),
    record(b"example.org", tdns.Record_MX(10, b"mail.example.org")),
    record(b"web.example.org", tdns.Record_HINFO(b"cpu", b"os")),
    tdns.RRHeader(b"web.example.org", 65280, tdns.IN, 30, tdns.UnknownRecord(b"\x01\x02")),
    tdns.RRHeader(b"empty.example.org", tdns.NULL, tdns.IN, 30, None),
]
SOA = record(b"Example.org", tdns.Record_SOA(b"ns.dns.Example.org", b"hostmaster.Example.org", 1700000000,
                                             7200, 1800, 86400, 5), ttl=5)


def request_for(name: str, **options):
    return decode_query(dns.message.make_query(name, "A", **options).to_wire(), ("127.0.0.1", 5300), "udp")


def twisted_reply(request, response: Response, answers: int, truncated: bool = False) -> bytes:
    """The reply Twisted's encoder writes: the question, C{answers} of the answers and the rest."""
    message = tdns.Message(
        id=request.message.id, answer=1, opCode=request.message.opCode, auth=response.authoritative,
        trunc=truncated, recDes=request.message.recDes, recAv=response.recursion_available,
        rCode=response.rcode & 0xF, checkingDisabled=request.message.checkingDisabled, maxSize=0,
    )
    message.queries = [request.query]
    message.answers = response.answers[:answers]
    if answers == len(response.answers):
        message.authority, message.additional = list(response.authority), list(response.additional)
    if request.edns:
        message.additional.append(tdns._OPTHeader(udpPayloadSize=request.payload_size, extendedRCODE=response.rcode >> 4,
                                                  dnssecOK=request.dnssec_ok))
    return message.toStr()


class EncoderTests(unittest.SynchronousTestCase):
    def test_every_kind_of_record(self):
        request = request_for("Web.Example.org.", use_edns=0, payload=4096, want_dnssec=True)
        response = Response(answers=EVERY_KIND[:7], authority=[SOA], additional=EVERY_KIND[7:],
                            authoritative=True, recursion_available=True)
        self.assertEqual(encode_reply(request, response), twisted_reply(request, response, 7))

    def test_denial_without_edns(self):
        request = request_for("missing.example.org.")
        request.message.checkingDisabled = 1
        for rcode in (tdns.ENAME, tdns.OK, tdns.ESERVER):
            response = Response(rcode=rcode, authority=[SOA], authoritative=True)
            self.assertEqual(encode_reply(request, response), twisted_reply(request, response, 0))

    def test_extended_rcode(self):
        request = request_for("web.example.org.", use_edns=0)
        response = Response(rcode=16)
        self.assertEqual(encode_reply(request, response), twisted_reply(request, response, 0))

    def test_cut_to_the_client_buffer(self):
        request = request_for("many.example.org.")
        answers = [record(b"many.example.org", tdns.Record_A(f"192.0.2.{i}")) for i in range(40)]
        response = Response(answers=answers, authority=[SOA])
        reply = encode_reply(request, response)
        written = dns.message.from_wire(reply).answer[0]
        self.assertEqual((len(reply) <= 512, 0 < len(written) < 40), (True, True))
        self.assertEqual(reply, twisted_reply(request, response, len(written), truncated=True))
