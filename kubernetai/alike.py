# -*- test-case-name: tests.test_alike -*-
"""
Denials answered alike: a name never asked before, in a zone whose stanza
denies it, answered from the reply another denied name got, with the
question spliced in, without decoding the query or running the chain.

A stanza's NXDOMAIN depends on the name only through the question: its
authority is the zone's SOA.  The handler that answered it may say so, on
the L{Response}, with an L{Alike}: the zone, C{denies(labels)}, which tells
(cheaply, from the live data) whether another name of that zone gets the
same denial, and C{holds()}, which says the reply is still the one the
zone's data gives (as C{valid_while} does).  Every plugin that ran before
that handler must treat the zone's names alike (C{passes_alike(zone)}, see
L{kubernetai.chain.passes_alike}): hand each query on the same way and
change the denial coming back the same way whatever the name.  The observers'
replays (L{kubernetai.reuse}, rule 3) are called for each reply sent so,
with C{grown}: how many octets longer the query and its reply are than the
ones they were made from (a size histogram counts it).

Each listening address keeps, per query shape (the query's bytes but its ID
and name) and zone, the last such reply: its bytes after the question name,
and where its compression pointers are.  Every pointer of a denial points
at the zone in the question or after it, so with another name the pointers
move by as much as the zone did.  The zone must be spelled in the question
exactly as in the kept reply's (case and all), as compression compares
names byte for byte.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Callable, Iterable

from twisted.names import dns

from kubernetai.message import HEADER, MAX_LABEL, POINTER, RECORD_FIXED, SOA_FIXED

# A name's octets on the wire, root octet included, at most (RFC 1035).
MAX_NAME = 255
# Query shapes x zones kept per listening address; more start the table anew.
ALIKE_TEMPLATES_LIMIT = 1024
# Record types whose data a kept denial may hold, by the names in their data.
_NAMES_IN_DATA = {dns.SOA: 2, dns.NS: 1, dns.CNAME: 1, dns.PTR: 1, dns.OPT: 0}


@dataclass(frozen=True)
class Alike:
    """A handler's word that its denial of one name is its reply to other names of C{zone}.

    C{denies(labels)} takes the question's labels left of the zone, lower case, in wire form
    (each with its length first), and is True only when that name gets the same reply;
    C{holds()} is True while the reply itself is unchanged; C{source} is the handler.
    """

    zone: str
    denies: Callable[[bytes], bool]
    holds: Callable[[], bool]
    source: object


class AlikeTemplate:
    """A kept denial: its flags and counts, the bytes after its question name, its pointers and the
    labels written out there, the largest reply its client takes, and the zone of the block that
    answered it (as a question spells it)."""

    __slots__ = ("head", "tail", "pointers", "labels", "zone_start", "limit", "route", "alike", "replays", "tails")

    def __init__(self, head: bytes, tail: bytes, pointers: tuple[tuple[int, int], ...], labels: frozenset[bytes],
                 zone_start: int, limit: int, route: bytes, alike: Alike, replays: tuple) -> None:
        self.head = head
        self.tail = tail
        self.pointers = pointers
        self.labels = labels
        self.zone_start = zone_start
        self.limit = limit
        self.route = route
        self.alike = alike
        self.replays = replays
        self.tails = {0: tail}

    def tail_at(self, zone_start: int) -> bytes:
        """The tail with its pointers moved for a question whose zone starts at C{zone_start}."""
        moved = zone_start - self.zone_start
        tail = self.tails.get(moved)
        if tail is None:
            patched = bytearray(self.tail)
            for position, past_zone in self.pointers:
                POINTER.pack_into(patched, position, 0xC000 | (zone_start + past_zone))
            tail = self.tails[moved] = bytes(patched)
        return tail


def question_labels(packet: bytes) -> tuple[list[int], int] | None:
    """Where each label of the question name starts, and where the name ends (past its root octet);
    None unless the packet holds a plain name: labels of 1 to 63 octets, no compression, 255 octets
    at most (a longer one is FORMERR)."""
    end = min(len(packet), HEADER.size + MAX_NAME)
    offset = HEADER.size
    starts = []
    while offset < end:
        length = packet[offset]
        if length == 0:
            return starts, offset + 1
        if length > MAX_LABEL:
            return None
        starts.append(offset)
        offset += 1 + length
    return None


def wire_name(zone: str) -> bytes:
    """A zone (lower case, fully qualified) as its labels are written in a message, root octet included."""
    labels = zone.rstrip(".").split(".") if zone != "." else []
    return b"".join(bytes([len(label)]) + label.encode("ascii") for label in labels) + b"\x00"


def denial_pointers(reply: bytes, name_end: int, zone_start: int):
    """Every compression pointer after the question of C{reply} (as (place in the tail, target less
    C{zone_start})), and every label written out there (length octet first), if each pointer points at
    the zone in the question or after it, and the records are of types whose names this knows how to
    find; None otherwise."""
    _, _, _, qdcount, ancount, nscount, arcount = HEADER.unpack_from(reply)
    offset = name_end + 4
    pointers = []
    labels = set()
    try:
        for _ in range(ancount + nscount + arcount):
            offset = _name_pointers(reply, offset, pointers, labels)
            record_type, _, _, rdlength = RECORD_FIXED.unpack_from(reply, offset)
            offset += RECORD_FIXED.size
            names = _NAMES_IN_DATA.get(record_type)
            if names is None:
                return None
            data_end = offset + rdlength
            for _ in range(names):
                offset = _name_pointers(reply, offset, pointers, labels)
            if record_type == dns.SOA:
                offset += SOA_FIXED.size
            if offset != data_end:
                return None
    except (IndexError, struct.error):
        return None
    if offset != len(reply) or any(target < zone_start for _, target in pointers):
        return None
    return tuple((position - name_end, target - zone_start) for position, target in pointers), frozenset(labels)


def _name_pointers(message: bytes, offset: int, pointers: list, labels: set) -> int:
    """Past the name at C{offset}, its pointer (place, target) added to C{pointers}, its labels to C{labels}."""
    while True:
        length = message[offset]
        if length >= 0xC0:
            pointers.append((offset, POINTER.unpack_from(message, offset)[0] & 0x3FFF))
            return offset + 2
        if length:
            labels.add(message[offset : offset + 1 + length])
        offset += 1 + length
        if length == 0:
            return offset


@dataclass
class AlikeReplies:
    """The denials a listening address answers alike, by query shape and zone (bounded)."""

    alike_templates: dict[bytes, AlikeTemplate] = field(default_factory=dict)
    # The wire names of the zones of the kept denials, and of the zones served here (to route a
    # question without decoding it).
    alike_zones: frozenset[bytes] = frozenset()
    alike_suffixes: tuple[bytes, ...] = ()
    served_zones: frozenset[bytes] = frozenset()
    alike_limit: int = ALIKE_TEMPLATES_LIMIT

    def alike_reply(self, packet: bytes) -> tuple[bytes, tuple, int] | None:
        """The reply to C{packet}, its observers' replays and how much longer it is than the reply
        they saw, if its name is one a zone here denies alike; None otherwise."""
        if not self.alike_templates:
            return None
        # Most names are in no zone denied alike: the first zero octet usually ends the name.
        if not packet.endswith(self.alike_suffixes, HEADER.size, packet.find(b"\x00", HEADER.size) + 1):
            return None
        found = question_labels(packet)
        if found is None:
            return None
        starts, name_end = found
        denying, served = self.alike_zones, self.served_zones
        zone_start = above_zone = None
        previous = HEADER.size
        for start in starts + [name_end - 1]:
            suffix = packet[start:name_end]
            if zone_start is None and suffix in denying:
                zone_start, zone, above_zone = start, suffix, packet[previous:start]
            if suffix in served:
                break
            previous = start
        else:
            return None
        if zone_start is None:
            return None
        template = self.alike_templates.get(packet[2:HEADER.size] + packet[name_end:] + zone)
        # A name of the reply could be written as a pointer into this question (compression).
        if template is None or template.route != suffix or above_zone in template.labels:
            return None
        labels = packet[HEADER.size:zone_start]
        if not labels.isascii() or not template.alike.denies(labels.lower()) or not template.alike.holds():
            return None
        reply = packet[:2] + template.head + packet[HEADER.size:name_end] + template.tail_at(zone_start)
        if len(reply) > template.limit:
            return None
        return reply, template.replays, zone_start - template.zone_start

    def keep_alike(self, packet: bytes, reply: bytes, alike: Alike, replays: tuple, limit: int,
                   admitted_route: Callable[[], str | None], served_zones: Iterable[str]) -> None:
        """Keep C{reply}, a denial of C{packet}'s name, to answer the names C{alike.zone} denies alike,
        unless the same denial is kept already; C{admitted_route()} is the zone of the block that
        answered, None if it may not be given alike; C{served_zones} those of every block here."""
        found = question_labels(packet)
        zone = wire_name(alike.zone)
        if found is None or not packet[HEADER.size:found[1]].endswith(zone):
            return
        name_end = found[1]
        zone_start = name_end - len(zone)
        key = packet[2:HEADER.size] + packet[name_end:] + zone
        kept = self.alike_templates.get(key)
        if kept is not None and kept.alike.holds() or reply[HEADER.size:name_end] != packet[HEADER.size:name_end]:
            return
        route = admitted_route()
        written = None if route is None else denial_pointers(reply, name_end, zone_start)
        if written is None:
            return
        pointers, labels = written
        if len(self.alike_templates) >= self.alike_limit:
            self.forget_alike()
        self.served_zones = frozenset(wire_name(served) for served in served_zones)
        self.alike_zones |= {zone}
        self.alike_suffixes = tuple(self.alike_zones)
        self.alike_templates[key] = AlikeTemplate(reply[2:HEADER.size], reply[name_end:], pointers, labels,
                                                  zone_start, limit, wire_name(route), alike, replays)

    def forget_alike(self) -> None:
        """Drop every kept denial (the chains that made them are gone)."""
        self.alike_templates, self.alike_zones, self.alike_suffixes = {}, frozenset(), ()
