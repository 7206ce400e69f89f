# -*- test-case-name: tests.test_message,tests.test_message_decode,tests.test_message_encode -*-
"""
DNS wire messages in and out: decide what to do with a packet (answer it,
refuse it, drop it), and encode a reply that fits the client's buffer.

Acceptance follows miekg/dns's default accept function, which CoreDNS uses:
responses are dropped, opcodes other than QUERY get NOTIMP, a packet whose
header parses but whose body does not, or whose section counts are not those
of a query, gets FORMERR.

Twisted's message decoder and record encoders cost most of what a query
never asked before costs: the common query shape is decoded here, and the
common record types encoded here, each to exactly what Twisted's code gives
(tests.test_message_decode and tests.test_message_encode hold them to it).
"""

from __future__ import annotations

import struct
from dataclasses import replace

from twisted.names import dns

from kubernetai.chain import Request, Response

HEADER = struct.Struct("!HBBHHHH")
TCP_LENGTH = struct.Struct("!H")
MAX_MESSAGE_SIZE = 65535
RECORD_FIXED = struct.Struct("!HHIH")
QUESTION_FIXED = struct.Struct("!HH")
POINTER = struct.Struct("!H")
RDLENGTH = struct.Struct("!H")
LABEL_LENGTH = struct.Struct("!B")
SOA_FIXED = struct.Struct("!LlllL")
SRV_FIXED = struct.Struct("!HHH")
OPTION_FIXED = struct.Struct("!HH")
MAX_LABEL = 63
TTL = struct.Struct("!I")
OPT_FIXED_SIZE = 11
BADVERS = 16
# The DO bit, in the flags an OPT record's TTL field holds.
DNSSEC_OK = 0x8000


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
    message = decode_common_query(packet)
    if message is None:
        try:
            message = decode_message(packet)
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
        (opt,) = options
        if not _whole_options(opt.payload.data):
            # An option longer than the OPT record's data: miekg/dns cannot unpack it either.
            raise Rejected(_header_only_reply(query_id, flags1, dns.EFORMAT))
        request.edns = True
        request.dnssec_ok = bool(opt.ttl & DNSSEC_OK)
        request.payload_size = opt.cls
        if (opt.ttl >> 16) & 0xFF != 0:
            raise Rejected(encode_reply(request, Response(rcode=BADVERS)))
    return request


def decode_message(packet: bytes) -> dns.Message:
    """C{packet} as Twisted decodes it (sections cut short where a record runs past the end); raises
    what Twisted raises for what it cannot read."""
    message = dns.Message()
    message.fromStr(packet)
    return message


def decode_common_query(packet: bytes) -> dns.Message | None:
    """The message L{decode_message} reads from C{packet} (a header's length at least), decoded
    straight from the bytes when the query has the shape nearly all have: one question whose name
    has no compression pointer or reserved label type, and at most an OPT record of whole options.
    None for any other packet.

    Twisted's decoder costs most of what a query never asked before costs.
    """
    query_id, flags1, flags2, qdcount, ancount, nscount, arcount = HEADER.unpack_from(packet)
    if qdcount != 1 or ancount or nscount or arcount > 1:
        return None
    end = len(packet)
    labels = []
    offset = HEADER.size
    while offset < end:
        length = packet[offset]
        if length == 0 or length > MAX_LABEL:
            break
        labels.append(packet[offset + 1 : offset + 1 + length])
        offset += 1 + length
    if offset >= end or packet[offset] != 0 or offset + 1 + QUESTION_FIXED.size > end:
        return None
    qtype, qclass = QUESTION_FIXED.unpack_from(packet, offset + 1)
    message = dns.Message(
        id=query_id, answer=flags1 >> 7, opCode=(flags1 >> 3) & 0xF, auth=(flags1 >> 2) & 1,
        trunc=(flags1 >> 1) & 1, recDes=flags1 & 1, recAv=flags2 >> 7, authenticData=(flags2 >> 5) & 1,
        checkingDisabled=(flags2 >> 4) & 1, rCode=flags2 & 0xF, maxSize=0,
    )
    if arcount:
        opt = _common_opt_record(packet, offset + 1 + QUESTION_FIXED.size, message.auth)
        if opt is None:
            return None
        message.additional.append(opt)
    message.queries.append(dns.Query(b".".join(labels), qtype, qclass))
    return message


