"""
When the cyclic garbage collector runs: off on its own once the daemon serves,
the young generations collected on the reactor's clock, what is not frozen
once memory has grown by a quarter, and frozen after (kubernetai.garbage); and
the GIL switch interval the daemon serves with (kubernetai.daemon).
"""

import gc
import sys

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from kubernetai.daemon import REACTOR_GIL_WAIT, build_daemon
from kubernetai.garbage import FULL_GROWTH, YOUNG_PERIOD, Collector, full_collection_due
from tests.support import write_corefile

WHOAMI = """\
whoami.example:0 {
    bind 127.0.0.1
    whoami
}
"""


def collections(generation: int) -> int:
    """How many collections of C{generation} this process has made."""
    return gc.get_stats()[generation]["collections"]


class FullCollectionDueTests(unittest.SynchronousTestCase):
    """The whole heap is walked again once memory has grown by FULL_GROWTH."""

    def test_not_at_the_baseline(self):
        self.assertFalse(full_collection_due(1000, 1000))

    def test_not_below_the_growth(self):
        self.assertFalse(full_collection_due(int(1000 * FULL_GROWTH), 1000))

    def test_past_the_growth(self):
        self.assertTrue(full_collection_due(int(1000 * FULL_GROWTH) + 1, 1000))

    def test_not_after_shrinking(self):
        self.assertFalse(full_collection_due(500, 1000))


class CollectorTests(unittest.SynchronousTestCase):
    """The collector on a clock of its own."""

    def setUp(self):
        self.clock = task.Clock()
        self.collector = Collector(self.clock)
        self.collector.start()
        self.addCleanup(self.collector.stop)

    def test_start_freezes_and_turns_automatic_collection_off(self):
        self.assertFalse(gc.isenabled())
        self.assertGreater(gc.get_freeze_count(), 0)

    def test_stop_turns_it_on_again(self):
        self.collector.stop()
        self.assertTrue(gc.isenabled())

    def test_young_generations_each_period(self):
        young, full = collections(1), collections(2)
        self.clock.advance(YOUNG_PERIOD)
        self.clock.advance(YOUNG_PERIOD)
        self.assertEqual((collections(1) - young, collections(2) - full), (2, 0))

    def test_everything_once_memory_has_grown(self):
        full = collections(2)
        frozen = gc.get_freeze_count()
        grown = [[] for _ in range(int(sys.getallocatedblocks() * (FULL_GROWTH - 1)) + 1000)]
        self.clock.advance(YOUNG_PERIOD)
        self.assertEqual(collections(2) - full, 1)
        self.assertGreaterEqual(gc.get_freeze_count() - frozen, len(grown), "what survived is frozen")
        self.clock.advance(YOUNG_PERIOD)
        self.assertEqual(collections(2) - full, 1, "the baseline is what the full collection left")
        del grown


class DaemonTests(unittest.TestCase):
    """A running daemon hands collection to its collector once it listens, and back when it stops."""

    @defer.inlineCallbacks
    def test_collector_runs_while_listening(self):
        root = build_daemon(write_corefile(self, WHOAMI)).service(reactor)
        self.addCleanup(lambda: root.stopService() if root.running else None)
        root.startService()
        yield root.getServiceNamed("dns").listening
        self.assertFalse(gc.isenabled())
        self.assertTrue(root.collector.loop.running)
        yield root.stopService()
        self.assertTrue(gc.isenabled())

    @defer.inlineCallbacks
    def test_switch_interval_while_listening(self):
        before = sys.getswitchinterval()
        root = build_daemon(write_corefile(self, WHOAMI)).service(reactor)
        self.addCleanup(lambda: root.stopService() if root.running else None)
        root.startService()
        yield root.getServiceNamed("dns").listening
        self.assertEqual(sys.getswitchinterval(), REACTOR_GIL_WAIT)
        yield root.stopService()
        self.assertEqual(sys.getswitchinterval(), before)
