# -*- test-case-name: tests.test_file -*-
"""
One zone of the file plugin: an RFC 1035 master file read by dnspython's
zone reader into an immutable table of wire records (Twisted's RRHeaders),
kept as CoreDNS's C{plugin/file/zone.go} keeps it: the apex SOA, NS and
their signatures apart, every other name's records by type, the names in
DNSSEC canonical order for the NSEC and empty-non-terminal searches.

Reading blocks (a large file takes seconds): the plugin calls L{read_zone}
in a thread and publishes the L{Zone} it returns by one assignment.
"""

from __future__ import annotations

import bisect
import io
import os
import stat
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

import dns.exception
import dns.name
import dns.rdatatype
import dns.zone
from twisted.names import dns as tdns

from kubernetai.zones import in_zone

# Types kept in Twisted's record classes (which other plugins read); the rest stay raw data (UnknownRecord),
# as Twisted would compress names in some of them (DNAME, AFSDB, RP) that RFC 3597 says must not be.
_TWISTED_TYPES = {
    tdns.A: tdns.Record_A, tdns.NS: tdns.Record_NS, tdns.CNAME: tdns.Record_CNAME, tdns.SOA: tdns.Record_SOA,
    tdns.PTR: tdns.Record_PTR, tdns.HINFO: tdns.Record_HINFO, tdns.MX: tdns.Record_MX, tdns.TXT: tdns.Record_TXT,
    tdns.AAAA: tdns.Record_AAAA, tdns.SRV: tdns.Record_SRV, tdns.NAPTR: tdns.Record_NAPTR,
    tdns.SSHFP: tdns.Record_SSHFP, tdns.SPF: tdns.Record_SPF,
}
RRSIG, NSEC, NSEC3, NSEC3PARAM, SVCB, HTTPS = 46, 47, 50, 51, 64, 65

# zone.go's Insert lowercases these names in the records' data (and every owner name but an SRV's).
_LOWERED_FIELDS = {
    dns.rdatatype.NS: ("target",),
    dns.rdatatype.CNAME: ("target",),
    dns.rdatatype.MX: ("exchange",),
    dns.rdatatype.SOA: ("mname", "rname"),
    dns.rdatatype.SVCB: ("target",),
    dns.rdatatype.HTTPS: ("target",),
}


class ZoneError(Exception):
    """A zone file that cannot be served: CoreDNS's words for why."""


class Unchanged(Exception):
    """The file's SOA serial is the one already served: nothing was read (CoreDNS's serialErr)."""


@dataclass(frozen=True)
class Node:
    """The records of one owner name, by type, and its RRSIGs by the type they cover."""

    records: Mapping[int, tuple[tdns.RRHeader, ...]]
    signatures: Mapping[int, tuple[tdns.RRHeader, ...]]

    def of(self, rrtype: int, dnssec: bool = False) -> list[tdns.RRHeader]:
        """The records of C{rrtype} (every RRSIG for RRSIG), their signatures after them when C{dnssec}."""
        if rrtype == RRSIG:
            return [sig for sigs in self.signatures.values() for sig in sigs]
        found = list(self.records.get(rrtype, ()))
        return found + list(self.signatures.get(rrtype, ())) if dnssec else found

    def signed(self, covered: int) -> list[tdns.RRHeader]:
        """The RRSIGs of the records of type C{covered}."""
        return list(self.signatures.get(covered, ()))

    def all(self) -> list[tdns.RRHeader]:
        """Every record of the name, its RRSIGs last."""
        return [record for records in self.records.values() for record in records] + self.of(RRSIG)