def _common_opt_record(packet: bytes, offset: int, auth: int) -> dns.RRHeader | None:
    """The OPT record at C{offset}, owned by the root, as Twisted decodes it (with the message's
    C{auth} bit), if its data is whole options; None otherwise."""
    fixed_end = offset + 1 + RECORD_FIXED.size
    if packet[offset : offset + 1] != b"\x00" or fixed_end > len(packet):
        return None
    record_type, payload_size, ttl, rdlength = RECORD_FIXED.unpack_from(packet, offset + 1)
    data = packet[fixed_end : fixed_end + rdlength]
    if record_type != dns.OPT or len(data) != rdlength or not _whole_options(data):
        return None
    record = dns.RRHeader(b"", dns.OPT, payload_size, ttl, dns.UnknownRecord(data, ttl), auth)
    record.rdlength = rdlength
    return record


def _whole_options(data: bytes) -> bool:
    """Whether C{data} is a run of whole EDNS options (code, length, that many octets)."""
    offset = 0
    while offset < len(data):
        if offset + OPTION_FIXED.size > len(data):
            return False
        offset += OPTION_FIXED.size + OPTION_FIXED.unpack_from(data, offset)[1]
    return offset == len(data)


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
    if request.edns:
        limit -= OPT_FIXED_SIZE + sum(OPTION_FIXED.size + len(data) for _, data in response.edns_options)
    body = bytearray()
    compression: dict[bytes, int] = {}
    _write_name(body, request.query.name.name, compression)
    body += QUESTION_FIXED.pack(request.query.type, request.query.cls)
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
    if request.edns:
        body += _reply_opt(request, response.rcode, response.edns_options)
        counts[2] += 1
    recursion_desired = request.message.recDes if response.recursion_desired is None else response.recursion_desired
    flags1 = 0x80 | (request.message.opCode << 3) | (recursion_desired & 1)
    flags1 |= (response.authoritative << 2) | (truncated << 1)
    flags2 = (response.recursion_available << 7) | (response.rcode & 0xF)
    flags2 |= request.message.checkingDisabled << 4
    return HEADER.pack(request.message.id, flags1, flags2, 1, *counts) + body


def encode_transfer(request: Request, response: Response) -> list[bytes]:
    """A zone transfer's wire replies: one per batch of C{response.messages}, each with the query's ID and question."""
    return [encode_reply(request, replace(response, answers=batch)) for batch in response.messages]


def _write_records(body: bytearray, compression: dict, records: list, limit: int) -> int:
    """Encode records until one would pass C{limit}; how many were written."""
    for index, record in enumerate(records):
        start = len(body)
        _write_record(body, compression, record)
        if len(body) > limit:
            del body[start:]
            for name in [name for name, offset in compression.items() if offset >= start + HEADER.size]:
                del compression[name]
            return index
    return len(records)


def _reply_opt(request: Request, rcode: int, edns_options: tuple[tuple[int, bytes], ...] = ()) -> bytes:
    """The reply's OPT record: the client's buffer size and DO bit, version 0, and C{edns_options}."""
    flags = (rcode >> 4) << 24 | (DNSSEC_OK if request.dnssec_ok else 0)
    data = b"".join(OPTION_FIXED.pack(code, len(value)) + value for code, value in edns_options)
    return b"\x00" + RECORD_FIXED.pack(dns.OPT, request.payload_size, flags, len(data)) + data


