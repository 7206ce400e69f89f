# -*- test-case-name: tests.test_upstreamreply -*-
"""
An upstream's reply decoded to the very Message Twisted's decoder gives,
straight from the bytes when every record is of a type replies mostly carry
(A, AAAA, CNAME, SOA, OPT) and every name and length is sound; Twisted's
decoder for any other reply.  Twisted's decoder cost forward about a fifth
of what a name never asked before costs it.
"""

from __future__ import annotations

import struct

from twisted.names import dns

HEADER = struct.Struct("!HBBHHHH")
QUESTION_FIXED = struct.Struct("!HH")
RECORD_FIXED = struct.Struct("!HHIH")
SOA_FIXED = struct.Struct("!LlllL")
# Far fewer than Twisted's limit of 1,000 a message: a reply with more is decoded by Twisted.
MAX_POINTERS = 64


class _Unusual(Exception):
    """The reply is not of the common shape: Twisted's decoder reads it."""


def decode_reply(packet: bytes) -> dns.Message:
    """C{packet} as C{dns.Message().fromStr} decodes it, raising what it raises."""
    message = decode_common_reply(packet)
    if message is None:
        message = dns.Message()
        message.fromStr(packet)
    return message


def decode_common_reply(packet: bytes) -> dns.Message | None:
    """The message Twisted decodes from C{packet}, read straight from the bytes when it has the common
    shape (every record of a type in L{_PAYLOAD_READERS}, every name and length sound); None otherwise."""
    try:
        return _decode_common(packet)
    except (_Unusual, IndexError, struct.error):
        return None


def _decode_common(packet: bytes) -> dns.Message:
    query_id, flags1, flags2, qdcount, ancount, nscount, arcount = HEADER.unpack_from(packet)
    auth = (flags1 >> 2) & 1
    message = dns.Message(
        id=query_id, answer=flags1 >> 7, opCode=(flags1 >> 3) & 0xF, auth=auth, trunc=(flags1 >> 1) & 1,
        recDes=flags1 & 1, recAv=flags2 >> 7, authenticData=(flags2 >> 5) & 1, checkingDisabled=(flags2 >> 4) & 1,
        rCode=flags2 & 0xF, maxSize=0,
    )
    pointers = [MAX_POINTERS]
    offset = HEADER.size
    for _ in range(qdcount):
        name, offset = _name_at(packet, offset, pointers)
        qtype, qclass = QUESTION_FIXED.unpack_from(packet, offset)
        offset += QUESTION_FIXED.size
        message.queries.append(dns.Query(name, qtype, qclass))
    for section, count in ((message.answers, ancount), (message.authority, nscount), (message.additional, arcount)):
        for _ in range(count):
            record, offset = _record_at(packet, offset, auth, pointers)
            section.append(record)
    return message


def _record_at(packet: bytes, offset: int, auth: int, pointers: list[int]) -> tuple[dns.RRHeader, int]:
    """The record at C{offset}, as Twisted's RRHeader.decode and its payload's decode make it, and the
    offset past it."""
    name, offset = _name_at(packet, offset, pointers)
    record_type, record_class, ttl, rdlength = RECORD_FIXED.unpack_from(packet, offset)
    offset += RECORD_FIXED.size
    end = offset + rdlength
    if end > len(packet):
        raise _Unusual()
    read_payload = _PAYLOAD_READERS.get(record_type)
    if read_payload is None:
        raise _Unusual()
    payload = read_payload(packet, offset, end, pointers)
    payload.ttl = ttl
    record = dns.RRHeader.__new__(dns.RRHeader)
    record.name, record.type, record.cls, record.ttl = dns.Name(name), record_type, record_class, ttl
    record.payload, record.auth, record.rdlength = payload, auth, rdlength
    return record, end


def _name_at(packet: bytes, offset: int, pointers: list[int]) -> tuple[bytes, int]:
    """The name at C{offset} (labels joined by dots, case kept, pointers followed: C{pointers[0]} more
    at most) and the offset past it where it is written."""
    labels = []
    resume = 0
    visited = set()
    while True:
        length = packet[offset]
        if length == 0:
            return b".".join(labels), resume or offset + 1
        if length >= 0xC0:
            target = (length & 0x3F) << 8 | packet[offset + 1]
            pointers[0] -= 1
            if target in visited or pointers[0] < 0:
                raise _Unusual()
            visited.add(target)
            resume = resume or offset + 2
            offset = target
            continue
        if length > 63 or offset + 1 + length > len(packet):
            raise _Unusual()
        labels.append(packet[offset + 1 : offset + 1 + length])
        offset += 1 + length


def _fixed_size(record_class, size: int):
    def read(packet: bytes, offset: int, end: int, pointers: list[int]):
        if end - offset != size:
            raise _Unusual()
        payload = record_class.__new__(record_class)
        payload.address = packet[offset:end]
        return payload

    return read


def _read_cname(packet: bytes, offset: int, end: int, pointers: list[int]) -> dns.Record_CNAME:
    name, past = _name_at(packet, offset, pointers)
    if past != end:
        raise _Unusual()
    payload = dns.Record_CNAME.__new__(dns.Record_CNAME)
    payload.name = dns.Name(name)
    return payload


def _read_soa(packet: bytes, offset: int, end: int, pointers: list[int]) -> dns.Record_SOA:
    mname, offset = _name_at(packet, offset, pointers)
    rname, offset = _name_at(packet, offset, pointers)
    if end - offset != SOA_FIXED.size:
        raise _Unusual()
    payload = dns.Record_SOA.__new__(dns.Record_SOA)
    payload.mname, payload.rname = dns.Name(mname), dns.Name(rname)
    payload.serial, payload.refresh, payload.retry, payload.expire, payload.minimum = SOA_FIXED.unpack_from(
        packet, offset)
    return payload


def _read_opt(packet: bytes, offset: int, end: int, pointers: list[int]) -> dns.UnknownRecord:
    payload = dns.UnknownRecord.__new__(dns.UnknownRecord)
    payload.data = packet[offset:end]
    return payload


_PAYLOAD_READERS = {
    dns.A: _fixed_size(dns.Record_A, 4),
    dns.AAAA: _fixed_size(dns.Record_AAAA, 16),
    dns.CNAME: _read_cname,
    dns.SOA: _read_soa,
    dns.OPT: _read_opt,
}
