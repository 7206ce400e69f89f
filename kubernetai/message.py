# -*- test-case-name: tests.test_message -*-
"""
DNS wire messages in and out: decide what to do with a packet (answer it,
refuse it, drop it), and encode a reply that fits the client's buffer.

Acceptance follows miekg/dns's default accept function, which CoreDNS uses:
responses are dropped, opcodes other than QUERY get NOTIMP, a packet whose
header parses but whose body does not, or whose section counts are not those
of a query, gets FORMERR.
"""

from __future__ import annotations

import struct
from dataclasses import replace
from io import BytesIO

from twisted.names import dns

from kubernetai.chain import Request, Response

HEADER = struct.Struct("!HBBHHHH")
TCP_LENGTH = struct.Struct("!H")
MAX_MESSAGE_SIZE = 65535
RECORD_FIXED = struct.Struct("!HHIH")
TTL = struct.Struct("!I")
OPT_FIXED_SIZE = 11
BADVERS = 16


class Rejected(Exception):
    """A packet answered without the chain: C{reply} holds the wire bytes."""

    def __init__(self, reply: bytes) -> None:
        super().__init__(reply)
        self.reply = reply


def decode_query(packet: bytes, client: tuple[str, int], protocol: str) -> Request | None:
    """A Request for C{packet}; None to drop it; raises L{Rejected} with the error reply."""
    if len(packet) < HEADER.size:
        return None
    query_id, flags1, flags2, qdcount, ancount, nscount, arcount = HEADER.unpack_from(packet)
    if flags1 & 0x80:
        return None
    opcode = (flags1 >> 3) & 0xF
    if opcode != dns.OP_QUERY:
        raise Rejected(_header_only_reply(query_id, flags1, dns.ENOTIMP))
    if qdcount != 1 or ancount > 1 or nscount > 1 or arcount > 2:
        raise Rejected(_header_only_reply(query_id, flags1, dns.EFORMAT))
    message = dns.Message()
    try:
        message.fromStr(packet)
    except Exception:
        raise Rejected(_header_only_reply(query_id, flags1, dns.EFORMAT)) from None
    decoded = (len(message.queries), len(message.answers), len(message.authority), len(message.additional))
    if decoded != (qdcount, ancount, nscount, arcount) or not valid_name(message.queries[0].name.name):
        raise Rejected(_header_only_reply(query_id, flags1, dns.EFORMAT))
    options = [record for record in message.additional if record.type == dns.OPT]
    if len(options) > 1:
        raise Rejected(_header_only_reply(query_id, flags1, dns.EFORMAT))
    request = Request(packet, message, client, protocol)
    if options:
        try:
            opt = dns._OPTHeader.fromRRHeader(options[0])
        except EOFError:
            # An option longer than the OPT record's data: miekg/dns cannot unpack it either.
            raise Rejected(_header_only_reply(query_id, flags1, dns.EFORMAT)) from None
        request.edns = True
        request.dnssec_ok = bool(opt.dnssecOK)
        request.payload_size = opt.udpPayloadSize
        if opt.version != 0:
            raise Rejected(encode_reply(request, Response(rcode=BADVERS)))
    return request


def valid_name(name: bytes) -> bool:
    """Whether a decoded name keeps DNS's limits: labels of 63 octets at most, 255 in all on the wire.

    Twisted reads the reserved label types (first bits 01 and 10) as long labels, and does not
    count the total: such names are FORMERR, as miekg/dns (and so CoreDNS) makes them.
    """
    if not name:
        return True
    return len(name) + 2 <= 255 and all(0 < len(label) <= 63 for label in name.split(b"."))


def _header_only_reply(query_id: int, flags1: int, rcode: int) -> bytes:
    """A reply with no sections: the query's ID, opcode and RD, and C{rcode}."""
    return HEADER.pack(query_id, 0x80 | (flags1 & 0x79), rcode & 0xF, 0, 0, 0, 0)


