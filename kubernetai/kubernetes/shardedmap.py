# -*- test-case-name: tests.test_kubernetes_index -*-
"""
An immutable map in 64 shards, so that a new version with a few keys
changed copies only the shards those keys fall in, not the whole table:
what keeps an index change cheap when a cluster has 100,000 endpoints.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Iterator

SHARD_BITS = 6
SHARD_MASK = (1 << SHARD_BITS) - 1
_EMPTY = tuple({} for _ in range(1 << SHARD_BITS))


class ShardedMap(Mapping):
    """A read-only mapping; L{editor} makes the next version."""

    __slots__ = ("shards", "size")

    def __init__(self, shards: tuple[dict, ...] = _EMPTY, size: int = 0) -> None:
        self.shards = shards
        self.size = size

    def __getitem__(self, key) -> Any:
        return self.shards[hash(key) & SHARD_MASK][key]

    def get(self, key, default=None):
        return self.shards[hash(key) & SHARD_MASK].get(key, default)

    def __contains__(self, key) -> bool:
        return key in self.shards[hash(key) & SHARD_MASK]

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator:
        for shard in self.shards:
            yield from shard

    def editor(self) -> MapEditor:
        return MapEditor(self)


class MapEditor:
    """The next version of a ShardedMap, copying a shard on its first change."""

    def __init__(self, base: ShardedMap) -> None:
        self.shards = list(base.shards)
        self.copied: set[int] = set()
        self.size = base.size

    def _writable(self, index: int) -> dict:
        if index not in self.copied:
            self.shards[index] = dict(self.shards[index])
            self.copied.add(index)
        return self.shards[index]

    def get(self, key, default=None):
        return self.shards[hash(key) & SHARD_MASK].get(key, default)

    def __setitem__(self, key, value) -> None:
        shard = self._writable(hash(key) & SHARD_MASK)
        if key not in shard:
            self.size += 1
        shard[key] = value

    def pop(self, key, default=None):
        index = hash(key) & SHARD_MASK
        if key not in self.shards[index]:
            return default
        self.size -= 1
        return self._writable(index).pop(key)

    def build(self) -> ShardedMap:
        return ShardedMap(tuple(self.shards), self.size)
