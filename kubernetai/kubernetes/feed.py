# -*- test-case-name: tests.test_feed,tests.test_dataplane -*-
"""
One data plane for every worker: the supervisor's watches feed each worker's index.

With C{--workers N} the supervisor runs each stanza's L{Cluster} (its watches and its
index), as a single process does, and streams what its index thread applies to every
worker over a pipe of its own (the worker's fd L{FEED_FD}): the reduced changes
(L{Listed}, L{Changed}, L{Deleted}), never the API server's JSON.  In a worker each
stanza's L{Replica} puts them on its index thread's queue, as watch threads do in a
single process: the worker's reactor reads the snapshots it publishes without a lock
and never sees half an update.

Messages are length-prefixed pickles (both ends are the same install, parent and child):

- C{("layout", [(feed, config, url, name), ...])}: the supervisor's stanzas in Corefile order,
  first thing on every pipe and again after each reload; a worker builds (and rebuilds)
  its stanzas from the replicas of the feeds whose config equals theirs.
- C{("snapshot", feed, seq, [Listed, ...], statuses)}: everything the supervisor's index
  of C{feed} holds, as of its change C{seq}, and how its watches are doing.
- C{("changes", feed, seq, [change, ...])}: the batch the supervisor's index thread applied
  as its change C{seq}; a replica applies C{seq} only right after C{seq - 1} or a snapshot
  of it, drops what it already holds, and asks for a snapshot again on a gap.
- C{("status", feed, statuses)}: the watches' L{WatchStatus}es, when they change (failover
  and C{/ready?verbose} in workers read them).
- C{("reload",)}: the Corefile was reloaded; the worker reloads it too.

A worker tells its supervisor, on its control pipe, how many bytes of its feed it has
taken (C{{"taken": N}}), and asks for a snapshot of a feed again (C{{"resync": feed}}).
A snapshot is taken on the supervisor's index thread between two batches, so it holds
exactly the changes up to its C{seq}; every change after it follows on the pipe.  A
worker that starts (or starts again) gets the layout, then a snapshot of every feed.

A slow worker does not stall the supervisor or the other workers: the supervisor writes
without blocking, and once a worker has more than L{BEHIND_LIMIT} bytes of changes
written to it and not taken, it gets no more changes until it has taken everything it
was sent; then a fresh snapshot of every feed.  Meanwhile it serves what it holds.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import struct
import threading
import time
from typing import Callable

from twisted.internet import task
from twisted.logger import Logger

from kubernetai.kubernetes.cluster import Cluster, Index
from kubernetai.kubernetes.watch import WatchStatus

log = Logger(namespace="kubernetai.kubernetes.feed")

# The worker's end of its feed (fd 3 is its control pipe, L{kubernetai.worker.CONTROL_FD}).
FEED_FD = 4
# Bytes of changes written to a worker and not yet taken by it, past which it gets a fresh snapshot instead.
BEHIND_LIMIT = 64 * 2**20
# Changes a replica's index thread may have waiting; past it, the worker reads no more of its feed
# (looking again every BACKLOG_PAUSE seconds) until the index thread has caught up.
REPLICA_QUEUE = 100_000
BACKLOG_PAUSE = 0.01
# How often the supervisor looks whether a stanza's watches changed state, to tell the workers.
STATUS_INTERVAL = 0.5
HEADER = struct.Struct("!I")
READ_SIZE = 2**16


def frame(message: tuple) -> bytes:
    """One message as it goes on a feed."""
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(body)) + body


class Frames:
    """Bytes in, (message, its size on the feed) out."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[tuple, int]]:
        self.buffer += data
        messages = []
        while len(self.buffer) >= HEADER.size:
            (size,) = HEADER.unpack_from(self.buffer)
            end = HEADER.size + size
            if len(self.buffer) < end:
                break
            messages.append((pickle.loads(self.buffer[HEADER.size:end]), end))
            del self.buffer[:end]
        return messages


def copied(statuses: list[WatchStatus]) -> list[WatchStatus]:
    """The watches' statuses as they are now (their threads go on writing the originals)."""
    return [dataclasses.replace(status) for status in statuses]


# The supervisor's side.


