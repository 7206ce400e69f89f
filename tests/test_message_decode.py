"""
The decoder of common queries (kubernetai.message.decode_common_query) against
Twisted's (decode_message): for every packet the first one reads, the second
reads the very same message, field by field.  The packets are the packet fuzz
target's corpus and past crashes, generated queries of every shape a client
sends, and seeded mutations of both.
"""

import os
import random

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
from twisted.names import dns as tdns
from twisted.trial import unittest

from kubernetai.message import HEADER, decode_common_query, decode_message

FUZZ_DIRECTORY = os.path.join(os.path.dirname(__file__), "fuzz")
MUTATIONS_PER_PACKET = 40


def fuzz_packets() -> list[bytes]:
    """The packet target's seed corpus and regressions."""
    packets = []
    for kind in ("corpus", "regressions"):
        directory = os.path.join(FUZZ_DIRECTORY, kind, "packet")
        for name in sorted(os.listdir(directory)):
            with open(os.path.join(directory, name), "rb") as seed:
                packets.append(seed.read())
    return packets


def generated_queries() -> list[bytes]:
    """Queries as clients write them: names of every length and case, flags, and EDNS with and without
    options, DO, other versions."""
    names = ["Web.Example.org.", "a.b.", ".", "x" * 63 + ".test.", ".".join(["z" * 63] * 3 + ["w" * 61]) + ".",
             "kube-dns.kube-system.svc.cluster.local.", "10.0.0.10.in-addr.arpa.", "_dns._udp.Cluster.Local."]
    options = [[], [dns.edns.GenericOption(10, b"\x01" * 8)], [dns.edns.ECSOption("192.0.2.0", 24)],
               [dns.edns.GenericOption(12, b""), dns.edns.GenericOption(65001, b"ab")]]
    packets = []
    for index, name in enumerate(names):
        for qtype in ("A", "AAAA", "SRV", "PTR", "ANY", "AXFR", "TYPE65535"):
            query = dns.message.make_query(dns.name.from_text(name), qtype, id=index)
            packets.append(query.to_wire())
            for flags in (dns.flags.RD | dns.flags.CD | dns.flags.AD, dns.flags.AA | dns.flags.TC | dns.flags.RA):
                query.flags = flags
                packets.append(query.to_wire())
            query.set_opcode(dns.opcode.NOTIFY)
            packets.append(query.to_wire())
        for edns_options in options:
            for version in (0, 1):
                query = dns.message.make_query(dns.name.from_text(name), "A", use_edns=version, want_dnssec=True,
                                               payload=1232, options=edns_options)
                packets.append(query.to_wire())
                packets.append(query.to_wire() + b"trailing")
    query = dns.message.make_query("class.test.", "A", rdclass="CH")
    packets.append(query.to_wire())
    # Names dnspython will not write: a label of 64 octets, 256 octets in all, a dot inside a label.
    for labels in ([b"y" * 64, b"test"], [b"z" * 63] * 3 + [b"w" * 62], [b"a.b", b"c"], [b"\xff\x00", b"\x80"]):
        packets.append(bytes.fromhex("abcd01000001000000000000") + raw_name(labels) + b"\x00\x01\x00\x01")
    return packets


def raw_name(labels: list[bytes]) -> bytes:
    """A name on the wire, whatever its labels."""
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"


def with_compressed_name(packet: bytes) -> bytes:
    """C{packet} with its question's name replaced by a pointer to itself (a loop)."""
    return packet[:12] + b"\xc0\x0c" + packet[-4:]


def mutations(packets: list[bytes], rng: random.Random) -> list[bytes]:
    """Each packet cut short at every length, and changed at a few random octets."""
    mutated = []
    for packet in packets:
        mutated += [packet[:length] for length in range(HEADER.size, len(packet))]
        for _ in range(MUTATIONS_PER_PACKET):
            changed = bytearray(packet)
            for _ in range(rng.randint(1, 3)):
                changed[rng.randrange(len(changed))] = rng.choice((0, 1, 0x29, 0x3F, 0x40, 0xC0, rng.randrange(256)))
            mutated.append(bytes(changed))
    return mutated


def fields(message: tdns.Message) -> dict:
    """Everything of C{message} the server reads or writes again, names with their case."""
    described = {key: value for key, value in vars(message).items()
                 if key not in ("queries", "answers", "authority", "additional")}
    described["queries"] = [(query.name.name, query.type, query.cls) for query in message.queries]
    for section in ("answers", "authority", "additional"):
        described[section] = [
            (record.name.name, record.type, record.cls, record.ttl, record.auth, record.rdlength,
             type(record.payload), vars(record.payload))
            for record in getattr(message, section)
        ]
    return described


class CommonDecoderTests(unittest.SynchronousTestCase):
    def assertSameAsTwisted(self, packets: list[bytes]) -> int:
        """Every packet the common decoder reads, Twisted reads the same; how many it read."""
        read = 0
        for packet in packets:
            if len(packet) < HEADER.size:
                continue
            common = decode_common_query(packet)
            if common is None:
                continue
            read += 1
            self.assertEqual(fields(common), fields(decode_message(packet)), packet)
            self.assertEqual(common.toStr(), decode_message(packet).toStr(), packet)
        return read

    def test_generated_queries(self):
        packets = generated_queries()
        self.assertGreater(self.assertSameAsTwisted(packets), len(packets) * 0.9)

    def test_fuzz_corpus(self):
        self.assertGreater(self.assertSameAsTwisted(fuzz_packets()), 5)

    def test_mutations(self):
        packets = mutations(generated_queries()[::7] + fuzz_packets(), random.Random(1035))
        self.assertGreater(self.assertSameAsTwisted(packets), 1000)

    def test_other_shapes_are_left_to_twisted(self):
        query = dns.message.make_query("web.example.org.", "A", use_edns=0, options=[dns.edns.GenericOption(10, b"x")])
        wire = query.to_wire()
        plain = dns.message.make_query("web.example.org.", "A").to_wire()
        two_questions = plain[:5] + b"\x02" + plain[6:] + plain[12:]
        others = [wire[:-1], wire[:-3] + b"\x00\x09x", with_compressed_name(plain), two_questions,
                  plain[:12] + b"\x41" + plain[13:]]
        self.assertEqual([decode_common_query(packet) for packet in others], [None] * len(others))
