# -*- test-case-name: tests.test_cache -*-
"""
The cache's memory: an L{Entry} per kept answer (CoreDNS's item.go) and the
sharded L{Table} that holds them with random eviction (plugin/pkg/cache).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

from twisted.names import dns

from kubernetai.cache.rules import retimed
from kubernetai.chain import Response

SHARDS = 256
MIN_SHARD_SIZE = 4


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
    """CoreDNS's sharded cache: 256 dicts of capacity/256 (at least 4), each evicting at random."""

    def __init__(self, capacity: int) -> None:
        self.shard_size = max(capacity // SHARDS, MIN_SHARD_SIZE)
        self.shards: list[dict] = [{} for _ in range(SHARDS)]

    @staticmethod
    def shard_of(key) -> int:
        """The shard C{key} lives in."""
        return hash(key) % SHARDS

    def get(self, key) -> Entry | None:
        """The entry under C{key}, expired or not, or None."""
        return self.shards[self.shard_of(key)].get(key)

    def add(self, key, entry: Entry) -> bool:
        """Store C{entry}; whether another had to be evicted for it."""
        shard = self.shards[self.shard_of(key)]
        evict = len(shard) >= self.shard_size and key not in shard
        if evict:
            del shard[random.choice(list(shard))]
        shard[key] = entry
        return evict

    def remove(self, key) -> None:
        """Forget C{key}, if held."""
        self.shards[self.shard_of(key)].pop(key, None)

    def __len__(self) -> int:
        return sum(map(len, self.shards))


