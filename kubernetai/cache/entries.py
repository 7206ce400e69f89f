# -*- test-case-name: tests.test_cache_rules -*-
"""
The cache's memory: an L{Entry} per kept answer (CoreDNS's item.go) and the
sharded L{Table} that holds them with random eviction (plugin/pkg/cache).

Ours on top of CoreDNS's count: a table also holds at most C{max_bytes}
(entries counted by L{Entry.footprint}, evicted at random as the count is;
one larger than a shard's share is not kept), and entries that expired (past
any serve_stale window) are dropped, a shard at a time, so that the names no
longer asked do not stay until evicted.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Callable

from twisted.names import dns

from kubernetai.cache.rules import retimed
from kubernetai.chain import Response

SHARDS = 256
MIN_SHARD_SIZE = 4
# A table's bytes at most, and what an entry is counted as: its objects besides its records, and each
# record with its payload (tests.test_cache_rules measures both against what tracemalloc sees).
TABLE_BYTES = 32 * 2**20
ENTRY_BYTES = 1024
RECORD_BYTES = 400
# Every shard is swept of its expired entries once in this many seconds, while entries are stored.
SWEEP_SECONDS = 30.0


@dataclass(eq=False)
class Entry:
    """A cached answer: what rebuilds its Response, when it was stored, and its popularity."""

    rcode: int
    sections: tuple[tuple[dns.RRHeader, ...], ...]
    recursion_available: bool
    stored: float
    orig_ttl: int
    answering: bool = False
    last_known_good: Entry | None = None
    hits: int = 0
    last_hit: float | None = None
    refreshing: bool = False
    retry_after: float | None = None
    # While this holds, the rest of the chain would give this very answer again (its valid_while).
    source_holds: Callable[[], bool] | None = None

    def ttl(self, now: float) -> int:
        """Seconds left at C{now}; zero or less once expired."""
        return self.orig_ttl - int(now - self.stored)

    def footprint(self) -> int:
        """The bytes this entry is counted as (with its last known good one)."""
        good = self.last_known_good
        return ENTRY_BYTES + RECORD_BYTES * sum(map(len, self.sections)) + (good.footprint() if good else 0)

    def useless(self, now: float, stale_up_to: int) -> bool:
        """Whether neither this entry nor its last known good one may be served at C{now} any more."""
        good = self.last_known_good
        return self.ttl(now) <= -stale_up_to and (good is None or good.ttl(now) <= -stale_up_to)

    def response(self, qname: bytes, ttl: int) -> Response:
        """A fresh Response with every TTL C{ttl}, authoritative as CoreDNS sets cached replies."""
        answers, authority, additional = (retimed(section, ttl, qname) for section in self.sections)
        return Response(rcode=self.rcode, answers=answers, authority=authority, additional=additional,
                        authoritative=True, recursion_available=self.recursion_available)

    def count_hit(self, window: float, now: float) -> None:
        """One more query; the count restarts after a gap of C{window} seconds."""
        self.hits = 1 if self.last_hit is None or self.last_hit < now - window else self.hits + 1
        self.last_hit = now

    def answering_entry(self) -> Entry | None:
        """This entry, or its last known good one, if it answers the question."""
        if self.answering:
            return self
        good = self.last_known_good
        return good if good is not None and good.answering else None

    def begin_refresh(self, now: float, recheck: float) -> bool:
        """Claim the one refresh this entry may have running; False if one runs or must wait."""
        if self.refreshing or (recheck > 0 and self.retry_after is not None and now < self.retry_after):
            return False
        self.refreshing = True
        return True

    def end_refresh(self, now: float, recheck: float, refreshed: bool) -> None:
        """Release the refresh; a failed one holds the next back for C{recheck} seconds."""
        self.retry_after = now + recheck if recheck > 0 and not refreshed else None
        self.refreshing = False


class Table:
    """CoreDNS's sharded cache: 256 dicts of capacity/256 (at least 4), each evicting at random, and
    each holding max_bytes/256 at most."""

    def __init__(self, capacity: int, max_bytes: int = TABLE_BYTES) -> None:
        self.shard_size = max(capacity // SHARDS, MIN_SHARD_SIZE)
        self.shard_bytes_limit = max_bytes // SHARDS
        self.shards: list[dict] = [{} for _ in range(SHARDS)]
        self.shard_bytes = [0] * SHARDS
        self.swept = 0
        self.next_sweep = -math.inf

    @staticmethod
    def shard_of(key) -> int:
        """The shard C{key} lives in."""
        return hash(key) % SHARDS

    def get(self, key) -> Entry | None:
        """The entry under C{key}, expired or not, or None."""
        return self.shards[self.shard_of(key)].get(key)

    def add(self, key, entry: Entry) -> int:
        """Store C{entry}, unless it is larger than a shard's share of the bytes; how many others had to
        be evicted for it."""
        index = self.shard_of(key)
        self._take(index, key)
        shard, size, evicted = self.shards[index], entry.footprint(), 0
        if size > self.shard_bytes_limit:
            return 0
        while shard and (len(shard) >= self.shard_size or self.shard_bytes[index] + size > self.shard_bytes_limit):
            self._take(index, random.choice(list(shard)))
            evicted += 1
        shard[key] = entry
        self.shard_bytes[index] += size
        return evicted

    def remove(self, key) -> None:
        """Forget C{key}, if held."""
        self._take(self.shard_of(key), key)

    def drop_useless(self, now: float, stale_up_to: int) -> None:
        """Drop the entries of the next shard that can no longer be served, if its turn has come."""
        if now < self.next_sweep:
            return
        self.next_sweep = now + SWEEP_SECONDS / SHARDS
        index, self.swept = self.swept, (self.swept + 1) % SHARDS
        for key, entry in list(self.shards[index].items()):
            if entry.useless(now, stale_up_to):
                self._take(index, key)

    def bytes(self) -> int:
        """The bytes the entries held are counted as."""
        return sum(self.shard_bytes)

    def _take(self, index: int, key) -> None:
        entry = self.shards[index].pop(key, None)
        if entry is not None:
            self.shard_bytes[index] -= entry.footprint()

    def __len__(self) -> int:
        return sum(map(len, self.shards))
