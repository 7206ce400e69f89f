# -*- test-case-name: tests.test_garbage -*-
"""
When Python's cyclic garbage collector runs in a daemon that serves.

CPython collects its youngest generation once allocations outnumber
deallocations by 700.  Here kept replies, cache entries and index objects are
replaced as they change, so old objects die about as fast as new ones are
made: the count stays low while the young generation grows (50,000 objects
at one collection, under 50 service changes a second), and its collection
held the reactor for 20 to 70 ms; the full collections CPython starts once a
quarter of the old generation is new walked everything made since start-up
(100 ms and more).  None of them found any garbage.

So, once the daemon serves, what start-up built is frozen (never walked
again), automatic collection is off, and the reactor collects instead: the
young generations every L{YOUNG_PERIOD} (what was made since the last time:
a millisecond or two at the most), and everything but the frozen only when
the memory in use has grown by L{FULL_GROWTH} since the last full collection,
the amortising rule of CPython's own, measured on memory rather than on
objects moved, so that cycles which lived long are still reclaimed.
"""

from __future__ import annotations

import gc
import sys

from twisted.internet import task

YOUNG_PERIOD = 0.05
FULL_GROWTH = 1.25


def full_collection_due(blocks: int, baseline: int) -> bool:
    """Whether C{blocks} allocated (C{sys.getallocatedblocks}) have grown enough over C{baseline}, their
    number after the last full collection, to walk the whole heap again."""
    return blocks > baseline * FULL_GROWTH


class Collector:
    """The reactor's collections, from L{start} (the daemon serves) to L{stop}."""

    def __init__(self, reactor) -> None:
        self.loop = task.LoopingCall(self.collect)
        self.loop.clock = reactor
        self.baseline = 0

    def start(self) -> None:
        gc.freeze()
        gc.disable()
        self.baseline = sys.getallocatedblocks()
        self.loop.start(YOUNG_PERIOD, now=False)

    def collect(self) -> None:
        """The young generations, or everything not frozen when memory has grown enough."""
        if full_collection_due(sys.getallocatedblocks(), self.baseline):
            gc.collect()
            self.baseline = sys.getallocatedblocks()
        else:
            gc.collect(1)

    def stop(self) -> None:
        """Collections are CPython's again."""
        if self.loop.running:
            self.loop.stop()
            gc.enable()