class Publisher:
    """One stanza's feed in the supervisor: numbers what its cluster's index thread applies, and
    takes the snapshots the workers need, on that thread."""

    def __init__(self, feed: int, cluster: Cluster, hub: Hub) -> None:
        self.feed = feed
        self.cluster = cluster
        self.hub = hub
        self.seq = 0
        self.sent_statuses: list[WatchStatus] | None = None
        cluster.tap = self.applied

    def applied(self, batch: list) -> None:
        """On the index thread: the batch it just applied goes to every worker."""
        self.seq += 1
        self.hub.reactor.callFromThread(self.hub.broadcast, self.feed, frame(("changes", self.feed, self.seq, batch)))

    def snapshot_for(self, outlet: Outlet) -> None:
        """Have the index thread take a snapshot for C{outlet}, between two batches."""
        self.cluster.changes.put(lambda: self._snapshot(outlet))

    def _snapshot(self, outlet: Outlet) -> None:
        message = ("snapshot", self.feed, self.seq, self.cluster.listed_now(), copied(self.cluster.watch_statuses()))
        self.hub.reactor.callFromThread(outlet.deliver_snapshot, self.feed, frame(message))

    def statuses_changed(self) -> list[WatchStatus] | None:
        """The watches' statuses if they changed since they were last sent, else None."""
        statuses = copied(self.cluster.watch_statuses())
        if statuses == self.sent_statuses:
            return None
        self.sent_statuses = statuses
        return statuses


class Outlet:
    """One running worker's feed, as the supervisor writes it (on the reactor thread)."""

    def __init__(self, hub: Hub, write: Callable[[bytes], None], name: str, limit: int = BEHIND_LIMIT) -> None:
        self.hub = hub
        self.limit = limit
        self._write = write
        self.name = name
        self.written = 0
        self.taken_bytes = 0
        self.snapshot_mark = 0
        self.waiting: set[int] = set()
        self.behind = False
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += len(data)
        self._write(data)

    def start(self) -> None:
        """The layout, then a snapshot of every feed."""
        self.write(self.hub.layout_frame())
        for feed in self.hub.publishers:
            self.resync(feed)

    def resync(self, feed: int) -> None:
        """No changes of C{feed} until a fresh snapshot of it."""
        publisher = self.hub.publishers.get(feed)
        if publisher is not None and not self.closed:
            self.waiting.add(feed)
            publisher.snapshot_for(self)

    def change(self, feed: int, data: bytes) -> None:
        """A change or status of C{feed}: written, unless this worker waits for its snapshot or is too far behind."""
        if self.closed or self.behind or feed in self.waiting:
            return
        if self.written - max(self.taken_bytes, self.snapshot_mark) > self.limit:
            self.behind = True
            log.warn("{worker} is more than {limit} bytes behind its feed: a fresh snapshot once it has caught up",
                     worker=self.name, limit=self.limit)
            return
        self.write(data)

    def deliver_snapshot(self, feed: int, data: bytes) -> None:
        if self.closed or feed not in self.hub.publishers:
            return
        self.write(data)
        self.snapshot_mark = self.written
        self.waiting.discard(feed)

    def taken(self, count: int) -> None:
        """The worker has taken C{count} bytes of its feed; one that was behind and has taken all gets snapshots."""
        self.taken_bytes = count
        if self.behind and count == self.written:
            self.behind = False
            for feed in self.hub.publishers:
                self.resync(feed)


class Hub:
    """The supervisor's feeds: one L{Publisher} per stanza, one L{Outlet} per running worker."""

    def __init__(self, reactor) -> None:
        self.reactor = reactor
        self.publishers: dict[int, Publisher] = {}
        self.layout: list[tuple[int, object, str, str]] = []
        self.outlets: list[Outlet] = []
        self.next_feed = 1
        self.statuses = task.LoopingCall(self.send_statuses)
        self.statuses.clock = reactor

    def publish(self, stanzas: list) -> None:
        """Feed the clusters of C{stanzas} (a kept cluster keeps its feed); tell every running worker,
        with a snapshot of each new feed and a reload."""
        known = {publisher.cluster: publisher for publisher in self.publishers.values()}
        publishers = {}
        for stanza in stanzas:
            publisher = known.get(stanza.cluster)
            if publisher is None:
                publisher = Publisher(self.next_feed, stanza.cluster, self)
                self.next_feed += 1
            publishers[publisher.feed] = publisher
        new = [feed for feed in publishers if feed not in self.publishers]
        self.publishers = publishers
        self.layout = [(publisher.feed, stanza.config, stanza.cluster.url, stanza.describe())
                       for publisher, stanza in zip(publishers.values(), stanzas)]
        for outlet in self.outlets:
            outlet.waiting &= set(publishers)
            outlet.write(self.layout_frame())
            for feed in new:
                outlet.resync(feed)
            outlet.write(frame(("reload",)))

    def layout_frame(self) -> bytes:
        return frame(("layout", self.layout))

    def attach(self, outlet: Outlet) -> None:
        self.outlets.append(outlet)
        outlet.start()

    def detach(self, outlet: Outlet) -> None:
        outlet.closed = True
        if outlet in self.outlets:
            self.outlets.remove(outlet)

    def broadcast(self, feed: int, data: bytes) -> None:
        for outlet in self.outlets:
            outlet.change(feed, data)

    def send_statuses(self) -> None:
        for feed, publisher in self.publishers.items():
            statuses = publisher.statuses_changed()
            if statuses is not None:
                self.broadcast(feed, frame(("status", feed, statuses)))

    def start(self) -> None:
        self.statuses.start(STATUS_INTERVAL, now=False)

    def stop(self) -> None:
        if self.statuses.running:
            self.statuses.stop()