def encode_reply(request: Request, response: Response) -> bytes:
    """The wire reply to C{request}, cut to the client's size with TC set when records are lost."""
    limit = request.max_size - HEADER.size
    opt = _reply_opt(request, response.rcode) if request.edns else None
    if opt is not None:
        limit -= OPT_FIXED_SIZE
    body = BytesIO()
    compression: dict[bytes, int] = {}
    request.query.encode(body, compression)
    counts = []
    truncated = response.truncated
    for section in (response.answers, response.authority, response.additional):
        written = _write_records(body, compression, section, limit)
        if written < len(section) and section is not response.additional:
            truncated = True
        counts.append(written)
        if written < len(section):
            break
    counts += [0] * (3 - len(counts))
    if opt is not None:
        opt.encode(body, compression)
        counts[2] += 1
    flags1 = 0x80 | (request.message.opCode << 3) | (request.message.recDes & 1)
    flags1 |= (response.authoritative << 2) | (truncated << 1)
    flags2 = (response.recursion_available << 7) | (response.rcode & 0xF)
    flags2 |= request.message.checkingDisabled << 4
    return HEADER.pack(request.message.id, flags1, flags2, 1, *counts) + body.getvalue()


def encode_transfer(request: Request, response: Response) -> list[bytes]:
    """A zone transfer's wire replies: one per batch of C{response.messages}, each with the query's ID and question."""
    return [encode_reply(request, replace(response, answers=batch)) for batch in response.messages]


def _write_records(body: BytesIO, compression: dict, records: list, limit: int) -> int:
    """Encode records until one would pass C{limit}; how many were written."""
    for index, record in enumerate(records):
        start = body.tell()
        record.encode(body, compression)
        if body.tell() > limit:
            body.seek(start)
            body.truncate()
            for name in [name for name, offset in compression.items() if offset >= start + HEADER.size]:
                del compression[name]
            return index
    return len(records)


def _reply_opt(request: Request, rcode: int) -> dns._OPTHeader:
    """The reply's OPT record: the client's buffer size and DO bit, version 0."""
    return dns._OPTHeader(
        udpPayloadSize=request.payload_size,
        extendedRCODE=rcode >> 4,
        version=0,
        dnssecOK=request.dnssec_ok,
    )


def record_ttl_offsets(message: bytes) -> list[int]:
    """Where the TTL of every record but OPT (whose TTL field holds flags) sits in C{message},
    a well-formed message such as L{encode_reply} writes."""
    _, _, _, qdcount, ancount, nscount, arcount = HEADER.unpack_from(message)
    offset = HEADER.size
    for _ in range(qdcount):
        offset = _past_name(message, offset) + 4
    offsets = []
    for _ in range(ancount + nscount + arcount):
        offset = _past_name(message, offset)
        record_type, _, _, rdlength = RECORD_FIXED.unpack_from(message, offset)
        if record_type != dns.OPT:
            offsets.append(offset + 4)
        offset += RECORD_FIXED.size + rdlength
    return offsets


def _past_name(message: bytes, offset: int) -> int:
    """The offset just past the (possibly compressed) name at C{offset}."""
    while True:
        length = message[offset]
        if length >= 0xC0:
            return offset + 2
        offset += 1 + length
        if length == 0:
            return offset


def with_ttl(message: bytes, offsets: list[int], ttl: int) -> bytes:
    """C{message} with C{ttl} written at each of C{offsets}."""
    patched = bytearray(message)
    for offset in offsets:
        TTL.pack_into(patched, offset, ttl)
    return bytes(patched)


def frame(message: bytes) -> bytes:
    """A message as sent over TCP: its length first."""
    return TCP_LENGTH.pack(len(message)) + message


class StreamError(ValueError):
    """A TCP stream's next length prefix is one no DNS message can have: it cannot be read on."""


def message_at(buffer: bytes, start: int, max_size: int = MAX_MESSAGE_SIZE) -> tuple[bytes | None, int]:
    """The length-prefixed message at C{start} of a TCP stream's C{buffer} (None until it is all
    there) and where the next one starts.

    Raises L{StreamError} for a length shorter than a DNS header or longer than C{max_size}.
    """
    if len(buffer) - start < TCP_LENGTH.size:
        return None, start
    (length,) = TCP_LENGTH.unpack_from(buffer, start)
    if not HEADER.size <= length <= max_size:
        raise StreamError(f"a length prefix of {length} octets, outside [{HEADER.size}, {max_size}]")
    end = start + TCP_LENGTH.size + length
    if len(buffer) < end:
        return None, start
    return buffer[start + TCP_LENGTH.size : end], end


def split_stream(buffer: bytes, max_size: int = MAX_MESSAGE_SIZE) -> tuple[list[bytes], bytes]:
    """The whole length-prefixed messages at the start of a TCP stream's C{buffer}, and what is left;
    raises L{StreamError} as L{message_at} does."""
    messages = []
    message, start = message_at(buffer, 0, max_size)
    while message is not None:
        messages.append(message)
        message, start = message_at(buffer, start, max_size)
    return messages, buffer[start:]
