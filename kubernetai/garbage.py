# -*- test-case-name: tests.test_garbage -*-
"""
When Python's cyclic garbage collector runs in a daemon that serves.

CPython collects its youngest generation once allocations outnumber
deallocations by 700, and everything once a quarter of its oldest generation
is new.  Here kept replies, cache entries and index objects are replaced as
they change: old objects die about as fast as new ones are made, so the
count stays low while the young generation grows (50,000 objects at one
collection, under 50 service changes a second), and collections held the
reactor 20 to 70 ms each, the full ones 100 ms and more, every few seconds.
None of them, in thousands, found any garbage: what the daemon drops,
reference counting frees.

So, once the daemon serves, what start-up built is frozen (never walked
again) and automatic collection is off.  The reactor collects the young
generations every L{YOUNG_PERIOD}: what was made since the last time, which
catches the short-lived cycles of a rare path (an HTTP request, a failure's
traceback).  Once the memory in use (C{sys.getallocatedblocks}) has grown by
L{FULL_GROWTH} since start-up or the last full collection (CPython's own
amortising rule, on memory rather than on objects moved), everything not
frozen is collected, and what survives is frozen in turn: each full
collection walks only what was made since the last.  The price: a cycle made
of objects that had lived through a full collection is never reclaimed.
"""

from __future__ import annotations

import gc
import sys

from twisted.internet import task

YOUNG_PERIOD = 0.01
FULL_GROWTH = 1.25


def full_collection_due(blocks: int, baseline: int) -> bool:
    """Whether C{blocks} allocated (C{sys.getallocatedblocks}) have grown enough over C{baseline}, their
    number after the last full collection, to walk what was made since."""
    return blocks > baseline * FULL_GROWTH


class Collector:
    """The daemon's collections, from L{start} (it serves) to L{stop}."""

    def __init__(self, reactor) -> None:
        self.loop = task.LoopingCall(self.collect)
        self.loop.clock = reactor
        self.baseline = 0

    def start(self) -> None:
        gc.disable()
        self._freeze()
        self.loop.start(YOUNG_PERIOD, now=False)

    def collect(self) -> None:
        """The young generations; everything not frozen, then frozen, when memory has grown enough."""
        if full_collection_due(sys.getallocatedblocks(), self.baseline):
            gc.collect()
            self._freeze()
        else:
            gc.collect(1)

    def _freeze(self) -> None:
        gc.freeze()
        self.baseline = sys.getallocatedblocks()

    def stop(self) -> None:
        """Collections are CPython's again."""
        if self.loop.running:
            self.loop.stop()
            gc.enable()