# The worker's side.


class Replica(Index):
    """A stanza's index in a worker, fed by the supervisor's watches (L{FeedReader}); its watches'
    statuses are theirs as the supervisor last told."""

    def __init__(self, stanza, url: str, reactor) -> None:
        super().__init__(stanza, url, reactor)
        self.statuses: list[WatchStatus] = []
        # The supervisor's change this replica holds up to; None while it waits for a snapshot.
        self.seq: int | None = None

    def watch_statuses(self) -> list[WatchStatus]:
        return self.statuses


class FeedReader:
    """A worker's end of its feed: the replicas of the supervisor's layout, fed on a thread of
    its own; C{report} sends a control message (called on the reactor thread)."""

    def __init__(self, fd: int, reactor, report: Callable[[dict], None]) -> None:
        self.fd = fd
        self.reactor = reactor
        self.report = report
        self.frames = Frames()
        self.replicas: dict[int, Replica] = {}
        self.layout: list[tuple[int, object, str, str]] = []
        self.taken = 0
        self.on_reload: Callable[[], object] = lambda: None
        self.pending: list[tuple[tuple, int]] = []

    def read_layout(self) -> None:
        """Read until the first layout has arrived (before the worker builds its stanzas); EOFError if
        the supervisor closed the feed first."""
        while not self.layout:
            self.pending += self.frames.feed(self._read())
            while self.pending and not self.layout:
                self.handle(*self.pending.pop(0))

    def replicas_by_config(self) -> dict:
        """The replicas of the layout by stanza options, in Corefile order (as a reload reuses clusters)."""
        by_config: dict = {}
        for feed, config, _, _ in self.layout:
            by_config.setdefault(config, []).append(self.replicas[feed])
        return by_config

    def start(self, on_reload: Callable[[], object]) -> None:
        """Read the rest of the feed on a thread; C{on_reload} is called on the reactor at each reload."""
        self.on_reload = on_reload
        threading.Thread(target=self._read_loop, name="kubernetai-feed", daemon=True).start()

    def _read(self) -> bytes:
        data = os.read(self.fd, READ_SIZE)
        if not data:
            raise EOFError("the supervisor closed the feed")
        return data

    def _read_loop(self) -> None:
        pending, self.pending = self.pending, []
        try:
            while True:
                for message, size in pending:
                    self.handle(message, size)
                pending = self.frames.feed(self._read())
        except EOFError:
            return

    def handle(self, message: tuple, size: int) -> None:
        """Apply one message; then tell the supervisor how much of the feed is taken."""
        getattr(self, "_" + message[0])(*message[1:])
        self.taken += size
        self.reactor.callFromThread(self.report, {"taken": self.taken})

    def _layout(self, layout: list) -> None:
        replicas = {}
        for feed, config, url, name in layout:
            replica = self.replicas.get(feed)
            if replica is None:
                replica = Replica(config, url, self.reactor)
                replica.link.name = name
                replica.start()
            replicas[feed] = replica
        self.replicas, self.layout = replicas, layout

    def _snapshot(self, feed: int, seq: int, listed: list, statuses: list) -> None:
        replica = self.replicas.get(feed)
        if replica is None:
            return
        replica.statuses = statuses
        _put(replica, listed)
        replica.seq = seq

    def _changes(self, feed: int, seq: int, batch: list) -> None:
        replica = self.replicas.get(feed)
        if replica is None or replica.seq is None or seq <= replica.seq:
            return
        if seq != replica.seq + 1:
            log.error("{stanza}: change {seq} of the supervisor's feed after {held}: asking for a snapshot",
                      stanza=replica.link.name, seq=seq, held=replica.seq)
            replica.seq = None
            self.reactor.callFromThread(self.report, {"resync": feed})
            return
        _put(replica, batch)
        replica.seq = seq

    def _status(self, feed: int, statuses: list) -> None:
        replica = self.replicas.get(feed)
        if replica is not None:
            replica.statuses = statuses

    def _reload(self) -> None:
        self.reactor.callFromThread(self.on_reload)


def _put(replica: Replica, changes: list) -> None:
    """Queue C{changes} for the replica's index thread, once it has fewer than REPLICA_QUEUE waiting
    (the queue itself has no bound: the reactor that stops a replica never waits for it)."""
    while replica.changes.qsize() >= REPLICA_QUEUE and any(thread.is_alive() for thread in replica.threads):
        time.sleep(BACKLOG_PAUSE)
    for change in changes:
        replica.changes.put(change)
