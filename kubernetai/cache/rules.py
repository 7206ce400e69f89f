# -*- test-case-name: tests.test_cache_rules -*-
"""
What the cache keeps and for how long, as CoreDNS's plugin/cache decides it:
the key of an answer, the class of a response (C{response.Typify}), whether
it may be kept at all (C{key()}), its lifetime (C{MinimalTTLWithMaximum} and
C{computeTTL}), and copies of records with a new TTL.

Pure: Requests and Responses in, values out; time is a number passed in.
"""

from __future__ import annotations

import struct
from itertools import chain

from twisted.names import dns

from kubernetai.cache.config import MIN_TTL, CacheConfig
from kubernetai.chain import Request, Response

# CoreDNS's response.Type classes.
NOERROR, NXDOMAIN, NODATA, DELEGATION = "NOERROR", "NXDOMAIN", "NODATA", "DELEGATION"
SERVER_ERROR, META, OTHER_ERROR = "SERVERERROR", "META", "OTHERERROR"
RRSIG = 46
YEAR68 = 1 << 31


def entry_key(request: Request) -> tuple:
    """What an answer is cached under: folded name, type, class, DO and CD bits."""
    return (request.name, request.qtype, request.qclass, request.dnssec_ok, bool(request.message.checkingDisabled))


def response_type(qtype: int, response: Response, dnssec_ok: bool, now: float) -> str:
    """CoreDNS's classification of a response (C{response.Typify})."""
    if qtype in (dns.AXFR, dns.IXFR):
        return META
    if dnssec_ok and has_expired_signature(response, now):
        return OTHER_ERROR
    if response.answers and response.rcode in (dns.OK, dns.ENAME):
        return NOERROR if response.rcode == dns.OK else OTHER_ERROR
    if has_soa(response) and response.rcode == dns.OK:
        return NODATA
    if response.rcode == dns.ENAME:
        return NXDOMAIN
    if response.rcode in (dns.ESERVER, dns.ENOTIMP):
        return SERVER_ERROR
    if response.rcode == dns.OK:
        return DELEGATION if any(record.type == dns.NS for record in response.authority) else NOERROR
    return OTHER_ERROR


def cache_type(request: Request, response: Response, now: float) -> str:
    """The class the cache files C{response} under: a CNAME chain that ends short, with an SOA, is NODATA."""
    kind = response_type(request.qtype, response, request.dnssec_ok, now)
    if kind == NOERROR and has_soa(response) and is_nodata(request, response):
        return NODATA
    return kind


def cacheable(kind: str, request: Request, response: Response, answering: bool | None = None) -> bool:
    """Whether CoreDNS would keep C{response} at all (its C{key()} rules); C{answering}, if known, is
    L{answers_question}'s verdict."""
    if response.truncated or kind in (OTHER_ERROR, META):
        return False
    if kind == NXDOMAIN and not has_soa(response):
        return False
    if kind != NOERROR or has_soa(response):
        return True
    if answering is None:
        answering = answers_question(request, response)
    return not (response.answers and not answering)


def minimal_ttl(response: Response, kind: str, maximum: int) -> int:
    """The smallest TTL in the response, at most C{maximum}; 5 for other kinds or no records."""
    records = [*response.answers, *response.authority, *(r for r in response.additional if r.type != dns.OPT)]
    if kind not in (NOERROR, NXDOMAIN, NODATA) or not records:
        return MIN_TTL
    return min(maximum, *(record.ttl for record in records))


def compute_ttl(message_ttl: float, min_ttl: float, max_ttl: float) -> float:
    """C{message_ttl} clamped to [min_ttl, max_ttl], the maximum winning."""
    return min(max(message_ttl, min_ttl), max_ttl)


def entry_duration(kind: str, response: Response, config: CacheConfig) -> float:
    """How long a response of class C{kind} is kept, in seconds (its records' TTL once capped)."""
    if kind == SERVER_ERROR:
        return config.servfail_ttl
    table = config.denial if kind in (NXDOMAIN, NODATA) else config.success
    return compute_ttl(minimal_ttl(response, kind, table.max_ttl), table.min_ttl, table.max_ttl)


def has_soa(response: Response) -> bool:
    """Whether the authority section holds an SOA."""
    return any(record.type == dns.SOA for record in response.authority)


def is_nodata(request: Request, response: Response) -> bool:
    """A non-empty answer that does not answer the question (a CNAME chain ending short)."""
    return bool(response.answers) and not answers_question(request, response)


def answers_question(request: Request, response: Response) -> bool:
    """Whether the answer holds the asked type at the end of the CNAME chain from the question."""
    if response.rcode != dns.OK or not response.answers:
        return False
    qname, qtype, qclass, answers = request.qname.lower(), request.qtype, request.qclass, response.answers
    if qtype == dns.ALL_RECORDS:
        return any(_class_matches(r.cls, qclass) and r.name.name.lower() == qname for r in answers)
    if qtype == dns.CNAME:
        target = _cname_target(answers, qname, qclass)
        return target not in (None, b"")
    terminal = _canonical_name(answers, qname, qclass)
    return terminal is not None and any(
        r.type == qtype and _class_matches(r.cls, qclass) and r.name.name.lower() == terminal for r in answers
    )


def _canonical_name(answers, name: bytes, qclass: int) -> bytes | None:
    """The end of the CNAME chain from C{name}; None for a loop or an owner with two targets."""
    visited = set()
    while name not in visited:
        visited.add(name)
        target = _cname_target(answers, name, qclass)
        if target is None:
            return None
        if target == b"":
            return name
        name = target
    return None


def _cname_target(answers, owner: bytes, qclass: int) -> bytes | None:
    """C{owner}'s one CNAME target (b"" when it has none); None when it has two different ones."""
    targets = {
        r.payload.name.name.lower()
        for r in answers
        if r.type == dns.CNAME and _class_matches(r.cls, qclass) and r.name.name.lower() == owner
    }
    return None if len(targets) > 1 else next(iter(targets), b"")


def _class_matches(record_class: int, qclass: int) -> bool:
    return qclass == dns.ANY or record_class == qclass


def has_expired_signature(response: Response, now: float) -> bool:
    """Whether an RRSIG in the response is outside its validity period at C{now}."""
    for record in chain(response.answers, response.authority, response.additional):
        data = getattr(record.payload, "data", b"")
        if record.type == RRSIG and len(data) >= 16:
            expiration, inception = struct.unpack_from("!II", data, 8)
            utc = int(now)
            if not _serial(inception, utc) <= utc <= _serial(expiration, utc):
                return True
    return False


def _serial(value: int, utc: int) -> int:
    """An RRSIG time (seconds modulo 2**32) as the absolute time nearest C{utc} (RFC 4034 3.1.5)."""
    return value + int((value - utc) / YEAR68) * YEAR68


def retimed(records, ttl: int, qname: bytes | None = None) -> list[dns.RRHeader]:
    """Copies of C{records} with C{ttl}; owners equal to C{qname} (folded) take its case."""
    folded = qname.lower() if qname is not None else None
    return [
        dns.RRHeader(qname if r.name.name.lower() == folded else r.name.name, r.type, r.cls, ttl, r.payload, r.auth)
        for r in records
    ]


def records_at(records, ttl: int) -> list[dns.RRHeader]:
    """C{records} with C{ttl}: a new list of the records themselves when they all have it already (records
    are never changed in place), else of L{retimed} copies."""
    return list(records) if all(r.ttl == ttl for r in records) else retimed(records, ttl)
