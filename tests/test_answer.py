"""
The replies a L{ZoneTable} keeps to send again: hot ones stay while others
come and go, and what they hold stays within the table's count, bytes and age.
"""

import gc
import tracemalloc
import weakref

from twisted.internet import task
from twisted.names import dns
from twisted.trial import unittest

from kubernetai.answer import ZoneTable
from kubernetai.chain import Response
from kubernetai.reuse import READY_REPLY_OVERHEAD

REPLY_SIZE = 200


def packet(name: str) -> bytes:
    """A query for C{name} A, as a client sends it."""
    message = dns.Message(id=1, recDes=1)
    message.addQuery(name.encode("ascii"), dns.A, dns.IN)
    return message.toStr()


def keep(table: ZoneTable, name: str, reply_size: int = REPLY_SIZE) -> bytes:
    """Have C{table} keep a reply of C{reply_size} bytes to C{name} that always holds; the query."""
    query = packet(name)
    table.keep_reply(query, query[:2] + bytes(reply_size - 2), Response(valid_while=lambda: True), ())
    return query


def kept_bytes(table: ZoneTable) -> int:
    """The bytes the kept replies of both generations are counted as."""
    return sum(ready.size for kept in (table.ready_replies, table.older_replies) for ready in kept.values())


class KeptReplyTests(unittest.SynchronousTestCase):

    def test_a_hot_reply_stays_while_thousands_come_and_go(self):
        table = ZoneTable(ready_limit=100)
        hot = keep(table, "hot.example")
        for number in range(5000):
            keep(table, f"cold-{number}.example")
            if number % 40 == 0:
                self.assertIsNotNone(table.ready_reply(hot), f"after {number} others")
        self.assertLessEqual(table.kept_replies(), 100)

    def test_a_reply_not_asked_again_is_dropped(self):
        table = ZoneTable(ready_limit=100)
        once = keep(table, "once.example")
        for number in range(100):
            keep(table, f"cold-{number}.example")
        self.assertIsNone(table.ready_reply(once))

    def test_kept_replies_stay_within_the_bytes_bound(self):
        limit = 50 * (REPLY_SIZE + READY_REPLY_OVERHEAD)
        table = ZoneTable(ready_bytes_limit=limit)
        for number in range(1000):
            keep(table, f"cold-{number}.example", reply_size=REPLY_SIZE if number % 2 else 4 * REPLY_SIZE)
            self.assertLessEqual(kept_bytes(table), limit)
        self.assertGreater(table.kept_replies(), 10)

    def test_the_bytes_bound_holds_the_memory(self):
        # What the replies hold, as tracemalloc counts it, within what they are counted as.
        limit = 2**20
        table = ZoneTable(ready_bytes_limit=limit)
        queries = [packet(f"cold-{number}.example.org") for number in range(20000)]
        replies = [query[:2] + bytes(REPLY_SIZE - 2) for query in queries]
        tracemalloc.start()
        self.addCleanup(tracemalloc.stop)
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for query, reply in zip(queries, replies):
            table.keep_reply(query, reply, Response(valid_while=lambda: True), ())
        del queries, replies
        gc.collect()
        self.assertLess(tracemalloc.get_traced_memory()[0] - before, limit)

    def test_replies_not_asked_within_two_generations_are_dropped(self):
        clock = task.Clock()
        table = ZoneTable(ready_seconds=60.0, clock=clock.seconds)
        asked, forgotten = keep(table, "asked.example"), keep(table, "forgotten.example")
        for minute in range(1, 4):
            clock.advance(61)
            keep(table, f"new-{minute}.example")
            self.assertIsNotNone(table.ready_reply(asked), f"minute {minute}")
        self.assertIsNone(table.ready_reply(forgotten))
        self.assertLessEqual(table.kept_replies(), 3)

    def test_a_dropped_generation_is_freed_a_slice_at_a_time(self):
        table = ZoneTable(ready_limit=12, drop_slice=2)
        checks = [lambda: True for _ in range(6)]
        for number, check in enumerate(checks):
            query = packet(f"old-{number}.example")
            table.keep_reply(query, query[:2] + bytes(REPLY_SIZE - 2), Response(valid_while=check), ())
        held = [weakref.ref(check) for check in checks]
        del checks, check
        alive = []
        for number in range(10):
            keep(table, f"new-{number}.example")
            alive.append(sum(ref() is not None for ref in held))
        # The first generation (6 replies) becomes the older one at the 7th reply, and is dropped at the 13th.
        self.assertEqual(alive, [6] * 6 + [4, 2, 0, 0])

    def test_forget_replies_drops_both_generations(self):
        table = ZoneTable(ready_limit=4)
        queries = [keep(table, f"name-{number}.example") for number in range(4)]
        table.forget_replies()
        self.assertEqual([table.ready_reply(query) for query in queries], [None] * 4)
        self.assertEqual((table.kept_replies(), table.ready_bytes), (0, 0))