def edns_options(request: Request) -> list[tuple[int, bytes]]:
    """The (code, data) of each EDNS option in C{request}'s OPT record; none without one."""
    for record in request.message.additional:
        if record.type == dns.OPT:
            data = record.payload.data
            found, offset = [], 0
            while offset + OPTION_FIXED.size <= len(data):
                code, length = OPTION_FIXED.unpack_from(data, offset)
                offset += OPTION_FIXED.size
                found.append((code, data[offset : offset + length]))
                offset += length
            return found
    return []


def _write_name(body: bytearray, name: bytes, compression: dict[bytes, int] | None) -> None:
    """Append C{name} to a message's C{body} as Twisted's Name.encode writes it: a pointer to the first
    of its suffixes in C{compression} (exact bytes, case and all), which learns where the others start."""
    while name:
        if compression is not None:
            offset = compression.get(name)
            if offset is not None:
                body += POINTER.pack(0xC000 | offset)
                return
            compression[name] = len(body) + HEADER.size
        dot = name.find(b".")
        if dot <= 0:
            body += LABEL_LENGTH.pack(len(name))
            body += name
            break
        body += LABEL_LENGTH.pack(dot)
        body += name[:dot]
        name = name[dot + 1 :]
    body.append(0)


def _write_record(body: bytearray, compression: dict[bytes, int], record: dns.RRHeader) -> None:
    """Append C{record} to a message's C{body}, the very bytes Twisted's RRHeader.encode writes; our
    own writer for the record types answers carry, Twisted's encoder for the others."""
    write_data = _DATA_WRITERS.get(type(record.payload)) if type(record) is dns.RRHeader else None
    if write_data is None:
        record.encode(_BodyFile(body), compression)
        return
    _write_name(body, record.name.name, compression)
    body += RECORD_FIXED.pack(record.type, record.cls, record.ttl, 0)
    start = len(body)
    write_data(body, compression, record.payload)
    RDLENGTH.pack_into(body, start - RDLENGTH.size, len(body) - start)


def _write_address(body: bytearray, compression: dict, payload) -> None:
    body += payload.address


def _write_target(body: bytearray, compression: dict, payload) -> None:
    _write_name(body, payload.name.name, compression)


def _write_soa(body: bytearray, compression: dict, payload: dns.Record_SOA) -> None:
    _write_name(body, payload.mname.name, compression)
    _write_name(body, payload.rname.name, compression)
    body += SOA_FIXED.pack(payload.serial, payload.refresh, payload.retry, payload.expire, payload.minimum)


def _write_srv(body: bytearray, compression: dict, payload: dns.Record_SRV) -> None:
    body += SRV_FIXED.pack(payload.priority, payload.weight, payload.port)
    # RFC 2782: the target is never compressed.
    _write_name(body, payload.target.name, None)


def _write_strings(body: bytearray, compression: dict, payload: dns.Record_TXT) -> None:
    for string in payload.data:
        body += LABEL_LENGTH.pack(len(string))
        body += string


_DATA_WRITERS = {
    dns.Record_A: _write_address,
    dns.Record_AAAA: _write_address,
    dns.Record_CNAME: _write_target,
    dns.Record_NS: _write_target,
    dns.Record_PTR: _write_target,
    dns.Record_DNAME: _write_target,
    dns.Record_SOA: _write_soa,
    dns.Record_SRV: _write_srv,
    dns.Record_TXT: _write_strings,
    dns.Record_SPF: _write_strings,
}


class _BodyFile:
    """A message's body as the file Twisted's encoders write to (they seek back to write a length)."""

    def __init__(self, body: bytearray) -> None:
        self.body = body
        self.position = len(body)

    def write(self, data: bytes) -> None:
        self.body[self.position : self.position + len(data)] = data
        self.position += len(data)

    def tell(self) -> int:
        return self.position

    def seek(self, position: int, whence: int = 0) -> None:
        self.position = position


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