@dataclass(frozen=True)
class Zone:
    """A zone as served: None for C{soa} until its file has been read (every answer is then SERVFAIL)."""

    origin: str
    path: str
    soa: tdns.RRHeader | None = None
    soa_signatures: tuple[tdns.RRHeader, ...] = ()
    ns: tuple[tdns.RRHeader, ...] = ()
    ns_signatures: tuple[tdns.RRHeader, ...] = ()
    nodes: Mapping[str, Node] = field(default_factory=lambda: MappingProxyType({}))
    # The owner names of nodes in canonical order, and their sort keys.
    names: tuple[str, ...] = ()
    keys: tuple[tuple[bytes, ...], ...] = ()
    # The file's L{stat_key} when it was read.
    stat: tuple[int, int, int] | None = None

    @property
    def serial(self) -> int:
        """The SOA serial, -1 before the file has been read (CoreDNS's SOASerialIfDefined)."""
        return self.soa.payload.serial if self.soa is not None else -1

    def soa_records(self, dnssec: bool) -> list[tdns.RRHeader]:
        """The SOA, and its RRSIGs when C{dnssec}."""
        return [self.soa] + list(self.soa_signatures) if dnssec else [self.soa]

    def ns_records(self, dnssec: bool) -> list[tdns.RRHeader]:
        """The apex NS records, and their RRSIGs when C{dnssec}."""
        return list(self.ns) + list(self.ns_signatures) if dnssec else list(self.ns)

    def search(self, name: str) -> Node | None:
        """The records of C{name}; None for a name without any (an empty non-terminal too)."""
        return self.nodes.get(name)

    def prev(self, name: str) -> str | None:
        """The greatest owner name not after C{name} in canonical order (tree.Prev)."""
        index = bisect.bisect_right(self.keys, canonical_key(name)) - 1
        return self.names[index] if index >= 0 else None

    def next(self, name: str) -> str | None:
        """The smallest owner name not before C{name} in canonical order (tree.Next)."""
        index = bisect.bisect_left(self.keys, canonical_key(name))
        return self.names[index] if index < len(self.names) else None

    def has_descendant(self, name: str) -> bool:
        """Whether an owner name lies strictly below C{name}."""
        found = self.next(name)
        return found is not None and found != name and in_zone(found, name)

    def transfer(self, serial: int) -> list[tdns.RRHeader]:
        """An AXFR of the zone (xfr.go): SOA, apex, every node in order, SOA; the SOA alone when C{serial} is ours."""
        if serial and serial == self.serial:
            return [self.soa]
        apex = self.soa_records(True) + self.ns_records(True)
        return apex + [record for name in self.names for record in self.nodes[name].all()] + [self.soa]


def canonical_key(name: str) -> tuple[bytes, ...]:
    """A sort key of C{name} (lower case, with the final dot) in DNSSEC canonical order (RFC 4034, 6.1)."""
    return tuple(label.encode("latin-1", "replace") for label in reversed(name.split(".")[:-1]))


def name_key(name: tdns.Name) -> str:
    """A name as a query's name is kept (L{kubernetai.chain.Request.name}): lower case, with the final dot."""
    return name.name.decode("ascii", "replace").lower().rstrip(".") + "."


def stat_key(status: os.stat_result) -> tuple[int, int, int]:
    """What tells a file changed: its mtime (ns), size and inode (a file renamed over it, as editors save)."""
    return status.st_mtime_ns, status.st_size, status.st_ino


def file_stat(path: str) -> tuple[int, int, int] | None:
    """The file's L{stat_key}, None when it cannot be looked at."""
    try:
        return stat_key(os.stat(path))
    except (OSError, ValueError):
        return None


