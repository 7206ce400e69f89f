# -*- test-case-name: tests.test_kubernetai_merge -*-
"""
Stanzas that answer together: the stanzas of one server block with the same
C{merge GROUP} option form one L{MergedStanzas}, asked at the place of the
group's first stanza in Corefile order, for a name each of several clusters
holds (a service deployed in east and in west).

The merged reply, from the replies of the members that answer (a member
that C{failover} has handing queries on stays out of it):

 - records: the union of every member's records (answers and additional),
   each once, all with the smallest TTL among them; SRV weights shared out
   again over the union.  A CNAME (an ExternalName) is not merged: the first
   member with records answers alone.
 - no records: SERVFAIL while a member answers SERVFAIL (not synced: its
   records might be missing); else NODATA if a member knows the name; else
   NXDOMAIN, when every member says so.
 - the SOA (of a denial, or asked for): the first member's, with the latest
   serial of all of them and the smallest TTL.

The group hands a query on (C{failover}) only when every member does, and
its NXDOMAIN falls through only where every member's C{fallthrough} lets
it.  The reply stays valid while every member it asked is unchanged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from io import BytesIO

from twisted.names import dns

from kubernetai import options
from kubernetai.chain import Response
from kubernetai.reuse import all_valid


@dataclass(frozen=True)
class GroupConfig:
    """What the kubernetai handler reads of a group as it reads a stanza's config: its failover
    (the longest of its members', None unless every member has one)."""

    failover: float | None


class MergedStanzas:
    """The stanzas of one C{merge} group, answering as one."""

    def __init__(self, group: str, members: list) -> None:
        self.group = group
        self.members = members
        failovers = [member.config.failover for member in members]
        self.config = GroupConfig(None if None in failovers else max(failovers))

    def describe(self) -> str:
        return f"merge {self.group}"

    def zone_of(self, name: str) -> str | None:
        """The members' zone holding C{name} (they share their zones), or None."""
        return self.members[0].zone_of(name)

    def hands_on(self, now: float) -> bool:
        """Whether every member hands queries on (C{failover})."""
        return all(member.hands_on(now) for member in self.members)

    def still_hands_on(self):
        return all_valid(*(member.still_hands_on() for member in self.members))

    def answer(self, qname: bytes, name: str, qtype: int, zone: str) -> Response:
        """The members' replies merged; valid while each member's is and each handing on still does."""
        now = time.time()
        replies, checks = [], []
        for member in self.members:
            if member.config.failover is not None and member.hands_on(now):
                checks.append(member.still_hands_on())
            else:
                replies.append(member.answer(qname, name, qtype, zone))
        if not replies:
            replies.append(self.members[0].answer(qname, name, qtype, zone))
        merged = merge_replies(replies)
        merged.valid_while = all_valid(*checks, *(reply.valid_while for reply in replies))
        return merged

    def falls_through(self, name: str, response: Response) -> bool:
        """Whether the group's NXDOMAIN goes on: only where every member's C{fallthrough} lets it."""
        return all(member.falls_through(name, response) for member in self.members)

    def nodata(self, qname: bytes, zone: str) -> Response:
        return self.members[0].nodata(qname, zone)


def merged_order(stanzas: list, directives: list) -> list:
    """C{stanzas} in the order a block asks them, each C{merge} group one L{MergedStanzas} at the
    place of its first member; a group of one stanza, or of stanzas with other zones, is an error
    at the C{merge} line of C{directives} (one per stanza)."""
    groups: dict[str, list] = {}
    for stanza, directive in zip(stanzas, directives):
        group = stanza.config.merge
        if group is None:
            continue
        members = groups.setdefault(group, [])
        if members and set(members[0][0].config.zones) != set(stanza.config.zones):
            raise options.error(merge_line(directive), f"the stanzas of merge group {group!r} must serve the "
                                f"same zones: {' '.join(members[0][0].config.zones)}, not "
                                f"{' '.join(stanza.config.zones)}")
        members.append((stanza, directive))
    for group, members in groups.items():
        if len(members) == 1:
            raise options.error(merge_line(members[0][1]), f"merge group {group!r} has no other stanza "
                                "in this server block: merge needs two or more")
    order, placed = [], set()
    for stanza in stanzas:
        group = stanza.config.merge
        if group is None:
            order.append(stanza)
        elif group not in placed:
            placed.add(group)
            order.append(MergedStanzas(group, [member for member, _ in groups[group]]))
    return order


def merge_line(directive):
    """The last C{merge} option of a stanza's directive (the one that counts)."""
    return [option for option in directive.block if option.name == "merge"][-1]


def merge_replies(replies: list[Response]) -> Response:
    """One reply from several stanzas' replies to one question (see the module's docstring)."""
    if len(replies) == 1:
        return replies[0]
    with_records = [reply for reply in replies if reply.rcode == dns.OK and reply.answers]
    if with_records and (with_records[0].follow or _has_cname(with_records[0])):
        return replace(with_records[0])
    if with_records:
        merged = [reply for reply in with_records if not _has_cname(reply)]
        every = [record for reply in merged for record in reply.answers + reply.additional]
        ttl = min(record.ttl for record in every)
        answers = _union(record for reply in merged for record in reply.answers)
        additional = _union(record for reply in merged for record in reply.additional)
        answers = _shared_weights([_with_ttl(record, ttl) for record in answers])
        return Response(answers=answers, additional=[_with_ttl(record, ttl) for record in additional],
                        authoritative=True, truncated=any(reply.truncated for reply in merged))
    for rcode in (dns.ESERVER, dns.OK, dns.ENAME):
        denials = [reply for reply in replies if reply.rcode == rcode]
        if denials:
            return replace(denials[0], authority=_latest_soa(replies, "authority"))
    return replace(replies[0])


def _has_cname(reply: Response) -> bool:
    return any(record.type == dns.CNAME for record in reply.answers)


def _union(records) -> list[dns.RRHeader]:
    """C{records} each once (by owner, type and data; an SRV by its target and port), SOAs merged into one."""
    seen, union, soas = set(), [], []
    for record in records:
        if record.type == dns.SOA:
            soas.append(record)
            continue
        key = (record.name.name, record.type, _data(record))
        if key not in seen:
            seen.add(key)
            union.append(record)
    return union + ([_soa_of(soas)] if soas else [])


def _data(record: dns.RRHeader):
    if record.type == dns.SRV:
        return record.payload.port, record.payload.target.name
    data = BytesIO()
    record.payload.encode(data)
    return data.getvalue()


def _latest_soa(replies: list[Response], section: str) -> list[dns.RRHeader]:
    """The first reply's C{section}, its SOA merged with the SOAs of the others."""
    soas = [record for reply in replies for record in getattr(reply, section) if record.type == dns.SOA]
    first = getattr(replies[0], section)
    if not soas:
        return first
    return [record for record in first if record.type != dns.SOA] + [_soa_of(soas)]


def _soa_of(soas: list[dns.RRHeader]) -> dns.RRHeader:
    """The first SOA, with the latest serial and the smallest TTL and minimum of all."""
    first = soas[0]
    ttl = min(soa.ttl for soa in soas)
    soa = replace_payload(first.payload, serial=max(soa.payload.serial for soa in soas), ttl=ttl,
                          minimum=min(soa.payload.minimum for soa in soas))
    return dns.RRHeader(first.name.name, dns.SOA, dns.IN, ttl, soa, auth=first.auth)


def replace_payload(payload, **changes):
    """A copy of a twisted.names record with C{changes}; records are never changed in place."""
    copy = payload.__class__.__new__(payload.__class__)
    copy.__dict__.update(payload.__dict__)
    copy.__dict__.update(changes)
    return copy


def _with_ttl(record: dns.RRHeader, ttl: int) -> dns.RRHeader:
    if record.ttl == ttl:
        return record
    return dns.RRHeader(record.name.name, record.type, record.cls, ttl, replace_payload(record.payload, ttl=ttl),
                        auth=record.auth)


def _shared_weights(answers: list[dns.RRHeader]) -> list[dns.RRHeader]:
    """SRV records weighted as one stanza weights its own (CoreDNS's 100 / count), over the union."""
    count = sum(record.type == dns.SRV for record in answers)
    if count == 0:
        return answers
    weight = max(1, int(100 / count))
    return [dns.RRHeader(record.name.name, dns.SRV, record.cls, record.ttl,
                         replace_payload(record.payload, weight=weight), auth=record.auth)
            if record.type == dns.SRV else record for record in answers]