def read_zone(path: str, origin: str, serial: int = -1) -> Zone:
    """The zone of file C{path} for C{origin} (blocks); raises L{Unchanged} when its SOA serial is C{serial},
    L{ZoneError} when it cannot be served, OSError when it cannot be read."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        # A FIFO or a device could block a thread, or the start, for ever.
        raise ZoneError(f"file {path!r} is not a regular file")
    with open(path, encoding="utf-8") as zone_file:
        status = os.fstat(zone_file.fileno())
        try:
            parsed = dns.zone.from_file(zone_file, origin, relativize=False, check_origin=False, filename=path)
        except UnicodeDecodeError:
            raise ZoneError(f"failed to parse file {path!r} for origin {origin}: it is not UTF-8 text") from None
        # ValueError: an SOA away from the origin; OSError: a file $INCLUDE names.
        except (dns.exception.DNSException, ValueError, OSError) as err:
            raise ZoneError(f"failed to parse file {path!r} for origin {origin} with error {err}") from None
    zone = build_zone(parsed, origin, path, stat_key(status))
    if serial >= 0 and zone.serial == serial:
        raise Unchanged(path)
    return zone


def build_zone(parsed: dns.zone.Zone, origin: str, path: str, read_stat: tuple[int, int, int] | None = None) -> Zone:
    """The served form of dnspython's zone, as zone.go's Insert files each record."""
    soa, soa_signatures, ns, ns_signatures = None, [], [], []
    records: dict[str, dict[int, list]] = {}
    signatures: dict[str, dict[int, list]] = {}
    for name, rdatasets in parsed.nodes.items():
        written = b".".join(name.labels[:-1])
        key = name_key(tdns.Name(written))
        for rdataset in rdatasets:
            if rdataset.rdtype in (NSEC3, NSEC3PARAM):
                raise ZoneError(f"NSEC3 zone is not supported, dropping RR: {name} for zone: {origin}")
            owner_name = written if rdataset.rdtype == dns.rdatatype.SRV else written.lower()
            wire = [wire_record(owner_name, rdataset, rdata) for rdata in rdataset]
            if rdataset.rdtype == dns.rdatatype.SOA:
                soa = wire[0]
            elif rdataset.rdtype == dns.rdatatype.NS and key == origin:
                ns += wire
            elif rdataset.rdtype == RRSIG and rdataset.covers == dns.rdatatype.SOA:
                soa_signatures += wire
            elif rdataset.rdtype == RRSIG and rdataset.covers == dns.rdatatype.NS and key == origin:
                ns_signatures += wire
            elif rdataset.rdtype == RRSIG:
                signatures.setdefault(key, {}).setdefault(int(rdataset.covers), []).extend(wire)
            else:
                records.setdefault(key, {}).setdefault(int(rdataset.rdtype), []).extend(wire)
    if soa is None:
        raise ZoneError(f"file {path!r} has no SOA record for origin {origin}")
    nodes = {name: Node(_frozen(records.get(name, {})), _frozen(signatures.get(name, {})))
             for name in records.keys() | signatures.keys()}
    names = tuple(sorted(nodes, key=canonical_key))
    return Zone(origin, path, soa, tuple(soa_signatures), tuple(ns), tuple(ns_signatures), MappingProxyType(nodes),
                names, tuple(canonical_key(name) for name in names), read_stat)


def _frozen(table: dict[int, list]) -> Mapping[int, tuple]:
    return MappingProxyType({rrtype: tuple(found) for rrtype, found in table.items()})


def wire_record(owner_name: bytes, rdataset, rdata) -> tdns.RRHeader:
    """One record as Twisted decodes it from the wire (an UnknownRecord for types Twisted does not know)."""
    ttl = rdataset.ttl
    if rdataset.rdtype == dns.rdatatype.A:
        payload = tdns.Record_A(rdata.address, ttl)
    elif rdataset.rdtype == dns.rdatatype.AAAA:
        payload = tdns.Record_AAAA(rdata.address, ttl)
    else:
        fields = _LOWERED_FIELDS.get(rdataset.rdtype, ())
        if fields:
            rdata = rdata.replace(**{field: getattr(rdata, field).canonicalize() for field in fields})
        data = rdata.to_wire()
        payload = _TWISTED_TYPES.get(rdataset.rdtype, tdns.UnknownRecord)(ttl=ttl)
        payload.decode(io.BytesIO(data), len(data))
    return tdns.RRHeader(owner_name, rdataset.rdtype, rdataset.rdclass, ttl, payload)


def target_of(record: tdns.RRHeader) -> str | None:
    """The host an SRV, MX, SVCB or HTTPS record names, lower case with the final dot; None for other types."""
    if record.type in (tdns.SRV, tdns.MX):
        name = record.payload.target if record.type == tdns.SRV else record.payload.name
    elif record.type in (SVCB, HTTPS):
        name = data_name(record.payload.data[2:])
    else:
        return None
    return name_key(name)


def data_name(data: bytes) -> tdns.Name:
    """The uncompressed name at the start of a record's raw data (a DNAME's target, an SVCB's after its priority)."""
    name = tdns.Name()
    name.decode(io.BytesIO(data))
    return name


def renamed(records, name: str) -> list[tdns.RRHeader]:
    """Copies of C{records} owned by C{name} (a wildcard's records for the name asked)."""
    owner_name = name.rstrip(".").encode("ascii", "replace")
    return [tdns.RRHeader(owner_name, record.type, record.cls, record.ttl, record.payload, record.auth)
            for record in records]
